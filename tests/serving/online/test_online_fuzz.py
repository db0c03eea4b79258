"""Schema-based fuzzing of the real API process from its own OpenAPI document: schemathesis's
CLI generates valid and invalid requests for every operation (examples, coverage and fuzzing
phases) with a valid key; no response may be a 5xx, and responses must match the document
(status codes, headers, content types and schemas; requests without the key must get 401)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from online_api_helpers import Person

from serving.online import auth

pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
PERSONS = [
    Person("fuzz-known", ["user-fuzz", "anon-fuzz"], segments=("cart_abandoner", "vip")),
    Person("fuzz-no-consent", ["user-fuzz-no-consent"], personalized=False),
]


def test_schemathesis_finds_no_5xx_and_no_departure_from_the_document(
    api_store, api_server, tmp_path
):
    api_store.load("fuzz-1", PERSONS)
    key = api_store.create_key("fuzz", list(auth.SCOPES), rate_limit=1e6)
    run = subprocess.run(
        [
            SCHEMATHESIS, "run", f"{api_server.url}/openapi.json",
            "--header", f"Authorization: Bearer {key}",
            "--max-examples", "25",
            "--checks", "all",
            # a schema-valid string is rarely a valid cursor (they are signed and opaque): the
            # 400 it gets is right, not a departure from the document
            "--exclude-checks", "positive_data_acceptance",
            "--generation-database", "none",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "8 selected / 8 total" in output
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 100, output[-3000:]
    access = [line for line in api_server.log_lines() if line.get("route")]
    statuses = {line["status"] for line in access}
    assert not any(status >= 500 for status in statuses), statuses
    assert {200, 401, 422} <= statuses  # valid, keyless and invalid requests were all tried
