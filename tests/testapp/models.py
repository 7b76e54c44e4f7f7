from __future__ import annotations

import uuid

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=200)
    born = models.DateField(null=True)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=300)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    published = models.DateTimeField(null=True)
    uid = models.UUIDField(default=uuid.uuid4)
    blob = models.BinaryField(null=True)
    meta = models.JSONField(default=dict)

    def __str__(self) -> str:
        return self.title
