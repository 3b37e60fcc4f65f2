"""Rows into the database fast: the one module that reaches past the ORM's public API (its field
preparation, ``_meta``, model state) and into psycopg (pipelined single-row INSERTs, jsonb sent as
already serialized, UPDATEs over arrays). Elsewhere than PostgreSQL, the ORM's own bulk methods.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import Case, F, Value, When
from django.utils import timezone
from psycopg.types.json import Jsonb

from ..models import Instance, Series, Study


def stored_instances(sop_instance_uids: Iterable[str]) -> dict[str, tuple[int, str]]:
    """SOP Instance UID -> (pk, sha256) of those already stored."""
    rows = Instance.objects.filter(sop_instance_uid__in=set(sop_instance_uids)).values_list(
        "sop_instance_uid", "pk", "sha256"
    )
    return {uid: (pk, sha256) for uid, pk, sha256 in rows}


def insert(model, rows: list) -> None:
    """Insert ``rows`` and give them their keys: on PostgreSQL one single-row INSERT, built once per
    model, sent for all of them in one pipeline (half the cost of ``bulk_create``'s one statement,
    whose text changes with the number of rows, so Django compiles and psycopg parses it anew);
    elsewhere ``bulk_create`` where the database returns keys, else one by one."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        fields, sql = _insert_statement(model)
        values = []
        for row in rows:
            row._prepare_related_fields_for_save(operation_name="bulk_create")
            values.append([_db_value(field, row) for field in fields])
        # Django's error classes (IntegrityError for a simultaneous upload) as for its own queries.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            psycopg_cursor = cursor.cursor
            psycopg_cursor.executemany(sql, values, returning=True)
            for row in rows:
                row.pk = psycopg_cursor.fetchone()[0]
                row._state.adding, row._state.db = False, connection.alias
                psycopg_cursor.nextset()
        return
    if connection.features.can_return_rows_from_bulk_insert:
        # Batches keep each statement well under PostgreSQL's 65,535 parameters.
        model.objects.bulk_create(rows, batch_size=1000)
    else:
        for row in rows:
            row.save(force_insert=True)


class JsonText(str):
    """A JSON field's value already serialized (by a checking process), sent to PostgreSQL as is."""


def json_value(text: str):
    """A JSON field's value from its serialized form: kept so on PostgreSQL, where ``insert``
    sends it as is; parsed elsewhere, where the ORM writes the rows."""
    return JsonText(text) if connection.vendor == "postgresql" else json.loads(text)


def _db_value(field, row):
    value = field.pre_save(row, True)
    if isinstance(value, JsonText):
        return Jsonb(value, dumps=str)
    return field.get_db_prep_save(value, connection)


@functools.cache
def _count_statements() -> tuple[str, str]:
    """The UPDATEs that add a batch's counts, rows given as arrays (PostgreSQL)."""
    quote = connection.ops.quote_name

    def column(model, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    series_sql = (
        f"UPDATE {quote(Series._meta.db_table)} AS s SET {column(Series, 'num_instances')} = "  # noqa: S608 (names from the models)
        f"s.{column(Series, 'num_instances')} + v.added "
        f"FROM unnest(%s::bigint[], %s::integer[]) AS v(id, added) WHERE s.{column(Series, 'id')} = v.id"
    )
    study_sql = (
        f"UPDATE {quote(Study._meta.db_table)} AS s SET "  # noqa: S608 (names from the models)
        f"{column(Study, 'num_instances')} = s.{column(Study, 'num_instances')} + v.added, "
        f"{column(Study, 'num_series')} = s.{column(Study, 'num_series')} + v.series, "
        f"{column(Study, 'modalities')} = COALESCE(v.modalities, s.{column(Study, 'modalities')}), "
        f"{column(Study, 'updated_at')} = %s "
        "FROM unnest(%s::bigint[], %s::integer[], %s::integer[], %s::text[]) AS v(id, added, series, modalities) "
        f"WHERE s.{column(Study, 'id')} = v.id"
    )
    return series_sql, study_sql


@functools.cache
def _insert_statement(model) -> tuple[list, str]:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table, key = quote(model._meta.db_table), quote(model._meta.pk.column)
    return fields, f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {key}"  # noqa: S608 (names from the model)


def add_counts(
    series_added: dict[int, int], study_added: dict[int, tuple[int, int]], modalities: dict[int, str]
) -> None:
    """Add to the counts, in one statement per table: instances to series (pk -> instances),
    instances and new series to studies (pk -> (instances, series)), and set ModalitiesInStudy of
    the studies in ``modalities`` (pk -> the new value)."""
    if connection.vendor == "postgresql":
        _add_counts_postgresql(series_added, study_added, modalities)
    else:
        _add_counts_orm(series_added, study_added, modalities)


def _add_counts_postgresql(
    series_added: dict[int, int], study_added: dict[int, tuple[int, int]], modalities: dict[int, str]
) -> None:
    # One statement per table whose text never changes (the rows come as arrays): built once,
    # not by the ORM for every batch, and prepared by psycopg where parameters are bound
    # server-side (DATABASE_SERVER_SIDE_BINDING).
    series_sql, study_sql = _count_statements()
    with connection.cursor() as cursor:
        if series_added:
            cursor.execute(series_sql, [list(series_added), list(series_added.values())])
        if study_added:
            rows = study_added.items()
            cursor.execute(
                study_sql,
                [
                    timezone.now(),
                    [study_pk for study_pk, _row in rows],
                    [added for _pk, (added, _series) in rows],
                    [new_series for _pk, (_added, new_series) in rows],
                    [modalities.get(study_pk) for study_pk, _row in rows],
                ],
            )


def _add_counts_orm(
    series_added: dict[int, int], study_added: dict[int, tuple[int, int]], modalities: dict[int, str]
) -> None:
    if series_added:
        increments = [When(pk=pk, then=Value(count)) for pk, count in series_added.items()]
        Series.objects.filter(pk__in=series_added).update(
            num_instances=F("num_instances") + Case(*increments, default=Value(0))
        )
    if not study_added:
        return
    instances, series = [], []
    for study_pk, (added, new_series) in study_added.items():
        instances.append(When(pk=study_pk, then=Value(added)))
        series.append(When(pk=study_pk, then=Value(new_series)))
    changed = [When(pk=study_pk, then=Value(joined)) for study_pk, joined in modalities.items()]
    changes: dict[str, Any] = {
        "num_instances": F("num_instances") + Case(*instances, default=Value(0)),
        "num_series": F("num_series") + Case(*series, default=Value(0)),
        "updated_at": timezone.now(),
    }
    if changed:
        changes["modalities"] = Case(*changed, default=F("modalities"))
    Study.objects.filter(pk__in=study_added).update(**changes)
