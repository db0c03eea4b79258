"""Shared fixtures: real services on loopback, small generated sample data."""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from landing_helpers import landing_with_a_warning
from online_helpers import online_store_on
from process_helpers import free_port, stop_process_group

import privacy.pseudonyms  # noqa: F401  (warehouse sessions get the pseudonymization macro)
from warehouse.settings import PROJECT_DIR

# Identifiers are pseudonymized with a secret key from the environment; tests use a fixed one
# (subprocesses such as the Dagster webserver and daemon inherit it).
os.environ.setdefault("SEGWH_PSEUDONYMIZATION_KEY", "test-key-" + "0123456789abcdef" * 2)

POSTGRES_URL = os.environ.get(
    "SEGWH_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


TESTS_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two kinds of test are `slow` as a whole (`make test-fast` runs `-m "not slow"`; each
    other slow test carries the marker itself): integration tests, which materialize the whole
    asset graph, and everything under tests/dbt/, which builds the dbt project on DuckDB."""
    dbt_tests = TESTS_DIR / "dbt"
    for item in items:
        if item.get_closest_marker("integration") or item.path.is_relative_to(dbt_tests):
            item.add_marker(pytest.mark.slow)


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
def redis_url() -> str:
    """Redis on loopback (.ci/run starts it); unreachable is an error, not a skip."""
    from serving.online.connection import OnlineStoreUnavailable
    from serving.online.store import OnlineStore

    url = os.environ.get("SEGWH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        OnlineStore(url).connect().close()
    except OnlineStoreUnavailable as exc:
        pytest.fail(str(exc))
    return url


@pytest.fixture
def online_store(redis_url):
    with online_store_on(redis_url) as store:
        yield store


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory):
    """A small generated sample (landing files, CRM SQLite, truth), shared read-only."""
    from sample_data import generate

    return generate(tmp_path_factory.mktemp("sample"), n_events=6_000, seed=7)


@dataclass(frozen=True)
class DagsterServer:
    url: str
    port: int
    home: Path
    warehouse_path: Path
    log_path: Path
    env: dict[str, str]  # the server's settings, for a `segwh` CLI on the same instance
    landing_dir: Path  # a copy of the sample's landing files: tests may add files


@pytest.fixture(scope="session")
def dagster_server(tmp_path_factory, small_sample) -> Iterator[DagsterServer]:
    """``dg dev`` (webserver + daemon, as `make ui` starts them) on a free port, with a temporary
    Dagster home that uses the project's instance config, serving the code location on the small
    sample."""
    root = tmp_path_factory.mktemp("dagster_server")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    landing_dir = landing_with_a_warning(small_sample.landing_dir, root / "landing")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SEGWH_DATA_DIR": str(root),
        "SEGWH_LANDING_DIR": str(landing_dir),
        "SEGWH_CRM_URL": small_sample.crm_url,
        "SEGWH_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
        "SEGWH_AS_OF": "2026-11-01T00:00:00Z",
        "SEGWH_SENSOR_INTERVAL_SECONDS": "30",  # a file added by a test is seen within the test
    }
    log_path = root / "dagster-dev.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dg"),
                "dev",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"dg dev exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail(f"dg dev did not answer on {url}:\n{log_path.read_text()[-3000:]}")
        yield DagsterServer(url, port, home, root / "warehouse.duckdb", log_path, env, landing_dir)
    finally:
        # Ctrl-C, as a user stops `make ui`: dg dev shuts down in about a second on SIGINT, but
        # takes 10-30 s on SIGTERM (measured; the whole session's teardown waited for it)
        stop_process_group(process, timeout=30, first=signal.SIGINT)
