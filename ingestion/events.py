"""Loading landed event files (JSONL and Parquet) into ``raw.events``.

Everything happens inside DuckDB with its own readers; Python only lists files and hashes them.

Two landing shapes, told apart per line (or Parquet row), so one file may mix them; both are
declared in ``contracts/events.toml``:
- the flat contract (``fields``): one key per raw.events column, anything else kept in
  ``properties``;
- Segment-spec messages (``[segment]``), as Segment's and RudderStack's SDKs send them and their
  S3/GCS destinations write them: a line whose top-level ``type`` is one of track, page, screen,
  identify, alias, group and that has no ``event_type`` (absent or null). Its fields are mapped
  to the contract columns by JSON paths (``messageId`` -> event_id, ``timestamp`` else
  ``originalTimestamp`` -> occurred_at, ``context.page.url`` -> page_url, a track's ``event`` ->
  event_type, an alias's ``previousId`` -> anonymous_id, ...); raw.events.properties keeps the
  message's properties (identify, group: traits) and its other top-level keys (context, ...).
  Then the same contract checks and reject reasons apply (no messageId: missing_event_id).

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

One bad file never blocks the others, and one bad line never blocks its file:
- a line that cannot be read (invalid UTF-8, longer than MAX_LINE_BYTES, the reader's delimiter
  bytes inside it) is rejected with a reason (``LINE_REASONS``), like a line that breaks the
  contract;
- a file that cannot be read at all (a truncated or fake ``.gz``, a corrupt Parquet file) is
  quarantined: recorded in ``raw.quarantined_files`` with the error, left out of the batch, and
  skipped by later loads until its content changes. The rest of the batch loads.

The landing folder is a boundary: symbolic links are never followed (reported and skipped), only
regular files are read, and a file name is never a glob (``*``, ``?`` and ``[`` are escaped).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG

import duckdb

from privacy.suppression import suppression_condition

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)

CONTRACT_PATH = Path(__file__).parent / "contracts" / "events.toml"
"""The raw event contract, the one declaration of the fields a landed event may carry."""


def _read_contract(path: Path) -> dict:
    with path.open("rb") as handle:
        contract = tomllib.load(handle)
    if not any(field.get("identity") for field in contract["fields"]):
        raise ValueError(f"{path}: no identity field (anonymous_id, user_id)")
    return contract


_CONTRACT = _read_contract(CONTRACT_PATH)
_FIELDS = _CONTRACT["fields"]

# (column, DuckDB type) of raw.events in contract order; typed columns are cast with TRY_CAST
# and a present-but-uncastable value rejects the row with reason invalid_<column>.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = tuple((f["name"], f["type"]) for f in _FIELDS)
TYPED_COLUMNS = tuple(name for name, kind in EVENT_COLUMNS if kind != "VARCHAR")
REQUIRED_FIELDS = tuple(f["name"] for f in _FIELDS if f.get("required"))
IDENTITY_FIELDS = tuple(f["name"] for f in _FIELDS if f.get("identity"))  # one of them at least
KNOWN_FIELDS = (*(name for name, _ in EVENT_COLUMNS), "properties")

BOUNDED_FIELDS = {f["name"]: (f["min"], f["max"]) for f in _FIELDS if "min" in f or "max" in f}
TIMESTAMP_WINDOW = _CONTRACT["timestamps"]  # earliest, max_future_skew_hours

# Lines the reader could not read as text, by DuckDB's CSV reject error type (see _landed_sql).
LINE_REASONS = {
    "INVALID ENCODING": "invalid_encoding",
    "LINE SIZE OVER MAXIMUM": "line_too_long",
}
UNREADABLE_LINE = "unreadable_line"  # any other reader error on one line
DELIMITER_IN_LINE = "control_characters"  # the reader's delimiter bytes inside a line
MAX_LINE_BYTES = 64_000_000
REJECTED_PAYLOAD_CHARS = 1_000_000  # a rejected line longer than this keeps its beginning

REJECT_REASONS = (
    *LINE_REASONS.values(),
    UNREADABLE_LINE,
    DELIMITER_IN_LINE,
    "malformed_json",
    *(f"missing_{name}" for name in REQUIRED_FIELDS),
    "missing_identity",
    *(f"invalid_{name}" for name in TYPED_COLUMNS),
    *(f"out_of_range_{name}" for name, kind in EVENT_COLUMNS if kind == "TIMESTAMPTZ"),
    *(f"out_of_range_{name}" for name in BOUNDED_FIELDS),
    "invalid_properties",
)


@dataclass(frozen=True)
class SegmentMapping:
    """How a Segment-spec message maps to the contract (``[segment]`` in contracts/events.toml).

    ``fields[type][column]``: the JSON paths tried in order for that column, ``properties[type]``:
    the top-level key whose object becomes ``raw.events.properties``, ``consumed[type]``: the
    top-level keys not kept in properties (the first path of a field, the properties object).
    """

    types: tuple[str, ...]
    fields: dict[str, dict[str, tuple[str, ...]]]
    properties: dict[str, str]
    consumed: dict[str, tuple[str, ...]]

    @classmethod
    def from_contract(cls, section: dict, columns: tuple[str, ...]) -> SegmentMapping:
        types = tuple(section["types"])
        defaults = section["fields"]
        by_type = section.get("by_type", {})
        unknown = set(by_type) - set(types)
        if unknown:
            raise ValueError(f"segment.by_type: {sorted(unknown)} not in segment.types")
        fields: dict[str, dict[str, tuple[str, ...]]] = {}
        properties: dict[str, str] = {}
        consumed: dict[str, tuple[str, ...]] = {}
        for kind in types:
            merged = {**defaults, **by_type.get(kind, {})}
            source = merged.pop("properties")
            if set(merged) != set(columns):
                raise ValueError(
                    f"segment ({kind}): map exactly the contract fields; "
                    f"missing {sorted(set(columns) - set(merged))}, "
                    f"unknown {sorted(set(merged) - set(columns))}"
                )
            fields[kind] = {column: tuple(merged[column]) for column in columns}
            properties[kind] = source
            firsts = (paths[0] for paths in fields[kind].values() if paths)
            consumed[kind] = (*dict.fromkeys(p for p in firsts if "." not in p), source)
        return cls(types, fields, properties, consumed)

    def shape(self) -> dict:
        """The json_transform shape of the message keys the mapping reads (``properties.*``
        paths excluded: they are read from the properties object, see ``properties_shape``)."""
        shape: dict = {source: "JSON" for source in self.properties.values()}
        for path in self._paths():
            if path.startswith("properties."):
                continue
            *parents, leaf = path.split(".")
            node = shape
            for parent in parents:
                node = node.setdefault(parent, {})
                if not isinstance(node, dict):
                    raise ValueError(f"segment path {path}: {parent} is not an object")
            if isinstance(node.get(leaf), dict) or node.get(leaf) == "JSON":
                raise ValueError(f"segment path {path}: {leaf} is an object")
            node[leaf] = "VARCHAR"
        return shape

    def properties_shape(self) -> dict:
        keys = (p.removeprefix("properties.") for p in self._paths() if p.startswith("properties."))
        return {key: "VARCHAR" for key in dict.fromkeys(keys)}

    def _paths(self) -> list[str]:
        return [p for per_type in self.fields.values() for ps in per_type.values() for p in ps]


SEGMENT = SegmentMapping.from_contract(
    _CONTRACT["segment"], tuple(name for name, _ in EVENT_COLUMNS)
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
-- the file's status-change time: a file rewritten with the same size and mtime is noticed
ALTER TABLE raw.event_load_audit ADD COLUMN IF NOT EXISTS file_ctime_ns BIGINT;
-- files that could not be read at all: never loaded, retried only when their content changes
CREATE TABLE IF NOT EXISTS raw.quarantined_files (
    load_id VARCHAR NOT NULL,
    file_path VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    file_format VARCHAR NOT NULL,
    file_size BIGINT NOT NULL,
    file_mtime_ns BIGINT NOT NULL,
    file_ctime_ns BIGINT NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    error VARCHAR NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL
);
"""


@dataclass(frozen=True)
class LandingFile:
    path: Path
    file_format: str  # "jsonl" or "parquet"
    size: int
    mtime_ns: int
    ctime_ns: int = 0  # status change: differs after any rewrite, whatever the mtime says

    @property
    def signature(self) -> str:
        """What changes when the file is rewritten (the sensor's and the loader's stat check)."""
        return f"{self.size}:{self.mtime_ns}:{self.ctime_ns}"


@dataclass(frozen=True)
class QuarantinedFile:
    file_name: str
    file_path: str
    error: str


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
    quarantined: list[QuarantinedFile] = field(default_factory=list)  # by this load
    still_quarantined: list[str] = field(default_factory=list)  # earlier, content unchanged

    def total(self, field: str) -> int:
        return sum(getattr(result, field) for result in self.files)


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def discover_files(landing_dir: Path) -> list[LandingFile]:
    """Event files directly in ``landing_dir`` or below it, in lexical path order.

    Only regular files inside the folder: symbolic links (to files or folders) are never
    followed, so a link cannot make the loader read a file from elsewhere (they are logged)."""
    if not landing_dir.is_dir():
        raise FileNotFoundError(
            f"landing folder {landing_dir} does not exist: set SEGWH_LANDING_DIR or generate the "
            "sample data (`make sample`)"
        )
    root = landing_dir.resolve()
    found = []
    for folder, subfolders, names in os.walk(root):  # os.walk does not follow folder links
        subfolders.sort()
        for name in names:
            path = Path(folder) / name
            if name.lower().startswith((".", "_")):
                continue  # hidden and in-flight files (e.g. _tmp, .partial) are not landed yet
            file_format = _format_of(name)
            if file_format is None:
                continue
            stat = path.lstat()
            if not S_ISREG(stat.st_mode):
                log.warning("skipping %s: not a regular file (a symbolic link?)", path)
                continue
            found.append(
                LandingFile(path, file_format, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            )
    return sorted(found, key=lambda f: str(f.path))


def files_in_quarantine(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, datetime]]:
    """(file path, error, quarantined at) of every file quarantined and not loaded since (a
    repaired re-delivery under the same path ends its quarantine)."""
    ensure_raw_tables(con)
    return con.execute(
        """SELECT q.file_path, q.error, q.quarantined_at FROM raw.quarantined_files AS q
        WHERE NOT EXISTS (
            SELECT 1 FROM raw.event_load_audit AS a
            WHERE a.file_path = q.file_path AND a.loaded_at >= q.quarantined_at)
        ORDER BY q.file_path, q.quarantined_at"""
    ).fetchall()


def _format_of(name: str) -> str | None:
    name = name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


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
) -> tuple[list[tuple[LandingFile, str]], list[str], list[str]]:
    """Split into (file, sha256) pairs to load, names of files already loaded and names of files
    quarantined earlier whose content has not changed.

    A file whose path, size, mtime and ctime match an audited load (or quarantine) is skipped
    without hashing (audit rows from before ctime was recorded match on the rest); any other
    file is hashed and skipped if that content was loaded (a re-delivery) or quarantined before.
    """
    stat_query = "SELECT file_path, file_size, file_mtime_ns, file_ctime_ns, file_sha256 FROM "
    audited = con.execute(stat_query + "raw.event_load_audit").fetchall()
    quarantined = con.execute(stat_query + "raw.quarantined_files").fetchall()
    known_stats = {tuple(row[:4]) for row in audited}
    quarantined_stats = {tuple(row[:4]) for row in quarantined}
    known_hashes = {row[4] for row in audited}
    quarantined_hashes = {row[4] for row in quarantined}
    to_load: list[tuple[LandingFile, str]] = []
    skipped: list[str] = []
    still_quarantined: list[str] = []
    for landing_file in files:
        stats = (str(landing_file.path), landing_file.size, landing_file.mtime_ns)
        if (*stats, landing_file.ctime_ns) in known_stats or (*stats, None) in known_stats:
            skipped.append(landing_file.path.name)
            continue
        if (*stats, landing_file.ctime_ns) in quarantined_stats:
            still_quarantined.append(landing_file.path.name)
            continue
        sha = sha256_of(landing_file.path)
        if sha in known_hashes:
            skipped.append(landing_file.path.name)
            continue
        if sha in quarantined_hashes:
            still_quarantined.append(landing_file.path.name)
            continue
        known_hashes.add(sha)  # the same content twice in one batch loads once
        to_load.append((landing_file, sha))
    return to_load, skipped, still_quarantined


def _glob_escaped(path: Path) -> str:
    """The path as a DuckDB file pattern that matches only itself: DuckDB's readers expand
    ``*``, ``?`` and ``[...]`` in every path they get (a file named ``*.jsonl`` would read the
    whole folder, hidden and in-flight files included)."""
    escaped = str(path).replace("[", "[[]")
    return _sql_str(escaped.replace("*", "[*]").replace("?", "[?]"))


# DuckDB's CSV reader reads each JSON line as one text value (a delimiter that does not occur in
# JSON text, no quoting) and, with store_rejects, records lines it cannot read in these temporary
# tables instead of failing the whole read; strict_mode off accepts mixed LF/CRLF line endings.
REJECTS = ("_segwh_line_errors", "_segwh_line_scans")


def _landed_sql(files: list[LandingFile]) -> str:
    """One row per landed record: (_source_file, line, line_reason) with the record as a JSON
    text; line_reason is set when the line could not be read as one text value. Run it, then
    ``_unreadable_lines_sql`` for the lines the reader rejected."""
    parts = []
    jsonl = [f for f in files if f.file_format == "jsonl"]
    if jsonl:
        paths = ", ".join(_glob_escaped(f.path) for f in jsonl)
        # A line holding the delimiter comes out split: `rest` is its second part.
        parts.append(
            f"""SELECT filename AS _source_file,
                   CASE WHEN rest IS NULL THEN line
                        ELSE left(line || E'\\x1f\\x1e' || rest, {REJECTED_PAYLOAD_CHARS}) END
                       AS line,
                   CASE WHEN rest IS NOT NULL THEN '{DELIMITER_IN_LINE}' END AS line_reason
            FROM read_csv([{paths}], columns = {{'line': 'VARCHAR', 'rest': 'VARCHAR'}},
                          delim = E'\\x1f\\x1e', quote = '', escape = '', header = false,
                          auto_detect = false, filename = true, max_line_size = {MAX_LINE_BYTES},
                          strict_mode = false, null_padding = true, store_rejects = true,
                          rejects_table = '{REJECTS[0]}', rejects_scan = '{REJECTS[1]}')
            WHERE regexp_matches(line, '[^ \\t\\r]')"""  # not blank: trim() costs 10x more
        )
    for f in files:
        if f.file_format == "parquet":
            parts.append(
                f"SELECT {_sql_str(str(f.path))} AS _source_file, to_json(p)::VARCHAR AS line, "
                f"NULL::VARCHAR AS line_reason FROM read_parquet({_glob_escaped(f.path)}) AS p"
            )
    return "\nUNION ALL\n".join(parts)


def _unreadable_lines_sql() -> str:
    """The lines the CSV reader rejected in the last ``_landed_sql`` read, as landed rows."""
    reasons = " ".join(f"WHEN {_sql_str(k)} THEN {_sql_str(v)}" for k, v in LINE_REASONS.items())
    return f"""
    SELECT s.file_path AS _source_file,
           left(coalesce(e.csv_line, ''), {REJECTED_PAYLOAD_CHARS}) AS line,
           CASE e.error_type::VARCHAR {reasons} ELSE '{UNREADABLE_LINE}' END AS line_reason
    FROM {REJECTS[0]} AS e JOIN {REJECTS[1]} AS s USING (scan_id, file_id)"""


def _drop_rejects(con: duckdb.DuckDBPyConnection) -> None:
    for table in REJECTS:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _merge_shapes(flat: dict, segment: dict) -> dict:
    """One json_transform shape for both landing shapes (a key in both must agree)."""
    merged = dict(flat)
    for key, kind in segment.items():
        if key in merged and merged[key] != kind:
            raise ValueError(f"segment path {key}: also a flat field of another type")
        merged[key] = kind
    return merged


def _segment_path_sql(path: str) -> str:
    """The text of one Segment path: ``f`` is the message, ``p`` its properties object."""
    if path.startswith("properties."):
        return f'p."{path.removeprefix("properties.")}"'
    return "f." + ".".join(f'"{part}"' for part in path.split("."))


def _first_of_sql(paths: tuple[str, ...]) -> str:
    values = [f"nullif({_segment_path_sql(path)}, '')" for path in paths]
    if not values:
        return "NULL::VARCHAR"
    return values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"


def _by_segment_type_sql(value_of: Callable[[str], str]) -> str:
    """``CASE f.type WHEN ... END`` over the Segment types, one WHEN per type whose value
    differs from the most common one (the ELSE)."""
    values = {kind: value_of(kind) for kind in SEGMENT.types}
    default = max(values.values(), key=list(values.values()).count)
    whens = [f"WHEN {_sql_str(kind)} THEN {v}" for kind, v in values.items() if v != default]
    return f"CASE f.type {' '.join(whens)} ELSE {default} END" if whens else default


def _removal_patch_sql(names: tuple[str, ...]) -> str:
    """A JSON merge patch (RFC 7396) that removes the keys ``names`` from an object."""
    return _sql_str(json.dumps(dict.fromkeys(names)))


# what JSON allows before a document's first token
JSON_WHITESPACE = "' ' || chr(9) || chr(10) || chr(13)"


def _sql_tuple(names: tuple[str, ...]) -> str:
    return "(" + ", ".join(_sql_str(name) for name in names) + ")"


# A UTC offset that does not exist (hours over 14 or minutes over 59): DuckDB would accept it.
_IMPOSSIBLE_OFFSET = r"[+-]((1[5-9]|[2-9][0-9]):?[0-9]{2}|[0-9]{2}:?[6-9][0-9])$"


def _typed_sql(text: str, kind: str) -> str:
    """The value of ``text`` as ``kind``, NULL when it is not a valid one: numbers finite,
    integers integral (TRY_CAST would round 3.7 to 4), timestamps finite with a real offset."""
    cast = f"TRY_CAST({text} AS {kind})"
    if kind == "VARCHAR":
        return text
    if kind == "DOUBLE":
        return f"CASE WHEN isfinite({cast}) THEN {cast} END"
    if kind == "INTEGER":
        number = f"TRY_CAST({text} AS DOUBLE)"
        return f"CASE WHEN {number} = trunc({number}) THEN {cast} END"
    if kind == "TIMESTAMPTZ":
        # the offset is in the last 6 characters at most ("+hh:mm")
        offset_ok = f"NOT regexp_matches(right({text}, 6), {_sql_str(_IMPOSSIBLE_OFFSET)})"
        return f"CASE WHEN isfinite({cast}) AND {offset_ok} THEN {cast} END"
    return cast


def _validated_sql(landed: str) -> str:
    """Parse, map, type and classify every landed record of the query ``landed`` (rows of
    ``_source_file, line, line_reason``); one row per record.

    The line is read by few passes of the JSON parser: ``json_valid`` (an object is a valid
    document whose first character is ``{``), one ``json_transform`` that extracts every
    contract field and every key the Segment mapping reads as text (``->>`` per field would
    re-parse the document each time, ~8x slower), and one ``json_merge_patch`` that leaves the
    keys the shape does not consume (they go into ``properties``). A Segment message's
    properties object (small) is transformed once more for its ``properties.*`` paths. The
    payload is kept only for rejected rows.
    """
    flat_shape = {**{name: "VARCHAR" for name, _ in EVENT_COLUMNS}, "properties": "JSON"}
    shape = json.dumps(_merge_shapes(flat_shape, SEGMENT.shape()))
    properties_shape = json.dumps(SEGMENT.properties_shape())
    is_segment = f"f.type IN {_sql_tuple(SEGMENT.types)} AND f.event_type IS NULL"
    flat_extra = f"json_merge_patch(j, {_removal_patch_sql(KNOWN_FIELDS)})"
    mapped = ",\n".join(
        f"{name} := CASE WHEN is_segment THEN "
        + _by_segment_type_sql(lambda kind, name=name: _first_of_sql(SEGMENT.fields[kind][name]))
        + f" ELSE f.{name} END"
        for name, _ in EVENT_COLUMNS
    )
    source_properties = _by_segment_type_sql(lambda kind: f'f."{SEGMENT.properties[kind]}"')
    segment_extra = _by_segment_type_sql(
        lambda kind: f"json_merge_patch(j, {_removal_patch_sql(SEGMENT.consumed[kind])})"
    )
    typed = ",\n".join(f"{_typed_sql(f'v.{name}', kind)} AS {name}" for name, kind in EVENT_COLUMNS)
    # a required field: missing, then (when typed) invalid; an optional typed field: invalid
    required_checks = "\n".join(
        f"WHEN nullif(trim(v.{name}), '') IS NULL THEN 'missing_{name}'"
        + (f"\nWHEN {name} IS NULL THEN 'invalid_{name}'" if name in TYPED_COLUMNS else "")
        for name in REQUIRED_FIELDS
    )
    no_identity = " AND ".join(f"nullif(trim(v.{name}), '') IS NULL" for name in IDENTITY_FIELDS)
    invalid_checks = "\n".join(
        f"WHEN v.{name} IS NOT NULL AND {name} IS NULL THEN 'invalid_{name}'"
        for name in TYPED_COLUMNS
        if name not in REQUIRED_FIELDS
    )
    earliest = f"{_sql_str(TIMESTAMP_WINDOW['earliest'])}::TIMESTAMPTZ"
    latest = f"now() + INTERVAL {int(TIMESTAMP_WINDOW['max_future_skew_hours'])} HOUR"
    range_checks = "\n".join(
        [
            f"WHEN {name} < {earliest} OR {name} > {latest} THEN 'out_of_range_{name}'"
            for name, kind in EVENT_COLUMNS
            if kind == "TIMESTAMPTZ"
        ]
        + [
            f"WHEN {name} < {low} OR {name} > {high} THEN 'out_of_range_{name}'"
            for name, (low, high) in BOUNDED_FIELDS.items()
        ]
    )
    return f"""
    WITH parsed AS (
        SELECT _source_file, line, line_reason,
               CASE WHEN line_reason IS NULL AND json_valid(line)
                         AND starts_with(ltrim(line, {JSON_WHITESPACE}), '{{')
                    THEN line END AS j
        FROM ({landed}) AS landed
    ),
    extracted AS (
        SELECT _source_file, line, line_reason, j,
               json_transform(j, {_sql_str(shape)}) AS f
        FROM parsed
    ),
    detected AS (
        SELECT _source_file, line, line_reason, j, f,
               coalesce({is_segment}, false) AS is_segment,
               CASE WHEN is_segment THEN {segment_extra}
                    ELSE {flat_extra}
               END AS extra,
               CASE WHEN is_segment THEN {source_properties} ELSE f.properties END AS given
        FROM extracted
    ),
    given AS (
        SELECT _source_file, line, line_reason, j, f, is_segment, extra,
               CASE json_type(given)
                   WHEN 'OBJECT' THEN given
                   WHEN 'VARCHAR' THEN CASE WHEN json_valid(given->>'$')
                                             AND json_type(given->>'$') = 'OBJECT'
                                            THEN (given->>'$')::JSON END
               END AS given_properties,
               coalesce(json_type(given) <> 'NULL', false) AS properties_given
        FROM detected
    ),
    mapped AS (
        SELECT _source_file, line, line_reason, j, extra, given_properties,
               properties_given, is_segment,
               struct_pack({mapped}) AS v
        FROM (
            SELECT *, CASE WHEN is_segment
                           THEN json_transform(given_properties, {_sql_str(properties_shape)})
                      END AS p
            FROM given
        )
    ),
    typed AS (
        SELECT _source_file, line, line_reason, j, v, extra, given_properties,
               properties_given,
               {typed}
        FROM mapped
    ),
    classified AS (
        SELECT *,
               CASE
                   WHEN line_reason IS NOT NULL THEN line_reason
                   WHEN j IS NULL THEN 'malformed_json'
                   {required_checks}
                   WHEN {no_identity} THEN 'missing_identity'
                   {invalid_checks}
                   {range_checks}
                   WHEN properties_given AND given_properties IS NULL THEN 'invalid_properties'
               END AS reject_reason
        FROM typed
    )
    SELECT _source_file,
           {", ".join(name for name, _ in EVENT_COLUMNS)},
           CASE WHEN coalesce(extra = '{{}}', true) THEN given_properties
                ELSE json_merge_patch(coalesce(given_properties, '{{}}'::JSON), extra)
           END AS properties,
           reject_reason,
           CASE WHEN reject_reason IS NOT NULL THEN line END AS payload,
           hash(line) AS line_hash
    FROM classified
    """


def load_event_files(
    con: duckdb.DuckDBPyConnection, files: list[LandingFile], *, load_id: str | None = None
) -> EventLoadReport:
    """Load the files that are new into ``raw.events`` in one transaction and audit them.

    A file that cannot be read is quarantined and the batch is loaded again without it (the
    failed attempt left nothing behind): one bad file never blocks the others."""
    started = datetime.now(UTC)
    load_id = load_id or uuid.uuid4().hex
    ensure_raw_tables(con)
    to_load, skipped, still_quarantined = _new_files(con, files)
    if skipped:
        log.info("skipping %d already loaded file(s)", len(skipped))
    for name in still_quarantined:
        log.warning("skipping %s: quarantined earlier, content unchanged", name)
    to_load.sort(key=lambda item: str(item[0].path))  # the first copy of an event_id wins
    quarantined: list[QuarantinedFile] = []
    results: list[FileLoadResult] = []
    while to_load:
        log.info("loading %d file(s): %s", len(to_load), ", ".join(f.path.name for f, _ in to_load))
        try:
            results = _load_batch(con, to_load, started, load_id)
            break
        except _ChunkReadError as failed:
            unreadable = _unreadable_files(con, failed.chunk)
            if not unreadable:
                raise failed.__cause__ from None
            quarantined += _quarantine(con, unreadable, started, load_id)
            left_out = {landing_file for landing_file, *_ in unreadable}
            to_load = [item for item in to_load if item[0] not in left_out]
    report = EventLoadReport(
        load_id,
        results,
        skipped,
        (datetime.now(UTC) - started).total_seconds(),
        quarantined,
        still_quarantined,
    )
    if results:
        log.info(
            "loaded %d events (%d rejected, %d duplicate) from %d file(s) in %.1fs",
            report.total("loaded"),
            report.total("rejected"),
            report.total("duplicate"),
            len(results),
            report.elapsed_seconds,
        )
    return report


class _ChunkReadError(Exception):
    """A chunk's files could not be read (the transaction was rolled back)."""

    def __init__(self, chunk: list[tuple[LandingFile, str]]):
        super().__init__(f"reading {len(chunk)} file(s) failed")
        self.chunk = chunk


def _load_batch(
    con: duckdb.DuckDBPyConnection,
    to_load: list[tuple[LandingFile, str]],
    started: datetime,
    load_id: str,
) -> list[FileLoadResult]:
    """Load and audit the files in one transaction; a chunk that fails to read raises
    ``_ChunkReadError`` after the rollback."""
    con.execute("BEGIN TRANSACTION")
    try:
        rows = []
        # events of erased persons are dropped and counted (None: the suppression list is empty)
        suppressed_if = suppression_condition(con, ["user_id", "anonymous_id"])
        chunks = list(_chunks(to_load))
        for number, chunk in enumerate(chunks, 1):
            if len(chunks) > 1:
                log.info("chunk %d/%d: %d file(s)", number, len(chunks), len(chunk))
            try:
                rows.extend(_load_chunk(con, chunk, started, load_id, suppressed_if))
            except duckdb.Error as error:
                raise _ChunkReadError(chunk) from error
        results = _file_results(to_load, rows)
        con.executemany(
            "INSERT INTO raw.event_load_audit (load_id, file_path, file_name, file_format, "
            "file_size, file_mtime_ns, file_sha256, landed, loaded, rejected, duplicate, "
            "loaded_at, suppressed, file_ctime_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    f.ctime_ns,
                ]
                for (f, sha), r in zip(to_load, results, strict=True)
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        _drop_rejects(con)
    return results


def _unreadable_files(
    con: duckdb.DuckDBPyConnection, chunk: list[tuple[LandingFile, str]]
) -> list[tuple[LandingFile, str, str]]:
    """The files of a failed chunk that cannot be read on their own, with the reader's error.
    (An error no single file reproduces, e.g. a full disk, quarantines nothing.)"""
    unreadable = []
    for landing_file, sha in chunk:
        try:
            con.execute(f"SELECT count(*) FROM ({_landed_sql([landing_file])})").fetchone()
        except duckdb.Error as error:
            # the error's first line only: later lines may quote the file's content
            unreadable.append((landing_file, sha, str(error).splitlines()[0][:500]))
        finally:
            _drop_rejects(con)
    return unreadable


def _quarantine(
    con: duckdb.DuckDBPyConnection,
    unreadable: list[tuple[LandingFile, str, str]],
    started: datetime,
    load_id: str,
) -> list[QuarantinedFile]:
    """Record unreadable files (file, sha256, error) in raw.quarantined_files."""
    for landing_file, _, error in unreadable:
        log.warning("quarantined %s: %s", landing_file.path.name, error)
    con.executemany(
        "INSERT INTO raw.quarantined_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                load_id,
                str(f.path),
                f.path.name,
                f.file_format,
                f.size,
                f.mtime_ns,
                f.ctime_ns,
                sha,
                error,
                started,
            ]
            for f, sha, error in unreadable
        ],
    )
    return [QuarantinedFile(f.path.name, str(f.path), error) for f, _, error in unreadable]


# Files are validated and inserted in chunks of about this many bytes, all in one transaction: a
# large backfill (10M events) in one piece made DuckDB spill its working tables and a sort to
# disk (189 s for 10M events vs 12 s for 1M); in chunks the cost stays linear. One working table
# per chunk (``_validated``: the typed rows, payloads of rejects only) and the row ids of the
# duplicates; rows are inserted in the order they were read (no sort: the landing files are in
# time order and staging selects by load id).
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
    files = [f for f, _ in chunk]
    # the landed lines are parsed and classified as they are read (never stored as text)...
    con.execute("CREATE OR REPLACE TEMP TABLE _validated AS " + _validated_sql(_landed_sql(files)))
    if any(f.file_format == "jsonl" for f in files):
        # ... then the few lines the reader rejected are classified the same way
        con.execute("INSERT INTO _validated " + _validated_sql(_unreadable_lines_sql()))
        _drop_rejects(con)
    suppressed = suppressed_if or "false"
    valid = f"reject_reason IS NULL AND NOT ({suppressed})"
    # Only the rows that are not loaded although valid are stored apart (their row ids): a
    # repeat of an event_id within the chunk (the first by file name, then payload, wins) and
    # an event_id already in raw.events (earlier chunks of this batch included).
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _duplicates AS
        WITH valid AS (
            SELECT rowid AS row_id, event_id, _source_file, line_hash
            FROM _validated WHERE {valid}
        ),
        repeated AS (SELECT event_id FROM valid GROUP BY event_id HAVING count(*) > 1),
        ranked AS (
            SELECT row_id, row_number() OVER (
                PARTITION BY event_id ORDER BY _source_file, line_hash) AS occurrence
            FROM valid SEMI JOIN repeated USING (event_id)
        )
        SELECT row_id FROM ranked WHERE occurrence > 1
        UNION
        SELECT v.row_id FROM valid AS v SEMI JOIN raw.events AS e ON e.event_id = v.event_id
        """
    )
    con.execute(
        f"""INSERT INTO raw.events
        SELECT {columns}, properties, _source_file, ?::TIMESTAMPTZ, ?
        FROM _validated AS v ANTI JOIN _duplicates AS d ON v.rowid = d.row_id
        WHERE {valid}""",
        [started, load_id],
    )
    con.execute(
        f"""INSERT INTO raw.rejected_events
        SELECT _source_file, payload, reject_reason, ?::TIMESTAMPTZ, ?
        FROM _validated WHERE reject_reason IS NOT NULL AND NOT ({suppressed})""",
        [started, load_id],
    )
    rows = con.execute(
        f"""SELECT _source_file,
               CASE WHEN {suppressed} THEN 'suppressed'
                    WHEN reject_reason IS NOT NULL THEN 'rejected'
                    WHEN d.row_id IS NOT NULL THEN 'duplicate'
                    ELSE 'loaded' END,
               coalesce(reject_reason, ''), count(*)
        FROM _validated AS v LEFT JOIN _duplicates AS d ON v.rowid = d.row_id
        GROUP BY ALL"""
    ).fetchall()
    for temp in ("_duplicates", "_validated"):
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
