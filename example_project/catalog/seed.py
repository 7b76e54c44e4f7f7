"""Demo data: a few publishers, authors and books, each book with a cover file."""

from __future__ import annotations

import hashlib
import random
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from .models import Author, Book, Publisher, Review

PUBLISHERS = [("Harbour Press", "Lisbon"), ("Northwind Books", "Oslo"), ("Cedar & Sons", "Leeds")]
REVIEWS = 40_000
AUTHORS = ["Ada Marsh", "Tomas Vey", "Ines Okafor", "Lena Brandt", "Omar Said"]
TITLES = [
    "The Quiet Harbour",
    "Salt and Iron",
    "A Map of Small Rivers",
    "Winter Ledger",
    "The Glass Orchard",
    "Notes on Tides",
    "Paper Lanterns",
    "The Last Ferry",
    "Copper Skies",
    "Ninety Bridges",
    "The Weaver's Year",
    "Stone Soup Physics",
]


def _cover(title: str) -> bytes:
    # A small SVG per book; enough to make media backup and restore visible.
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="300">'
        f'<rect width="200" height="300" fill="#345"/><text x="10" y="150" fill="#fff">{title}'
        "</text></svg>\n"
    ).encode()


@transaction.atomic
def seed() -> dict[str, int]:
    """Replace the catalogue with the demo data and return the row counts."""
    Review.objects.all().delete()
    Book.objects.all().delete()
    Author.objects.all().delete()
    Publisher.objects.all().delete()
    covers = Path(settings.MEDIA_ROOT) / "covers"
    if covers.is_dir():
        for old in covers.iterdir():
            old.unlink()
    publishers = [Publisher.objects.create(name=n, city=c) for n, c in PUBLISHERS]
    authors = [
        Author.objects.create(name=n, born=date(1950 + 7 * i, 1 + i, 1 + i))
        for i, n in enumerate(AUTHORS)
    ]
    for i, title in enumerate(TITLES):
        book = Book.objects.create(
            title=title,
            isbn=f"978-0-00-{i:06d}-0",
            publisher=publishers[i % len(publishers)],
            price=Decimal("9.90") + i,
            published=date(2001 + i, 1 + i % 12, 1 + i),
        )
        book.authors.set([authors[i % len(authors)], authors[(i + 2) % len(authors)]])
        book.cover.save(f"book-{i:02d}.svg", ContentFile(_cover(title)), save=True)
    _reviews(list(Book.objects.order_by("id")))
    return counts()


def _reviews(books: list[Book]) -> None:
    # Enough rows that a backup takes a moment and its progress can be watched.
    rng = random.Random(6)
    words = ["quiet", "salt", "river", "map", "ledger", "orchard", "tide", "lantern"]
    Review.objects.bulk_create(
        (
            Review(
                book=books[n % len(books)],
                reviewer=f"reader{n}",
                stars=1 + n % 5,
                text=" ".join(rng.choices(words, k=40)),
            )
            for n in range(REVIEWS)
        ),
        batch_size=2000,
    )


def counts() -> dict[str, int]:
    return {
        "publishers": Publisher.objects.count(),
        "authors": Author.objects.count(),
        "books": Book.objects.count(),
        "reviews": Review.objects.count(),
    }


def media_digest() -> dict[str, str]:
    """sha256 of every file under MEDIA_ROOT, by relative path."""
    root = Path(settings.MEDIA_ROOT)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
