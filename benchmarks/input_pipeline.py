"""Input-pipeline benchmark: training samples/s per core and per machine, before and after (see
benchmarks/README.md, "Input pipeline"). `python benchmarks/input_pipeline.py --help`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The suite lives next to this script (benchmarks/segret_bench), not in the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from segret_bench.input_pipeline import (  # noqa: E402
    BASELINE_REVISION,
    CASES,
    InputBenchmarkOptions,
    render_input_markdown,
    run_input_benchmark,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="default: all")
    parser.add_argument("--rows", type=int, default=8, help="distinct synthetic samples per case (default: 8)")
    parser.add_argument("--batch_size", type=int, default=8, help="samples per timed call and loader batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds, first call included (default: 1)")
    parser.add_argument("--workers", type=int, help="DataLoader workers per machine (default: every core)")
    parser.add_argument("--machine_samples", type=int, default=64, help="samples per timed loader call")
    parser.add_argument("--skip_machine", action="store_true", help="per-core figures only")
    parser.add_argument("--baseline_revision", default=BASELINE_REVISION, help="git revision of 'before'")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if min(args.rows, args.batch_size, args.repeats, args.warmup, args.machine_samples) < 1:
        parser.error("--rows, --batch_size, --repeats, --warmup and --machine_samples must be at least 1")
    options = InputBenchmarkOptions(
        cases=args.cases,
        rows=args.rows,
        batch_size=args.batch_size,
        repeats=args.repeats,
        warmup=args.warmup,
        workers=args.workers,
        machine_samples=args.machine_samples,
        skip_machine=args.skip_machine,
        baseline_revision=args.baseline_revision,
    )
    report = run_input_benchmark(options, log=lambda message: print(message, file=sys.stderr, flush=True))
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(render_input_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
