"""What the UI shows of the definitions, without starting the UI: descriptions that survive the
markdown renderer, kinds that follow the configuration, a lineage that reads layer by layer."""

import re

import dagster as dg
import pytest
from run_helpers import settings_without_data

from orchestration.definitions import build_definitions
from orchestration.defs.privacy import RAW_EVENTS_RETENTION
from orchestration.defs.serving import PUBLISHED_SEGMENTS
from warehouse.settings import Settings

# What CommonMark takes as raw HTML (and the UI's sanitizer then drops): an open or closing tag,
# a comment, a processing instruction, a declaration or CDATA. Code spans are literal text.
HTML_IN_MARKDOWN = re.compile(
    r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>|<!--|<\?|<![A-Za-z]|<!\[CDATA\["
)
CODE = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)


def html_tags(markdown: str) -> list[str]:
    """The parts of ``markdown`` a renderer would take as HTML (outside code spans)."""
    return HTML_IN_MARKDOWN.findall(CODE.sub("", markdown))


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    return build_definitions(settings_without_data(tmp_path_factory.mktemp("ui_details")))


def test_the_detector_finds_what_a_markdown_renderer_takes_as_html():
    assert html_tags("the DuckDB file <serving>/segments.duckdb") == ["<serving>"]
    assert html_tags("a <b>bold</b> claim <!-- hidden -->") == ["<b>", "</b>", "<!--"]
    assert html_tags("as_of <= now, a -> b, x < y > z, `<serving>/x`, <https://a.b>") == []


def _descriptions(defs: dg.Definitions) -> dict[str, str]:
    """Every description the UI renders: assets, checks, jobs (and their ops), schedules,
    sensors."""
    graph = defs.resolve_asset_graph()
    found = {
        f"asset {key.to_user_string()}": graph.get(key).description or ""
        for key in graph.get_all_asset_keys()
    }
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        found[f"check {check_key.to_user_string()}"] = spec.description or ""
    for job in defs.resolve_all_job_defs():
        found[f"job {job.name}"] = job.description or ""
        for node in job.graph.node_defs:
            found[f"op {job.name}.{node.name}"] = node.description or ""
    for schedule in defs.get_repository_def().schedule_defs:
        found[f"schedule {schedule.name}"] = schedule.description or ""
    for sensor in defs.get_repository_def().sensor_defs:
        found[f"sensor {sensor.name}"] = sensor.description or ""
    return found


def test_no_description_holds_what_the_ui_markdown_renderer_would_take_as_html(defs):
    descriptions = _descriptions(defs)
    assert len(descriptions) > 100  # every asset, check, job, op, schedule and sensor
    assert descriptions[f"asset {PUBLISHED_SEGMENTS.to_user_string()}"]
    broken = {name: html_tags(text) for name, text in descriptions.items() if html_tags(text)}
    assert not broken, broken


def test_the_postgres_kind_shows_only_when_postgresql_is_configured(tmp_path):
    def kinds(settings: Settings) -> set[str]:
        return (
            build_definitions(settings)
            .resolve_assets_def(PUBLISHED_SEGMENTS)
            .specs_by_key[PUBLISHED_SEGMENTS]
            .kinds
        )

    assert kinds(settings_without_data(tmp_path)) == {"duckdb", "parquet"}
    with_postgres = settings_without_data(
        tmp_path, serving_postgres_url="postgresql://bi@127.0.0.1/bi"
    )
    assert kinds(with_postgres) == {"duckdb", "parquet", "postgres"}


def test_retention_sits_beside_the_layers_not_downstream_of_serving(defs):
    """ingestion -> ... -> serving, with privacy beside: retention reads raw events only (that it
    still runs last in full_build is tested on a real run, test_pipeline)."""
    graph = defs.resolve_asset_graph()
    assert graph.get(RAW_EVENTS_RETENTION).parent_keys == {dg.AssetKey(["raw", "events"])}
    assert not graph.get(RAW_EVENTS_RETENTION).child_keys
    assert RAW_EVENTS_RETENTION not in graph.get(PUBLISHED_SEGMENTS).parent_keys
