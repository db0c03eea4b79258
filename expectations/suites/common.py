"""Building blocks the suites share: severities, SQL literals, and expectations that several
suites use the same way (schema, row counts relative to the previous run, parseable text).

Everything here builds expectations that GX evaluates as SQL inside DuckDB.
``UnexpectedRowsExpectation`` queries name the validated batch ``{batch}`` (see ``BATCH``);
GX substitutes the table, or the row-filtered query, for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.runner import INDEX_COLUMNS_META_KEY
from expectations.thresholds import RowCountBounds, row_count_bounds

WARNING = "warning"
"""GX severity of non-blocking expectations; blocking ones keep GX's default, "critical"."""

BATCH = "{batch}"
"""The placeholder GX replaces with the validated batch in an unexpected-rows query."""


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def utc_naive(instant: datetime) -> datetime:
    """``instant`` in UTC without time zone: the type of every staged and mart timestamp."""
    if instant.tzinfo is None:
        return instant
    return instant.astimezone(UTC).replace(tzinfo=None)


def suite(
    name: str,
    table: str,
    expectations: Sequence[gxe.Expectation],
    *,
    id_columns: Sequence[str] = (),
) -> gx.ExpectationSuite:
    """A suite whose unexpected examples carry the row's ``id_columns`` (e.g. its key)."""
    return gx.ExpectationSuite(
        name=name,
        expectations=list(expectations),
        meta={"table": table, INDEX_COLUMNS_META_KEY: list(id_columns)},
    )


def columns_exist(columns: Sequence[str]) -> gxe.Expectation:
    """Blocking: the table has these columns (others may exist too)."""
    return gxe.ExpectTableColumnsToMatchSet(
        column_set=list(columns),
        exact_match=False,
        description="the expected columns exist: " + ", ".join(columns),
    )


def not_null(column: str, *, severity: str | None = None) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToNotBeNull(
        column=column, description=f"{column} values are never null", **severity_kwargs(severity)
    )


def unique(column: str, *, severity: str | None = None) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToBeUnique(
        column=column, description=f"{column} values are unique", **severity_kwargs(severity)
    )


def row_count_vs_previous(suite_name: str, previous_row_count: int | None) -> list[gxe.Expectation]:
    """Row count within the suite's bounds around the previous run's count.

    Blocking when the table shrank by more than ``max_shrink``, a warning when it grew by more
    than ``max_growth``. Nothing to compare on a first run (``None``) or after an empty one.
    """
    if not previous_row_count:
        return []
    bounds: RowCountBounds = row_count_bounds(suite_name)
    low = math.ceil(previous_row_count * (1 - bounds.max_shrink))
    high = math.floor(previous_row_count * (1 + bounds.max_growth))
    shrink = (
        "did not shrink" if bounds.max_shrink == 0 else f"shrank by at most {bounds.max_shrink:.0%}"
    )
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=low,
            description=(
                f"the row count {shrink} since the previous run "
                f"({previous_row_count} rows): at least {low}"
            ),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            max_value=high,
            severity=WARNING,
            description=(
                f"the row count grew by at most {bounds.max_growth:.0%} since the previous run "
                f"({previous_row_count} rows): at most {high}"
            ),
        ),
    ]


def parseable(
    column: str,
    sql_type: str,
    id_column: str,
    *,
    severity: str | None = None,
) -> gxe.Expectation:
    """Every non-null text value of ``column`` casts to ``sql_type`` (DuckDB ``TRY_CAST``).

    Raw CRM tables hold text; staging casts with ``try_cast``, which turns bad values into
    nulls silently. This finds them first, with the row's id and the offending value.
    """
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            f"SELECT {id_column}, {column} FROM {BATCH} "
            f"WHERE {column} IS NOT NULL AND TRY_CAST({column} AS {sql_type}) IS NULL"
        ),
        description=f"{column} values are parseable as {sql_type}",
        **severity_kwargs(severity),
    )


def severity_kwargs(severity: str | None) -> dict[str, str]:
    """Keyword arguments that keep GX's default (critical) unless a severity is given."""
    return {"severity": severity} if severity else {}
