"""The collector and the stream consumer in tests: real processes on loopback, a stream and a key
prefix of their own on the shared Redis (never FLUSHDB)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from process_helpers import free_port, stop_process_group

from warehouse.settings import PROJECT_DIR

WRITE_KEY = "test-write-key-0123456789"


@dataclass
class CollectorSetup:
    redis_url: str
    stream: str
    prefix: str
    landing_dir: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SEGWH_BROKER_URL": self.redis_url,
            "SEGWH_BROKER_STREAM": self.stream,
            "SEGWH_COLLECTOR_WRITE_KEYS": WRITE_KEY,
            "SEGWH_ONLINE_REDIS_URL": self.redis_url,
            "SEGWH_ONLINE_REDIS_PREFIX": self.prefix,
            "SEGWH_LANDING_DIR": str(self.landing_dir),
        }

    def cleanup(self, client: redis.Redis) -> None:
        for pattern in (f"{self.stream}*", f"{self.prefix}:*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)


def new_setup(redis_url: str, tmp_path: Path) -> CollectorSetup:
    tag = uuid.uuid4().hex[:8]
    landing = tmp_path / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    return CollectorSetup(redis_url, f"segwhtest{tag}:events", f"segwhtest{tag}", landing)


def start_collector(
    setup: CollectorSetup, log_path: Path, *, workers: int = 1, landing: bool = False
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    segwh = str(Path(sys.executable).parent / "segwh")
    args = [segwh, "collect", "--port", str(port), "--workers", str(workers)]
    if not landing:
        args.append("--no-landing")
    with log_path.open("a") as log:
        process = subprocess.Popen(
            args,
            cwd=PROJECT_DIR,
            env=setup.env(),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"segwh collect exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    stop_process_group(process)
    pytest.fail(f"segwh collect did not answer on {url}:\n{log_path.read_text()}")


def start_consumer(setup: CollectorSetup, log_path: Path) -> subprocess.Popen:
    with log_path.open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "serving.realtime.consumer"],
            cwd=PROJECT_DIR,
            env=setup.env(),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
