#!/usr/bin/env python
"""Evaluate a SegRet (or any transformers semantic-segmentation) model on a dataset split: mIoU & co.

Examples:
    python scripts/evaluate.py --model path/to/model --dataset_name data/ade20k --dataset_preset ade20k \\
        --split validation --output_file results.json      # a folder from scripts/prepare_dataset.py
    python scripts/evaluate.py ... --multi_scale --flip                 # the paper's "MS" numbers
    python scripts/evaluate.py ... --sliding_window --window 512 --stride 341

The protocol, the checks and the report live in `segret_hf.evaluation`; this file only parses arguments.
Exit status 1 when some samples could not be read (they are listed, and excluded from the metrics).
"""

from __future__ import annotations

import argparse
import sys

from transformers import AutoConfig

from segret_hf import SegRetConfig
from segret_hf.data.presets import MULTI_SCALE_RATIOS, get_preset
from segret_hf.evaluation import EvaluationReport, describe_failures, evaluate
from segret_hf.inference import DTYPES, InferenceProtocol, default_stride, hw_argument
from segret_hf.output_files import check_output_file


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (kept in a function so tests can parse without running)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Model folder or Hub id (with its image processor).")
    parser.add_argument("--dataset_name", required=True, help="Hub id, Hub-layout folder or save_to_disk folder.")
    parser.add_argument("--dataset_config_name", default=None, help="Dataset configuration, if it has several.")
    parser.add_argument(
        "--dataset_revision",
        default=None,
        help="Hub branch, tag or commit of the dataset, e.g. refs/convert/parquet (the Hub's parquet export of "
        "datasets that are loading scripts, such as scene_parse_150).",
    )
    parser.add_argument(
        "--dataset_preset",
        default=None,
        help="ade20k, cityscapes, coco-stuff or coco-stuff-10k: columns, label reduction and classes to check.",
    )
    parser.add_argument("--split", default="validation")
    parser.add_argument("--image_column_name", default=None, help="Default: the preset's or a common name.")
    parser.add_argument("--label_column_name", default=None, help="Default: the preset's or a common name.")
    parser.add_argument(
        "--do_reduce_labels",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Map label 0 to 255 (ignored) and the others to id - 1. Default: the preset's choice, else off.",
    )
    parser.add_argument(
        "--labels_are_train_ids",
        action="store_true",
        help="With a preset: the maps already hold train ids, skip the preset's raw-id lookup table or reduction.",
    )
    parser.add_argument("--output_file", default=None, help="Write the metrics and the protocol to this JSON.")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--device", default=None, help="Default: cuda when available, else cpu.")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--max_samples", type=int, default=None, help="Evaluate only the first N rows.")
    parser.add_argument("--multi_scale", action="store_true", help=f"Average over ratios {MULTI_SCALE_RATIOS}.")
    parser.add_argument("--scales", type=float, nargs="+", default=None, help="Custom ratios (implies multi-scale).")
    parser.add_argument("--flip", action="store_true", help="Also average horizontally flipped predictions.")
    parser.add_argument("--sliding_window", action="store_true", help="mmseg slide inference instead of whole image.")
    parser.add_argument(
        "--window", type=hw_argument, default=None, help="Window N or HxW (default: the preset's released crop)."
    )
    parser.add_argument("--stride", type=hw_argument, default=None, help="Step N or HxW (default: 2/3 of the window).")
    parser.add_argument(
        "--size_divisor",
        type=int,
        default=None,
        help="Stretch each resized image to multiples of N (mmseg AlignedResize; 0: no alignment). Default: the "
        "preset's choice (32 for ADE20K and COCO-Stuff, none for Cityscapes), else the model's image processor.",
    )
    parser.add_argument("--save_predictions", default=None, metavar="DIR", help="Write image|label|prediction PNGs.")
    parser.add_argument("--save_predictions_count", type=int, default=16, help="How many samples to draw.")
    parser.add_argument("--no_progress", action="store_true", help="Hide the progress bar.")
    return parser


def _released_crop(model: str, dataset_preset: str) -> tuple[int, int]:
    """Training crop of the released config for the model's variant on the dataset (tiny's for other models)."""
    config = AutoConfig.from_pretrained(model)
    variant = config.matching_variant() if isinstance(config, SegRetConfig) else None
    return get_preset(dataset_preset).recipe(variant).crop_size


def protocol_from_args(args: argparse.Namespace) -> InferenceProtocol:
    """The inference protocol the flags describe; errors name the offending flag."""
    scales = tuple(args.scales) if args.scales else (MULTI_SCALE_RATIOS if args.multi_scale else (1.0,))
    window = stride = None
    if args.sliding_window:
        window = args.window
        if window is None and args.dataset_preset:
            window = _released_crop(args.model, args.dataset_preset)
        if window is None:
            raise ValueError("--sliding_window needs --window (or a --dataset_preset to take its crop size).")
        stride = args.stride or default_stride(window)
    elif args.window or args.stride:
        raise ValueError("--window/--stride only apply with --sliding_window.")
    return InferenceProtocol(scales=scales, flip=args.flip, window=window, stride=stride)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        protocol = protocol_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    try:
        if args.output_file:
            check_output_file(args.output_file, "--output_file")
        report = run(args, protocol)
    except (ValueError, OSError) as error:  # bad input: the message names it; no traceback needed
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.format_table())
    print(f"{report.num_samples} samples in {report.seconds:.1f} s, protocol {protocol.to_dict()}")
    if args.output_file:
        report.write_json(args.output_file)
        print(f"Wrote {args.output_file}")
    if report.failures:
        print(
            f"error: {len(report.failures)} sample(s) could not be read and were excluded from the metrics: "
            f"{describe_failures(report.failures)}",
            file=sys.stderr,
        )
        return 1
    return 0


def run(args: argparse.Namespace, protocol: InferenceProtocol) -> EvaluationReport:
    """Call :func:`segret_hf.evaluation.evaluate` with the parsed options."""
    return evaluate(
        model=args.model,
        dataset_name=args.dataset_name,
        split=args.split,
        dataset_config_name=args.dataset_config_name,
        dataset_revision=args.dataset_revision,
        dataset_preset=args.dataset_preset,
        image_column=args.image_column_name,
        label_column=args.label_column_name,
        do_reduce_labels=args.do_reduce_labels,
        labels_are_train_ids=args.labels_are_train_ids,
        protocol=protocol,
        size_divisor=args.size_divisor,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        max_samples=args.max_samples,
        predictions_dir=args.save_predictions,
        num_saved_predictions=args.save_predictions_count,
        progress=not args.no_progress,
    )


if __name__ == "__main__":
    sys.exit(main())
