"""Models for the portable dump/load tests: every field type, a cycle, many-to-many."""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

from django.db import models


class ZoneField(models.CharField):  # type: ignore[type-arg]
    """A custom field whose Python value is an object (like django-timezone-field)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return self.to_python(value)

    def to_python(self, value: Any) -> Any:
        return ZoneInfo(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        return str(value) if isinstance(value, ZoneInfo) else value


class Label:
    """A value object stored as text by :class:`LabelField`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Label) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Label({self.text!r})"


class LabelField(models.Field):  # type: ignore[type-arg]
    """A custom field type the portable format does not know (type code "text")."""

    def get_internal_type(self) -> str:
        return "LabelField"

    def db_type(self, connection: Any) -> str:
        return "varchar(40)"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return None if value is None else Label(value)

    def to_python(self, value: Any) -> Any:
        return value if value is None or isinstance(value, Label) else Label(str(value))

    def get_prep_value(self, value: Any) -> Any:
        return value.text if isinstance(value, Label) else value


class Every(models.Model):
    """One column of each kind the format must carry exactly."""

    char = models.CharField(max_length=200)
    text = models.TextField(blank=True)
    integer = models.IntegerField()
    big = models.BigIntegerField(null=True)
    small = models.SmallIntegerField(default=0)
    positive = models.PositiveIntegerField(default=0)
    flag = models.BooleanField(default=False)
    maybe = models.BooleanField(null=True)
    price = models.DecimalField(max_digits=30, decimal_places=10, null=True)
    ratio = models.FloatField(null=True)
    day = models.DateField(null=True)
    moment = models.DateTimeField(null=True)
    clock = models.TimeField(null=True)
    span = models.DurationField(null=True)
    uid = models.UUIDField(default=uuid.uuid4)
    blob = models.BinaryField(null=True)
    data = models.JSONField(null=True)
    email = models.EmailField(blank=True)
    slug = models.SlugField(blank=True)
    ip = models.GenericIPAddressField(null=True)
    zone = ZoneField(max_length=64, null=True)
    label = LabelField(null=True)

    class Meta:
        app_label = "portable_app"

    def __str__(self) -> str:
        return str(self.char)


class Stamped(models.Model):
    name = models.CharField(max_length=50)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "portable_app"

    def __str__(self) -> str:
        return str(self.name)


class Team(models.Model):
    """Team -> captain (Person) and Person -> team: a foreign-key cycle."""

    name = models.CharField(max_length=50)
    captain = models.ForeignKey("Person", null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        app_label = "portable_app"

    def __str__(self) -> str:
        return str(self.name)


class Tag(models.Model):
    code = models.UUIDField(primary_key=True, default=uuid.uuid4)
    label = models.CharField(max_length=50, unique=True)

    class Meta:
        app_label = "portable_app"

    def __str__(self) -> str:
        return str(self.label)


class Person(models.Model):
    name = models.CharField(max_length=50)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    mentor = models.ForeignKey("self", null=True, on_delete=models.SET_NULL)
    tags = models.ManyToManyField(Tag, blank=True)

    class Meta:
        app_label = "portable_app"

    def __str__(self) -> str:
        return str(self.name)


class Item(models.Model):
    code = models.CharField(max_length=20, unique=True)
    qty = models.IntegerField()

    class Meta:
        app_label = "portable_app"

    def __str__(self) -> str:
        return str(self.code)
