"""Loading landed event files (JSONL and Parquet) into ``raw.events``.

Everything happens inside DuckDB with its own readers; Python only lists files and hashes them.

Accounting, per file: ``landed = loaded + rejected + duplicate + suppressed``.
- landed: non-blank lines of a JSONL file (blank lines are not events), rows of a Parquet file;
- rejected: rows that break the raw event contract (``contracts/events.toml``), kept in
  ``raw.rejected_events`` with the original payload and a reason (see ``REJECT_REASONS``);
- duplicate: valid rows whose ``event_id`` is already in ``raw.events`` or appears earlier in the
  same batch (first occurrence by file name, then payload, wins);
- suppressed: rows whose user id or anonymous id belongs to an erased person
  (``privacy.suppressed_identifiers``): counted, never stored;
- loaded: the rest, inserted into ``raw.events``.

Idempotency: a file whose content (SHA-256) was loaded before is skipped, whatever its name; a
batch is one transaction, so a crash leaves no partial load and the next run loads it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from privacy.suppression import suppression_condition

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)

CONTRACT_PATH = Path(__file__).parent / "contracts" / "events.toml"
"""The raw event contract, the one declaration of the fields a landed event may carry."""


def _read_contract(path: Path) -> list[dict]:
    with path.open("rb") as handle:
        fields = tomllib.load(handle)["fields"]
    if not any(field.get("identity") for field in fields):
        raise ValueError(f"{path}: no identity field (anonymous_id, user_id)")
    return fields


_FIELDS = _read_contract(CONTRACT_PATH)

# (column, DuckDB type) of raw.events in contract order; typed columns are cast with TRY_CAST
# and a present-but-uncastable value rejects the row with reason invalid_<column>.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = tuple((f["name"], f["type"]) for f in _FIELDS)
TYPED_COLUMNS = tuple(name for name, kind in EVENT_COLUMNS if kind != "VARCHAR")
REQUIRED_FIELDS = tuple(f["name"] for f in _FIELDS if f.get("required"))
IDENTITY_FIELDS = tuple(f["name"] for f in _FIELDS if f.get("identity"))  # one of them at least
KNOWN_FIELDS = (*(name for name, _ in EVENT_COLUMNS), "properties")

REJECT_REASONS = (
    "malformed_json",
    *(f"missing_{name}" for name in REQUIRED_FIELDS),
    "missing_identity",
    *(f"invalid_{name}" for name in TYPED_COLUMNS),
)

DDL = f"""
CREATE SCHEMA IF NOT EXISTS raw;
CREATE TABLE IF NOT EXISTS raw.events (
    {", ".join(f"{name} {kind}" for name, kind in EVENT_COLUMNS)},
    properties JSON,
    _source_file VARCHAR NOT NULL,
    _loaded_at TIMESTAMPTZ NOT NULL,
    _load_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS raw.rejected_events (
    _source_file VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    _loaded_at TIMESTAMPTZ NOT NULL,
    _load_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS raw.event_load_audit (
    load_id VARCHAR NOT NULL,
    file_path VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    file_format VARCHAR NOT NULL,
    file_size BIGINT NOT NULL,
    file_mtime_ns BIGINT NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    landed BIGINT NOT NULL,
    loaded BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    duplicate BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
);
-- rows of erased persons (privacy.suppressed_identifiers): counted, never stored
ALTER TABLE raw.event_load_audit ADD COLUMN IF NOT EXISTS suppressed BIGINT DEFAULT 0;
"""


@dataclass(frozen=True)
class LandingFile:
    path: Path
    file_format: str  # "jsonl" or "parquet"
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FileLoadResult:
    file_name: str
    file_format: str
    landed: int
    loaded: int
    rejected: int
    duplicate: int
    reasons: dict[str, int]
    suppressed: int = 0


@dataclass(frozen=True)
class EventLoadReport:
    load_id: str
    files: list[FileLoadResult]
    skipped_files: list[str]  # already loaded (same content)
    elapsed_seconds: float

    def total(self, field: str) -> int:
        return sum(getattr(result, field) for result in self.files)


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def discover_files(landing_dir: Path) -> list[LandingFile]:
    """Event files directly in ``landing_dir`` or below it, in lexical path order."""
    if not landing_dir.is_dir():
        raise FileNotFoundError(
            f"landing folder {landing_dir} does not exist: set SEGWH_LANDING_DIR or generate the "
            "sample data (`make sample`)"
        )
    found = []
    for path in sorted(p for p in landing_dir.rglob("*") if p.is_file()):
        name = path.name.lower()
        if name.startswith((".", "_")):
            continue  # hidden and in-flight files (e.g. _tmp, .partial) are not landed yet
        if name.endswith(JSONL_SUFFIXES):
            file_format = "jsonl"
        elif name.endswith(PARQUET_SUFFIXES):
            file_format = "parquet"
        else:
            continue
        stat = path.stat()
        found.append(LandingFile(path.resolve(), file_format, stat.st_size, stat.st_mtime_ns))
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _new_files(
    con: duckdb.DuckDBPyConnection, files: list[LandingFile]
) -> tuple[list[tuple[LandingFile, str]], list[str]]:
    """Split into (file, sha256) pairs to load and names of files already loaded.

    A file whose path, size and mtime match an audited load is skipped without hashing; any
    other file is hashed and skipped if that content was loaded before (a re-delivery).
    """
    audited = con.execute(
        "SELECT file_path, file_size, file_mtime_ns, file_sha256 FROM raw.event_load_audit"
    ).fetchall()
    known_stats = {(path, size, mtime) for path, size, mtime, _ in audited}
    known_hashes = {sha for *_, sha in audited}
    to_load: list[tuple[LandingFile, str]] = []
    skipped: list[str] = []
    for landing_file in files:
        if (str(landing_file.path), landing_file.size, landing_file.mtime_ns) in known_stats:
            skipped.append(landing_file.path.name)
            continue
        sha = sha256_of(landing_file.path)
        if sha in known_hashes:
            skipped.append(landing_file.path.name)
            continue
        known_hashes.add(sha)  # the same content twice in one batch loads once
        to_load.append((landing_file, sha))
    return to_load, skipped


def _landed_lines_sql(files: list[LandingFile]) -> str:
    """One row per landed record: (_source_file, line) with the record as a JSON text."""
    parts = []
    jsonl = [f for f in files if f.file_format == "jsonl"]
    if jsonl:
        paths = ", ".join(_sql_str(str(f.path)) for f in jsonl)
        # Each line as one VARCHAR: a delimiter that cannot occur in JSON text, no quoting.
        parts.append(
            f"""SELECT filename AS _source_file, line
            FROM read_csv([{paths}], columns = {{'line': 'VARCHAR'}}, delim = E'\\x1f\\x1e',
                          quote = '', escape = '', header = false, auto_detect = false,
                          filename = true, max_line_size = 64000000)
            WHERE line IS NOT NULL AND trim(line) <> ''"""
        )
    for f in files:
        if f.file_format == "parquet":
            parts.append(
                f"SELECT {_sql_str(str(f.path))} AS _source_file, to_json(p)::VARCHAR AS line "
                f"FROM read_parquet({_sql_str(str(f.path))}) AS p"
            )
    return "\nUNION ALL\n".join(parts)


def _validated_sql(landed_table: str) -> str:
    """Parse, type and classify every landed record; one row per record.

    Each line is parsed once: ``json_transform`` extracts every contract field as text in one
    pass (``->>`` per field would re-parse the document each time, ~8x slower). The payload is
    kept only for rejected rows.
    """
    shape = json.dumps({**{name: "VARCHAR" for name, _ in EVENT_COLUMNS}, "properties": "JSON"})
    typed = ",\n".join(
        f"f.{name} AS {name}" if kind == "VARCHAR" else f"TRY_CAST(f.{name} AS {kind}) AS {name}"
        for name, kind in EVENT_COLUMNS
    )
    # a required field: missing, then (when typed) invalid; an optional typed field: invalid
    required_checks = "\n".join(
        f"WHEN nullif(trim(f.{name}), '') IS NULL THEN 'missing_{name}'"
        + (f"\nWHEN {name} IS NULL THEN 'invalid_{name}'" if name in TYPED_COLUMNS else "")
        for name in REQUIRED_FIELDS
    )
    no_identity = " AND ".join(f"nullif(trim(f.{name}), '') IS NULL" for name in IDENTITY_FIELDS)
    invalid_checks = "\n".join(
        f"WHEN f.{name} IS NOT NULL AND {name} IS NULL THEN 'invalid_{name}'"
        for name in TYPED_COLUMNS
        if name not in REQUIRED_FIELDS
    )
    known = ", ".join(_sql_str(name) for name in KNOWN_FIELDS)
    return f"""
    WITH parsed AS (
        SELECT _source_file, line,
               CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN line::JSON END AS j
        FROM {landed_table}
    ),
    extracted AS (
        SELECT _source_file, line, j,
               json_transform(j, {_sql_str(shape)}) AS f,
               list_filter(json_keys(j), lambda k: NOT list_contains([{known}], k)) AS extra_keys
        FROM parsed
    ),
    typed AS (
        SELECT _source_file, line, j, f, extra_keys,
               {typed},
               CASE json_type(f.properties)
                   WHEN 'OBJECT' THEN f.properties
                   WHEN 'VARCHAR' THEN CASE WHEN json_valid(f.properties->>'$')
                                            THEN (f.properties->>'$')::JSON END
               END AS given_properties
        FROM extracted
    ),
    classified AS (
        SELECT *,
               CASE
                   WHEN j IS NULL THEN 'malformed_json'
                   {required_checks}
                   WHEN {no_identity} THEN 'missing_identity'
                   {invalid_checks}
               END AS reject_reason
        FROM typed
    )
    SELECT _source_file,
           {", ".join(name for name, _ in EVENT_COLUMNS)},
           CASE WHEN coalesce(len(extra_keys), 0) = 0 THEN given_properties
                ELSE json_merge_patch(
                    coalesce(given_properties, '{{}}'::JSON),
                    to_json(map_from_entries(list_transform(
                        extra_keys, lambda k: struct_pack(k := k, v := j->k)))))
           END AS properties,
           reject_reason,
           CASE WHEN reject_reason IS NOT NULL THEN line END AS payload,
           hash(line) AS line_hash
    FROM classified
    """


def load_event_files(
    con: duckdb.DuckDBPyConnection, files: list[LandingFile], *, load_id: str | None = None
) -> EventLoadReport:
    """Load the files that are new into ``raw.events`` in one transaction and audit them."""
    started = datetime.now(UTC)
    load_id = load_id or uuid.uuid4().hex
    ensure_raw_tables(con)
    to_load, skipped = _new_files(con, files)
    if skipped:
        log.info("skipping %d already loaded file(s)", len(skipped))
    if not to_load:
        return EventLoadReport(load_id, [], skipped, (datetime.now(UTC) - started).total_seconds())

    log.info("loading %d file(s): %s", len(to_load), ", ".join(f.path.name for f, _ in to_load))
    to_load.sort(key=lambda item: str(item[0].path))  # the first copy of an event_id wins
    con.execute("BEGIN TRANSACTION")
    try:
        rows = []
        # events of erased persons are dropped and counted (None: the suppression list is empty)
        suppressed_if = suppression_condition(con, ["user_id", "anonymous_id"])
        chunks = list(_chunks(to_load))
        for number, chunk in enumerate(chunks, 1):
            if len(chunks) > 1:
                log.info("chunk %d/%d: %d file(s)", number, len(chunks), len(chunk))
            rows.extend(_load_chunk(con, chunk, started, load_id, suppressed_if))
        results = _file_results(to_load, rows)
        con.executemany(
            "INSERT INTO raw.event_load_audit (load_id, file_path, file_name, file_format, "
            "file_size, file_mtime_ns, file_sha256, landed, loaded, rejected, duplicate, "
            "loaded_at, suppressed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    load_id,
                    str(f.path),
                    f.path.name,
                    f.file_format,
                    f.size,
                    f.mtime_ns,
                    sha,
                    r.landed,
                    r.loaded,
                    r.rejected,
                    r.duplicate,
                    started,
                    r.suppressed,
                ]
                for (f, sha), r in zip(to_load, results, strict=True)
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    report = EventLoadReport(
        load_id, results, skipped, (datetime.now(UTC) - started).total_seconds()
    )
    log.info(
        "loaded %d events (%d rejected, %d duplicate) from %d file(s) in %.1fs",
        report.total("loaded"),
        report.total("rejected"),
        report.total("duplicate"),
        len(results),
        report.elapsed_seconds,
    )
    return report


# Files are validated and inserted in chunks of about this many bytes, all in one transaction: a
# large backfill (10M events) in one piece made DuckDB spill its three working tables and the
# sort to disk (189 s for 10M events vs 12 s for 1M); in chunks the cost stays linear.
CHUNK_BYTES = 256 << 20


def _chunks(files: list[tuple[LandingFile, str]]) -> Iterator[list[tuple[LandingFile, str]]]:
    """Consecutive groups of files of at most CHUNK_BYTES (a larger file is a group alone)."""
    limit = CHUNK_BYTES
    chunk: list[tuple[LandingFile, str]] = []
    size = 0
    for item in files:
        if chunk and size + item[0].size > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item[0].size
    if chunk:
        yield chunk


def _load_chunk(
    con: duckdb.DuckDBPyConnection,
    chunk: list[tuple[LandingFile, str]],
    started: datetime,
    load_id: str,
    suppressed_if: str | None = None,
) -> list[tuple]:
    """Validate, deduplicate (against raw.events, earlier chunks included) and insert one chunk;
    returns its (file, outcome, reason, rows) counts."""
    columns = ", ".join(name for name, _ in EVENT_COLUMNS)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _landed AS " + _landed_lines_sql([f for f, _ in chunk])
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _validated AS " + _validated_sql("_landed"))
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _classified AS
        WITH valid AS (
            SELECT *, row_number() OVER (
                PARTITION BY event_id ORDER BY _source_file, line_hash) AS occurrence
            FROM _validated WHERE reject_reason IS NULL AND NOT ({suppressed})
        ),
        seen AS (
            SELECT DISTINCT e.event_id FROM raw.events AS e
            SEMI JOIN valid AS v ON e.event_id = v.event_id
        )
        SELECT v.*,
               CASE WHEN v.occurrence > 1 OR s.event_id IS NOT NULL
                    THEN 'duplicate' ELSE 'loaded' END AS outcome
        FROM valid AS v LEFT JOIN seen AS s ON v.event_id = s.event_id
        UNION ALL BY NAME
        SELECT *, 'rejected' AS outcome FROM _validated
        WHERE reject_reason IS NOT NULL AND NOT ({suppressed})
        UNION ALL BY NAME
        SELECT *, 'suppressed' AS outcome FROM _validated WHERE {suppressed}
        """.format(suppressed=suppressed_if or "false")
    )
    con.execute(
        f"""INSERT INTO raw.events
        SELECT {columns}, properties, _source_file, ?::TIMESTAMPTZ, ?
        FROM _classified WHERE outcome = 'loaded'
        ORDER BY occurred_at""",
        [started, load_id],
    )
    con.execute(
        """INSERT INTO raw.rejected_events
        SELECT _source_file, payload, reject_reason, ?::TIMESTAMPTZ, ?
        FROM _classified WHERE outcome = 'rejected'""",
        [started, load_id],
    )
    rows = con.execute(
        """SELECT _source_file, outcome, coalesce(reject_reason, ''), count(*)
        FROM _classified GROUP BY ALL"""
    ).fetchall()
    for temp in ("_classified", "_validated", "_landed"):
        con.execute(f"DROP TABLE {temp}")
    return rows


def _file_results(
    to_load: list[tuple[LandingFile, str]], rows: list[tuple[str, str, str, int]]
) -> list[FileLoadResult]:
    results = []
    for landing_file, _ in to_load:
        counts = {"loaded": 0, "rejected": 0, "duplicate": 0, "suppressed": 0}
        reasons: dict[str, int] = {}
        for source_file, outcome, reason, count in rows:
            if source_file != str(landing_file.path):
                continue
            counts[outcome] += count
            if reason and outcome == "rejected":
                reasons[reason] = reasons.get(reason, 0) + count
        results.append(
            FileLoadResult(
                file_name=landing_file.path.name,
                file_format=landing_file.file_format,
                landed=sum(counts.values()),
                reasons=dict(sorted(reasons.items())),
                **counts,
            )
        )
    return results
