"""The deployed UI: `dg dev` (webserver + daemon, as `make ui` starts them) on a free port, driven
over GraphQL and by a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

import itertools
import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa
from dagster_graphql import DagsterGraphQLClient

from orchestration.definitions import defs
from orchestration.defs.privacy import ERASURE_OP
from tests.orchestration.test_cli_run import SEGWH, assert_readable_run_output
from warehouse.connection import connect
from warehouse.settings import PROJECT_DIR

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("SEGWH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_DIR / "artifacts"
# generous: the webserver shares 2 cores with a running Dagster run
UI_TIMEOUT_MS = 90_000
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _wait_until_idle(instance: dg.DagsterInstance, timeout: float = 600) -> list[dg.RunRecord]:
    """Wait until no run is queued or in progress; return every run record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records()
        if records and all(r.dagster_run.status in FINISHED for r in records):
            return records
        time.sleep(2)
    pytest.fail(f"runs still unfinished: {[r.dagster_run.status for r in records]}")


def _assert_never_overlapping(records: list[dg.RunRecord]) -> None:
    spans = sorted((r.start_time, r.end_time, r.dagster_run.run_id) for r in records)
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        assert end <= start, f"runs {first} and {second} wrote the warehouse at the same time"


def _cli(dagster_server, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [SEGWH, *args],
        env=dagster_server.env,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_ui_shows_every_layer_and_runs_from_it_and_graphql_queue_one_after_the_other(
    dagster_server, small_sample
):
    """The asset catalog shows every asset and layer. Runs from every entry point, each started
    while another was queued or running, all succeed, never overlapping on the warehouse:
    `segwh run` with "Materialize all" in the browser, then a landing-sensor run with an
    erasure submitted over GraphQL."""
    from playwright.sync_api import sync_playwright

    cli_run = _cli(dagster_server, "run")  # the daemon is alive: it launches the CLI's run

    ARTIFACTS.mkdir(exist_ok=True)
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # the catalog renders only the rows in view and middle-truncates names that do not
            # fit: make room for every asset and for long model names
            page = browser.new_page(viewport={"width": 2400, "height": 300 + 70 * len(keys)})
            # never wait for "networkidle": the UI polls for live data all the time, and while a
            # run is going the network is never idle (a 30 s timeout in CI); wait for what we use
            page.goto(f"{dagster_server.url}/assets", wait_until="domcontentloaded")
            _dismiss_welcome_dialog(page)
            for key in keys:
                label = " / ".join(key.path)
                page.get_by_text(label, exact=True).first.wait_for(timeout=UI_TIMEOUT_MS)
            groups = {graph.get(key).group_name for key in keys}
            for group in groups:
                assert page.get_by_text(group, exact=True).count() > 0, group
            page.screenshot(path=str(ARTIFACTS / "ui-asset-catalog.png"), full_page=True)

            page.goto(f"{dagster_server.url}/asset-groups", wait_until="domcontentloaded")
            _dismiss_welcome_dialog(page)
            page.get_by_role("button", name="Materialize all").click(timeout=UI_TIMEOUT_MS)
            toast = page.get_by_text("Launched run")
            toast.wait_for(timeout=UI_TIMEOUT_MS)
            page.screenshot(path=str(ARTIFACTS / "ui-asset-lineage.png"))
            ui_run_prefix = toast.inner_text().split()[-1]
        finally:
            browser.close()
    cli_output, _ = cli_run.communicate(timeout=900)
    assert cli_run.returncode == 0, cli_output[-3000:]
    with dg.DagsterInstance.from_config(str(dagster_server.home)) as instance:
        records = _wait_until_idle(instance)
        (cli_record,) = [r for r in records if r.dagster_run.tags.get("segwh/command") == "run"]
        assert "started by the Dagster daemon" in cli_output
        assert_readable_run_output(cli_output, instance, cli_record.dagster_run.run_id)

        # a file lands: the sensor (30 s interval here) requests an incremental run, and an
        # erasure is submitted over GraphQL while that run starts
        (dagster_server.landing_dir / "events-late.jsonl").write_text(
            '{"event_id": "late-1", "event_type": "page_view", '
            '"occurred_at": "2026-10-30T10:00:00Z", "anonymous_id": "late-visitor"}\n'
        )
        deadline = time.monotonic() + 300
        while not _sensor_runs(instance) and time.monotonic() < deadline:
            time.sleep(1)
        with sa.create_engine(small_sample.crm_url).connect() as con:
            customer = con.execute(sa.text("SELECT min(customer_id) FROM customers")).scalar()
        client = DagsterGraphQLClient("127.0.0.1", port_number=dagster_server.port)
        graphql_run_id = client.submit_job_execution(
            "erase_person",
            repository_location_name="segwarehouse",
            run_config={"ops": {ERASURE_OP: {"config": {"customer_id": str(customer)}}}},
        )
        records = _wait_until_idle(instance)
    (ui_run,) = [r for r in records if r.dagster_run.run_id.startswith(ui_run_prefix)]
    (graphql_run,) = [r for r in records if r.dagster_run.run_id == graphql_run_id]
    (sensor_run,) = [r for r in records if r.dagster_run.job_name == "incremental_update"]
    assert sensor_run.dagster_run.run_config["ops"]["raw__events"]["config"]["files"] == [
        str(dagster_server.landing_dir / "events-late.jsonl")
    ]  # only the new file: the files the CLI run loaded are in the sensor's seeded cursor
    assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 4, (
        dagster_server.log_path.read_text()[-3000:]
    )
    # each pair was requested while both were queued or running: the queue serialized them
    for first, second in ((cli_record, ui_run), (sensor_run, graphql_run)):
        requested = max(first.create_timestamp, second.create_timestamp).timestamp()
        assert requested < min(first.end_time, second.end_time)
    _assert_never_overlapping(records)
    _assert_tables_exist(dagster_server.warehouse_path)
    published = dagster_server.warehouse_path.parent / "serving" / "segments.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:  # what BI tools read
        assert con.execute("SELECT count(*) FROM publish_version").fetchone()[0] == 1
    _assert_plots_show_on_the_asset_page(dagster_server.url, "ml/churn_model", 3)


def _assert_plots_show_on_the_asset_page(url: str, asset: str, plots: int) -> None:
    """The asset's overview shows its latest plots as images, loaded, not behind a link."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 2400})
            page.goto(f"{url}/assets/{asset}", wait_until="domcontentloaded")
            _dismiss_welcome_dialog(page)
            images = page.locator('img[src^="/logs/"]')
            images.nth(plots - 1).wait_for(timeout=UI_TIMEOUT_MS)
            page.wait_for_function(
                "n => [...document.querySelectorAll('img[src^=\"/logs/\"]')]"
                ".filter(i => i.complete && i.naturalWidth > 0).length >= n",
                arg=plots,
                timeout=UI_TIMEOUT_MS,
            )
            page.screenshot(
                path=str(ARTIFACTS / f"ui-{asset.replace('/', '-')}.png"), full_page=True
            )
        finally:
            browser.close()


def _sensor_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "landing_files_sensor"}))


def _dismiss_welcome_dialog(page) -> None:
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=3_000)
    except Exception:  # no dialog on this page load: nothing to dismiss
        return
    skip.click()


def _assert_tables_exist(warehouse: Path) -> None:
    with connect(warehouse, read_only=True) as con:
        counts = {
            name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            for name in (
                "raw.events",
                "raw.crm_customers",
                "staging.stg_clickstream__events",
                "staging.stg_crm__orders",
            )
        }
    assert all(count > 0 for count in counts.values()), counts
