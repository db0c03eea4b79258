"""Load benchmark of the online API (issue 26): single lookups at 1M persons on 2 cores.

    .venv/bin/python bench/api_load.py --persons 1000000
    .venv/bin/python bench/api_load.py --persons 2000 --duration 2 --warmup 1   # smoke

1. Loads N synthetic persons into Redis under a fresh prefix with ``store.load`` (profiles the
   size of the real ones: segments, RFM segment, cluster, churn, decision; 10% without
   personalization consent; an anonymous id for everyone and a user id for every other person:
   1.5 identifiers per person) and reports the load time and the Redis memory it took
   (``INFO memory`` before and after: other clients writing meanwhile would skew it).
2. Starts the API (``segwh serve``) pinned to CPU 0 (``taskset -c 0``) with its access log on
   (to a file), and runs ``wrk`` pinned to CPU 1 with bench/api_load.lua: random known ids (user
   and anonymous) and 5% unknown ones, ``GET /v1/profiles/{id}`` with a valid key:
   (a) paced at ``--rate`` requests/s (wrk is closed-loop: each connection pauses a random
   delay between requests, calibrated by a short probe run so that the connections add up to
   the rate; the achieved rate is reported), then
   (b) at full throughput with ``--connections`` connections.
   Redis itself is not pinned (it runs wherever the OS puts it).
3. The floor (unless --no-floor): the same paced run against a no-op ASGI app on the same
   uvicorn settings, pinned the same way: the latency this machine gives any Python HTTP
   service at that rate (on the 2-core VM it is dominated by waking idle vCPUs).
4. Writes bench/out/api_load.json, prints a Markdown table (met / missed against the targets of
   issue 26), and deletes its keys from Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from privacy.pseudonyms import KEY_ENV_VAR, pseudonym, validated_key  # noqa: E402
from serving.online import auth  # noqa: E402
from serving.online.store import Changes, Keys, VersionMeta, load, now_text  # noqa: E402

LUA_SCRIPT = ROOT / "bench" / "api_load.lua"
TARGETS = {
    "paced_p99_ms": 5.0,
    "max_rps": 3000.0,
    "max_p99_ms": 25.0,
    "load_seconds_per_million": 60.0,
}
SEGMENTS = (
    "cart_abandoner",
    "stage_purchase",
    "stage_browse",
    "stage_consider",
    "frequent_buyer",
    "high_value",
    "new_visitor",
    "lapsed_customer",
    "discount_seeker",
    "mobile_first",
    "category_fashion",
    "category_electronics",
    "category_home",
    "newsletter_reader",
    "weekend_shopper",
    "big_basket",
)
RFM = ("rfm_champions", "rfm_loyal", "rfm_potential", "rfm_at_risk", "rfm_hibernating", "rfm_new")
CLUSTERS = ("bargain hunters", "loyal regulars", "window shoppers", "big spenders", "newcomers")
VARIANTS = (
    ("vip_offers", "vip_frequent_buyer", "frequent_buyer"),
    ("cart_reminder", "cart_abandoner_reminder", "cart_abandoner"),
    ("winback", "lapsed_winback", "lapsed_customer"),
    ("welcome", "new_visitor_welcome", "new_visitor"),
)
DEFAULT_DECISION = {"content_variant": "default", "rule_id": "default", "segment_key": None}
AS_OF = "2026-11-01T00:00:00"


def log(message: str) -> None:
    print(f"[api_load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def synthetic_store(persons: int, key: bytes, seed: int = 26):
    """(profiles, identifiers, members, sample of known raw ids) of ``persons`` persons."""
    rng = random.Random(seed)
    profiles: list[tuple[str, str]] = []
    identifiers: list[tuple[str, str]] = []
    members: list[tuple[str, str]] = []
    known_ids: list[str] = []
    sample_every = max(1, persons // 100_000)  # wrk requests ids from a 100k sample
    for i in range(persons):
        person = pseudonym(f"bench-person-{i}", key)
        raw_ids = [f"anon-{uuid.UUID(int=rng.getrandbits(128))}"]
        if i % 2 == 0:
            raw_ids.append(f"customer-{i:08d}")
        identifiers.extend((pseudonym(raw, key), person) for raw in raw_ids)
        if i % sample_every == 0:
            known_ids.extend(raw_ids)
        if rng.random() < 0.1:  # no personalization consent: a reduced profile
            profile = {"person_id": person, "as_of": AS_OF, "personalized": False}
            profile["decision"] = DEFAULT_DECISION
        else:
            segments = sorted(rng.sample(SEGMENTS, rng.randint(1, 4)))
            variant, rule, segment = rng.choice(VARIANTS)
            cluster = rng.randrange(len(CLUSTERS))
            probability = round(rng.random(), 4)
            profile = {
                "person_id": person,
                "as_of": AS_OF,
                "personalized": True,
                "segments": segments,
                "rfm_segment": rng.choice(RFM),
                "cluster": {"id": cluster, "name": CLUSTERS[cluster]},
                "churn": {
                    "probability": probability,
                    "risk_band": "high"
                    if probability > 0.7
                    else "medium"
                    if probability > 0.3
                    else "low",
                    "at_risk": probability > 0.7,
                    "model_version": "churn-20261101-lgbm-3f9a2c",
                },
                "decision": {"content_variant": variant, "rule_id": rule, "segment_key": segment},
            }
            members.extend((s, person) for s in segments)
        profiles.append((person, orjson.dumps(profile).decode()))
    # sorted by key, as serving/online/profiles.py sends them: each Redis command of the load
    # then writes many rows of one bucket
    profiles.sort()
    identifiers.sort()
    members.sort()
    return profiles, identifiers, members, known_ids


def redis_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for name in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(name)
        if len(batch) >= 5000:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu), *command]
    return command


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise RuntimeError(f"the API did not get ready at {url}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_paced(url: str, common: dict, args: argparse.Namespace) -> dict:
    """wrk at about ``args.rate`` requests/s. wrk is closed-loop: a connection sends, waits for
    the answer, then pauses (the Lua ``delay()``); the pause is calibrated by a short run so
    that pause + response time of the connections add up to the rate."""
    connections = args.paced_connections
    delay_ms = connections * 1000 / args.rate
    probe = run_wrk(
        url, **common, seconds=max(2, args.duration / 10), connections=connections,
        delay_ms=delay_ms,
    )  # fmt: skip
    cycle_overhead_ms = connections * 1000 / probe["rps"] - delay_ms
    delay_ms = max(0.1, delay_ms - cycle_overhead_ms)
    return run_wrk(url, **common, seconds=args.duration, connections=connections, delay_ms=delay_ms)


def serve_floor(port: int) -> None:
    """A no-op ASGI app (a fixed JSON body of a profile's size) on uvicorn with the API's
    settings: what this machine gives any Python HTTP service, with no Redis and no work."""
    import uvicorn

    body = b'{"version":"floor","as_of":"2026-11-01T00:00:00","known":true,"profile":' + (
        orjson.dumps({"padding": "x" * 400}) + b"}"
    )
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
    }

    async def app(scope, receive, send):
        await send(start)
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
        log_level="warning", lifespan="off",
    )  # fmt: skip


def run_wrk(
    url: str,
    *,
    ids_file: Path,
    api_key: str,
    seconds: float,
    connections: int,
    delay_ms: float = 0.0,
) -> dict:
    env = {
        **os.environ,
        "BENCH_IDS_FILE": str(ids_file),
        "BENCH_API_KEY": api_key,
        "BENCH_DELAY_MS": f"{delay_ms:.3f}",
    }
    command = pinned(
        1,
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-s",
            str(LUA_SCRIPT),
            url,
        ],
    )
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"wrk failed ({run.returncode}): {run.stderr}{run.stdout}")
    line = next((text for text in run.stdout.splitlines() if text.startswith('{"wrk"')), None)
    if line is None:
        raise RuntimeError(f"no summary from wrk:\n{run.stdout}\n{run.stderr}")
    result = json.loads(line)["wrk"]
    duration = result["duration_us"] / 1e6
    return {
        "connections": connections,
        "delay_ms_mean": delay_ms,
        "seconds": round(duration, 2),
        "requests": result["requests"],
        "rps": round(result["requests"] / duration, 1),
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "errors": result["errors"],
        "non_2xx": result["errors"]["status"],
    }


def markdown(report: dict) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    paced, full, loaded = report["paced"], report["max"], report["load"]
    floor = report["floor_paced"]
    load_per_million = loaded["seconds"] * 1e6 / report["persons"]
    rows = [
        "| scenario | target | achieved | p50 | p99 | max | result |",
        "|---|---|---|---|---|---|---|",
        f"| paced ({paced['connections']} connections) | p99 < "
        f"{TARGETS['paced_p99_ms']:g} ms at ~{report['paced_rate']:,} req/s | "
        f"{paced['rps']:,.0f} req/s | {paced['p50_ms']:.2f} ms | {paced['p99_ms']:.2f} ms | "
        f"{paced['max_ms']:.1f} ms | {verdict(report['met']['paced'])} |",
        f"| full throughput ({full['connections']} connections) | >= "
        f"{TARGETS['max_rps']:,.0f} req/s with p99 < {TARGETS['max_p99_ms']:g} ms | "
        f"{full['rps']:,.0f} req/s | {full['p50_ms']:.2f} ms | {full['p99_ms']:.2f} ms | "
        f"{full['max_ms']:.1f} ms | {verdict(report['met']['max'])} |",
        f"| load {report['persons']:,} persons into Redis | < "
        f"{TARGETS['load_seconds_per_million']:g} s per 1M persons | {loaded['seconds']:.1f} s "
        f"({load_per_million:.1f} s per 1M) | | | | {verdict(report['met']['load'])} |",
        *(
            [
                f"| floor: no-op ASGI app, paced ({floor['connections']} connections) | "
                f"(reference) | {floor['rps']:,.0f} req/s | {floor['p50_ms']:.2f} ms | "
                f"{floor['p99_ms']:.2f} ms | {floor['max_ms']:.1f} ms | |"
            ]
            if floor
            else []
        ),
        f"| Redis memory | reported | {report['memory']['mib_per_million_profiles']:,.0f} MiB "
        f"per 1M profiles ({report['memory']['bytes_per_person']:,.0f} B per person) | | | | |",
    ]
    errors = paced["non_2xx"] + full["non_2xx"]
    socket_errors = sum(
        phase["errors"][kind]
        for phase in (paced, full)
        for kind in ("connect", "read", "write", "timeout")
    )
    note = (
        f"\n{report['persons']:,} persons, {report['identifiers']:,} identifiers; API on CPU 0, "
        f"wrk on CPU 1; {paced['seconds']:.0f} s paced, {full['seconds']:.0f} s full; "
        f"non-2xx responses: {errors}; socket errors: {socket_errors}"
    )
    return "\n".join(rows) + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SEGWH_ONLINE_REDIS_URL") or "redis://127.0.0.1:6379/0",
    )
    parser.add_argument("--rate", type=int, default=1_000, help="paced rate, requests/s")
    parser.add_argument("--paced-connections", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16, help="full-throughput run")
    parser.add_argument("--duration", type=float, default=30, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up")
    parser.add_argument("--unknown-share", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the paced run against a no-op app (the machine's floor)",
    )
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0

    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    key_text = os.environ.get(KEY_ENV_VAR) or secrets.token_hex(32)
    key = validated_key(key_text)
    prefix = f"segwh_bench_{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(args.redis_url)
    client.ping()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="api_load_"))
    api = None
    try:
        log(f"generating {args.persons:,} persons")
        started = time.perf_counter()
        profiles, identifiers, members, known_ids = synthetic_store(args.persons, key)
        generated = time.perf_counter() - started
        profile_bytes = sum(len(p) for _, p in profiles) / len(profiles)
        log(f"generated in {generated:.1f} s (profiles of {profile_bytes:.0f} bytes on average)")

        memory_before = redis_memory(client)
        meta = VersionMeta(
            version="bench-1",
            as_of=AS_OF,
            loaded_at=now_text(),
            persons=len(profiles),
            identifiers=len(identifiers),
            segments=SEGMENTS,
            default_decision=DEFAULT_DECISION,
        )
        changes = Changes(
            profiles=profiles,
            removed_persons=[],
            identifiers=identifiers,
            removed_identifiers=[],
            members_added=members,
            members_removed=[],
        )
        result = load(client, Keys(prefix), meta, changes)
        memory_after = redis_memory(client)
        used = memory_after - memory_before
        log(f"loaded in {result.seconds:.1f} s; Redis memory +{used / 2**20:,.0f} MiB")
        n_persons, n_identifiers, n_members = len(profiles), len(identifiers), len(members)
        del profiles, identifiers, members, changes

        ids_file = workdir / "ids.txt"
        rng = random.Random(7)
        unknown = [
            f"unknown-{uuid.UUID(int=rng.getrandbits(128))}"
            for _ in range(max(1, round(len(known_ids) * args.unknown_share)))
        ]
        ids = known_ids + unknown
        rng.shuffle(ids)
        ids_file.write_text("\n".join(ids) + "\n")
        api_key = auth.create_key(
            client, prefix, "bench", [auth.PROFILES_READ], rate_limit=1_000_000
        )

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            KEY_ENV_VAR: key_text,
            "SEGWH_ONLINE_REDIS_URL": args.redis_url,
            "SEGWH_ONLINE_REDIS_PREFIX": prefix,
        }
        api_log = workdir / "api.log"
        segwh = str(Path(sys.executable).parent / "segwh")
        with api_log.open("w") as log_file:
            api = subprocess.Popen(
                pinned(0, [segwh, "serve", "--port", str(port)]),
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        ready = wait_ready(url, api)
        log(f"API ready on {url} (version {ready['version']}); warming up {args.warmup:g} s")
        common = {"ids_file": ids_file, "api_key": api_key}
        run_wrk(url, **common, seconds=args.warmup, connections=args.connections)

        log(f"paced: {args.rate:,} requests/s for {args.duration:g} s")
        paced = run_paced(url, common, args)
        log(f"full throughput: {args.connections} connections for {args.duration:g} s")
        full = run_wrk(url, **common, seconds=args.duration, connections=args.connections)
        access_lines = sum(1 for _ in api_log.open())
        stop(api)
        api = None

        floor = None
        if args.floor:
            log("floor: a no-op ASGI app on the same uvicorn, paced the same")
            floor_log = workdir / "floor.log"
            with floor_log.open("w") as log_file:
                api = subprocess.Popen(
                    pinned(0, [sys.executable, __file__, "--serve-floor", str(port)]),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            wait_ready(url, api)
            run_wrk(url, **common, seconds=args.warmup, connections=args.connections)
            floor = run_paced(url, common, args)

        report = {
            "persons": n_persons,
            "identifiers": n_identifiers,
            "segment_memberships": n_members,
            "profile_bytes_mean": round(profile_bytes, 1),
            "generate_seconds": round(generated, 2),
            "load": {
                "seconds": round(result.seconds, 2),
                "profiles_written": result.profiles_written,
                "identifiers_written": result.identifiers_written,
            },
            "memory": {
                "redis_used_memory_delta_bytes": used,
                "bytes_per_person": round(used / n_persons, 1),
                "mib_per_million_profiles": round(used / n_persons * 1e6 / 2**20, 1),
            },
            "paced_rate": args.rate,
            "paced": paced,
            "max": full,
            "floor_paced": floor,
            "api_log_lines": access_lines,
            "targets": TARGETS,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "redis": client.info("server")["redis_version"],
            },
            "prefix": prefix,
        }
        report["met"] = {
            "paced": paced["p99_ms"] < TARGETS["paced_p99_ms"] and paced["non_2xx"] == 0,
            "max": full["rps"] >= TARGETS["max_rps"]
            and full["p99_ms"] < TARGETS["max_p99_ms"]
            and full["non_2xx"] == 0,
            "load": result.seconds * 1e6 / n_persons < TARGETS["load_seconds_per_million"],
        }
        (args.out / "api_load.json").write_text(json.dumps(report, indent=2) + "\n")
        print(markdown(report))
        return 0
    finally:
        if api is not None:
            stop(api)
        deleted = delete_prefix(client, prefix)
        log(f"deleted {deleted:,} Redis keys under {prefix}")
        shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            client.close()


if __name__ == "__main__":
    raise SystemExit(main())
