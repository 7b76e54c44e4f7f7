"""Which models a dump or load covers: the apps asked for, in foreign-key order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import apps
from django.db import models, router

from ..connectors import check_alias
from .errors import PortableFormatError
from .order import order_models

ModelType = type[models.Model]
# This package's own tables (the run ledger, the watchdog's state) describe
# runs, not data: loading them from a backup would roll the history back and
# bring back the dumping run as "running". Never dumped from all apps.
OWN_APP = "django_rclone_celery"


class UnknownApp(PortableFormatError):
    """An app label on the command line is not installed."""


def _own_tables(model: ModelType) -> list[ModelType]:
    """The model, then the auto-created many-to-many tables it declares."""
    found = [model]
    for field in model._meta.local_many_to_many:
        through = field.remote_field.through
        if isinstance(through, type) and through._meta.auto_created:
            found.append(through)
    return found


def select_models(
    app_labels: Sequence[str] = (),
    *,
    models_: Iterable[ModelType] | None = None,
    using: str = "default",
) -> list[ModelType]:
    """Concrete, managed models of ``app_labels`` (all apps if empty) routed to ``using``.

    ``models_`` replaces the app lookup with an explicit list (tests, custom tools).
    Many-to-many through tables are included and come after the models they join.
    """
    check_alias(using)
    if models_ is not None:
        chosen = list(models_)
    else:
        configs: list[Any] = []
        for label in app_labels:
            try:
                configs.append(apps.get_app_config(label))
            except LookupError:
                raise UnknownApp(f"no installed app with label {label!r}") from None
        if not configs:
            configs = [c for c in apps.get_app_configs() if c.label != OWN_APP]
        chosen = [m for config in configs for m in config.get_models()]
    selected: list[ModelType] = []
    for model in chosen:
        for table_model in _own_tables(model):
            meta = table_model._meta
            if meta.proxy or not meta.managed or table_model in selected:
                continue
            if not router.allow_migrate_model(using, table_model):
                continue
            selected.append(table_model)
    return order_models(selected)


def referencing_tables(targets: Iterable[ModelType], using: str) -> set[str]:
    """Tables of every installed model with a foreign key into ``targets``.

    Emptying a table can leave such rows dangling; they are checked before commit.
    """
    target_set = set(targets)
    found = set()
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not router.allow_migrate_model(using, model):
            continue
        for field in model._meta.concrete_fields:
            related = field.related_model if field.is_relation else None
            if related in target_set:
                found.add(model._meta.db_table)
    return found
