from __future__ import annotations

from django.contrib import admin

from .models import Author, Book, Publisher, Review


class ReviewInline(admin.TabularInline):
    model = Review
    extra = 0


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):
    list_display = ["title", "isbn", "publisher", "price", "published"]
    search_fields = ["title", "isbn"]
    filter_horizontal = ["authors"]
    inlines = [ReviewInline]


admin.site.register(Publisher)
admin.site.register(Author)
