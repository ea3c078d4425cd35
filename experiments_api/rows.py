"""Model instances from statements written out once per process.

A few hot statements are written out instead of built by the ORM on every request, because building
their SQL costs more than running it (the identity lookup, an experiment locked for a write). They
select whole models with `model_columns` and turn the row back into instances with
`row_instances`, decoded exactly as the ORM decodes them.
"""

from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import connection, models


def model_columns(alias: str, model: type[models.Model]) -> list[str]:
    """Every column of `model`, qualified by the table alias, in the order `row_instances` reads."""
    quote = connection.ops.quote_name
    return [f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields]


def model_from_values(model: type[models.Model], values: Sequence[Any]) -> models.Model:
    """An instance of `model` from its columns' values, decoded as the ORM decodes them (JSON)."""
    fields = model._meta.concrete_fields
    decoded = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [field.attname for field in fields], decoded)


def row_instances(
    row: Sequence[Any], *row_models: type[models.Model]
) -> tuple[list[models.Model | None], list[Any]]:
    """The instances of `row_models`, whose `model_columns` open `row` in this order (None for a
    model whose primary key is NULL: an outer join that found nothing), and the values after them."""
    instances: list[models.Model | None] = []
    start = 0
    for model in row_models:
        end = start + len(model._meta.concrete_fields)
        values = row[start:end]
        instances.append(
            None if values[_primary_key_index(model)] is None else model_from_values(model, values)
        )
        start = end
    return instances, list(row[start:])


@cache
def _primary_key_index(model: type[models.Model]) -> int:
    return model._meta.concrete_fields.index(model._meta.pk)
