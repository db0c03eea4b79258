"""Load test of the real-time path (issue 27), on the real processes over loopback.

1. Collector throughput: `segwh collect --workers W` (uvicorn + uvloop + httptools, orjson, one
   pipelined XADD per request; its landing-file writer running) under `wrk` with
   bench/collector_load.lua posting batches of B unique track messages, closed loop at full
   speed: events/s accepted (requests/s x B, all 200) and the latency percentiles.
2. End to end at a paced rate (default 1,000 events/s): collector + landing writer + stream
   consumer (`segwh stream`) + API (`segwh serve`) all running; an async load generator sends
   the background traffic, and every 100 ms a probe visitor sends 4 content page views in one
   request; the probe's latency is from just before its HTTP request to the first API response
   (polled every 5 ms) whose ``realtime`` part shows ``rt_content_explorer``. p50/p95.

Everything runs on the same 2 cores (generator included). Writes bench/out/collector_load.json
and prints a markdown section for bench/RESULTS.md.

    .venv/bin/python bench/collector_load.py [--duration 15] [--batch-sizes 10 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from ingestion.collector.replay import basic_auth  # noqa: E402
from privacy.pseudonyms import KEY_ENV_VAR  # noqa: E402
from serving.online import auth  # noqa: E402
from serving.online.store import Changes, Keys, VersionMeta, load, now_text  # noqa: E402
from warehouse.broker import GROUPS, RedisStreamBroker  # noqa: E402

LUA = PROJECT_DIR / "bench" / "collector_load.lua"
OUT = PROJECT_DIR / "bench" / "out" / "collector_load.json"
WRITE_KEY = "bench-write-key-" + uuid.uuid4().hex
SEGWH = str(Path(sys.executable).parent / "segwh")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


class Setup:
    def __init__(self, redis_url: str, root: Path):
        tag = uuid.uuid4().hex[:8]
        self.redis_url = redis_url
        self.stream = f"segwhbench{tag}:events"
        self.prefix = f"segwhbench{tag}"
        self.landing = root / tag / "landing"
        self.landing.mkdir(parents=True)
        self.env = {
            **os.environ,
            "SEGWH_BROKER_URL": redis_url,
            "SEGWH_BROKER_STREAM": self.stream,
            "SEGWH_COLLECTOR_WRITE_KEYS": WRITE_KEY,
            "SEGWH_ONLINE_REDIS_URL": redis_url,
            "SEGWH_ONLINE_REDIS_PREFIX": self.prefix,
            "SEGWH_LANDING_DIR": str(self.landing),
        }
        self.env.setdefault(KEY_ENV_VAR, "bench-key-" + "0123456789abcdef" * 2)

    def start(self, args: list[str], health: str | None = None) -> subprocess.Popen:
        process = subprocess.Popen(
            args,
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if health:
            wait_http(health, process)
        return process

    def cleanup(self, client: redis.Redis) -> None:
        for pattern in (f"{self.stream}*", f"{self.prefix}:*"):
            keys = list(client.scan_iter(match=pattern, count=5000))
            for start in range(0, len(keys), 1000):
                client.unlink(*keys[start : start + 1000])


def run_wrk(url: str, batch_size: int, seconds: int, connections: int) -> dict:
    env = {**os.environ, "BENCH_BATCH_SIZE": str(batch_size)}
    env["BENCH_AUTH"] = basic_auth(WRITE_KEY)["Authorization"]
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    command += ["-s", str(LUA), url]
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    line = next((t for t in run.stdout.splitlines() if t.startswith('{"wrk"')), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {run.stdout}{run.stderr}")
    result = json.loads(line)["wrk"]
    duration = result["duration_us"] / 1e6
    return {
        "batch_size": batch_size,
        "connections": connections,
        "seconds": round(duration, 1),
        "requests": result["requests"],
        "requests_per_s": round(result["requests"] / duration),
        "events_per_s": round(result["requests"] * batch_size / duration),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "errors": result["errors"],
    }


def throughput(args, client: redis.Redis, root: Path) -> list[dict]:
    results = []
    for batch_size in args.batch_sizes:
        setup = Setup(args.redis_url, root)
        port = free_port()
        collector = setup.start(
            [SEGWH, "collect", "--port", str(port), "--workers", str(args.workers)],
            f"http://127.0.0.1:{port}/healthz",
        )
        try:
            run_wrk(f"http://127.0.0.1:{port}", batch_size, 2, args.connections)  # warm-up
            result = run_wrk(
                f"http://127.0.0.1:{port}", batch_size, args.duration, args.connections
            )
            broker = RedisStreamBroker(client, setup.stream)
            result["landing_backlog_entries_after"] = broker.lag("landing").lag
            results.append(result)
            print(json.dumps(result), flush=True)
        finally:
            stop(collector)
            setup.cleanup(client)
    return results


def _page(mid: str, visitor: str, at: datetime) -> dict:
    return {
        "type": "page",
        "messageId": mid,
        "anonymousId": visitor,
        "properties": {"page_type": "content"},
        "timestamp": at.isoformat(),
    }


async def end_to_end(args, setup: Setup, collector_url: str, api_url: str, api_key: str) -> dict:
    headers = basic_auth(WRITE_KEY)
    latencies: list[float] = []
    misses = 0
    stop_at = time.monotonic() + args.e2e_seconds
    batch = 10
    background_rps = max(0.0, (args.rate - 40) / batch)  # the probes send 40 events/s
    limits = httpx.Limits(max_connections=64)
    async with (
        httpx.AsyncClient(base_url=collector_url, headers=headers, limits=limits) as collector,
        httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {api_key}"}, limits=limits
        ) as api,
    ):

        async def background() -> None:
            n = 0
            started = time.monotonic()
            tasks = set()
            while time.monotonic() < stop_at:
                n += 1
                now = datetime.now(UTC)
                body = {
                    "batch": [
                        {
                            "type": "track",
                            "event": "Product Viewed",
                            "messageId": f"bg-{n}-{i}",
                            "anonymousId": f"bg-{random.randint(1, 20000)}",
                            "timestamp": now.isoformat(),
                            "properties": {"product_id": f"p-{random.randint(1, 300)}"},
                        }
                        for i in range(batch)
                    ]
                }
                task = asyncio.create_task(collector.post("/v1/batch", json=body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                delay = started + n / background_rps - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.gather(*tasks, return_exceptions=True)

        async def probe(number: int) -> None:
            nonlocal misses
            visitor = f"probe-{uuid.uuid4().hex[:12]}"
            now = datetime.now(UTC)
            pages = [
                _page(f"pr-{number}-{i}", visitor, now - timedelta(seconds=3 - i)) for i in range(4)
            ]
            started = time.perf_counter()
            response = await collector.post("/v1/batch", json={"batch": pages})
            if response.status_code != 200:
                misses += 1
                return
            while time.perf_counter() - started < 5:
                body = (await api.get(f"/v1/profiles/{visitor}")).json()
                segments = [s["segment"] for s in body.get("realtime", {}).get("segments", [])]
                if "rt_content_explorer" in segments:
                    latencies.append(time.perf_counter() - started)
                    return
                await asyncio.sleep(0.005)
            misses += 1

        async def probes() -> None:
            tasks = []
            number = 0
            await asyncio.sleep(2)  # the background traffic first
            while time.monotonic() < stop_at - 1:
                number += 1
                tasks.append(asyncio.create_task(probe(number)))
                await asyncio.sleep(0.1)
            await asyncio.gather(*tasks)

        await asyncio.gather(background(), probes())
    latencies.sort()
    return {
        "rate_events_per_s": args.rate,
        "seconds": args.e2e_seconds,
        "probes": len(latencies),
        "probes_missed": misses,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1)
        if latencies
        else None,
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
    }


def e2e(args, client: redis.Redis, root: Path) -> dict:
    setup = Setup(args.redis_url, root)
    key = setup.env[KEY_ENV_VAR].encode()
    os.environ[KEY_ENV_VAR] = setup.env[KEY_ENV_VAR]
    # a served batch version (empty): the API answers profiles once a version is loaded
    meta = VersionMeta("bench", now_text(), now_text(), 0, 0, (), {"content_variant": "default"})
    empty = Changes([], [], [], [], [], [])
    load(client, Keys(setup.prefix), meta, empty)
    api_key = auth.create_key(client, setup.prefix, "bench", [auth.PROFILES_READ], 1e9)
    del key
    cport, aport = free_port(), free_port()
    processes = []
    try:
        processes.append(
            setup.start(
                [SEGWH, "collect", "--port", str(cport), "--workers", str(args.workers)],
                f"http://127.0.0.1:{cport}/healthz",
            )
        )
        processes.append(setup.start([SEGWH, "stream"]))
        processes.append(
            setup.start([SEGWH, "serve", "--port", str(aport)], f"http://127.0.0.1:{aport}/healthz")
        )
        result = asyncio.run(
            end_to_end(
                args, setup, f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{aport}", api_key
            )
        )
        broker = RedisStreamBroker(client, setup.stream)
        result["lag_after"] = {g: broker.lag(g).lag for g in GROUPS}
        print(json.dumps(result), flush=True)
        return result
    finally:
        for process in processes:
            stop(process)
        setup.cleanup(client)


def markdown(report: dict) -> str:
    lines = [
        "## Real-time path: collector throughput and end-to-end latency (issue 27)",
        "",
        f"`{report['command']}` on {report['date']}: 2 cores shared by every process (collector "
        f"with {report['workers']} uvicorn workers + landing writer, Redis, wrk or the Python load "
        "generator, and for end to end the stream consumer and the API).",
        "",
        "| batch size | connections | events/s accepted | requests/s | p50 ms | p99 ms | "
        "errors | landing backlog after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["throughput"]:
        errors = sum(r["errors"].values())
        lines.append(
            f"| {r['batch_size']} | {r['connections']} | {r['events_per_s']:,} | "
            f"{r['requests_per_s']:,} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {errors} | "
            f"{r['landing_backlog_entries_after']} |"
        )
    e = report["end_to_end"]
    lines += [
        "",
        f"End to end at {e['rate_events_per_s']:,} events/s for {e['seconds']} s: HTTP request "
        "-> segment visible in the API: "
        f"p50 {e['p50_ms']} ms, p95 {e['p95_ms']} ms, max {e['max_ms']} ms over {e['probes']} "
        f"probes ({e['probes_missed']} missed; includes up to 5 ms of polling). Lag after: "
        f"{e['lag_after']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--e2e-seconds", type=int, default=20)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(args.redis_url)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        report = {
            "command": "python bench/collector_load.py " + " ".join(argv or sys.argv[1:]),
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "workers": args.workers,
            "throughput": [] if args.skip_throughput else throughput(args, client, root),
            "end_to_end": e2e(args, client, root),
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
