"""Command line of the GPU report (`python benchmarks/gpu_report.py --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from segret_hf.configuration_segret import SEGRET_VARIANTS
from segret_hf.inference import hw_argument

from .cli import DEFAULT_OUTPUT_DIR
from .gpu import STEPS, GpuOptions, render_gpu_markdown, run_report, write_gpu_results
from .models import SEGFORMER_BASELINES, segformer_spec, segret_spec

DEFAULT_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "original_checkpoints"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "SegRet on one CUDA device: fixture and mixed-precision correctness, forward and training throughput "
            "against SegFormer, FlexAttention and torch.compile, model FLOP utilisation and peak memory. Steps run "
            "in that order and the result files are rewritten after each, so a run cut short keeps what it measured."
        ),
    )
    variants = list(SEGRET_VARIANTS)
    parser.add_argument("--variants", nargs="+", choices=variants, default=variants, help="default: all")
    parser.add_argument(
        "--baselines", nargs="*", choices=list(SEGFORMER_BASELINES), default=list(SEGFORMER_BASELINES),
        help="SegFormer sizes in the forward and training tables (default: all)",
    )  # fmt: skip
    parser.add_argument("--flex_variants", nargs="*", choices=variants, default=variants, help="default: all")
    parser.add_argument(
        "--compile_variants", nargs="*", choices=variants, default=["tiny", "small"],
        help="torch.compile(model) of sdpa, timed against eager mode (default: tiny small)",
    )  # fmt: skip
    parser.add_argument(
        "--channels_last_variants", nargs="*", choices=variants, default=["tiny", "base"],
        help="extra sdpa rows with channels-last convolutions, forward and training (default: tiny base)",
    )  # fmt: skip
    parser.add_argument(
        "--sizes", nargs="+", type=hw_argument, default=[(512, 512), (1024, 2048)], help="forward HEIGHTxWIDTH"
    )
    parser.add_argument(
        "--batch_sizes", nargs="+", type=int, default=[8, 1], help="forward batch per --sizes entry (default: 8 1)"
    )
    parser.add_argument("--train_size", type=hw_argument, default=(512, 512), help="default: 512x512")
    parser.add_argument("--train_batch_size", type=int, default=8, help="default: 8")
    parser.add_argument(
        "--correctness_size", type=hw_argument, default=(512, 512), help="input of the precision checks (512x512)"
    )
    parser.add_argument("--correctness_batch_size", type=int, default=2, help="default: 2")
    parser.add_argument(
        "--steps", nargs="+", choices=STEPS, default=list(STEPS),
        help="which steps to run (default: all); FLOPs are counted whenever a timing step runs",
    )  # fmt: skip
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default: 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds, the first call included (default: 3)")
    parser.add_argument(
        "--budget_s", type=float, default=0.0,
        help="start no step (or FlexAttention / compile configuration) after this many seconds; 0: no limit",
    )  # fmt: skip
    parser.add_argument(
        "--fixtures", type=Path, default=DEFAULT_FIXTURES,
        help="folder of the original-implementation fixtures (tiny_a_*); skipped when absent",
    )  # fmt: skip
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a smoke run of the code paths")
    parser.add_argument("--output_dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="default: benchmarks/results")
    parser.add_argument("--tag", default="gpu-report", help="result files <device>_<tag>.json/.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.batch_sizes) != len(args.sizes):
        sizes, batches = len(args.sizes), len(args.batch_sizes)
        parser.error(f"--batch_sizes needs one batch per --sizes entry ({sizes}), got {batches}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available (use --device cpu for a smoke run)")
    if args.device == "cpu" and args.dtype != "float32":
        parser.error("--device cpu runs float32 only: pass --dtype float32")
    if min(args.repeats, args.warmup, args.train_batch_size, args.correctness_batch_size, *args.batch_sizes) < 1:
        parser.error("--repeats, --warmup and every batch size must be at least 1")
    baselines = [segformer_spec(name) for name in args.baselines]
    channels_last = [segret_spec(v, "sdpa", channels_last=True) for v in args.channels_last_variants]
    options = GpuOptions(
        device=torch.device(args.device),
        forward_specs=[segret_spec(v, i) for v in args.variants for i in ("sdpa", "eager")] + channels_last + baselines,
        training_specs=[segret_spec(v, "sdpa") for v in args.variants] + channels_last + baselines,
        flex_specs=[segret_spec(v, "flex_attention") for v in args.flex_variants],
        compile_specs=[segret_spec(v, "sdpa", compiled=True) for v in args.compile_variants],
        correctness_specs=[segret_spec("tiny", "sdpa")],
        forward_shapes=list(zip(args.sizes, args.batch_sizes)),
        training_shape=(args.train_size, args.train_batch_size),
        correctness_shape=(args.correctness_size, args.correctness_batch_size),
        dtype=getattr(torch, args.dtype),
        repeats=args.repeats,
        warmup=args.warmup,
        budget_s=args.budget_s or float("inf"),
        fixtures=args.fixtures if args.fixtures.is_dir() else None,
        steps=tuple(args.steps) + (("flops",) if set(args.steps) - {"peak", "correctness"} else ()),
    )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def save(results: dict) -> None:
        write_gpu_results(results, args.output_dir, args.tag)

    results = run_report(options, log, save)
    json_path, markdown_path = write_gpu_results(results, args.output_dir, args.tag)
    print(render_gpu_markdown(results))
    print(f"wrote {json_path} and {markdown_path}", file=sys.stderr)
    return 0
