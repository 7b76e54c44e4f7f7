"""Two versions of one model over one table, in private app registries.

``ArticleV1`` is the model as it was when the data was dumped; ``ArticleV2``
is today's: ``title`` was renamed ``headline``, ``rating`` (with a default)
and ``created`` (``auto_now_add``) were added, ``legacy`` was removed. Tests
create the table from one class and load into the table made from the other.
"""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import models

TABLE = "portable_article"


class ArticleV1(models.Model):  # noqa: DJ008
    title = models.CharField(max_length=100)
    body = models.TextField()
    legacy = models.CharField(max_length=20)

    class Meta:
        apps = Apps()
        app_label = "portable_versions"
        db_table = TABLE


class ArticleV2(models.Model):  # noqa: DJ008
    headline = models.CharField(max_length=100)
    body = models.TextField()
    rating = models.IntegerField(default=3)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        apps = Apps()
        app_label = "portable_versions"
        db_table = TABLE


class ArticleV2Strict(models.Model):  # noqa: DJ008
    """v2 plus a required field no default can fill."""

    headline = models.CharField(max_length=100)
    body = models.TextField()
    rating = models.IntegerField(default=3)
    created = models.DateTimeField(auto_now_add=True)
    owner = models.CharField(max_length=50)

    class Meta:
        apps = Apps()
        app_label = "portable_versions"
        db_table = TABLE
