"""Prometheus metrics of the online API, in a registry of its own (one per app).

- ``segwh_api_request_duration_seconds{method, route, status}``: latency histogram, by route
  template (never the concrete path, which holds visitor ids);
- ``segwh_api_lookups_total{result}``: identifiers looked up, ``hit`` (a profile) or ``unknown``
  (the default decision);
- ``segwh_api_requests_rejected_total{reason}``: ``unauthenticated``, ``forbidden`` (scope),
  ``rate_limited``;
- ``segwh_api_key_cache_total{result}``: API-key checks answered by the in-process cache
  (``hit``) or by Redis (``miss``);
- ``segwh_api_served_version_age_seconds``: age of the version served (from its ``loaded_at``);
  ``segwh_api_served_version_info{version, as_of}``: 1 for the version served.

The counts are per API process: run several and Prometheus sums them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from serving.online.store import VersionMeta

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class _KeyCacheCollector:
    def __init__(self, counts: Callable[[], tuple[int, int]]):
        self._counts = counts

    def collect(self):
        hits, misses = self._counts()
        family = CounterMetricFamily(
            "segwh_api_key_cache",
            "API-key checks answered by the in-process cache (hit) or by Redis (miss)",
            labels=["result"],
        )
        family.add_metric(["hit"], hits)
        family.add_metric(["miss"], misses)
        yield family


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._latency = Histogram(
            "segwh_api_request_duration_seconds",
            "Latency of API requests, by route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        lookups = Counter(
            "segwh_api_lookups",
            "Identifiers looked up: hit (a profile) or unknown (the default decision)",
            ["result"],
            registry=self.registry,
        )
        self.hits = lookups.labels("hit")
        self.unknown = lookups.labels("unknown")
        self._rejected = Counter(
            "segwh_api_requests_rejected",
            "Requests rejected: unauthenticated, forbidden (scope), rate_limited",
            ["reason"],
            registry=self.registry,
        )
        self._version_info = Gauge(
            "segwh_api_served_version_info",
            "1 for the version of the profile store this process serves",
            ["version", "as_of"],
            registry=self.registry,
        )
        age = Gauge(
            "segwh_api_served_version_age_seconds",
            "Seconds since the served version was loaded into Redis (NaN before any)",
            registry=self.registry,
        )
        age.set_function(self._version_age)
        self._loaded_at: float | None = None
        self._version: str | None = None
        self._observers: dict[tuple[str, str, int], Callable[[float], None]] = {}

    def watch_key_cache(self, counts: Callable[[], tuple[int, int]]) -> None:
        self.registry.register(_KeyCacheCollector(counts))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        label = (method, route, status)
        observe = self._observers.get(label)
        if observe is None:
            observe = self._observers[label] = self._latency.labels(
                method, route, str(status)
            ).observe
        observe(seconds)

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason).inc()

    def serving(self, meta: VersionMeta) -> None:
        """Called with the meta of every response; cheap unless the version changed."""
        if meta.version == self._version:
            return
        self._version = meta.version
        self._version_info.clear()
        self._version_info.labels(meta.version, meta.as_of).set(1)
        self._loaded_at = _epoch(meta.loaded_at)

    def _version_age(self) -> float:
        if self._loaded_at is None:
            return math.nan
        return max(0.0, time.time() - self._loaded_at)


def _epoch(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
