"""Connection URLs with passwords never reach Dagster's storage: resources reference them by
their environment variable, so the job snapshot stored with every run holds the name only."""

import dagster as dg
import pytest
from run_helpers import settings_without_data
from scan_helpers import files_holding

from orchestration.definitions import build_definitions
from orchestration.resources import build_resources
from warehouse.settings import CRM_URL_VARIABLE, POSTGRES_URL_VARIABLE

CRM_PASSWORD = "crm-Pa55-s3cret"
POSTGRES_PASSWORD = "pg-Pa55-s3cret"


def test_passwords_in_connection_urls_never_reach_dagster_storage(tmp_path, monkeypatch):
    crm_url = f"postgresql+psycopg2://crm:{CRM_PASSWORD}@127.0.0.1:1/crm"
    postgres_url = f"postgresql+psycopg2://bi:{POSTGRES_PASSWORD}@127.0.0.1:1/bi"
    monkeypatch.setenv(CRM_URL_VARIABLE, crm_url)
    monkeypatch.setenv(POSTGRES_URL_VARIABLE, postgres_url)
    settings = settings_without_data(tmp_path, crm_url=crm_url, serving_postgres_url=postgres_url)
    resources = build_resources(settings)
    with dg.build_resources({"crm": resources["crm"]}) as initialized:  # as a run does
        assert initialized.crm.engine().url.password == CRM_PASSWORD

    home = tmp_path / "dagster_home"
    home.mkdir()
    defs = build_definitions(settings)
    stored = []
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        for name in ("full_build", "erase_person"):
            run = instance.create_run_for_job(defs.resolve_job_def(name))
            # snapshots are stored compressed: read them back as Dagster serializes them
            stored.append(dg.serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))

    assert all(CRM_URL_VARIABLE in snapshot for snapshot in stored)  # the name is stored
    for secret in (CRM_PASSWORD, POSTGRES_PASSWORD):
        assert not any(secret in snapshot for snapshot in stored)
        assert files_holding(home, [secret]) == []


def test_a_password_url_set_in_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(CRM_URL_VARIABLE, raising=False)
    settings = settings_without_data(tmp_path, crm_url=f"postgresql://u:{CRM_PASSWORD}@h/db")
    with pytest.raises(ValueError, match=CRM_URL_VARIABLE):
        build_resources(settings)
