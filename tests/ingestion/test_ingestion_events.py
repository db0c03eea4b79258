"""Event ingestion into raw.events: contract checks, accounting, deduplication, idempotency."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion.events import discover_files, load_event_files
from warehouse.connection import connect

GOOD = {
    "event_id": "e1",
    "event_type": "page_view",
    "occurred_at": "2026-10-01T10:00:00Z",
    "anonymous_id": "a1",
}


def _line(**fields) -> str:
    event = {**GOOD, **fields}
    return json.dumps({k: v for k, v in event.items() if v is not None})


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _load(warehouse: Path, landing: Path):
    with connect(warehouse) as con:
        return load_event_files(con, discover_files(landing))


def _query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


BAD_LINES = {
    "malformed_json": '{"event_id": "x1", "event_type": "page_vi',
    "missing_event_id": _line(event_id=None),
    "missing_event_type": _line(event_id="x2", event_type=""),
    "missing_occurred_at": _line(event_id="x3", occurred_at=None),
    "invalid_occurred_at": _line(event_id="x4", occurred_at="2026-13-45T99:00:00Z"),
    "missing_identity": _line(event_id="x5", anonymous_id=None),
    "invalid_price": _line(event_id="x6", price="twelve"),
    "invalid_received_at": _line(event_id="x7", received_at="yesterday"),
}


def test_every_bad_row_is_rejected_with_its_payload_and_reason(landing, warehouse):
    lines = [_line(), *BAD_LINES.values(), '["an", "array"]', ""]
    _write(landing / "a.jsonl", lines)

    report = _load(warehouse, landing)

    (result,) = report.files
    assert (result.landed, result.loaded, result.rejected, result.duplicate) == (10, 1, 9, 0)
    rejected = dict(
        _query(warehouse, "SELECT payload, reason FROM raw.rejected_events ORDER BY reason")
    )
    assert rejected['["an", "array"]'] == "malformed_json"
    for reason, payload in BAD_LINES.items():
        assert rejected[payload] == reason
    assert _query(warehouse, "SELECT event_id FROM raw.events") == [("e1",)]


def test_accounting_holds_per_file_and_in_the_audit_table(landing, warehouse):
    _write(
        landing / "1.jsonl", [_line(), _line(event_id="e2"), _line(), BAD_LINES["malformed_json"]]
    )
    _write(landing / "2.jsonl", [_line(event_id="e2"), _line(event_id="e3")])

    report = _load(warehouse, landing)

    by_file = {r.file_name: r for r in report.files}
    assert (by_file["1.jsonl"].loaded, by_file["1.jsonl"].duplicate) == (2, 1)
    assert (by_file["2.jsonl"].loaded, by_file["2.jsonl"].duplicate) == (1, 1)
    audit = _query(
        warehouse,
        "SELECT file_name, landed, loaded, rejected, duplicate FROM raw.event_load_audit "
        "ORDER BY file_name",
    )
    assert audit == [("1.jsonl", 4, 2, 1, 1), ("2.jsonl", 2, 1, 0, 1)]
    for _, landed, loaded, rejected, duplicate in audit:
        assert landed == loaded + rejected + duplicate
    assert _query(warehouse, "SELECT count(*), count(DISTINCT event_id) FROM raw.events") == [
        (3, 3)
    ]


def test_loading_the_same_files_again_changes_nothing(landing, warehouse):
    _write(landing / "a.jsonl", [_line(), _line(event_id="e2"), BAD_LINES["missing_identity"]])
    first = _load(warehouse, landing)
    snapshot_sql = (
        "SELECT (SELECT count(*) FROM raw.events), (SELECT count(*) FROM raw.rejected_events), "
        "(SELECT count(*) FROM raw.event_load_audit)"
    )
    before = _query(warehouse, snapshot_sql)

    again = _load(warehouse, landing)
    shutil.copy(landing / "a.jsonl", landing / "a-redelivered.jsonl")  # same content, new name
    redelivered = _load(warehouse, landing)

    assert first.total("loaded") == 2
    assert again.files == [] and again.skipped_files == ["a.jsonl"]
    assert redelivered.files == [] and "a-redelivered.jsonl" in redelivered.skipped_files
    assert _query(warehouse, snapshot_sql) == before == [(2, 1, 1)]


def test_a_new_file_with_known_events_counts_them_as_duplicates(landing, warehouse):
    _write(landing / "a.jsonl", [_line(), _line(event_id="e2")])
    _load(warehouse, landing)
    _write(landing / "b.jsonl", [_line(event_id="e2"), _line(event_id="e9")])

    report = _load(warehouse, landing)

    (result,) = report.files
    assert (result.file_name, result.loaded, result.duplicate) == ("b.jsonl", 1, 1)
    assert _query(warehouse, "SELECT count(*) FROM raw.events") == [(3,)]


def test_fields_are_typed_utc_and_unknown_fields_kept_in_properties(landing, warehouse):
    _write(
        landing / "a.jsonl",
        [
            _line(
                occurred_at="2026-10-01T12:30:00+02:00",
                received_at="2026-10-01T10:30:05Z",
                price="19.99",
                quantity=2,
                experiment_id="exp-7",
                properties={"filter": "price"},
            )
        ],
    )
    _load(warehouse, landing)

    ((occurred, received, price, quantity, properties),) = _query(
        warehouse,
        "SELECT strftime(occurred_at, '%Y-%m-%dT%H:%M:%S'), "
        "strftime(received_at, '%Y-%m-%dT%H:%M:%S'), price, quantity, properties FROM raw.events",
    )
    assert (occurred, received) == ("2026-10-01T10:30:00", "2026-10-01T10:30:05")
    assert (price, quantity) == (19.99, 2)
    assert json.loads(properties) == {"filter": "price", "experiment_id": "exp-7"}


def test_properties_merge_unknown_fields_and_every_line_shape_is_classified(landing, warehouse):
    """What the single-pass parsing must keep: unknown fields of any JSON kind merge into
    properties (a field beside properties wins, a null removes the key), whitespace before the
    object is allowed, a JSON document that is not an object is malformed, a blank line (spaces,
    tabs, CR) is no event, an impossible UTC offset is invalid."""
    lines = [
        _line(event_id="p1", tags=["a", "b"], ctx={"k": 1}, note=None, properties={"x": 1}),
        json.dumps({**GOOD, "event_id": "p2", "properties": {"x": 1, "y": 2}, "y": 3, "x": None}),
        _line(event_id="p3", only="beside"),
        _line(event_id="p4"),
        " \t" + _line(event_id="p5"),
        json.dumps([GOOD]),
        json.dumps("a string"),
        " \t\r",
        "",
        _line(event_id="p6", occurred_at="2026-10-01T10:00:00+15:00"),
        _line(event_id="p7", occurred_at="2026-10-01T10:00:00-09:60"),
        _line(event_id="p8", occurred_at="2026-10-01T10:00:00+14:00"),
    ]
    _write(landing / "a.jsonl", lines)
    (result,) = _load(warehouse, landing).files

    assert (result.landed, result.loaded, result.rejected) == (10, 6, 4)
    assert result.reasons == {"invalid_occurred_at": 2, "malformed_json": 2}
    properties = dict(
        _query(warehouse, "SELECT event_id, properties::VARCHAR FROM raw.events ORDER BY 1")
    )
    assert {k: json.loads(v) if v else None for k, v in properties.items()} == {
        "p1": {"x": 1, "tags": ["a", "b"], "ctx": {"k": 1}},
        "p2": {"y": 3},
        "p3": {"only": "beside"},
        "p4": None,
        "p5": None,
        "p8": None,
    }


def test_parquet_files_follow_the_same_contract(landing, warehouse):
    landing.mkdir()
    table = pa.table(
        {
            "event_id": ["p1", "p2", "p1", None],
            "event_type": ["page_view", "add_to_cart", "page_view", "page_view"],
            "occurred_at": ["2026-10-01T10:00:00Z"] * 4,
            "anonymous_id": ["a1", "a1", "a1", "a2"],
            "price": [None, 10.5, None, None],
            "properties": [None, '{"sku": "S-1"}', None, None],
        }
    )
    pq.write_table(table, landing / "events.parquet")

    (result,) = _load(warehouse, landing).files

    assert (result.file_format, result.landed, result.loaded) == ("parquet", 4, 2)
    assert (result.duplicate, result.reasons) == (1, {"missing_event_id": 1})
    rows = _query(warehouse, "SELECT event_id, price, properties FROM raw.events ORDER BY 1")
    assert rows[1][:2] == ("p2", 10.5)
    assert json.loads(rows[1][2]) == {"sku": "S-1"}


def test_a_failed_load_leaves_no_partial_rows(landing, warehouse, monkeypatch):
    _write(landing / "a.jsonl", [_line()])
    import ingestion.events as events

    def explode(*_args):
        raise RuntimeError("crash after inserting rows")

    monkeypatch.setattr(events, "_file_results", explode)
    with pytest.raises(RuntimeError, match="crash"):
        _load(warehouse, landing)
    monkeypatch.undo()

    assert _query(warehouse, "SELECT count(*) FROM raw.events") == [(0,)]
    report = _load(warehouse, landing)  # the retry loads the file: it was never audited
    assert report.total("loaded") == 1


def test_hidden_and_unknown_files_are_ignored_and_missing_folder_is_explained(tmp_path):
    landing = tmp_path / "landing"
    _write(landing / "a.jsonl", [_line()])
    _write(landing / "_in_flight.jsonl", [_line()])
    _write(landing / "notes.txt", ["hello"])

    assert [f.path.name for f in discover_files(landing)] == ["a.jsonl"]
    with pytest.raises(FileNotFoundError, match="SEGWH_LANDING_DIR"):
        discover_files(tmp_path / "nowhere")


def test_loading_in_chunks_counts_exactly_as_in_one_piece(tmp_path, monkeypatch):
    """Large loads go in chunks of files (one transaction): duplicates across chunks are still
    duplicates, the first copy in file order wins, and a failing chunk undoes the whole load."""
    import ingestion.events as events

    landing = tmp_path / "landing"
    _write(landing / "a.jsonl", [_line(), _line(event_id="e2")])
    _write(landing / "b.jsonl", [_line(event_id="e2", page_type="b"), _line(event_id="e3")])
    _write(
        landing / "c.jsonl",
        [_line(event_id="e3"), BAD_LINES["malformed_json"], _line(event_id="e4")],
    )

    def load(warehouse: Path, chunk_bytes: int):
        monkeypatch.setattr(events, "CHUNK_BYTES", chunk_bytes)
        report = _load(warehouse, landing)
        counts = [(f.file_name, f.landed, f.loaded, f.rejected, f.duplicate) for f in report.files]
        stored = _query(
            warehouse,
            "SELECT event_id, page_type, parse_filename(_source_file) FROM raw.events ORDER BY 1",
        )
        return counts, stored

    whole = load(tmp_path / "whole.duckdb", events.CHUNK_BYTES)
    per_file = load(tmp_path / "per_file.duckdb", 1)  # every file a chunk of its own

    assert per_file == whole
    assert whole[0] == [("a.jsonl", 2, 2, 0, 0), ("b.jsonl", 2, 1, 0, 1), ("c.jsonl", 3, 1, 1, 1)]
    assert whole[1][1] == ("e2", None, "a.jsonl")  # the first copy, in file order

    calls = []
    original = events._load_chunk

    def fail_second_chunk(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full in chunk 2")
        return original(*args)

    monkeypatch.setattr(events, "_load_chunk", fail_second_chunk)
    with pytest.raises(RuntimeError, match="chunk 2"):
        _load(tmp_path / "failed.duckdb", landing)
    assert _query(tmp_path / "failed.duckdb", "SELECT count(*) FROM raw.events") == [(0,)]
