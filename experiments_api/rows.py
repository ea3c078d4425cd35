"""Statements written out once per process, for the hot paths where the ORM took longer to build a
statement than PostgreSQL takes to run it (the identity lookup, an experiment locked for a write,
its lifecycle update, the activity entry of every write).

Reads select whole models with `model_columns` and turn the row back into instances with
`row_instances`, decoded exactly as the ORM decodes them. Writes encode values exactly as the ORM
does (`get_db_prep_save`): `insert_row` sends no model signals (as `bulk_create`), `update_row`
sends the ones `save(update_fields=…)` sends.
"""

from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import DatabaseError, connection, models
from django.db.models.signals import post_save, pre_save


def model_columns(alias: str, model: type[models.Model]) -> list[str]:
    """Every column of `model`, qualified by the table alias, in the order `row_instances` reads."""
    quote = connection.ops.quote_name
    return [f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields]


def model_from_values(model: type[models.Model], values: Sequence[Any]) -> models.Model:
    """An instance of `model` from its columns' values, decoded as the ORM decodes them (JSON)."""
    attnames, decoders = _model_loading(model)
    decoded = [
        value if decode is None else decode(value, None, connection)
        for decode, value in zip(decoders, values, strict=True)
    ]
    return model.from_db(connection.alias, attnames, decoded)


@cache
def _model_loading(model: type[models.Model]) -> tuple[list[str], list[Any]]:
    """The model's attribute names and each field's decoder (None: taken as read), in column order."""
    fields = model._meta.concrete_fields
    return [field.attname for field in fields], [getattr(field, "from_db_value", None) for field in fields]


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


@cache
def _insert_statement(model: type[models.Model]) -> str:
    quote = connection.ops.quote_name
    columns = [quote(field.column) for field in model._meta.concrete_fields]
    placeholders = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(columns)}) VALUES ({placeholders})"


def insert_row(instance: models.Model) -> None:
    """INSERT `instance`, whose primary key is set (a default such as `uuid4`: nothing is read back).
    No model signals are sent, as with `bulk_create`: only for models nobody listens to."""
    fields = type(instance)._meta.concrete_fields
    values = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(type(instance)), values)
    instance._state.adding = False
    instance._state.db = connection.alias


@cache
def _update_statement(model: type[models.Model], field_names: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in field_names)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"


def update_row(instance: models.Model, field_names: tuple[str, ...]) -> None:
    """What `instance.save(update_fields=field_names)` does — the fields' own step before saving
    (`auto_now`), the UPDATE, the `pre_save` and `post_save` signals, an error when no row was
    updated — with the UPDATE written out once per model and fields. The model's own `save()` is
    not called: the caller does what it would add."""
    model = type(instance)
    using = connection.alias
    update_fields = frozenset(field_names)
    pre_save.send(sender=model, instance=instance, raw=False, using=using, update_fields=update_fields)
    fields = [model._meta.get_field(name) for name in field_names]
    values = [field.get_db_prep_save(field.pre_save(instance, False), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_update_statement(model, field_names), [*values, instance.pk])
        if cursor.rowcount == 0:
            raise DatabaseError("Save with update_fields did not affect any rows.")
    post_save.send(
        sender=model, instance=instance, created=False, update_fields=update_fields, raw=False, using=using
    )
