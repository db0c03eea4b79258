"""``segwh``: the command line of the warehouse.

    segwh run [--job full_build]   materialize the whole asset graph once, then summarize
    segwh summary                  rows per table of the warehouse
    segwh config [--markdown]      every setting: value and where it came from
    segwh dbt ARGS...              dbt by hand, with the warehouse and as_of of the settings
    segwh erase --customer-id ID   erase one person everywhere (or --email ADDRESS)
    segwh serve [--host --port]    the online personalization API (profiles from Redis)
    segwh api-key create --name N --scope S [--scope S] [--rate-limit R]
    segwh api-key list | revoke NAME   API keys of the online API
    segwh collect [--host --port --workers]   the event collector (Segment's HTTP tracking API)
    segwh stream                   the stream consumer (real-time in-session segments)

The sample data has its own command: ``python -m sample_data --help``.

Runs go through the Dagster instance in $DAGSTER_HOME (default <project>/.dagster_home), so they
appear in the UI started by ``make ui``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.settings import PROJECT_DIR, Settings, load_settings

if TYPE_CHECKING:  # imported when a run starts: `segwh` prints its first line at once
    import dagster as dg

    from orchestration.run_progress import RunProgress

log = logging.getLogger("segwh")

SUMMARY_SCHEMAS = ("raw", "staging", "intermediate", "marts", "ml", "serving", "privacy")


def _run(args: argparse.Namespace, settings: Settings, ops_config: dict | None = None) -> int:
    """The job as a queued run of the code location (orchestration/run_queue.py): it waits for
    the run in progress, then executes in this process, or the live daemon starts it."""
    started = time.time()
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_DIR / ".dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    print(f"segwh {args.command} {args.job}: loading the pipeline ...", flush=True)

    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.run_progress import RunProgress, step_count

    job = defs.resolve_job_def(args.job)
    if getattr(args, "full_refresh", False):  # every dbt step of the job rebuilds from scratch
        from orchestration.defs.transform import DBT_STEP_NAMES

        ops_config = {
            **(ops_config or {}),
            **{
                name: {"config": {"full_refresh": True}}
                for name in DBT_STEP_NAMES
                if name in {node.name for node in job.nodes}
            },
        }
    # Dagster's own console log only with --verbose: the progress lines say what happens
    log_level = args.log_level if args.verbose else "CRITICAL"
    run_config = {
        "loggers": {"console": {"config": {"log_level": log_level}}},
        **({"ops": ops_config} if ops_config else {}),
    }
    with dg.DagsterInstance.get() as instance:
        from orchestration import run_queue

        run = run_queue.create_queued_run(
            instance, job, run_config, {"segwh/command": args.command}
        )
        progress = RunProgress(step_count(instance, run), sys.stdout, started=started)
        try:
            run = _execute_or_follow(instance, job, run.run_id, args, progress)
        except KeyboardInterrupt:
            run = instance.get_run_by_id(run.run_id)
            if run is not None and run.status == dg.DagsterRunStatus.QUEUED:
                instance.report_run_canceled(run, message="segwh was interrupted while queued")
                print(f"\nrun {run.run_id} canceled while queued", file=sys.stderr)
            raise
    return _report(run, progress, settings, started)


def _execute_or_follow(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    run_id: str,
    args: argparse.Namespace,
    progress: RunProgress,
) -> dg.DagsterRun:
    """Wait in the queue; execute the run here when it is this run's turn and no daemon is
    alive, otherwise follow the run the daemon launched. Returns the finished run."""
    import dagster as dg
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run_iterator

    from orchestration import run_queue
    from orchestration.run_progress import follow

    last_notice = ""
    while True:
        if run_queue.try_claim(instance, run_id):
            print(f"run {run_id}: executing in this process", flush=True)
            run = instance.get_run_by_id(run_id)
            with _quiet_stdout(args.verbose):
                # the job this process imported (a run worker would rebuild it from the
                # run's code origin: the same definitions, imported a second time)
                for event in execute_run_iterator(InMemoryJob(job), run, instance):
                    progress.on_event(event, time.time())
            break
        run = instance.get_run_by_id(run_id)
        if run.status != dg.DagsterRunStatus.QUEUED:
            print(f"run {run_id}: started by the Dagster daemon; following it", flush=True)
            for event, at in follow(instance, run_id):
                progress.on_event(event, at)
            break
        notice = _queue_notice(instance, run_id)
        if notice != last_notice:  # what it waits for, once each time it changes
            last_notice = notice
            print(notice, flush=True)
        time.sleep(1)
    return instance.get_run_by_id(run_id)


def _queue_notice(instance: dg.DagsterInstance, run_id: str) -> str:
    from orchestration import run_queue

    before = run_queue.queued_before(instance, run_id)
    ahead = f"{before} queued run(s) before it" if before else "no queued run before it"
    if run_queue.daemon_alive(instance):
        return f"run {run_id}: queued ({ahead}); the Dagster daemon starts it when its turn comes"
    waiting = f"run {run_id}: queued; waiting for the run in progress"
    if before:
        waiting += (
            f" and {before} older queued run(s), which only a Dagster daemon starts "
            "(`make ui`), or cancel them in the UI"
        )
    return waiting


@contextmanager
def _quiet_stdout(verbose: bool) -> Iterator[None]:
    """What libraries print during the run (dbt's log lines) is in the run's log in the UI;
    the terminal shows the progress lines (``--verbose``: everything)."""
    if verbose:
        yield
        return
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        yield


def _report(run: dg.DagsterRun, progress: RunProgress, settings: Settings, started: float) -> int:
    """After the progress lines: the checks (failures and warnings with their reasons), then
    the status and where the results were published."""
    import dagster as dg

    from orchestration.run_progress import format_elapsed
    from orchestration.run_report import check_report

    succeeded = run.status == dg.DagsterRunStatus.SUCCESS
    print()
    for line in check_report(progress.checks):
        print(line)
    for step, cause in progress.step_failures.items():
        print(f"failed step: {step}\n    - {cause}")
    print()
    status = "succeeded" if succeeded else run.status.value
    print(f"run {run.run_id} ({run.job_name}) {status} in {format_elapsed(time.time() - started)}")
    if succeeded and run.job_name != "erase_person":
        _print_published(settings)
    elif not succeeded:
        print(
            "nothing new was published: BI tools keep reading the last good version. Fix the "
            "cause above, then run again."
        )
    print(
        f"warehouse: {settings.warehouse_path} (`segwh summary`: rows per table); this run and "
        "its full log are in the UI (`make ui`, http://127.0.0.1:3000)"
    )
    return 0 if succeeded else 1


def _print_summary(settings: Settings) -> None:
    from warehouse.connection import connect, table_row_counts

    with connect(settings.warehouse_path, read_only=True) as con:
        counts = table_row_counts(con, SUMMARY_SCHEMAS)
        views = con.execute(
            "SELECT schema_name || '.' || view_name FROM duckdb_views() "
            "WHERE NOT internal AND database_name = current_database() ORDER BY 1"
        ).fetchall()
        view_counts = {
            name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for (name,) in views
        }
    print(f"\nwarehouse: {settings.warehouse_path}")
    width = max((len(name) for name in {**counts, **view_counts}), default=10)
    for name, rows in {**counts, **view_counts}.items():
        kind = "view" if name in view_counts else "table"
        print(f"  {name:<{width}}  {rows:>12,} rows  ({kind})")
    _print_published(settings)


def _print_published(settings: Settings) -> None:
    serving = settings.resolved_serving_dir
    print(f"published for BI (read these, never the warehouse file): {serving}")
    print(f"  DuckDB:  {serving / 'segments.duckdb'}   (duckdb -readonly ...)")
    print(f"  Parquet: {serving / 'parquet' / 'current'}/<table>.parquet")
    if settings.serving_postgres_url:
        print(
            f"  PostgreSQL schema {settings.serving_postgres_schema!r} (role "
            f"{settings.serving_reader_role!r})"
        )


def _summary(args: argparse.Namespace, settings: Settings) -> int:
    _print_summary(settings)
    return 0


def _erase(args: argparse.Namespace, settings: Settings) -> int:
    """The erase_person job through the Dagster instance: it queues behind a running build
    (one writer on the warehouse) and is visible in the UI like any run."""
    from orchestration.defs.privacy import ERASURE_OP

    config = {"customer_id": args.customer_id or "", "email_pseudonym": ""}
    if args.email is not None:  # only its keyed hash enters Dagster's run storage
        config["email_pseudonym"] = _email_pseudonym(args.email)
    args.job = "erase_person"
    return _run(args, settings, {ERASURE_OP: {"config": config}})


def _email_pseudonym(email: str) -> str:
    """The keyed hash of an email (``-``: read from standard input, off the shell history)."""
    from privacy.erasure import normalized_email
    from privacy.pseudonyms import key_from_environment, pseudonym

    address = sys.stdin.readline() if email == "-" else email
    return pseudonym(normalized_email(address), key_from_environment())


def _pseudonym(args: argparse.Namespace, settings: Settings) -> int:
    print(_email_pseudonym(args.email))
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    from orchestration import config_index

    rows = list(config_index.settings(documented_defaults=args.markdown))
    print(config_index.as_markdown(rows) if args.markdown else config_index.as_text(rows))
    return 0


def _dbt(args: argparse.Namespace, settings: Settings) -> int:
    """dbt with the environment a dbt step of a run gets (DbtResource.build): the warehouse, its
    session settings and SEGWH_AS_OF (when empty, pass ``--vars '{as_of: ...}'``)."""
    import subprocess

    from orchestration.dbt import DBT_EXECUTABLE
    from privacy import pseudonyms
    from warehouse.connection import connect
    from warehouse.settings import dbt_environment, parse_as_of

    with connect(settings.warehouse_path, memory_limit=settings.duckdb_memory_limit) as con:
        pseudonyms.install(con, pseudonyms.key_from_environment())  # staging pseudonymizes
    as_of = parse_as_of(settings.as_of).isoformat() if settings.as_of else None
    environment = {
        **os.environ,
        **dbt_environment(settings.warehouse_path, settings.duckdb_memory_limit, as_of),
        "DBT_PROJECT_DIR": str(settings.dbt_project_dir),
        "DBT_PROFILES_DIR": str(settings.dbt_project_dir),
    }
    return subprocess.call([DBT_EXECUTABLE, *args.dbt_args], env=environment)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """The online API in this process (no Dagster import: it starts in about a second)."""
    from privacy.pseudonyms import PseudonymizationKeyError
    from serving.online.api import serve
    from serving.online.connection import OnlineStoreUnavailable

    try:
        serve(
            settings,
            host=args.host,
            port=args.port,
            key_cache_seconds=args.key_cache_seconds,
        )
    except (OnlineStoreUnavailable, PseudonymizationKeyError) as exc:
        print(f"segwh serve: {exc}", file=sys.stderr)
        return 2
    return 0


def _collect(args: argparse.Namespace, settings: Settings) -> int:
    """The collector (ingestion/collector) in this process; no Dagster import."""
    from ingestion.collector.app import serve

    try:
        serve(
            settings,
            host=args.host,
            port=args.port,
            workers=args.workers,
            landing=not args.no_landing,
        )
    except ValueError as exc:
        print(f"segwh collect: {exc}", file=sys.stderr)
        return 2
    return 0


def _stream(args: argparse.Namespace, settings: Settings) -> int:
    """The stream consumer (serving/realtime) in this process; no Dagster import."""
    import redis

    from privacy.pseudonyms import PseudonymizationKeyError
    from serving.realtime.consumer import serve

    try:
        serve(settings, consumer=args.consumer)
    except (ValueError, redis.RedisError, PseudonymizationKeyError) as exc:
        print(f"segwh stream: {exc}", file=sys.stderr)
        return 2
    return 0


def _api_key(args: argparse.Namespace, settings: Settings) -> int:
    from serving.online import auth
    from serving.online.connection import OnlineStoreUnavailable, connect

    try:
        client = connect(settings.online_redis_url)
    except OnlineStoreUnavailable as exc:
        print(f"segwh api-key: {exc}", file=sys.stderr)
        return 2
    prefix = settings.online_redis_prefix
    with client:
        if args.action == "create":
            try:
                key = auth.create_key(client, prefix, args.name, args.scope, args.rate_limit)
            except auth.ApiKeyError as exc:
                print(f"segwh api-key create: {exc}", file=sys.stderr)
                return 2
            print(
                f"created API key {args.name!r} (scopes: {', '.join(dict.fromkeys(args.scope))}; "
                f"{args.rate_limit:g} requests/s per API process). It is shown only now: store it "
                "in the caller's secret store.",
                file=sys.stderr,
            )
            print(key)
        elif args.action == "list":
            keys = auth.list_keys(client, prefix)
            if not keys:
                print(f"no API keys under the prefix {prefix!r}", file=sys.stderr)
            for key in keys:
                print(
                    f"{key.name}\t{','.join(key.scopes)}\t{key.rate_limit:g}/s\t"
                    f"created {key.created_at}"
                )
        elif not auth.revoke_key(client, prefix, args.name):
            print(f"segwh api-key revoke: no key named {args.name!r}", file=sys.stderr)
            return 1
        else:
            print(
                f"revoked {args.name!r}; API processes reject it within "
                f"{auth.DEFAULT_CACHE_SECONDS:g} s (their key cache)",
                file=sys.stderr,
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segwh", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="everything: Dagster's run log, dbt's output, every library's log and warnings",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="materialize the whole asset graph once")
    run.add_argument("--job", default="full_build", help="job to run (default: full_build)")
    run.add_argument(
        "--log-level",
        default="INFO",
        help="Dagster's console log level with --verbose (default: INFO)",
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild dbt's incremental models from scratch (after editing the event taxonomy)",
    )
    run.set_defaults(handler=_run)

    erase = commands.add_parser(
        "erase", help="erase one person from every layer and the published outputs"
    )
    subject = erase.add_mutually_exclusive_group(required=True)
    subject.add_argument("--customer-id", help="CRM customer id of the person")
    subject.add_argument(
        "--email",
        help="email of the person (case-insensitive; `-` reads it from standard input); only "
        "its keyed hash is passed to the run",
    )
    erase.add_argument(
        "--log-level", default="INFO", help="Dagster's console log level with --verbose"
    )
    erase.set_defaults(handler=_erase)

    hashed = commands.add_parser(
        "pseudonym",
        help="the keyed hash of an email, for the erase_person job's email_pseudonym (UI)",
    )
    hashed.add_argument("--email", required=True, help="the address (`-`: standard input)")
    hashed.set_defaults(handler=_pseudonym)

    summary = commands.add_parser("summary", help="rows per table of the warehouse")
    summary.set_defaults(handler=_summary)

    config = commands.add_parser(
        "config", help="every setting (environment, dbt vars and seeds, ML, run config)"
    )
    config.add_argument(
        "--markdown",
        action="store_true",
        help="the documented defaults as Markdown (CONFIGURATION.md), not the effective values",
    )
    config.set_defaults(handler=_config)

    dbt = commands.add_parser(
        "dbt",
        help="run dbt by hand on the configured warehouse, e.g. `segwh dbt build -s sessions`",
    )
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER, help="dbt's own arguments")
    dbt.set_defaults(handler=_dbt)

    serve = commands.add_parser(
        "serve",
        help="the online personalization API on the Redis profile store "
        "(SEGWH_ONLINE_REDIS_URL, SEGWH_API_HOST, SEGWH_API_PORT)",
    )
    serve.add_argument("--host", help="address to bind (default: SEGWH_API_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: SEGWH_API_PORT, 8000)")
    serve.add_argument(
        "--key-cache-seconds",
        type=float,
        default=5.0,
        help="how long API-key lookups are cached; a revoked key works at most this long "
        "(default: 5)",
    )
    serve.set_defaults(handler=_serve)

    collect = commands.add_parser(
        "collect",
        help="the event collector: Segment's HTTP tracking API -> broker stream -> landing "
        "files (SEGWH_COLLECTOR_*, SEGWH_BROKER_*)",
    )
    collect.add_argument("--host", help="address to bind (default: SEGWH_COLLECTOR_HOST)")
    collect.add_argument("--port", type=int, help="port (default: SEGWH_COLLECTOR_PORT, 8088)")
    collect.add_argument("--workers", type=int, help="HTTP processes (SEGWH_COLLECTOR_WORKERS)")
    collect.add_argument(
        "--no-landing", action="store_true", help="do not start the landing-file writer"
    )
    collect.set_defaults(handler=_collect)

    stream = commands.add_parser(
        "stream",
        help="the stream consumer: in-session segments and activation triggers in Redis",
    )
    stream.add_argument("--consumer", default="realtime-1", help="consumer name in the group")
    stream.set_defaults(handler=_stream)

    api_key = commands.add_parser("api-key", help="create, list or revoke keys of the online API")
    actions = api_key.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints it once")
    create.add_argument("--name", required=True, help="name shown in access logs and lists")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=("profiles:read", "segments:read"),
        help="profiles:read (profiles, decisions, batch) or segments:read (segment members); "
        "repeat for both",
    )
    create.add_argument(
        "--rate-limit",
        type=float,
        default=100.0,
        help="requests per second, per API process (default: 100)",
    )
    actions.add_parser("list", help="the keys: name, scopes, rate limit (never the key)")
    revoke = actions.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    api_key.set_defaults(handler=_api_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    return args.handler(args, load_settings())


# the project's own packages: their warnings are shown; other libraries' only from ERROR on
_OWN_LOGGERS = frozenset(
    {"segwh", "orchestration", "expectations", "ingestion", "ml", "serving", "privacy"}
    | {"warehouse", "sample_data"}
)
# logged into the run's log by Dagster (dagster.yaml python_logs) and printed by its console
# logger with --verbose: printed once, there
_RUN_LOGGERS = frozenset({"dagster", "orchestration", "expectations"})


def _configure_logging(verbose: bool) -> None:
    """One handler on the root logger. By default: warnings and errors of the project, errors of
    third-party libraries, no Python warnings; ``--verbose``: everything, each line once."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if verbose:
        handler.addFilter(lambda record: record.name.split(".")[0] not in _RUN_LOGGERS)
    else:
        handler.setLevel(logging.WARNING)
        handler.addFilter(
            lambda record: (
                record.levelno >= logging.ERROR or record.name.split(".")[0] in _OWN_LOGGERS
            )
        )
        warnings.simplefilter("ignore")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


if __name__ == "__main__":
    raise SystemExit(main())
