"""After a real `segwh run` and `segwh erase --email` on a Dagster instance of its own, no file
the project wrote holds a byte of the erased person (issue 19, items 4 and 5): not the warehouse
(compacted), the published DuckDB / Parquet / journal files, temporary files, the models folder,
Dagster's storage (run and event SQLite, compute logs, plots) or dbt's target/ and logs. The
run's landing folder has unreadable files and rejected lines carrying the person's e-mail: a
failed load logs ids and reasons, never raw lines. And the pseudonymization key is in none of
those files, in any form."""

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from landing_helpers import landing_with_a_warning
from scan_helpers import files_holding

from privacy import pseudonyms
from warehouse.connection import connect
from warehouse.settings import PROJECT_DIR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEGWH = str(Path(sys.executable).parent / "segwh")
PERSON = {
    "customer_id": "CUST-ERASE-7f3a9c21d4",
    "email": "erase.me.7f3a9c21@example.org",
    "phone": "+49 170 7f3a 9c21",
    "first_name": "Eraseme",
    "last_name": "Zzyzxqwerty",
    "anonymous_id": "anon-erase-7f3a9c21d4e5",
    "order_id": "ORDER-ERASE-7f3a9c21",
}


def _plant_the_person(crm: Path, landing: Path) -> None:
    """The person in the CRM (customer, order, consents) and in a landing file of web events,
    and their e-mail in lines and files the load rejects or quarantines."""
    with sqlite3.connect(crm) as con:
        con.execute(
            "INSERT INTO customers SELECT ?, ?, ?, ?, ?, country, city, birth_year, "
            "income_bracket, education, signup_at, loyalty_tier, updated_at FROM customers "
            "LIMIT 1",
            [PERSON[k] for k in ("customer_id", "email", "first_name", "last_name", "phone")],
        )
        con.execute(
            "INSERT INTO orders SELECT ?, ?, '2026-10-20T10:00:00Z', total_amount, currency, "
            "status, items_count FROM orders WHERE status = 'completed' LIMIT 1",
            [PERSON["order_id"], PERSON["customer_id"]],
        )
        con.execute(
            "INSERT INTO consents SELECT DISTINCT ?, purpose, 1, '2026-01-01T00:00:00Z' "
            "FROM consents",
            [PERSON["customer_id"]],
        )
    events = [
        {
            "event_id": f"erase-me-{i}",
            "event_type": event_type,
            "occurred_at": f"2026-10-{10 + i:02d}T12:00:00Z",
            "anonymous_id": PERSON["anonymous_id"],
            "user_id": PERSON["customer_id"] if i >= 2 else None,
            "page_url": "https://shop.example.com/",
            "ip": "203.0.113.77",
        }
        for i, event_type in enumerate(["page_view", "page_view", "page_view", "page_view"])
    ]
    (landing / "events-planted-person.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in e.items() if v is not None}) + "\n" for e in events)
    )
    email = PERSON["email"].encode()
    # rejected lines (malformed JSON, bad value, invalid UTF-8) and unreadable files, each
    # carrying the e-mail
    (landing / "events-rejected-lines.jsonl").write_bytes(
        b'{"event_id": "bad-1", "user_id": "'
        + email
        + b'", oops\n'
        + json.dumps(
            {
                "event_id": "bad-2",
                "event_type": "purchase",
                "occurred_at": "2026-10-12T12:00:00Z",
                "anonymous_id": PERSON["anonymous_id"],
                "price": "NaN",
                "properties": {"contact": PERSON["email"]},
            }
        ).encode()
        + b"\n"
        + b'{"event_id": "bad-3", "note": "\xff'
        + email
        + b'"}\n'
    )
    (landing / "events-truncated.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00" + email * 40)
    (landing / "events-corrupt.parquet").write_bytes(b"PAR1" + email * 40 + b"PAR1")


def _key_forms(key: str) -> list[str]:
    """The key as text and hex, and the HMAC pads a keyed macro would hold."""
    block = key.encode().ljust(64, b"\0")
    return [
        key,
        key.encode().hex(),
        bytes(b ^ 0x36 for b in block).hex(),
        bytes(b ^ 0x5C for b in block).hex(),
    ]


def _written_since(folder: Path, since: float) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime >= since]


def test_no_file_the_project_writes_holds_an_erased_person_or_the_key(tmp_path, small_sample):
    started = time.time() - 1
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "data"
    data.mkdir()
    inputs = tmp_path / "inputs"  # what the project reads, never writes: not scanned
    landing = landing_with_a_warning(small_sample.landing_dir, inputs / "landing")
    crm = inputs / "crm.sqlite"
    shutil.copy(small_sample.crm_url.removeprefix("sqlite:///"), crm)
    _plant_the_person(crm, landing)
    key = secrets.token_hex(32)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SEGWH_DATA_DIR": str(data),
        "SEGWH_LANDING_DIR": str(landing),
        "SEGWH_CRM_URL": f"sqlite:///{crm}",
        "SEGWH_WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
        "SEGWH_AS_OF": "2026-11-01T00:00:00Z",
        "SEGWH_PSEUDONYMIZATION_KEY": key,
    }

    def segwh(*args: str) -> str:
        done = subprocess.run(
            [SEGWH, *args], env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        return done.stdout + done.stderr

    segwh("run")
    pseudonymized = [
        pseudonyms.pseudonym(PERSON[k], key.encode()) for k in ("customer_id", "anonymous_id")
    ]
    with connect(data / "warehouse.duckdb", read_only=True) as con:
        person_ids = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT person_id FROM intermediate.int_identifiers_stitched "
                "WHERE identifier IN ?",
                [pseudonymized],
            ).fetchall()
        ]
        quarantined = con.execute("SELECT file_name FROM raw.quarantined_files").fetchall()
        rejected = con.execute(
            "SELECT count(*) FROM raw.rejected_events WHERE contains(payload, ?)",
            [PERSON["email"]],
        ).fetchone()[0]
    assert len(person_ids) == 1
    assert sorted(quarantined) == [("events-corrupt.parquet",), ("events-truncated.jsonl.gz",)]
    assert rejected == 3
    subject = [
        PERSON["email"],
        PERSON["customer_id"],
        PERSON["anonymous_id"],
        PERSON["phone"],
        PERSON["last_name"],
        *pseudonymized,
        *person_ids,
    ]
    # present before the erasure: in the warehouse and the published files at least
    assert files_holding(data / "warehouse.duckdb", subject)
    assert files_holding(data / "serving", [*pseudonymized, *person_ids])
    # a failed load left ids and reasons in Dagster's storage, never the rejected raw lines
    assert files_holding(home, [PERSON["email"]]) == []

    segwh("erase", "--email", PERSON["email"].upper())

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {r.job_name: r.status for r in instance.get_runs()}
    assert runs == {"full_build": dg.DagsterRunStatus.SUCCESS, "erase_person": runs["erase_person"]}
    assert runs["erase_person"] == dg.DagsterRunStatus.SUCCESS
    dbt_written = [
        p
        for folder in (PROJECT_DIR / "dbt_project" / "target", PROJECT_DIR / "dbt_project" / "logs")
        if folder.exists()
        for p in _written_since(folder, started)
    ]
    assert dbt_written, "the run's dbt target and logs are scanned"
    scanned = [data, home, *dbt_written]
    for location in scanned:
        assert files_holding(location, subject) == [], location
        assert files_holding(location, _key_forms(key)) == [], location
    # the scan saw every kind of file the project writes
    written = {p.relative_to(data).parts[0] for p in data.rglob("*") if p.is_file()}
    assert {"warehouse.duckdb", "serving", "models"} <= written, written
    assert list(home.glob("history/runs.db")) and list(home.glob("history/runs/*.db"))
    assert list(home.rglob("*.out")) or list(home.rglob("*.err")), "compute logs scanned"
