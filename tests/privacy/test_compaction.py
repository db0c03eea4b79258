"""The warehouse file keeps no bytes of deleted rows once compacted, and the pseudonymization key
is never stored in it (issue 19, items 4 and 5)."""

import duckdb
import pytest
from scan_helpers import files_holding

from privacy import pseudonyms
from warehouse import compaction
from warehouse.connection import compaction_copy_path, connect

KEY = b"compaction-test-key-0123456789abcdef"
PERSON = ("C-erased-4711", "erased.person@example.org", "+49 170 5550199")


def _warehouse(path) -> None:
    """A warehouse with the person's rows among many others, a documented table with
    constraints, and a view that calls the session's pseudonymization macro; then the person's
    rows deleted, as an erasure does."""
    with connect(path) as con:
        pseudonyms.install(con, KEY)
        con.execute("CREATE SCHEMA raw; CREATE SCHEMA staging")
        con.execute(
            "CREATE TABLE raw.crm_customers (customer_id VARCHAR PRIMARY KEY, "
            "email VARCHAR NOT NULL, phone VARCHAR)"
        )
        con.execute("COMMENT ON TABLE raw.crm_customers IS 'the CRM snapshot'")
        con.execute("COMMENT ON COLUMN raw.crm_customers.email IS 'personal data'")
        con.execute(
            "INSERT INTO raw.crm_customers SELECT 'C' || i, 'p' || i || '@example.org', NULL "
            "FROM range(50000) t(i)"
        )
        con.execute("INSERT INTO raw.crm_customers VALUES (?, ?, ?)", list(PERSON))
        con.execute(
            "CREATE VIEW staging.stg_crm__customers AS "
            "SELECT segwh_pseudonymize(customer_id) AS customer_id FROM raw.crm_customers"
        )
        con.execute("CHECKPOINT")
        con.execute("DELETE FROM raw.crm_customers WHERE customer_id = ?", [PERSON[0]])
        con.execute("CHECKPOINT")


def _contents(path) -> tuple:
    with connect(path, read_only=True) as con:
        pseudonyms.install_session(con, KEY)
        return (
            con.execute("SELECT count(*), max(customer_id) FROM raw.crm_customers").fetchone(),
            con.execute("SELECT count(*) FROM staging.stg_crm__customers").fetchone(),
            con.execute(
                "SELECT comment FROM duckdb_tables() WHERE table_name = 'crm_customers'"
            ).fetchone(),
            con.execute(
                "SELECT comment FROM duckdb_columns() WHERE column_name = 'email'"
            ).fetchone(),
            con.execute(
                "SELECT list(constraint_type ORDER BY constraint_type) FROM duckdb_constraints() "
                "WHERE table_name = 'crm_customers'"
            ).fetchone(),
        )


def test_deleted_rows_stay_in_free_blocks_until_the_file_is_compacted(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    _warehouse(path)
    before = _contents(path)
    # a query finds nothing, the bytes still hold the person (CHECKPOINT and VACUUM keep them)
    with connect(path) as con:
        con.execute("VACUUM")
        con.execute("CHECKPOINT")
    assert files_holding(tmp_path, PERSON) != []

    result = compaction.compact(path, session_sql=[pseudonyms.session_macro_sql(KEY)])

    assert files_holding(tmp_path, PERSON) == []
    assert _contents(path) == before  # rows, views, comments and constraints kept
    assert result.bytes_before > 0 and result.bytes_after > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_a_compaction_killed_before_the_swap_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    _warehouse(path)
    before_bytes = path.read_bytes()

    class Killed(BaseException):
        pass

    def killed(*args):
        raise Killed  # the process dies between the copy and the rename

    monkeypatch.setattr(compaction.os, "replace", killed)
    with pytest.raises(Killed):
        compaction.compact(path, session_sql=[pseudonyms.session_macro_sql(KEY)])
    monkeypatch.undo()

    assert path.read_bytes() == before_bytes  # untouched
    assert compaction_copy_path(path).exists()  # the copy: debris holding personal data
    with connect(path):  # the next writer deletes it
        pass
    assert not compaction_copy_path(path).exists()
    compaction.compact(path, session_sql=[pseudonyms.session_macro_sql(KEY)])
    assert files_holding(tmp_path, PERSON) == []


def test_the_key_is_never_stored_and_an_older_stored_macro_is_dropped(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    # the key in every form a file could hold it: as text, hex, and the HMAC pads the macro uses
    block = KEY.ljust(64, b"\0")
    forms = [
        KEY.decode(),
        KEY.hex(),
        bytes(b ^ 0x36 for b in block).hex(),
        bytes(b ^ 0x5C for b in block).hex(),
    ]
    with connect(path) as con:  # a warehouse of an older version: the keyed macro stored
        con.execute(pseudonyms.session_macro_sql(KEY).replace("TEMP MACRO", "MACRO"))
    assert files_holding(tmp_path, forms) != []

    with connect(path) as con:
        pseudonyms.install(con, KEY)
        assert con.execute("SELECT segwh_pseudonymize('x')").fetchone()[0] == (
            pseudonyms.pseudonym("x", KEY)
        )
        stored = con.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'segwh_pseudonymize' "
            "AND database_name <> 'temp'"
        ).fetchone()[0]
    assert stored == 0
    compaction.compact(path)
    assert files_holding(tmp_path, forms) == []
    # a session that installs no macro has none
    con = duckdb.connect(str(path), read_only=True)
    with pytest.raises(duckdb.CatalogException):
        con.execute("SELECT segwh_pseudonymize('x')")
    con.close()
