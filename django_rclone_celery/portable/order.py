"""Foreign-key order: a table is loaded after the tables it points at.

Cycles (two models pointing at each other, or longer loops) cannot be put in
order. They are broken at a deterministic place and reported; the load stays
correct because foreign keys are only checked once every table is in (see
``load.py``), so order matters for readability and for early errors, never for
correctness.
"""

from __future__ import annotations

from django.db import models

ModelType = type[models.Model]


def dependencies(
    model: ModelType, among: set[ModelType], *, nullable: bool = True
) -> set[ModelType]:
    """The models among ``among`` that ``model``'s foreign keys point at (itself excluded).

    ``nullable=False`` counts only keys that cannot be NULL.
    """
    found = set()
    for field in model._meta.concrete_fields:
        if not field.is_relation or field.related_model not in among:
            continue
        if field.related_model is model or (field.null and not nullable):
            continue
        found.add(field.related_model)
    return found


def order_models(selected: list[ModelType]) -> list[ModelType]:
    """Topological order, stable by label.

    A cycle is broken at a nullable foreign key where there is one (the model
    whose only unmet keys may be NULL goes first), else at the model with the
    fewest unmet keys.
    """
    among = set(selected)
    pending = {m: dependencies(m, among) for m in selected}
    required = {m: dependencies(m, among, nullable=False) for m in selected}
    ordered: list[ModelType] = []
    while pending:
        ready = sorted((m for m, deps in pending.items() if not deps), key=_label)
        if not ready:
            soft = [m for m in pending if not required[m]]
            ready = [
                min(soft, key=_label)
                if soft
                else min(pending, key=lambda m: (len(pending[m]), _label(m)))
            ]
        for model in ready:
            ordered.append(model)
            del pending[model]
        for deps in (*pending.values(), *required.values()):
            deps.difference_update(ready)
    return ordered


def _label(model: ModelType) -> str:
    return f"{model._meta.label_lower}:{model._meta.db_table}"
