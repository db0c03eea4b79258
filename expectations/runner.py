"""Run a Great Expectations suite against one table of the DuckDB warehouse, inside DuckDB.

Expectations go through GX's SQL datasource and ``SqlAlchemyExecutionEngine``, so every metric
is a SQL aggregate or a ``LIMIT``-ed example query that DuckDB computes. Rows are never pulled
into pandas. The result format is always ``SUMMARY`` with at most ``MAX_EXAMPLES`` examples, never
``COMPLETE``, which would list every unexpected row.

The warehouse file is opened READ-ONLY through :mod:`expectations.duckdb_compat`, which also
explains the DuckDB workaround. A process has one ephemeral GX context (nothing is written to
disk, analytics off), made by its first validation: a run validates a dozen suites, and a
context per suite cost its set-up (a temporary docs folder, the configuration serialized on each
change) every time. Each call adds its datasource, closes every connection and removes the
datasource before it returns, so a writer can open the file again right afterwards and the next
call starts from the same empty context.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import great_expectations as gx
import sqlalchemy as sa
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations import UnexpectedRowsExpectation
from great_expectations.expectations.metadata_types import FailureSeverity

from . import duckdb_compat
from .outcomes import MAX_EXAMPLES, ExpectationOutcome, SuiteOutcome

logger = logging.getLogger(__name__)


INDEX_COLUMNS_META_KEY = "unexpected_index_column_names"
"""Suite ``meta`` key listing id columns reported with each unexpected example, e.g. event_id."""

_DATASOURCE_NAME = "warehouse"
_MAX_ERROR_CHARS = 300
# a GX context is not thread-safe: validations of one process take turns on it
_CONTEXT_LOCK = threading.Lock()


def validate_table(
    warehouse_path: str | Path,
    table: str,
    suite: gx.ExpectationSuite,
    *,
    row_filter: str | None = None,
    session_settings: Mapping[str, str] | None = None,
    session_sql: Sequence[str] = (),
) -> SuiteOutcome:
    """Validate ``table`` (``"schema.name"`` or ``"name"`` in ``main``) of a DuckDB file.

    ``row_filter`` (a SQL boolean expression, e.g. ``_load_id = 'abc'``) restricts the batch to
    matching rows, so an incremental run validates only what it added; still pushed down.
    ``session_settings`` are the warehouse's DuckDB settings (time zone, memory limit), set on
    the validation connections like on the warehouse's other sessions; ``session_sql`` runs on
    each of them too (e.g. the TEMP macro a validated view calls).

    The file is opened read-only, so the caller must make sure no writer holds it, in this
    process or any other. Other readers may stay open. Raises if the file or the table does not
    exist. A failing expectation is reported in the outcome and never raised.
    """
    path = Path(warehouse_path)
    if not path.is_file():
        raise FileNotFoundError(f"DuckDB warehouse file not found: {path}")
    schema, _, name = table.rpartition(".")
    schema = schema or "main"

    started = time.perf_counter()
    with _CONTEXT_LOCK:
        results = _validate(
            path, schema, name, table, suite, row_filter, session_settings, session_sql
        )

    outcome = SuiteOutcome(
        suite_name=suite.name,
        table=table,
        outcomes=sorted((_to_outcome(r) for r in results), key=lambda o: not o.blocking),
        elapsed_seconds=time.perf_counter() - started,
    )
    logger.info(
        "Suite %s on %s: %s (%d blocking and %d warning failures of %d) in %.2fs",
        outcome.suite_name,
        table,
        "passed" if outcome.success else "FAILED",
        len(outcome.failed_blocking),
        len(outcome.failed_warnings),
        len(outcome.outcomes),
        outcome.elapsed_seconds,
    )
    return outcome


@cache
def _context() -> Any:
    """The process's GX context: ephemeral, analytics and progress bars off."""
    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _validate(
    path: Path,
    schema: str,
    name: str,
    table: str,
    suite: gx.ExpectationSuite,
    row_filter: str | None,
    session_settings: Mapping[str, str] | None,
    session_sql: Sequence[str],
) -> list[Any]:
    """The GX results of ``suite`` on the table, through a datasource of the process's context
    that exists only during this call."""
    context = _context()
    if _DATASOURCE_NAME in context.data_sources.all():  # left by a call that failed to add it
        context.data_sources.delete(_DATASOURCE_NAME)
    datasource = context.data_sources.add_sql(
        name=_DATASOURCE_NAME,
        connection_string=duckdb_compat.connection_string(path),
        kwargs=duckdb_compat.engine_kwargs(
            search_path=schema, session_settings=session_settings, session_sql=session_sql
        ),
    )
    try:
        columns = _table_columns(datasource.get_engine(), schema, name)
        if row_filter:
            asset = datasource.add_query_asset(
                name=table, query=f'SELECT * FROM "{schema}"."{name}" WHERE {row_filter}'
            )
        else:
            asset = datasource.add_table_asset(name=table, table_name=name, schema_name=schema)
        batch = asset.add_batch_definition_whole_table("whole table").get_batch()
        summary: dict[str, Any] = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": MAX_EXAMPLES,
        }
        index_columns = [c for c in suite.meta.get(INDEX_COLUMNS_META_KEY, []) if c in columns]
        if index_columns:
            summary["unexpected_index_column_names"] = index_columns
        # UnexpectedRowsExpectation reports its rows only in COMPLETE format. That is still
        # bounded: GX fetches at most MAX_RESULT_RECORDS (200) of them. Every other expectation
        # runs in one SUMMARY pass, so GX bundles their aggregates into few table scans.
        row_queries = [e for e in suite.expectations if isinstance(e, UnexpectedRowsExpectation)]
        others = [
            e.configuration
            for e in suite.expectations
            if not isinstance(e, UnexpectedRowsExpectation)
        ]
        results = []
        if others:
            bundle = gx.ExpectationSuite(name=suite.name, expectations=others)
            results += batch.validate(bundle, result_format=summary).results
        results += [batch.validate(e, result_format="COMPLETE") for e in row_queries]
    finally:
        _close(datasource)
        context.data_sources.delete(_DATASOURCE_NAME)
    return results


def _table_columns(engine: sa.Engine, schema: str, name: str) -> list[str]:
    """Column names of the table; raises a clear error if it does not exist."""
    query = sa.select(sa.text("*")).select_from(sa.table(name, schema=schema)).limit(0)
    with engine.connect() as connection:
        return list(connection.execute(query).keys())


def _close(datasource: Any) -> None:
    """Close every DuckDB connection GX opened, so the file is free for a writer again."""
    try:
        datasource.get_execution_engine().close()
        datasource.get_engine().dispose()
    except Exception:  # closing must never hide the real result or error
        logger.warning("Could not close the GX engines on the warehouse", exc_info=True)


def _to_outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    details: dict[str, Any] = dict(result.result or {})
    error = _error_message(result.exception_info)
    if error:
        logger.warning("Expectation %s raised: %s", config.type, error)

    if error:
        observed: Any = {"error": error}
    elif "observed_value" in details:
        observed = details["observed_value"]
    elif "unexpected_percent" in details:  # column map expectations
        observed = {
            "element_count": details.get("element_count"),
            "unexpected_count": details.get("unexpected_count"),
            "unexpected_percent": round(details.get("unexpected_percent") or 0.0, 4),
        }
    else:
        observed = None

    unexpected_count = details.get("unexpected_count")
    if unexpected_count is None and config.type == "unexpected_rows_expectation":
        unexpected_count = details.get("observed_value")

    return ExpectationOutcome(
        expectation_type=config.type,
        column=kwargs.get("column"),
        kwargs=_jsonable(kwargs),
        success=bool(result.success),
        blocking=FailureSeverity(config.severity) == FailureSeverity.CRITICAL,
        observed_value=_jsonable(observed),
        unexpected_count=None if unexpected_count is None else int(unexpected_count),
        unexpected_examples=_jsonable(_examples(details, kwargs))[:MAX_EXAMPLES],
        description=config.description or _describe(config.type, kwargs),
    )


def _examples(details: dict[str, Any], kwargs: dict[str, Any]) -> list[Any]:
    """The few unexpected values, rows or missing columns GX reported, most specific first."""
    if details.get("partial_unexpected_index_list"):  # [{"event_id": ..., "<column>": ...}]
        return list(details["partial_unexpected_index_list"])
    if details.get("partial_unexpected_list"):
        return list(details["partial_unexpected_list"])
    extra = details.get("details") or {}
    if extra.get("unexpected_rows"):  # UnexpectedRowsExpectation
        return list(extra["unexpected_rows"])
    mismatched = extra.get("mismatched") or {}  # ExpectTableColumnsToMatchSet
    examples = [f"missing: {c}" for c in mismatched.get("missing", [])]
    if kwargs.get("exact_match") is not False:  # extra columns only matter for an exact match
        examples += [f"unexpected: {c}" for c in mismatched.get("unexpected", [])]
    return examples


def _error_message(exception_info: Any) -> str | None:
    """GX reports errors either flat or keyed by metric; return the first message, if any."""
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message"))[:_MAX_ERROR_CHARS]
    return None


def _describe(expectation_type: str, kwargs: dict[str, Any]) -> str:
    """A short sentence for expectations whose suite gave no ``description``."""
    column = kwargs.get("column", "")
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    templates = {
        "expect_column_values_to_not_be_null": f"{column} values are never null",
        "expect_column_values_to_be_unique": f"{column} values are unique",
        "expect_column_values_to_be_between": f"{column} values are within [{low}, {high}]",
        "expect_column_values_to_be_in_set": f"{column} values are in {kwargs.get('value_set')}",
        "expect_table_row_count_to_be_between": f"row count is within [{low}, {high}]",
        "expect_table_columns_to_match_set": f"table has columns {kwargs.get('column_set')}",
        "unexpected_rows_expectation": "no row matches the unexpected-rows query",
    }
    sentence = templates.get(expectation_type, f"{expectation_type} {column}".strip())
    mostly = kwargs.get("mostly")
    if mostly is not None and mostly < 1:
        sentence += f" (for at least {mostly:.0%} of rows)"
    return sentence


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (dates as ISO strings, GX/pydantic objects as dicts)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "dict") and callable(value.dict):  # pydantic models, e.g. row conditions
        return value.dict()
    if hasattr(value, "to_json_dict"):
        return value.to_json_dict()
    return str(value)
