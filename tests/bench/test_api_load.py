"""The online API's load benchmark at smoke size (bench/api_load.py): it loads a tiny store,
measures paced and full-throughput lookups with wrk, reports and cleans up after itself."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)"
)
def test_api_load_benchmark_smoke_run(tmp_path, redis_url):
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "api_load.py"),
            "--persons", "2000", "--duration", "2", "--warmup", "1", "--rate", "200",
            "--redis-url", redis_url, "--out", str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "api_load.json").read_text())
    assert report["persons"] == 2000
    assert report["identifiers"] == 3000  # 1.5 identifiers per person
    assert report["load"]["profiles_written"] == 2000
    assert report["memory"]["bytes_per_person"] > 0
    for phase in ("paced", "max"):
        result = report[phase]
        assert result["requests"] > 0 and result["rps"] > 0
        assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
        assert result["non_2xx"] == 0, result
    assert report["paced"]["rps"] < 2 * 200  # paced, not flat out
    assert report["api_log_lines"] >= report["paced"]["requests"]
    assert set(report["met"]) == {"paced", "max", "load"}
    assert re.search(r"\| paced \(\d+ connections\) \|", run.stdout)
    assert "| full throughput" in run.stdout
    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match=f"{report['prefix']}:*"))  # cleaned up
    finally:
        client.close()
