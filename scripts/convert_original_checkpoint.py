#!/usr/bin/env python
"""Convert an original SegRet (mmsegmentation) or RMT (ImageNet) checkpoint to a transformers folder.

    python scripts/convert_original_checkpoint.py --checkpoint segret_tiny_ade.pth --variant tiny \
        --id2label ade20k --output_dir segret-tiny-ade-512-512

The work is done by `segret_hf.conversion.convert_original_checkpoint`; this file only parses arguments and
reports the outcome. Nothing is written unless every original tensor is accounted for.
"""

from __future__ import annotations

import argparse
import sys

from segret_hf.configuration_segret import SEGRET_VARIANTS
from segret_hf.conversion import CheckpointConversionError, convert_original_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint", required=True, help="Original .pth: SegRet mmseg or RMT ImageNet (detected from its contents)."
    )
    network = parser.add_mutually_exclusive_group(required=True)
    network.add_argument("--variant", choices=sorted(SEGRET_VARIANTS), help="Released SegRet size.")
    network.add_argument(
        "--architecture", help="JSON file with the original constructor's arguments (embed_dims, num_heads, ...)."
    )
    parser.add_argument(
        "--num_labels",
        type=int,
        help="Classes of the segmentation head. Required for RMT ImageNet checkpoints unless --id2label is given; "
        "for mmseg checkpoints it must match the classifier's weights.",
    )
    parser.add_argument(
        "--id2label",
        help="Class names: a JSON file ({\"0\": \"wall\", ...} or a list) or one of ade20k, cityscapes, coco-stuff, "
        "coco-stuff-10k. Defaults to the mmseg checkpoint's meta['CLASSES'] when present.",
    )
    parser.add_argument("--output_dir", required=True, help="Destination folder (must be absent or empty).")
    parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty --output_dir.")
    parser.add_argument(
        "--image_size",
        help="Resize target of the saved image processor, N or HxW (default 512x512; e.g. 640 for large on ADE20K).",
    )
    parser.add_argument(
        "--size_divisor",
        type=int,
        help="Test-time alignment of the saved image processor: stretch resized images to multiples of N (mmseg "
        "AlignedResize; 0: none). Default: 32 for ADE20K and COCO-Stuff classes, else none.",
    )
    parser.add_argument("--license", default="apache-2.0", help="Hub license id written into the model card.")
    parser.add_argument("--push_to_hub", metavar="REPO_ID", help="Also upload the folder to this Hub model repo.")
    parser.add_argument("--private", action="store_true", help="Create the --push_to_hub repo as private.")
    parser.add_argument("--token", help="Hub token (defaults to the logged-in one).")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the conversion; returns the process exit status (1 on a rejected checkpoint or arguments)."""
    args = build_parser().parse_args(argv)
    try:
        result = convert_original_checkpoint(
            args.checkpoint,
            args.output_dir,
            variant=args.variant,
            architecture=args.architecture,
            num_labels=args.num_labels,
            id2label=args.id2label,
            image_size=args.image_size,
            size_divisor=args.size_divisor,
            overwrite=args.overwrite,
            push_to_hub=args.push_to_hub,
            private=args.private or None,
            token=args.token,
            license=args.license,
        )
    except (CheckpointConversionError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}\nNothing was written.", file=sys.stderr)
        return 1
    print(
        f"Converted {args.checkpoint} ({result.checkpoint_format}, sha256 {result.sha256}) to {result.output_dir}: "
        f"variant {result.variant or 'custom'}, {result.num_labels} classes"
        f"{f' ({result.dataset})' if result.dataset else ''}, {result.num_parameters:,} parameters, "
        f"{len(result.dropped)} original tensors dropped as unused or derived."
    )
    if result.hub_url:
        print(f"Uploaded to the Hub: {result.hub_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
