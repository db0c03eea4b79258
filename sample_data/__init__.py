"""Deterministic, seeded sample data: landing event files, a CRM database and the planted truth.

>>> from sample_data import generate
>>> summary = generate(Path("data/sample"), n_events=20_000, seed=42)  # doctest: +SKIP
"""

from sample_data.config import DEFAULT_AS_OF
from sample_data.generator import GenerationSummary, generate

__all__ = ["DEFAULT_AS_OF", "GenerationSummary", "generate"]
