"""Real time in the UI: the stream consumer's health (a sensor observing its lag) and the nightly
reconciliation of its segments with the warehouse (an asset with an agreement-rate check).

Present when the online store is configured (SEGWH_ONLINE_REDIS_URL): the consumer writes
where the API reads. The collector and the consumer run as services (`segwh collect`,
`segwh stream`), not as Dagster runs; ``serving/realtime_segments`` stands for what the consumer
writes (an external asset: the sensor records observations of it).
"""

from __future__ import annotations

import time

import dagster as dg
import redis

from orchestration.defs.ingestion import RAW_EVENTS
from orchestration.resources import OnlineStoreResource, PrivacyResource, WarehouseResource
from serving.realtime.reconcile import reconcile
from serving.realtime.rules import load_rule_set
from serving.realtime.state import RealtimeKeys
from warehouse.broker import GROUPS, RedisStreamBroker
from warehouse.settings import load_settings

REALTIME_SEGMENTS = dg.AssetKey(["serving", "realtime_segments"])
REALTIME_RECONCILIATION = dg.AssetKey(["serving", "realtime_reconciliation"])
MIN_AGREEMENT_RATE = 0.999
HEARTBEAT_STALE_SECONDS = 60
LAG_WARN_ENTRIES = 10_000
NIGHTLY_TAG = {"segwh/runs": "nightly"}

realtime_segments = dg.AssetSpec(
    REALTIME_SEGMENTS,
    group_name="serving",
    kinds={"redis"},
    description=(
        "In-session segments and activation triggers the stream consumer (`segwh stream`) keeps "
        "in Redis from the collector's event stream, read by the API beside the batch profile. "
        "Observed by the stream_consumer_health sensor (lag, pending, heartbeat)."
    ),
)


@dg.sensor(
    name="stream_consumer_health",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every 30 s: the lag and pending entries of the stream's consumer groups (landing files, "
        "real-time), the stream consumer's heartbeat and counters, as an observation of "
        "serving/realtime_segments. Says unhealthy when the heartbeat is older than "
        f"{HEARTBEAT_STALE_SECONDS} s or the lag exceeds {LAG_WARN_ENTRIES:,} entries."
    ),
)
def stream_consumer_health(context: dg.SensorEvaluationContext):
    settings = load_settings()
    try:
        broker_client = redis.Redis.from_url(settings.broker_url, socket_timeout=5)
        broker = RedisStreamBroker(broker_client, settings.broker_stream)
        lags = {g: broker.lag(g) for g in GROUPS} if broker_client.exists(broker.stream) else {}
        state_client = redis.Redis.from_url(settings.online_redis_url, socket_timeout=5)
        stats = {
            k.decode(): int(v)
            for k, v in state_client.hgetall(
                RealtimeKeys(settings.online_redis_prefix).stats
            ).items()
        }
    except redis.RedisError as exc:
        return dg.SkipReason(f"Redis unreachable: {type(exc).__name__}")
    heartbeat_age = (
        round(time.time() - stats["heartbeat_ms"] / 1000, 1) if "heartbeat_ms" in stats else None
    )
    metadata: dict = {f"{g}_lag": lag.lag for g, lag in lags.items()}
    metadata |= {f"{g}_pending": lag.pending for g, lag in lags.items()}
    metadata |= {f"consumer_{k}": v for k, v in stats.items() if k != "heartbeat_ms"}
    metadata["heartbeat_age_seconds"] = heartbeat_age if heartbeat_age is not None else -1
    problems = []
    if heartbeat_age is None or heartbeat_age > HEARTBEAT_STALE_SECONDS:
        problems.append("the stream consumer is not running (no recent heartbeat)")
    problems += [
        f"{g} lags {lag.lag} entries" for g, lag in lags.items() if lag.lag > LAG_WARN_ENTRIES
    ]
    metadata["healthy"] = not problems
    if problems:
        context.log.warning("stream consumer: %s", "; ".join(problems))
    return dg.SensorResult(
        asset_events=[dg.AssetObservation(asset_key=REALTIME_SEGMENTS, metadata=metadata)],
        skip_reason=dg.SkipReason("; ".join(problems) or "healthy"),
    )


@dg.asset(
    key=REALTIME_RECONCILIATION,
    deps=[RAW_EVENTS, REALTIME_SEGMENTS],
    group_name="serving",
    kinds={"duckdb", "redis"},
    tags=NIGHTLY_TAG,
    check_specs=[
        dg.AssetCheckSpec(
            "stream_agrees_with_warehouse",
            asset=REALTIME_RECONCILIATION,
            description=(
                "The in-session segment memberships SQL computes on the collector's events in "
                "raw.events agree with those the stream consumer computed, at least "
                f"{MIN_AGREEMENT_RATE:.1%} (memberships found by both over found by either)."
            ),
        )
    ],
    description=(
        "Nightly: the real-time segments recomputed by SQL from the warehouse (the source of "
        "truth) with the same rules (seeds/realtime_segment_rules.csv), compared with the "
        "stream consumer's history (serving/realtime/reconcile.py)."
    ),
)
def realtime_reconciliation(
    warehouse: WarehouseResource, online: OnlineStoreResource, privacy: PrivacyResource
) -> dg.MaterializeResult:
    settings = load_settings()
    client = online.store().connect()
    try:
        with warehouse.connect() as con:
            privacy.install(con)
            result = reconcile(
                con,
                client,
                RealtimeKeys(online.prefix),
                load_rule_set(settings.dbt_project_dir),
                settings.stream_allowed_lateness_seconds,
            )
    finally:
        client.close()
    metadata = {
        "agreement_rate": result.agreement_rate,
        "memberships_both": result.both,
        "only_stream": result.only_stream,
        "only_warehouse": result.only_warehouse,
        "watermark_ms": result.watermark_ms,
        **{f"{seg}_both_stream_warehouse": str(v) for seg, v in result.by_segment.items()},
    }
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="stream_agrees_with_warehouse",
                passed=result.agreement_rate >= MIN_AGREEMENT_RATE,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "agreement_rate": result.agreement_rate,
                    "examples": "\n".join(result.examples) or "none",
                },
            )
        ],
    )


def build_defs(*, online: bool) -> dg.Definitions:
    if not online:
        return dg.Definitions()
    return dg.Definitions(
        assets=[realtime_segments, realtime_reconciliation],
        sensors=[stream_consumer_health],
    )
