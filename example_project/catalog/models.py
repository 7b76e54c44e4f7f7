"""A small bookshop: publishers, authors, books with cover files, and reviews."""

from __future__ import annotations

from django.db import models


class Publisher(models.Model):
    name = models.CharField(max_length=200, unique=True)
    city = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return self.name


class Author(models.Model):
    name = models.CharField(max_length=200)
    born = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=300)
    isbn = models.CharField(max_length=17, unique=True)
    publisher = models.ForeignKey(Publisher, on_delete=models.PROTECT, related_name="books")
    authors = models.ManyToManyField(Author, related_name="books")
    price = models.DecimalField(max_digits=8, decimal_places=2)
    published = models.DateField(null=True, blank=True)
    cover = models.FileField(upload_to="covers/", blank=True)

    def __str__(self) -> str:
        return self.title


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.CharField(max_length=100)
    stars = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.reviewer} on {self.book}: {self.stars}/5"
