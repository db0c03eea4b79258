"""The structural rules of dbt models live in dbt, once, and each catches its bad row.

The great-expectations suites of the marts and of the staged events used to check these rules a
second time (issue 18: each data rule is checked in one place). dbt owns them now: the enforced
contracts (columns, types, not-null constraints) and the data tests in the models' yml files and
dbt_project/tests. The suites keep what dbt does not check: row counts against the previous run,
freshness and shares (tests/expectations/test_expectation_suites.py).

One small generated sample is loaded and the whole project built once. Each case copies that
warehouse, spoils one thing with SQL, runs the dbt data tests of the models it touches, and
asserts that exactly the expected tests fail, each with its number of failing rows. A rule that a
contract guarantees is shown by the warehouse refusing the bad row.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from dbt_helpers import Dbt, failure_messages, load_sample, release_dbt_duckdb, warehouse_connection

from sample_data import DEFAULT_AS_OF, generate

AS_OF_SQL = f"TIMESTAMP '{DEFAULT_AS_OF.replace(tzinfo=None).isoformat(sep=' ')}'"


@dataclass(frozen=True)
class Built:
    warehouse: Path
    root: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("dbt_rules")
    sample = generate(root / "sample", n_events=6_000, seed=7)
    warehouse = root / "built.duckdb"
    load_sample(sample, warehouse)
    Dbt(warehouse, root / "build").invoke("build", "--exclude-resource-type", "unit_test")
    release_dbt_duckdb()
    yield Built(warehouse, root)
    release_dbt_duckdb()


def rule_of(node) -> str:
    """A readable name of a dbt test: ``kind model.column`` (expression tests add their
    expression); a singular test by its file name."""
    metadata = getattr(node, "test_metadata", None)
    if metadata is None:
        return node.name
    model = node.attached_node.rsplit(".", 1)[-1]
    where = f"{model}.{node.column_name}" if node.column_name else model
    expression = metadata.kwargs.get("expression")
    return f"{metadata.name} {where}" + (f": {expression.strip()}" if expression else "")


def failing_rules(built: Built, changes: list[str], models: list[str]) -> dict[str, object]:
    """Spoil a copy of the built warehouse and run the data tests of ``models``: the failing
    tests and their failing rows (or their error)."""
    release_dbt_duckdb()  # dbt-duckdb holds the previous case's file open
    case = built.root / "case.duckdb"  # one path for every case: dbt keeps its partial parse
    shutil.copy(built.warehouse, case)
    with warehouse_connection(case) as con:
        for change in changes:
            con.execute(change)
    dbt = Dbt(case, built.root / "cases")
    result = dbt.invoke(
        "test", "--select", *models, "--exclude-resource-type", "unit_test", expect_success=False
    )
    assert result.result is not None, failure_messages(result)
    tested = [r for r in result.result.results if r.node.resource_type == "test"]
    assert tested, "no test ran"
    return {
        rule_of(r.node): (r.failures if str(r.status) == "fail" else str(r.status))
        for r in tested
        if str(r.status) != "pass"
    }


def scalar(built: Built, query: str) -> object:
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        return con.execute(query).fetchone()[0]


@dataclass(frozen=True)
class Bad:
    """SQL that breaks one rule, the models whose tests run, the tests that must fail."""

    changes: list[str]
    models: list[str]
    failing: dict[str, object]  # rule_of(test) -> failing rows


A_PERSON = "(SELECT min(person_id) FROM marts.person_features)"
A_SESSION = "(SELECT min(session_id) FROM marts.sessions)"
LATEST_SESSION = "(SELECT session_id FROM marts.sessions ORDER BY started_at DESC LIMIT 1)"
A_MEMBERSHIP = "(SELECT min(membership_id) FROM marts.segment_membership_history)"
A_DECISION = "(SELECT min(person_id) FROM marts.content_decisions)"
A_MICRO_SEGMENT = (
    "(SELECT min(person_id || '|' || segment_key) FROM marts.person_segments "
    "WHERE segment_group = 'micro_segment')"
)
STAGED = "staging.stg_clickstream__events"
A_STAGED_EVENT = f"(SELECT min(event_id) FROM {STAGED})"

BAD_CASES = {
    # staged events (their yml): keys, identity, documented columns
    "staged-event-twice": Bad(
        [
            f"UPDATE {STAGED} SET event_id = {A_STAGED_EVENT} "
            f"WHERE event_id = (SELECT max(event_id) FROM {STAGED})"
        ],
        ["stg_clickstream__events"],
        {"unique stg_clickstream__events.event_id": 1},
    ),
    "staged-event-without-type": Bad(
        [f"UPDATE {STAGED} SET event_type = NULL WHERE event_id = {A_STAGED_EVENT}"],
        ["stg_clickstream__events"],
        {"not_null stg_clickstream__events.event_type": 1},
    ),
    "staged-event-without-identity": Bad(
        [
            f"UPDATE {STAGED} SET anonymous_id = NULL, user_id = NULL "
            f"WHERE event_id = {A_STAGED_EVENT}"
        ],
        ["stg_clickstream__events"],
        {
            "expression_is_true stg_clickstream__events: "
            "anonymous_id is not null or user_id is not null": 1
        },
    ),
    "staged-column-missing": Bad(
        [f"ALTER TABLE {STAGED} DROP COLUMN received_at"],
        ["stg_clickstream__events"],
        {"documented_columns_exist stg_clickstream__events": 1},
    ),
    # sessions
    "session-ends-before-it-starts": Bad(
        [
            "UPDATE marts.sessions SET ended_at = started_at - INTERVAL 1 SECOND "
            f"WHERE session_id = {A_SESSION}"
        ],
        ["sessions"],
        {
            "expression_is_true sessions: ended_at >= started_at and duration_seconds >= 0": 1,
        },
    ),
    "negative-session-duration": Bad(
        [f"UPDATE marts.sessions SET duration_seconds = -1 WHERE session_id = {A_SESSION}"],
        ["sessions"],
        {
            "expression_is_true sessions: ended_at >= started_at and duration_seconds >= 0": 1,
        },
    ),
    "session-without-events": Bad(
        [
            "UPDATE marts.sessions SET event_count = 0, page_views = 0, product_views = 0, "
            "content_page_views = 0, purchases = 0, is_converted = false "
            f"WHERE session_id = {A_SESSION}"
        ],
        ["sessions"],
        # the session's events are missing from the person's sessions too
        {"accepted_range sessions.event_count": 1, "assert_sessions_hold_every_event_once": 1},
    ),
    "session-after-as-of": Bad(
        [
            f"UPDATE marts.sessions SET ended_at = {AS_OF_SQL} + INTERVAL 1 MINUTE "
            f"WHERE session_id = {LATEST_SESSION}"
        ],
        ["sessions"],
        {"at_or_before_as_of sessions.ended_at": 1},
    ),
    # person_features
    "person-twice-in-features": Bad(
        [
            "INSERT INTO marts.person_features SELECT * FROM marts.person_features "
            f"WHERE person_id = {A_PERSON}"
        ],
        ["person_features"],
        {"unique person_features.person_id": 1},
    ),
    "negative-count-feature": Bad(
        [f"UPDATE marts.person_features SET abandoned_carts = -2 WHERE person_id = {A_PERSON}"],
        ["person_features"],
        {"accepted_range person_features.abandoned_carts": 1},
    ),
    "rate-above-one": Bad(
        [f"UPDATE marts.person_features SET conversion_rate = 1.5 WHERE person_id = {A_PERSON}"],
        ["person_features"],
        {"accepted_range person_features.conversion_rate": 1},
    ),
    "features-of-another-as-of": Bad(
        [
            "UPDATE marts.person_features SET as_of = as_of - INTERVAL 1 DAY "
            f"WHERE person_id = {A_PERSON}"
        ],
        ["person_features"],
        {"equal_to_as_of person_features.as_of": 1},
    ),
    "person-seen-after-as-of": Bad(
        [
            f"UPDATE marts.person_features SET last_seen_at = {AS_OF_SQL} + INTERVAL 1 SECOND "
            f"WHERE person_id = {A_PERSON}"
        ],
        ["person_features"],
        {"at_or_before_as_of person_features.last_seen_at": 1},
    ),
    # person_rfm_scores
    "rfm-score-out-of-quintiles": Bad(
        [
            "UPDATE marts.person_rfm_scores SET r_score = 6 "
            "WHERE person_id = (SELECT min(person_id) FROM marts.person_rfm_scores)"
        ],
        ["person_rfm_scores"],
        {"accepted_values person_rfm_scores.r_score": 1},
    ),
    "rfm-without-segment": Bad(
        [
            "UPDATE marts.person_rfm_scores SET rfm_segment_key = NULL "
            "WHERE person_id = (SELECT min(person_id) FROM marts.person_rfm_scores)"
        ],
        ["person_rfm_scores"],
        {"not_null person_rfm_scores.rfm_segment_key": 1},
    ),
    "negative-monetary-value": Bad(
        [
            "UPDATE marts.person_rfm_scores SET lifetime_spend = -1 "
            "WHERE person_id = (SELECT min(person_id) FROM marts.person_rfm_scores)"
        ],
        ["person_rfm_scores"],
        {"accepted_range person_rfm_scores.lifetime_spend": 1},
    ),
    # person_segments
    "segment-twice": Bad(
        [
            "INSERT INTO marts.person_segments SELECT * FROM marts.person_segments "
            f"WHERE person_id || '|' || segment_key = {A_MICRO_SEGMENT}"
        ],
        ["person_segments"],
        {"unique_combination_of_columns person_segments": 1},
    ),
    "unknown-segment-group": Bad(
        [
            "UPDATE marts.person_segments SET segment_group = 'mystery' "
            f"WHERE person_id || '|' || segment_key = {A_MICRO_SEGMENT}"
        ],
        ["person_segments", "int_segments_unioned"],  # the catalogue is not an input
        {"relationships person_segments.segment_group": 1},
    ),
    "segment-not-in-seeds": Bad(
        [
            "UPDATE marts.person_segments SET segment_key = 'vip_typo' "
            f"WHERE person_id || '|' || segment_key = {A_MICRO_SEGMENT}"
        ],
        ["person_segments", "int_segments_unioned"],  # the catalogue is not an input
        {"relationships person_segments.segment_key": 1},
    ),
    "person-without-purchase-stage": Bad(
        [
            "DELETE FROM marts.person_segments WHERE segment_group = 'purchase_stage' "
            f"AND person_id = {A_PERSON}"
        ],
        ["person_segments", "content_decisions"],
        {"assert_every_person_has_one_purchase_stage_and_one_decision": 1},
    ),
    # segment_membership_history
    "membership-left-before-entering": Bad(
        [
            "UPDATE marts.segment_membership_history "
            "SET left_at = entered_at - INTERVAL 1 DAY, is_current = false "
            f"WHERE membership_id = {A_MEMBERSHIP}"
        ],
        ["segment_membership_history"],
        {
            "expression_is_true segment_membership_history: "
            "left_at is null or left_at > entered_at": 1
        },
    ),
    "membership-closed-but-current": Bad(
        [
            f"UPDATE marts.segment_membership_history SET is_current = false "
            f"WHERE membership_id = {A_MEMBERSHIP}"
        ],
        ["segment_membership_history"],
        {"expression_is_true segment_membership_history: is_current = (left_at is null)": 1},
    ),
    "two-open-memberships": Bad(
        [
            "INSERT INTO marts.segment_membership_history "
            "SELECT * REPLACE ('copy-' || membership_id AS membership_id) "
            f"FROM marts.segment_membership_history WHERE membership_id = {A_MEMBERSHIP}"
        ],
        ["segment_membership_history"],
        {"unique_combination_of_columns segment_membership_history": 1},
    ),
    # content_decisions: every person in exactly one decision, by one of the rules
    "person-without-decision": Bad(
        [f"DELETE FROM marts.content_decisions WHERE person_id = {A_DECISION}"],
        ["content_decisions"],
        {"assert_every_person_has_one_purchase_stage_and_one_decision": 1},
    ),
    "decision-for-unknown-person": Bad(
        [f"UPDATE marts.content_decisions SET person_id = 'ghost' WHERE person_id = {A_DECISION}"],
        ["content_decisions"],
        {
            "relationships content_decisions.person_id": 1,
            "assert_every_person_has_one_purchase_stage_and_one_decision": 1,
        },
    ),
    "person-with-two-decisions": Bad(
        [
            "INSERT INTO marts.content_decisions SELECT * FROM marts.content_decisions "
            f"WHERE person_id = {A_DECISION}"
        ],
        ["content_decisions"],
        {
            "unique content_decisions.person_id": 1,
            "assert_every_person_has_one_purchase_stage_and_one_decision": 1,
        },
    ),
    "decision-with-another-rules-variant": Bad(
        [
            "UPDATE marts.content_decisions SET content_variant = 'no_such_variant' "
            f"WHERE person_id = {A_DECISION}"
        ],
        ["content_decisions"],
        {"assert_content_decisions_follow_their_rules": 1},
    ),
}


def test_the_built_warehouse_passes_every_data_test(built: Built) -> None:
    assert failing_rules(built, [], ["stg_clickstream__events", "marts"]) == {}
    # the cases below spoil real rows: the sample has them
    assert scalar(built, "SELECT count(*) FROM marts.segment_membership_history") > 0
    assert scalar(built, "SELECT count(*) FROM marts.person_rfm_scores") > 0


@pytest.mark.parametrize("case", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_a_bad_row_fails_the_dbt_test_of_its_rule(built: Built, case: Bad) -> None:
    assert failing_rules(built, case.changes, case.models) == case.failing


# Columns whose not-null rule is a constraint of the mart's enforced contract: the warehouse
# refuses the bad row itself.
CONTRACT_NOT_NULL = [
    ("sessions", "session_id"),
    ("sessions", "person_id"),
    ("sessions", "started_at"),
    ("sessions", "ended_at"),
    ("sessions", "event_count"),
    ("person_features", "person_id"),
    ("person_rfm_scores", "person_id"),
    ("person_segments", "person_id"),
    ("person_segments", "segment_group"),
    ("person_segments", "segment_key"),
    ("segment_membership_history", "membership_id"),
    ("segment_membership_history", "person_id"),
    ("segment_membership_history", "segment_key"),
    ("segment_membership_history", "entered_at"),
    ("content_decisions", "person_id"),
    ("content_decisions", "content_variant"),
    ("content_decisions", "decision_rule_id"),
]


def test_contracts_refuse_nulls_in_their_not_null_columns(built: Built, tmp_path: Path) -> None:
    release_dbt_duckdb()
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built.warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        for mart, column in CONTRACT_NOT_NULL:
            with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
                con.execute(f"UPDATE marts.{mart} SET {column} = NULL")


# --- marts an analyst cannot misread (issue 20) -----------------------------------------------

# The ML training tables are not for BI (serving publishes only the BI tables): in the scoring
# snapshot snapshot_at equals as_of by definition.
NOT_FOR_BI = {"churn_snapshots", "churn_scoring_snapshot"}
# Pairs equal in the sample by coincidence, not by definition (say why).
EQUAL_IN_THE_SAMPLE_ONLY = {
    # a session with two purchases, or a purchase event outside a session's person, tells them
    # apart; the generated sample has one purchase per converting session
    ("person_features", ("web_orders", "converted_sessions")),
    # a person with two orders in the 28 days before their exposure tells them apart (0/1 vs a
    # count); the small sample has none in that window
    ("experiment_person_metrics", ("pre_conversion", "pre_orders")),
}
NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def equal_column_pairs(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """Pairs of columns of ``table`` equal in every row (numbers compared as numbers, other
    columns only with a column of their own type); a constant column is left out (it equals
    another constant by coincidence, not by duplication)."""
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = 'marts' AND table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    varying = [
        (name, kind)
        for (name, kind), distinct in zip(
            columns,
            con.execute(
                "SELECT "
                + ", ".join(
                    f'count(DISTINCT "{name}") + max(("{name}" IS NULL)::INT)'
                    for name, _ in columns
                )
                + f" FROM marts.{table}"
            ).fetchone(),
            strict=True,
        )
        if distinct > 1
    ]

    def comparable(a: str, b: str) -> bool:
        return a == b or (a.startswith(NUMERIC) and b.startswith(NUMERIC))

    def value(name: str, kind: str) -> str:
        return f'"{name}"::DOUBLE' if kind.startswith(NUMERIC) else f'"{name}"'

    pairs = [
        (left, right)
        for i, left in enumerate(varying)
        for right in varying[i + 1 :]
        if comparable(left[1], right[1])
    ]
    if not pairs:
        return []
    differing = con.execute(
        "SELECT "
        + ", ".join(
            f"count(*) FILTER (WHERE {value(*left)} IS DISTINCT FROM {value(*right)})"
            for left, right in pairs
        )
        + f" FROM marts.{table}"
    ).fetchone()
    return [
        (left[0], right[0])
        for (left, right), rows in zip(pairs, differing, strict=True)
        if rows == 0
    ]


def test_no_mart_for_bi_has_two_columns_equal_in_every_row(built: Built) -> None:
    """A column that repeats another under a second name (person_features.monetary was
    lifetime_spend, frequency was completed_orders) invites an analyst to add them up."""
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        tables = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts' "
                "ORDER BY table_name"
            ).fetchall()
            if name not in NOT_FOR_BI
        ]
        empty = [
            t for t in tables if not con.execute(f"SELECT count(*) FROM marts.{t}").fetchone()[0]
        ]
        duplicates = {table: equal_column_pairs(con, table) for table in tables}
    assert empty == []  # an empty table would pass vacuously
    found = {(table, pair) for table, pairs in duplicates.items() for pair in pairs}
    assert found - EQUAL_IN_THE_SAMPLE_ONLY == set()


SESSIONS_AT_AS_OF = f"marts.sessions WHERE started_at <= {AS_OF_SQL}"


def test_funnel_steps_count_every_session_once(built: Built) -> None:
    """Summing funnel_steps over its days gives, per step, the sessions that reached it: no row
    counts a session twice (it used to add overlapping per-segment rows to the 'all' rows)."""
    reached = {
        "product_view": "product_views > 0",
        "add_to_cart": "product_views > 0 AND add_to_carts > 0",
        "checkout": "product_views > 0 AND add_to_carts > 0 AND checkout_starts > 0",
        "purchase": "product_views > 0 AND add_to_carts > 0 AND checkout_starts > 0 "
        "AND purchases > 0",
    }
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        summed = dict(
            con.execute(
                "SELECT step_name, sum(sessions_reached) FROM marts.funnel_steps GROUP BY step_name"
            ).fetchall()
        )
        expected = {
            step: con.execute(
                f"SELECT count(*) FILTER (WHERE {rule}) FROM {SESSIONS_AT_AS_OF}"
            ).fetchone()[0]
            for step, rule in reached.items()
        }
        days_summed, all_sessions = con.execute(
            "SELECT (SELECT sum(session_count) FROM marts.funnel_steps WHERE step_number = 1), "
            f"(SELECT count(*) FROM {SESSIONS_AT_AS_OF})"
        ).fetchone()
        columns = {row[0] for row in con.execute("DESCRIBE marts.funnel_steps").fetchall()}

    assert all_sessions > 0 and expected["purchase"] > 0
    assert summed == expected
    assert days_summed == all_sessions
    assert not columns & {"segment_key", "segment_group"}


def test_funnel_steps_by_segment_holds_the_overlapping_segment_rows(built: Built) -> None:
    """Each segment's rows count the sessions of the persons in it; no overall rows; and the
    segments overlap, so their rows summed would count sessions more than once (which is why
    they live in a table of their own)."""
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        rows, overall_rows, segment_sessions, all_sessions = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE segment_key IS NULL OR segment_key = 'all'), "
            "sum(session_count) FILTER (WHERE step_number = 1), "
            f"(SELECT count(*) FROM {SESSIONS_AT_AS_OF}) "
            "FROM marts.funnel_steps_by_segment"
        ).fetchone()
        by_segment = dict(
            con.execute(
                "SELECT segment_key, sum(sessions_reached) FROM marts.funnel_steps_by_segment "
                "WHERE step_number = 1 GROUP BY segment_key"
            ).fetchall()
        )
        expected = dict(
            con.execute(
                "SELECT m.segment_key, count(*) FILTER (WHERE s.product_views > 0) "
                "FROM marts.sessions AS s JOIN marts.person_segments AS m USING (person_id) "
                f"WHERE s.started_at <= {AS_OF_SQL} GROUP BY m.segment_key"
            ).fetchall()
        )

    assert rows > 0 and overall_rows == 0
    assert by_segment == expected
    assert segment_sessions > all_sessions


def test_churn_features_keep_the_names_of_person_features(built: Built) -> None:
    """assert_churn_features_mean_what_person_features_mean compares the columns the churn
    snapshot shares with person_features: the renames keep the shared ones shared."""
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        columns = {
            table: {
                name
                for (name,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() "
                    "WHERE schema_name = 'marts' AND table_name = ?",
                    [table],
                ).fetchall()
            }
            for table in ("person_features", "churn_scoring_snapshot")
        }
    shared = columns["person_features"] & columns["churn_scoring_snapshot"]
    assert {
        "session_count",
        "session_count_30d",
        "session_count_90d",
        "event_count_30d",
        "event_count_90d",
        "completed_orders",
        "lifetime_spend",
    } <= shared


def test_a_rule_naming_a_renamed_feature_stops_the_build_and_names_the_fix(built: Built) -> None:
    """A warehouse upgraded from before the renames still holds the old segment rules (sensor
    runs do not reload seeds): person_segments fails naming the feature and the fix, instead of
    silently leaving everybody out of the segments whose rules name it."""
    release_dbt_duckdb()
    case = built.root / "stale_rules.duckdb"
    shutil.copy(built.warehouse, case)
    with warehouse_connection(case) as con:
        con.execute(
            "UPDATE seeds.segment_rules SET feature = 'events' WHERE feature = 'event_count'"
        )
    result = Dbt(case, built.root / "stale").invoke(
        "run", "--select", "person_segments", expect_success=False
    )
    release_dbt_duckdb()

    assert not result.success
    message = failure_messages(result)
    assert '"events", which is not a numeric column of person_features' in message
    assert "full_build" in message
