"""Ingestion under bad input: one bad file never blocks the others, one bad line never blocks its
file, values that would poison later runs are rejected, and the landing folder is a boundary."""

import gzip
import json
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ingestion.events as events
from ingestion.events import REJECT_REASONS, discover_files, load_event_files
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


def _load(warehouse: Path, landing: Path):
    with connect(warehouse) as con:
        return load_event_files(con, discover_files(landing))


def _query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


def _reasons(warehouse: Path) -> dict[str, str]:
    """payload -> reason of every rejected line."""
    return dict(_query(warehouse, "SELECT payload, reason FROM raw.rejected_events"))


def _audit_reconciles(warehouse: Path) -> None:
    audited = _query(
        warehouse,
        "SELECT sum(landed), sum(loaded), sum(rejected), sum(duplicate), sum(suppressed) "
        "FROM raw.event_load_audit",
    )[0]
    landed, loaded, rejected, duplicate, suppressed = audited
    assert landed == loaded + rejected + duplicate + suppressed
    assert _query(warehouse, "SELECT count(*) FROM raw.events")[0][0] == loaded
    assert _query(warehouse, "SELECT count(*) FROM raw.rejected_events")[0][0] == rejected


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def _unreadable_files(landing: Path) -> dict[str, bytes]:
    lines = b"".join(
        json.dumps({**GOOD, "event_id": f"gz{i}", "page_url": os.urandom(16).hex()}).encode()
        + b"\n"
        for i in range(2000)
    )
    whole = gzip.compress(lines)
    return {
        "truncated.jsonl.gz": whole[: len(whole) // 2],
        "not-gzip.jsonl.gz": (_line(event_id="plain") + "\n").encode(),
        "corrupt.parquet": b"PAR1" + os.urandom(300) + b"PAR1",
    }


def test_unreadable_files_are_quarantined_and_never_block_the_good_ones(landing, warehouse):
    (landing / "a.jsonl").write_text(_line(event_id="a1") + "\n")
    for name, content in _unreadable_files(landing).items():
        (landing / name).write_bytes(content)
    (landing / "z.jsonl").write_text(_line(event_id="z1") + "\n")

    report = _load(warehouse, landing)

    assert sorted(f.file_name for f in report.files) == ["a.jsonl", "z.jsonl"]
    assert report.total("loaded") == 2
    quarantined = {q.file_name: q.error for q in report.quarantined}
    assert sorted(quarantined) == ["corrupt.parquet", "not-gzip.jsonl.gz", "truncated.jsonl.gz"]
    assert "GZIP" in quarantined["truncated.jsonl.gz"]
    stored = _query(warehouse, "SELECT file_name, error FROM raw.quarantined_files ORDER BY 1")
    assert [name for name, _ in stored] == sorted(quarantined)
    _audit_reconciles(warehouse)

    # the next load neither fails nor retries them while their content is unchanged
    again = _load(warehouse, landing)
    assert again.files == [] and again.quarantined == []
    assert sorted(again.still_quarantined) == sorted(quarantined)

    # a re-delivered, repaired file is loaded
    repaired = gzip.compress((_line(event_id="fixed") + "\n").encode())
    (landing / "truncated.jsonl.gz").write_bytes(repaired)
    fixed = _load(warehouse, landing)
    assert [(f.file_name, f.loaded) for f in fixed.files] == [("truncated.jsonl.gz", 1)]
    assert sorted(fixed.still_quarantined) == ["corrupt.parquet", "not-gzip.jsonl.gz"]


def test_an_error_no_single_file_reproduces_still_fails_the_load(landing, warehouse, monkeypatch):
    """Quarantine is for files the reader cannot read, not for any failure: a failure of the
    warehouse itself fails the load (and leaves nothing behind)."""
    import duckdb

    (landing / "a.jsonl").write_text(_line() + "\n")
    original = events._load_chunk

    def disk_full(*args):
        original(*args)
        raise duckdb.IOException("could not write: no space left on device")

    monkeypatch.setattr(events, "_load_chunk", disk_full)
    with pytest.raises(duckdb.IOException, match="no space"):
        _load(warehouse, landing)
    assert _query(warehouse, "SELECT count(*) FROM raw.events") == [(0,)]
    assert _query(warehouse, "SELECT count(*) FROM raw.quarantined_files") == [(0,)]


def test_unreadable_lines_are_rejected_with_a_reason_and_the_rest_of_the_file_loads(
    landing, warehouse, monkeypatch
):
    monkeypatch.setattr(events, "MAX_LINE_BYTES", 1000)
    good = [_line(event_id=f"g{i}") for i in range(4)]
    (landing / "mixed.jsonl").write_bytes(
        good[0].encode()
        + b"\n"
        + _line(event_id="bad-utf8", page_url="PLACEHOLDER")
        .encode()
        .replace(b"PLACEHOLDER", b"\xff\xfe")
        + b"\n"
        + good[1].encode()
        + b"\r\n"  # mixed line endings
        + _line(event_id="too-long", page_url="x" * 2000).encode()
        + b"\n"
        + _line(event_id="sep", page_url="PLACEHOLDER")
        .encode()
        .replace(b"PLACEHOLDER", b"a\x1f\x1eb")
        + b"\n\t\n"  # a tab-only line is blank, not an event
        + good[2].encode()
        + b"\r\n"
    )
    (landing / "crlf-blank.jsonl").write_bytes(b"\r\n\n" + good[3].encode() + b"\r\n")

    report = _load(warehouse, landing)

    counts = {f.file_name: (f.landed, f.loaded, f.rejected) for f in report.files}
    assert counts == {"crlf-blank.jsonl": (1, 1, 0), "mixed.jsonl": (6, 3, 3)}
    reasons = sorted(_reasons(warehouse).values())
    assert reasons == ["control_characters", "invalid_encoding", "line_too_long"]
    loaded = _query(warehouse, "SELECT event_id FROM raw.events ORDER BY 1")
    assert loaded == [("g0",), ("g1",), ("g2",), ("g3",)]
    payloads = "".join(_reasons(warehouse))
    assert '"sep"' in payloads and '"bad-utf8"' in payloads  # the payload is kept
    _audit_reconciles(warehouse)


POISON = {
    "invalid_price": [
        _line(event_id="p1", price="NaN"),
        _line(event_id="p2", price="Infinity"),
        '{"event_id": "p3", "event_type": "v", "occurred_at": "2026-10-01T10:00:00Z", '
        '"anonymous_id": "a", "price": 1e400}',
    ],
    "out_of_range_price": [_line(event_id="p4", price=1e16), _line(event_id="p5", price=-1)],
    "out_of_range_revenue": [_line(event_id="r1", revenue=-5)],
    "invalid_quantity": [_line(event_id="q1", quantity=3.7)],
    "out_of_range_quantity": [_line(event_id="q2", quantity=-1)],
    "invalid_occurred_at": [
        _line(event_id="t1", occurred_at="-infinity"),
        _line(event_id="t2", occurred_at="infinity"),
        _line(event_id="t3", occurred_at="2026-10-01T10:00:00+25:00"),
        _line(event_id="t4", occurred_at="2026-10-01T10:00:00+02:75"),
    ],
    "out_of_range_occurred_at": [
        _line(event_id="t5", occurred_at="epoch"),
        _line(event_id="t6", occurred_at="0001-01-01T00:00:00Z"),
        _line(event_id="t7", occurred_at="1900-06-01T00:00:00Z"),
        _line(event_id="t8", occurred_at="2999-01-01T00:00:00Z"),
    ],
    "out_of_range_received_at": [_line(event_id="t9", received_at="1999-12-31T23:59:59Z")],
    "invalid_properties": [
        _line(event_id="x1", properties=[1, 2]),
        _line(event_id="x2", properties="not an object"),
        _line(event_id="x3", properties=7),
    ],
}
PLAUSIBLE = [
    _line(event_id="ok1", price=0, quantity=2, revenue=0),
    _line(event_id="ok2", occurred_at="2026-10-01T10:00:00+14:00", price=999999.99),
    _line(event_id="ok3", occurred_at="2000-01-01T00:00:00Z", quantity="3.0"),
    _line(event_id="ok4", properties={"a": 1}),
    _line(event_id="ok5", properties=json.dumps({"as": "text"})),
    _line(event_id="ok6", properties=None),
]


def test_values_that_would_poison_later_runs_are_rejected_at_ingestion(landing, warehouse):
    lines = [line for group in POISON.values() for line in group] + PLAUSIBLE
    (landing / "values.jsonl").write_text("\n".join(lines) + "\n")

    report = _load(warehouse, landing)

    rejected = _reasons(warehouse)
    for reason, group in POISON.items():
        assert reason in REJECT_REASONS
        for line in group:
            assert rejected.get(line) == reason, line
    assert report.total("loaded") == len(PLAUSIBLE)
    assert _query(warehouse, "SELECT quantity FROM raw.events WHERE event_id = 'ok3'") == [(3,)]
    assert _query(
        warehouse, "SELECT min(occurred_at) >= TIMESTAMPTZ '2000-01-01' FROM raw.events"
    ) == [(True,)]


def test_the_landing_folder_is_a_boundary(tmp_path, landing, warehouse):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text(_line(event_id="outside") + "\n")
    (landing / "passwd.jsonl").symlink_to(outside / "secret.jsonl")
    (landing / "linked-folder").symlink_to(outside, target_is_directory=True)
    (landing / "*.jsonl").write_text(_line(event_id="star") + "\n")
    (landing / "b[1].jsonl").write_text(_line(event_id="bracket") + "\n")
    (landing / "_inflight.jsonl").write_text(_line(event_id="inflight") + "\n")
    (landing / ".hidden.jsonl").write_text(_line(event_id="hidden") + "\n")

    assert [f.path.name for f in discover_files(landing)] == ["*.jsonl", "b[1].jsonl"]
    report = _load(warehouse, landing)

    assert [(f.file_name, f.landed) for f in report.files] == [("*.jsonl", 1), ("b[1].jsonl", 1)]
    stored = _query(warehouse, "SELECT event_id FROM raw.events ORDER BY 1")
    assert stored == [("bracket",), ("star",)]
    _audit_reconciles(warehouse)


def test_a_file_rewritten_with_the_same_size_and_mtime_is_loaded_again(landing, warehouse):
    path = landing / "a.jsonl"
    path.write_text(_line(event_id="v1") + "\n")
    first = os.stat(path)
    _load(warehouse, landing)

    path.write_text(_line(event_id="v2") + "\n")  # same length
    os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (
        first.st_size,
        first.st_mtime_ns,
    )
    report = _load(warehouse, landing)

    assert [(f.file_name, f.loaded) for f in report.files] == [("a.jsonl", 1)]
    assert _query(warehouse, "SELECT event_id FROM raw.events ORDER BY 1") == [("v1",), ("v2",)]
    assert _load(warehouse, landing).skipped_files == ["a.jsonl"]  # then skipped by its stat


def test_random_bytes_never_fail_a_load_and_always_reconcile(landing, warehouse):
    """A fuzz test of the line reader: random byte strings (control bytes, CR, the reader's
    delimiter, invalid UTF-8, NUL) mixed with good lines. The load never raises, every good line
    loads, and landed = loaded + rejected + duplicate."""
    rng = random.Random(20261207)
    alphabet = [b"\x00", b"\r", b"\x1f", b"\x1e", b"\x1f\x1e", b"\xff", b"\xc3", b"{", b'"', b"a"]
    lines = []
    for i in range(400):
        if i % 4 == 0:
            lines.append(_line(event_id=f"good{i}").encode())
        else:
            size = rng.randint(1, 40)
            lines.append(b"".join(rng.choice(alphabet) for _ in range(size)).replace(b"\n", b""))
    (landing / "fuzz.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (landing / "fuzz-arrow.parquet").write_bytes(b"")  # an empty file named .parquet
    table = pa.table({"event_id": ["pq1"], "event_type": ["v"], "anonymous_id": ["a"]})
    pq.write_table(
        table.append_column("occurred_at", pa.array(["2026-10-01T10:00:00Z"])),
        landing / "ok.parquet",
    )

    report = _load(warehouse, landing)

    assert {q.file_name for q in report.quarantined} == {"fuzz-arrow.parquet"}
    loaded = {row[0] for row in _query(warehouse, "SELECT event_id FROM raw.events")}
    assert {f"good{i}" for i in range(0, 400, 4)} | {"pq1"} <= loaded
    _audit_reconciles(warehouse)
