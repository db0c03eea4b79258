"""Landing folders for tests that run the whole graph."""

import json
import shutil
from pathlib import Path


def landing_with_a_warning(sample_landing: Path, target: Path) -> Path:
    """A copy of a sample's landing folder plus one valid event that a warning-severity
    expectation flags (a quantity of 5000: within the contract, outside the warning's range), so
    a run on it has a warning to show (the small sample itself has none)."""
    shutil.copytree(sample_landing, target)
    event = {
        "event_id": "bulk-quantity-warning",
        "event_type": "add_to_cart",
        "occurred_at": "2026-10-30T10:00:00Z",
        "anonymous_id": "warning-visitor",
        "quantity": 5000,
    }
    (target / "zz-bulk-quantity.jsonl").write_text(json.dumps(event) + "\n")
    return target
