"""A file-based model registry: versions, a ``current`` pointer, guarded promotion.

Layout under the registry folder::

    versions/<version>/model.joblib     the fitted ChurnModel (joblib)
    versions/<version>/metadata.json    features, training window, metrics, drift baseline,
                                        library versions, created_at, promotion decision
    current.json                        {"version": ..., "promoted_at": ...}
    decisions.jsonl                     one line per promotion decision, append-only

Every file is written to a temporary file in the same folder and renamed into place, and a
version folder is complete before it is renamed into ``versions/``, so a crash leaves either
the old or the new state. Promotions hold an exclusive lock (``.lock``), so two runs cannot
interleave. The version id is the UTC creation time plus the first 8 hex digits of the model
file's SHA-256: sortable, and different for different models made in the same second.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import scipy
import sklearn

from ml.churn import ChurnModel
from ml.config import ChurnConfig
from ml.serialization import atomic_write_bytes, atomic_write_json, json_safe

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CURRENT_FILE = "current.json"
DECISIONS_FILE = "decisions.jsonl"


class NoCurrentModelError(LookupError):
    """Nothing has been promoted yet."""


@dataclass(frozen=True)
class PromotionDecision:
    candidate: str
    previous: str | None
    """The current version before the decision."""
    promoted: bool
    reason: str
    metric: str
    candidate_value: float | None
    current_value: float | None
    tolerance: float
    decided_at: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


class ModelRegistry:
    """Model versions in ``root`` (created on first use): churn models by default, or any
    frozen dataclass with ``version`` and ``describe()`` given as ``model_class`` (the
    recommender of ml.recommendations)."""

    def __init__(self, root: Path | str, model_class: type = ChurnModel) -> None:
        self.root = Path(root)
        self.model_class = model_class

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def _version_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ValueError(f"invalid version id {version!r}")
        return self.versions_dir / version

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def register(self, model: Any, *, created_at: datetime | None = None) -> Any:
        """Save ``model`` as a new version (not promoted); returns it with ``version`` set.
        Registering the same model bytes at the same second returns the existing version."""
        created = (created_at or datetime.now(UTC)).astimezone(UTC)
        buffer = io.BytesIO()
        joblib.dump(dataclasses.replace(model, version=None), buffer, compress=3)
        payload = buffer.getvalue()
        digest = hashlib.sha256(payload).hexdigest()
        version = f"{created:%Y%m%dT%H%M%SZ}-{digest[:8]}"
        target = self._version_dir(version)
        if target.exists():
            log.info("model version %s already registered", version)
            return dataclasses.replace(model, version=version)
        metadata = {
            "version": version,
            "created_at": created.isoformat(),
            "sha256": digest,
            "libraries": library_versions(),
            **model.describe(),
            "promotion": None,
        }
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self.versions_dir))
        try:
            atomic_write_bytes(staging / MODEL_FILE, payload)
            atomic_write_json(staging / METADATA_FILE, metadata)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("registered %s version %s", self.model_class.__name__, version)
        return dataclasses.replace(model, version=version)

    def versions(self) -> list[str]:
        """Registered versions, oldest first."""
        if not self.versions_dir.exists():
            return []
        return sorted(
            p.name
            for p in self.versions_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / METADATA_FILE).exists()
        )

    def metadata(self, version: str) -> dict[str, Any]:
        return json.loads((self._version_dir(version) / METADATA_FILE).read_text())

    def load(self, version: str) -> Any:
        model = joblib.load(self._version_dir(version) / MODEL_FILE)
        if not isinstance(model, self.model_class):
            raise TypeError(f"version {version} does not hold a {self.model_class.__name__}")
        return dataclasses.replace(model, version=version)

    def current_version(self) -> str | None:
        path = self.root / CURRENT_FILE
        if not path.exists():
            return None
        return json.loads(path.read_text())["version"]

    def load_current(self) -> Any:
        """The promoted model; ``NoCurrentModelError`` if none has been promoted."""
        version = self.current_version()
        if version is None:
            raise NoCurrentModelError(f"no model has been promoted in {self.root}")
        return self.load(version)

    def decisions(self) -> list[dict[str, Any]]:
        path = self.root / DECISIONS_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def promote(
        self,
        candidate: str | Any,
        *,
        tolerance: float = ChurnConfig.promotion_tolerance,
        metric: str = ChurnConfig.promotion_metric,
        force: bool = False,
    ) -> PromotionDecision:
        """Make ``candidate`` current if its validation ``metric`` is at least the current
        model's minus ``tolerance`` (or there is no current model, or ``force``). The decision
        and its reason go to the candidate's metadata and ``decisions.jsonl``."""
        version = candidate if isinstance(candidate, str) else candidate.version
        if version is None:
            raise ValueError("register the model before promoting it")
        with self._lock():
            candidate_meta = self.metadata(version)
            current = self.current_version()
            candidate_value = _metric(candidate_meta, metric)
            current_meta = self.metadata(current) if current else {}
            current_value = _metric(current_meta, metric) if current else None
            promoted, reason = _decide(
                version, current, candidate_value, current_value, tolerance, metric, force
            )
            if (
                current
                and not force
                and "test_metrics" in candidate_meta
                and "test_metrics" not in current_meta
            ):
                # a churn model validated on the latest labelled snapshot, before the held-out
                # test split (issue 23): its number describes another snapshot and cannot be
                # compared (models without a test split, e.g. recommenders, compare as usual)
                promoted = True
                reason = (
                    f"current model {current} was validated on another snapshot (before the "
                    "held-out test split): its metric is not comparable"
                )
            decision = PromotionDecision(
                candidate=version,
                previous=current,
                promoted=promoted,
                reason=reason,
                metric=metric,
                candidate_value=candidate_value,
                current_value=current_value,
                tolerance=tolerance,
                decided_at=datetime.now(UTC).isoformat(),
            )
            if promoted and current != version:
                atomic_write_json(
                    self.root / CURRENT_FILE,
                    {"version": version, "promoted_at": decision.decided_at, "previous": current},
                )
            candidate_meta["promotion"] = decision.to_dict()
            atomic_write_json(self._version_dir(version) / METADATA_FILE, candidate_meta)
            self._append_decision(decision)
        log.info("promotion of %s: %s (%s)", version, promoted, reason)
        return decision

    def _append_decision(self, decision: PromotionDecision) -> None:
        line = json.dumps(json_safe(decision.to_dict()), sort_keys=True, allow_nan=False) + "\n"
        with (self.root / DECISIONS_FILE).open("a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def _metric(metadata: dict[str, Any], metric: str) -> float | None:
    value = metadata.get("metrics", {}).get(metric)
    return float(value) if value is not None and math.isfinite(value) else None


def _decide(
    version: str,
    current: str | None,
    candidate_value: float | None,
    current_value: float | None,
    tolerance: float,
    metric: str,
    force: bool,
) -> tuple[bool, str]:
    if current == version:
        return True, "candidate is already the current model"
    if force:
        return True, "forced promotion"
    if current is None:
        return True, "no current model"
    if candidate_value is None:
        return False, f"candidate has no validation {metric}"
    if current_value is None:
        return True, f"current model {current} has no validation {metric}"
    floor = current_value - tolerance
    if candidate_value >= floor:
        return True, (
            f"candidate {metric} {candidate_value:.4f} >= current {current_value:.4f} "
            f"- tolerance {tolerance:g}"
        )
    return False, (
        f"candidate {metric} {candidate_value:.4f} < current {current_value:.4f} "
        f"- tolerance {tolerance:g}: keeping {current}"
    )
