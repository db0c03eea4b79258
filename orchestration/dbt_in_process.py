"""dbt run inside the run's own process (dbt's ``dbtRunner``), on a project parsed once.

A dbt step used to start dbt twice as a subprocess (``dbt --version``, then the build) and to
set up a dbt adapter in Dagster's process besides; each dbt process imported dbt and parsed the
project, in full whenever the warehouse path differed from the one the project was last parsed
with (dbt's partial parsing is keyed on the profile, whose ``path`` is the warehouse). Here:

- dbt is imported once per process (a run's steps execute in one process) and invoked with an
  already parsed project (``dbtRunner(manifest=...)``): no start-up and no parse per step;
- the project is parsed with a placeholder warehouse path that depends only on the database
  name (``parse_warehouse_path``: DuckDB names the catalog after the file, and the parsed nodes
  carry that name) and with the default memory limit. Neither the run's warehouse path nor its
  as_of, load id or memory limit reaches the parse (dbt reads those from the environment while
  it executes: ``warehouse.settings.dbt_environment``), so dbt's partial parsing
  (``target/parsed/<database>/partial_parse.msgpack``) survives every new path and as_of;
- the parsed project is kept in this process while no file of the project changed
  (``_files_signature``), so the second dbt step of a run does not even partially parse.

dbt executes as before: same ``dbt build`` arguments, its artifacts and ``dbt.log`` in a target
folder of its own per invocation, the run's parameters in the environment. dagster-dbt turns
dbt's structured events into materializations and check results as it does for the subprocess
(``DbtCoreCliEventMessage.to_default_asset_events``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError

from warehouse.connection import DEFAULT_MEMORY_LIMIT
from warehouse.settings import dbt_environment, dbt_environment_set

PARSED_DIR = "parsed"  # under the project's target/
PARSE_OUTCOMES = {
    "kept": "kept from an earlier dbt step of this process",
    "partial": "partially parsed",
    "full": "parsed in full",
}
# dbt events dagster-dbt turns into Dagster events (DbtCoreCliEventMessage.is_result_event)
RESULT_EVENTS = frozenset({"LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult"})
# folders of a dbt project that are not its sources
_NOT_SOURCES = frozenset({"target", "logs", "dbt_packages", "dbt_internal_packages"})


def database_name(warehouse_path: Path | str) -> str:
    """The catalog name DuckDB (and dbt-duckdb) give the warehouse file: its name up to the
    first dot."""
    from dbt.adapters.duckdb.credentials import DuckDBCredentials

    return DuckDBCredentials.path_derived_database_name(str(warehouse_path))


def parse_warehouse_path(project_dir: Path, warehouse_path: Path | str) -> Path:
    """The warehouse path the project is parsed with: one per database name, never opened."""
    name = database_name(warehouse_path)
    return project_dir / "target" / PARSED_DIR / name / f"{name}.duckdb"


def _files_signature(project_dir: Path) -> tuple:
    """Name, size and modification time of every file of the project (its target/ excluded)."""
    entries = []
    for root, dirs, files in os.walk(project_dir):
        if Path(root) == project_dir:
            dirs[:] = [d for d in dirs if d not in _NOT_SOURCES]
        for name in files:
            stat = os.stat(os.path.join(root, name))
            entries.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


@dataclass
class ParsedProject:
    """The dbt project parsed (``manifest``, a dbt Manifest) and how this process got it:
    ``kept`` (parsed earlier in this process, files unchanged), ``partial`` (dbt's partial
    parsing: only changed files, if any, parsed again) or ``full`` (dbt parsed every file;
    ``reason``: dbt's)."""

    manifest: Any
    how: str
    reason: str = ""
    seconds: float = 0.0


@dataclass
class _Kept:
    signature: tuple
    manifest: Any


# (project dir, profiles dir, database name) -> the project parsed in this process
_kept: dict[tuple[str, str, str], _Kept] = {}


def parsed_project(
    project_dir: Path | str, profiles_dir: Path | str, warehouse_path: Path | str
) -> ParsedProject:
    """The project parsed for warehouses of ``warehouse_path``'s database name: kept in this
    process while its files are unchanged, else parsed by dbt (partially when dbt can: its
    saved parse of the same database name, in ``target/parsed/<database>/``)."""
    from dbt.cli.main import dbtRunner

    started = time.perf_counter()
    project_dir, profiles_dir = Path(project_dir), Path(profiles_dir)
    key = (str(project_dir), str(profiles_dir), database_name(warehouse_path))
    signature = _files_signature(project_dir)
    kept = _kept.get(key)
    if kept is not None and kept.signature == signature:
        return ParsedProject(kept.manifest, "kept", seconds=time.perf_counter() - started)
    placeholder = parse_warehouse_path(project_dir, warehouse_path)
    target = placeholder.parent
    args = [
        "parse",
        *("--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir)),
        *("--target-path", str(target), "--log-path", str(target)),
        "--no-write-json",  # the code location reads target/manifest.json, prepared at install
        "--quiet",
    ]
    full_parse_reasons = []

    def collect(message) -> None:
        if message.info.name == "UnableToPartialParse":
            full_parse_reasons.append(message.info.msg)

    with dbt_environment_set(dbt_environment(placeholder, DEFAULT_MEMORY_LIMIT)):
        result = dbtRunner(callbacks=[collect]).invoke(args)
    if not result.success:
        raise DbtParseError(f"dbt could not parse the project {project_dir}: {result.exception}")
    _kept[key] = _Kept(signature, result.result)
    return ParsedProject(
        result.result,
        "full" if full_parse_reasons else "partial",
        reason=" ".join(full_parse_reasons),
        seconds=time.perf_counter() - started,
    )


class DbtParseError(Exception):
    """The dbt project does not parse (a syntax error in a model, a bad YAML file, ...)."""


@dataclass
class DbtRun:
    """One dbt command run in this process: dbt's result events as dagster-dbt reads them
    (the JSON of ``--log-format json``), its error messages, and whether it succeeded."""

    command: str
    target_path: Path
    result_events: list[dict[str, Any]] = field(default_factory=list)
    error_messages: list[str] = field(default_factory=list)
    success: bool = False
    exception: BaseException | None = None

    def failure_description(self) -> str:
        """Why dbt failed: its error messages (a failed model names itself and its cause)."""
        errors = list(self.error_messages)
        if self.exception is not None:
            errors.append(f"{type(self.exception).__name__}: {self.exception}")
        details = "\n\n".join(["", "Errors parsed from dbt logs:", *errors]) if errors else ""
        return (
            f"The dbt command\n\n`{self.command}`\n\nfailed. Its log: "
            f"{self.target_path / 'dbt.log'}.{details}"
        )


def run_dbt(
    args: Sequence[str],
    *,
    project_dir: Path | str,
    profiles_dir: Path | str,
    target_path: Path,
    environment: Mapping[str, str],
    manifest: Any,
) -> DbtRun:
    """``dbt <args>`` in this process with the parsed ``manifest`` and ``environment`` (the
    variables of ``warehouse.settings.DBT_ENVIRONMENT``); dbt's log goes to stdout and, as JSON,
    to ``target_path/dbt.log``, its artifacts to ``target_path``. dbt has closed the warehouse file
    when this returns."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    full_args = [
        *args,
        *("--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir)),
        *("--target-path", str(target_path), "--log-path", str(target_path)),
        # dbt.log as dbt's structured events (as under dagster-dbt's subprocess), its console
        # log as text
        *("--log-format-file", "json"),
    ]
    run = DbtRun(command=" ".join(["dbt", *args]), target_path=target_path)

    def collect(message) -> None:
        if message.info.name in RESULT_EVENTS:
            run.result_events.append(msg_to_dict(message))
        elif message.info.level == "error":
            run.error_messages.append(message.info.msg)

    try:
        with dbt_environment_set(environment):
            result = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(full_args)
    finally:
        _close_warehouse()
    # dbtRunner returns every exception, also Dagster's interrupt of a terminated run (dbt's
    # open transactions are rolled back when its connections close): the step stops
    if isinstance(result.exception, KeyboardInterrupt | DagsterExecutionInterruptedError):
        raise result.exception
    run.success = result.success
    run.exception = result.exception
    return run


def _close_warehouse() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after dbt is done (its
    environment outlives the invocation, and DuckDB refuses a second connection to the same
    file with other settings, such as the read-only one that reads the row counts)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        environment, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
    if environment is not None:
        environment.close()


class DbtStepInvocation:
    """``dbt build`` of a dbt step's selection (the asset subset the run executes), run in this
    process by ``start``; ``events`` are its Dagster events (materializations, check results),
    ``raise_on_failure`` fails the step when dbt failed, naming dbt's errors."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        args: Sequence[str],
        *,
        project_dir: Path | str,
        profiles_dir: Path | str,
        warehouse_path: Path | str,
        environment: Mapping[str, str],
    ) -> None:
        from dagster_dbt import DagsterDbtTranslator
        from dagster_dbt.asset_utils import (
            extract_runtime_selection_from_args,
            get_updated_cli_invocation_params_for_context,
        )

        self.context = context
        cleaned, selects, excludes = extract_runtime_selection_from_args(args)
        self.params = get_updated_cli_invocation_params_for_context(
            context=context,
            manifest={},
            dagster_dbt_translator=DagsterDbtTranslator(),
            runtime_selects=selects,
            runtime_excludes=excludes,
        )
        indirect = (
            ["--indirect-selection", self.params.indirect_selection]
            if self.params.indirect_selection
            else []
        )
        self.args = [*cleaned, *self.params.selection_args, *indirect]
        self.project_dir = Path(project_dir)
        self.profiles_dir = Path(profiles_dir)
        self.warehouse_path = warehouse_path
        self.environment = environment
        run_id = context.run.run_id[:7]
        self.target_path = (
            self.project_dir
            / "target"
            / f"{context.op_execution_context.op.name}-{run_id}-{uuid.uuid4().hex[:7]}"
        )
        self.run: DbtRun | None = None

    def start(self) -> DbtStepInvocation:
        """Run dbt to its end (it holds the warehouse file meanwhile)."""
        parsed = parsed_project(self.project_dir, self.profiles_dir, self.warehouse_path)
        why = f" ({parsed.reason})" if parsed.reason else ""
        self.context.log.info(
            f"dbt project {PARSE_OUTCOMES[parsed.how]} in {parsed.seconds:.1f} s{why}; "
            f"running dbt in this process: `dbt {' '.join(self.args)}`"
        )
        self.run = run_dbt(
            self.args,
            project_dir=self.project_dir,
            profiles_dir=self.profiles_dir,
            target_path=self.target_path,
            environment=self.environment,
            manifest=parsed.manifest,
        )
        return self

    def events(self) -> Iterator[Any]:
        """Outputs of the models and seeds dbt built, results of its tests (asset checks)."""
        from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

        assert self.run is not None, "start() runs dbt first"
        for raw_event in self.run.result_events:
            event = DbtCoreCliEventMessage(raw_event=raw_event, event_history_metadata={})
            yield from event.to_default_asset_events(
                manifest=self.params.manifest,
                dagster_dbt_translator=self.params.dagster_dbt_translator,
                context=self.context,
                target_path=self.target_path,
                project=self.params.dbt_project,
            )

    def raise_on_failure(self) -> None:
        from dagster_dbt.errors import DagsterDbtCliRuntimeError

        assert self.run is not None, "start() runs dbt first"
        if not self.run.success:
            raise DagsterDbtCliRuntimeError(description=self.run.failure_description())
