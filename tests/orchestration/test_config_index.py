"""The configuration index: `segwh config` shows each setting's value and source, and
CONFIGURATION.md is what `segwh config --markdown` generates."""

import subprocess
import sys
from pathlib import Path

from warehouse.settings import ENVIRONMENT_VARIABLES, PROJECT_DIR, Settings, load_settings

SEGWH = str(Path(sys.executable).parent / "segwh")


def _config(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [SEGWH, "config", *args], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout


def test_every_settings_field_has_one_environment_variable():
    declared = [v.field for v in ENVIRONMENT_VARIABLES if v.field]
    assert sorted(declared) == sorted(Settings.__dataclass_fields__)
    assert len({v.name for v in ENVIRONMENT_VARIABLES}) == len(ENVIRONMENT_VARIABLES)


def test_settings_come_from_the_environment_with_derived_defaults(monkeypatch, tmp_path):
    for variable in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(variable.name, raising=False)
    monkeypatch.setenv("SEGWH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SEGWH_SENSOR_INTERVAL_SECONDS", "60")
    monkeypatch.setenv("SEGWH_CHURN_AT_RISK_THRESHOLD", "0.7")
    settings = load_settings()
    assert settings.warehouse_path == tmp_path / "warehouse.duckdb"
    assert settings.landing_dir == tmp_path / "sample" / "landing"
    assert settings.sensor_interval_seconds == 60
    assert settings.churn_at_risk_threshold == 0.7
    assert settings.raw_retention_days == 730
    monkeypatch.delenv("SEGWH_CHURN_AT_RISK_THRESHOLD")
    assert load_settings().churn_at_risk_threshold is None  # ml/config.py's default applies


def test_segwh_config_prints_values_and_sources_and_hides_secrets(tmp_path):
    env = {
        "PATH": str(Path(sys.executable).parent),
        "SEGWH_DATA_DIR": str(tmp_path),
        "SEGWH_AS_OF": "2026-11-01T00:00:00Z",
        "SEGWH_PSEUDONYMIZATION_KEY": "a-secret-that-must-not-be-printed",
        "SEGWH_SERVING_POSTGRES_URL": "postgresql://bi:hunter2@db/segments",
    }
    lines = _config(env=env).splitlines()

    def line(name: str) -> str:
        return next(text for text in lines if text.split() and text.split()[0] == name)

    assert line("SEGWH_AS_OF").split()[1:] == ["2026-11-01T00:00:00Z", "(environment)"]
    assert line("SEGWH_WAREHOUSE_PATH").split()[1:] == [
        str(tmp_path / "warehouse.duckdb"),
        "(default)",
    ]
    assert "(set, hidden)" in line("SEGWH_PSEUDONYMIZATION_KEY")
    output = "\n".join(lines)
    assert "a-secret-that-must-not-be-printed" not in output
    assert "hunter2" not in output
    assert "churn_horizon_days" in line("churn_horizon_days")  # dbt var
    assert "(ml/config.py)" in line("ChurnConfig.risk_threshold")
    assert any("only_rows_of_this_run" in text and "(launchpad)" in text for text in lines)


def test_configuration_md_is_current():
    generated = _config("--markdown", env={"PATH": str(Path(sys.executable).parent)})
    committed = (PROJECT_DIR / "CONFIGURATION.md").read_text()
    assert committed == generated, "run `.venv/bin/segwh config --markdown > CONFIGURATION.md`"
