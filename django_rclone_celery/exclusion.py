"""Which tables' rows leave a dump when models are excluded, and when that is refused.

The rule, for every kind of dump that excludes models (``pgclone dump -e``):

* a model's own table goes, and so do the many-to-many tables Django created
  for a relation that involves it (``auth.User``'s ``auth_user_groups``...):
  their rows mean nothing without it;
* if any other table still points at it (a foreign key, a one-to-one, a
  custom ``through`` model, or a database constraint Django does not know
  of), the dump is refused before anything is written, naming those models:
  their rows would point at rows the dump does not hold, and the restore
  would fail on the constraint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.apps import apps
from django.db import models
from django.db.models import ForeignObjectRel

from .exceptions import ConfigurationError

# table -> (referencing table, constraint) pairs, read from the database.
ReferencesReader = Callable[[list[str]], list[tuple[str, str]]]


@dataclass(frozen=True)
class Exclusion:
    labels: tuple[str, ...]  # as given, in order
    # Every table whose rows are left out: the models' own, in the order given,
    # then the many-to-many tables that go with them.
    tables: tuple[str, ...]


def _model(label: str) -> type[models.Model]:
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise ConfigurationError(
            f"cannot exclude {label!r}: not an installed model (use app_label.ModelName)"
        ) from None
    return model._meta.concrete_model or model


def _label(model: type[models.Model]) -> str:
    return f"{model._meta.app_label}.{model.__name__}"


def _auto_m2m_tables(model: type[models.Model]) -> set[str]:
    """The tables Django created for many-to-many relations from or to ``model``."""
    tables = set()
    for f in model._meta.get_fields(include_hidden=True):
        if f.many_to_many:
            # The field holds its through model on its rel; a reverse rel holds it itself
            # (asking `concrete` is not enough: Django 6.0 reports M2M fields as not concrete).
            rel = f if isinstance(f, ForeignObjectRel) else f.remote_field
            through = rel.through  # type: ignore[union-attr]
            if through._meta.auto_created:
                tables.add(through._meta.db_table)
    return tables


def _referrers(model: type[models.Model]) -> Iterable[tuple[type[models.Model], str]]:
    """Models whose rows point at ``model``'s, and by which field (M2M tables aside)."""
    for rel in model._meta.get_fields(include_hidden=True):
        if rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one):
            # A reverse relation: the field lives on rel.related_model.
            other = rel.related_model
            if isinstance(other, type) and not other._meta.auto_created:
                yield other._meta.concrete_model or other, rel.field.name  # type: ignore[union-attr]


def plan(labels: Iterable[str], references: ReferencesReader | None = None) -> Exclusion:
    """The tables to leave out for ``labels``; raises :class:`ConfigurationError` if
    another model (or, per ``references``, another table) still points at them."""
    given = tuple(dict.fromkeys(labels))
    chosen = [_model(label) for label in given]
    own = list(dict.fromkeys(m._meta.db_table for m in chosen))
    joins: set[str] = set()
    for m in chosen:
        joins |= _auto_m2m_tables(m)
    tables = set(own) | joins

    blocking: dict[str, list[str]] = {}  # referencing model -> "field -> excluded model"
    for m in chosen:
        for other, field in _referrers(m):
            if other._meta.db_table not in tables:
                blocking.setdefault(_label(other), []).append(f"{field} -> {_label(m)}")
    if references is not None:
        known = {m._meta.db_table: _label(m) for m in apps.get_models(include_auto_created=True)}
        for table, constraint in references(sorted(tables)):
            if table not in tables:
                name = known.get(table, f"table {table}")
                entry = f"constraint {constraint}"
                if name not in blocking:
                    blocking[name] = [entry]
    if blocking:
        listed = "; ".join(f"{name} ({', '.join(why)})" for name, why in sorted(blocking.items()))
        more = " ".join(f"-e {name}" for name in sorted(blocking) if not name.startswith("table "))
        hint = f"exclude them too ({more})" if more else "exclude their rows too"
        raise ConfigurationError(
            f"cannot exclude {', '.join(given)}: rows of other tables still point at its rows, "
            f"so the dump would not restore: {listed}; {hint}, or keep those rows"
        )
    return Exclusion(labels=given, tables=(*own, *sorted(joins - set(own))))
