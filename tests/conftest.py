"""Shared fixtures: real services on loopback, small generated sample data."""

import os

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "SEGWH_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """PostgreSQL on loopback (.ci/run starts it); unreachable is an error, not a skip."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as con:
            con.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory):
    """A small generated sample (landing files, CRM SQLite, truth), shared read-only."""
    from sample_data import generate

    return generate(tmp_path_factory.mktemp("sample"), n_events=6_000, seed=7)
