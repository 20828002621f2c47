"""Command line of the benchmark suite (`python benchmarks/run_benchmarks.py --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from segret_hf.configuration_segret import ATTENTION_IMPLEMENTATIONS, SEGRET_VARIANTS
from segret_hf.inference import hw_argument

from .models import SEGFORMER_BASELINES
from .report import render_markdown, write_results
from .suite import SuiteOptions, build_specs, run_headline, run_suite

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parents[1] / "results"
# Defaults that depend on the device: a GPU run is cheap enough for more rounds and a bigger batch.
_DEVICE_DEFAULTS = {
    "cpu": {"batch_size": 2, "repeats": 5, "warmup": 1, "dtype": "float32"},
    "cuda": {"batch_size": 8, "repeats": 20, "warmup": 5, "dtype": "bfloat16"},
}
_QUICK_DEFAULTS = {"repeats": 10, "warmup": 2}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark SegRet against transformers' SegFormer: parameters, GFLOPs, latency, throughput, peak "
            "memory and training-step time, written as JSON + markdown under --output_dir."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the headline comparison: SegRet-tiny (sdpa) vs SegFormer-B2 forward at 2x3x512x512, "
        "interleaved in one process; prints both times and their ratios (uses --device/--dtype/--repeats/--warmup)",
    )
    parser.add_argument(
        "--target",
        type=float,
        metavar="RATIO",
        help="with --quick: also say whether the per-round (paired) time ratio SegRet-tiny / SegFormer-B2 is below "
        "RATIO (default: no comparison, only the times and ratios)",
    )
    parser.add_argument(
        "--variants", nargs="+", choices=list(SEGRET_VARIANTS), default=list(SEGRET_VARIANTS), help="default: all"
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=hw_argument,
        default=[(512, 512), (1024, 2048)],
        help="HEIGHTxWIDTH (default: 512x512 1024x2048)",
    )
    parser.add_argument(
        "--implementations",
        nargs="+",
        choices=ATTENTION_IMPLEMENTATIONS,
        default=list(ATTENTION_IMPLEMENTATIONS),
        help="SegRet attention implementations (default: all)",
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        choices=list(SEGFORMER_BASELINES),
        default=list(SEGFORMER_BASELINES),
        help="SegFormer sizes to run side by side (pass the flag alone for none; ratios need b2; default: all)",
    )
    parser.add_argument(
        "--compile",
        nargs="*",
        choices=ATTENTION_IMPLEMENTATIONS,
        default=None,
        help="add torch.compile(model) rows for these implementations (flag alone: sdpa); compile time is the "
        "'first call' column, steady-state latency is min/median",
    )
    parser.add_argument("--batch_size", type=int, help="throughput batch (default: 8 on cuda, 2 on cpu)")
    parser.add_argument("--repeats", type=int, help="timed rounds (default: 20 cuda / 5 cpu; 10 with --quick)")
    parser.add_argument(
        "--warmup", type=int, help="untimed rounds, the first call included (default: 5 cuda / 1 cpu; 2 with --quick)"
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="default: cuda when available",
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        help="inference dtype; training keeps fp32 weights and autocasts to it (default: float32 on cpu, where it "
        "is the only choice, bfloat16 on cuda)",
    )
    parser.add_argument("--skip_memory", action="store_true", help="no memory probes (also no OOM/timeout guard)")
    parser.add_argument("--skip_throughput", action="store_true")
    parser.add_argument("--skip_training", action="store_true")
    parser.add_argument(
        "--train_size", type=hw_argument, default=(512, 512), help="HEIGHTxWIDTH of the training step (default: 512x512)"
    )
    parser.add_argument("--train_batch_size", type=int, default=2, help="default: 2")
    parser.add_argument(
        "--memory_timeout_s", type=float, default=300.0, help="wall-clock limit per memory probe (default: 300)"
    )
    parser.add_argument(
        "--memory_limit_gib",
        type=float,
        default=16.0,
        help="RLIMIT_AS of each CPU memory probe; 0 disables (default: 16)",
    )
    parser.add_argument(
        "--max_call_s",
        type=float,
        help="do not time in-process a configuration whose memory-probe call took longer (its probe times remain "
        "in the memory table); default: no limit",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads, also in memory probes (default: torch's)")
    parser.add_argument("--output_dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="default: benchmarks/results")
    parser.add_argument(
        "--tag",
        help="the configuration's name in the result files, <device>_<tag>.json/.md, e.g. cpu-2t_quick; a later run "
        "with the same device and tag rewrites them (default: 'quick' or 'suite')",
    )
    return parser


def _resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Device-dependent defaults, and the combinations this suite refuses."""
    defaults = {**_DEVICE_DEFAULTS[args.device], **(_QUICK_DEFAULTS if args.quick else {})}
    resolved = {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()}
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.device == "cpu" and resolved["dtype"] != "float32":
        parser.error("--dtype: only float32 is benchmarked on cpu (half-precision CPU kernels are not covered)")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.target is not None and not args.quick:
        parser.error("--target compares the --quick headline ratio; pass it with --quick")
    if args.target is not None and args.target <= 0:
        parser.error("--target must be a positive time ratio")
    if resolved["repeats"] < 1 or resolved["warmup"] < 1:
        parser.error("--repeats and --warmup must be at least 1 (the first call is always an untimed warm-up)")
    return resolved


def _print_headline(results: dict[str, Any]) -> None:
    """The quick mode's answer in plain lines: both times, the three ratios and, with --target, the comparison."""
    head = results["headline"]
    for row in results["timings"]:
        if row["status"] != "ok":
            print(f"{row['model']}: {row['status']}")
            continue
        print(f"{row['model']}: min {row['min_s'] * 1e3:.0f} ms, median {row['median_s'] * 1e3:.0f} ms")
    if head["ratio_paired"] is None:
        print("no ratio: a model failed")
        return
    print(
        f"ratio {head['model']} / {head['reference']}: {head['ratio_median']:.3f} (medians), "
        f"{head['ratio_min']:.3f} (minima), {head['ratio_paired']:.3f} (median of per-round ratios)"
    )
    if head.get("target") is not None:
        relation = "below" if head["below_target"] else "not below"
        print(f"per-round ratio {head['ratio_paired']:.3f} is {relation} --target {head['target']:g}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    resolved = _resolve(args, parser)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, resolved["dtype"])

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    tag = args.tag or ("quick" if args.quick else "suite")
    if args.quick:
        results = run_headline(device, dtype, resolved["repeats"], resolved["warmup"], log, target=args.target)
    else:
        compile_implementations = [] if args.compile is None else (args.compile or ["sdpa"])
        specs = build_specs(args.variants, args.implementations, args.baselines, compile_implementations)
        options = SuiteOptions(
            specs=specs,
            sizes=args.sizes,
            device=device,
            dtype=dtype,
            batch_size=resolved["batch_size"],
            repeats=resolved["repeats"],
            warmup=resolved["warmup"],
            skip_memory=args.skip_memory,
            skip_throughput=args.skip_throughput,
            skip_training=args.skip_training,
            train_size=args.train_size,
            train_batch_size=args.train_batch_size,
            memory_timeout_s=args.memory_timeout_s,
            memory_limit_gib=args.memory_limit_gib or None,
            max_call_s=args.max_call_s,
        )
        results = run_suite(options, log, save=lambda partial: write_results(partial, args.output_dir, tag))
    json_path, markdown_path = write_results(results, args.output_dir, tag)
    print(render_markdown(results))
    if args.quick:
        _print_headline(results)
    print(f"wrote {json_path} and {markdown_path}", file=sys.stderr)
    return 0
