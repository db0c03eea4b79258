"""Logs of the API process: one JSON object per line on stderr, no personal data.

The access log (``AccessLog``, lines with ``"logger": "segwh.api.access"``) has one line per
request with its method, route template (``/v1/profiles/{id}``, never the path: it holds the
visitor's id), status, latency, API-key name and served version. Query strings, paths,
identifiers and pseudonyms are never logged. uvicorn's own access log is off (it logs paths).
Other logs (startup, Redis errors) go through ``logging`` with ``JsonLineFormatter``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import IO

import orjson

ACCESS_LOGGER = "segwh.api.access"


class AccessLog:
    """Access log lines, written in batches: at most ``flush_seconds`` after a request, or
    once ``batch_lines`` are waiting. A line through ``logging`` costs about 60 us of CPU on
    the benchmark machine (a fifth of a lookup's budget); a batched line costs a few us. The
    price: a process killed with SIGKILL loses up to ``flush_seconds`` of lines."""

    def __init__(
        self, stream: IO[str] | None = None, flush_seconds: float = 0.2, batch_lines: int = 256
    ):
        self._stream = stream
        self._flush_seconds = flush_seconds
        self._batch_lines = batch_lines
        self._lines: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._second_text = ""

    def write(
        self,
        method: str,
        route: str,
        status: int,
        seconds: float,
        key: str | None,
        version: str | None,
    ) -> None:
        """One request: its route template, never its path."""
        now = time.time()
        second = int(now)
        if second != self._second:  # the timestamp's text changes once a second
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        line = {
            "ts": f"{self._second_text}.{int((now - second) * 1000):03d}+00:00",
            "level": "INFO",
            "logger": ACCESS_LOGGER,
            "message": "request",
            "method": method,
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "key": key,
            "version": version,
        }
        self._lines.append(orjson.dumps(line))
        if len(self._lines) >= self._batch_lines:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = (b"\n".join(self._lines) + b"\n").decode()
        self._lines = []
        stream = self._stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # stderr closed or full: drop the lines, keep serving
            pass


class JsonLineFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", **fields}``; ``fields`` comes from
    ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            # the exception type and where it happened; messages and locals are left out, as
            # they could quote request data
            line["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            line["traceback"] = "".join(traceback.format_tb(record.exc_info[2]))
        return orjson.dumps(line, default=str).decode()


def log_config(level: str = "INFO") -> dict:
    """logging.config dict for uvicorn and the API: JSON lines on stderr, uvicorn's access
    log silenced."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLineFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "segwh.api": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
