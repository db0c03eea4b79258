"""Command line: ``python -m sample_data --events 100000 --out data/sample --seed 42``."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sample_data.config import DEFAULT_AS_OF
from sample_data.generator import GenerationSummary, generate, output_paths

log = logging.getLogger("sample_data")


def _as_of(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("as-of needs a UTC offset, e.g. 2026-11-01T00:00:00Z")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m sample_data",
        description="Generate deterministic sample landing files, a CRM database and the truth.",
    )
    parser.add_argument("--events", type=int, default=20_000, help="landed lines (default 20000)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--as-of",
        type=_as_of,
        default=DEFAULT_AS_OF,
        help=f"end of history, ISO-8601 with offset (default {DEFAULT_AS_OF.isoformat()})",
    )
    parser.add_argument("--files", type=int, default=None, help="number of landing files")
    parser.add_argument(
        "--force",
        action="store_true",
        help="remove a previous landing/, crm.sqlite and truth/ in --out first",
    )
    parser.add_argument("--timing", action="store_true", help="log the elapsed seconds")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return parser


def remove_previous_output(out_dir: Path) -> None:
    """Delete only what ``generate`` writes: landing/, crm.sqlite and truth/."""
    for path in output_paths(out_dir):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def describe(summary: GenerationSummary, seconds: float | None = None) -> str:
    """One paragraph for humans."""
    bad = summary.bad_input
    missing = sum(v for k, v in bad.items() if k.startswith("missing_"))
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    return (
        f"Wrote {summary.total_lines:,} lines in {len(summary.files)} files to "
        f"{summary.landing_dir}{took}: {summary.valid_events:,} valid distinct events "
        f"({summary.late_events:,} of them late) plus {bad['duplicate_event_ids']:,} duplicates, "
        f"{bad['malformed_json']:,} malformed, {missing:,} missing a required field and "
        f"{bad['bad_timestamp']:,} with a bad timestamp. CRM: {summary.customers:,} customers "
        f"and {summary.orders:,} orders at {summary.crm_url}; truth for {summary.persons:,} "
        f"persons in {summary.truth_dir}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out_dir: Path = args.out
    if out_dir.exists() and any(out_dir.iterdir()):
        if not args.force:
            log.error("%s is not empty; use --force to replace earlier output", out_dir)
            return 2
        remove_previous_output(out_dir)
    started = time.perf_counter()
    try:
        summary = generate(out_dir, args.events, args.seed, args.as_of, args.files)
    except (ValueError, FileExistsError) as error:
        log.error("%s", error)
        return 2
    elapsed = time.perf_counter() - started
    if args.timing:
        log.info("generated %d lines in %.1f s", summary.total_lines, elapsed)
    print(describe(summary, elapsed if args.timing else None))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
