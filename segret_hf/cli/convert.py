"""`segret-convert` (`scripts/convert_original_checkpoint.py`): an original checkpoint -> a Hub-ready folder.

    segret-convert --checkpoint segret_tiny_ade.pth --variant tiny --id2label ade20k \\
        --output_dir segret-tiny-ade-512-512 [--push_to_hub me/segret-tiny-ade-512-512]

Accepts SegRet mmsegmentation and RMT ImageNet checkpoints (detected). The steps are those of
:mod:`segret_hf.conversion`; every check runs before anything is written, so nothing is written unless every
original tensor is accounted for. Exit status 1, with one `error:` line, on a rejected checkpoint or arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from ..checkpoint_files import read_json_file
from ..configuration_segret import SEGRET_VARIANTS
from ..conversion import (
    CheckpointConversionError,
    conversion_config,
    convert,
    file_sha256,
    load_original_checkpoint,
    push,
    release_processor,
    resolve_labels,
    write_folder,
)
from ..data.label_maps import parse_id2label_spec
from ..inference import parse_hw
from ..model_card import SourceCheckpoint, render_model_card
from ..output_folders import check_output_dir
from .errors import report_error
from .parsing import command_parser


@dataclass
class ConversionArguments:
    """Options of `segret-convert`: the checkpoint, its architecture and classes, and the folder to write."""

    checkpoint: str = field(
        metadata={"help": "Original .pth: SegRet mmseg or RMT ImageNet (detected from its contents)."}
    )
    output_dir: str = field(metadata={"help": "Destination folder (must be absent or empty)."})
    variant: str | None = field(
        default=None,
        metadata={
            "help": "Released SegRet size. Exactly one of --variant and --architecture.",
            "choices": sorted(SEGRET_VARIANTS),
        },
    )
    architecture: str | None = field(
        default=None,
        metadata={"help": "JSON file with the original constructor's arguments (embed_dims, num_heads, ...)."},
    )
    num_labels: int | None = field(
        default=None,
        metadata={
            "help": "Classes of the segmentation head. Required for RMT ImageNet checkpoints unless --id2label is "
            "given; for mmseg checkpoints it must match the classifier's weights."
        },
    )
    id2label: str | None = field(
        default=None,
        metadata={
            "help": 'Class names: a JSON file ({"0": "wall", ...} or a list) or one of ade20k, cityscapes, '
            "coco-stuff, coco-stuff-10k. Defaults to the mmseg checkpoint's meta['CLASSES'] when present."
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace a non-empty --output_dir."})
    image_size: str | None = field(
        default=None,
        metadata={
            "help": "Resize target of the saved image processor, N or HxW. Default: the released config's "
            "keep-ratio test scale for the dataset and variant, else 512x512."
        },
    )
    size_divisor: int | None = field(
        default=None,
        metadata={
            "help": "Test-time alignment of the saved image processor: stretch resized images to multiples of N "
            "(mmseg AlignedResize; 0: none). Default: 32 for ADE20K and COCO-Stuff classes, else none."
        },
    )
    license: str = field(default="apache-2.0", metadata={"help": "Hub license id written into the model card."})
    push_to_hub: str | None = field(
        default=None, metadata={"help": "Also upload the folder to this Hub model repo.", "metavar": "REPO_ID"}
    )
    private: bool = field(default=False, metadata={"help": "Create the --push_to_hub repo as private."})
    token: str | None = field(default=None, metadata={"help": "Hub token (defaults to the logged-in one)."})


def image_size_argument(value: str | None) -> dict[str, int] | None:
    """`--image_size` as a processor size: `"512"` -> 512x512, `"512x1024"` -> height 512, width 1024."""
    if value is None:
        return None
    height, width = parse_hw(value, "--image_size")
    return {"height": height, "width": width}


def convert_checkpoint_file(args: ConversionArguments) -> None:
    """Convert, write and (with `--push_to_hub`) upload as `args` say, printing what was done."""
    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, args.overwrite, "--overwrite")
    size = image_size_argument(args.image_size)
    architecture = read_json_file(args.architecture, "--architecture") if args.architecture else None
    checkpoint = load_original_checkpoint(args.checkpoint)
    id2label, id2label_dataset = parse_id2label_spec(args.id2label) if args.id2label else (None, None)
    architecture_classes = (architecture or {}).get("num_classes")
    labels = resolve_labels(checkpoint, args.num_labels, id2label, id2label_dataset, architecture_classes)
    config = conversion_config(args.variant, architecture, labels.config_fields())
    variant = args.variant or config.matching_variant()
    conversion = convert(checkpoint, config)
    processor = release_processor(labels.dataset, variant, size, args.size_divisor)
    num_parameters = conversion.model.num_parameters()
    sha256 = file_sha256(args.checkpoint)
    card = render_model_card(
        num_parameters=num_parameters,
        num_labels=labels.num_labels,
        model_id=args.push_to_hub or str(output_dir),
        variant=variant,
        dataset=labels.dataset,
        source=SourceCheckpoint(Path(args.checkpoint).name, sha256, checkpoint.description),
        decoder_trained=checkpoint.decoder_trained,
        architecture=None if variant else architecture,
        license=args.license,
    )
    write_folder(output_dir, conversion.model, processor, card)
    print(
        f"Converted {args.checkpoint} ({checkpoint.format}, sha256 {sha256}) to {output_dir}: variant "
        f"{variant or 'custom'}, {labels.num_labels} classes{f' ({labels.dataset})' if labels.dataset else ''}, "
        f"{num_parameters:,} parameters, {len(conversion.dropped)} original tensors dropped as unused or derived."
    )
    if args.push_to_hub:
        hub_url = push(output_dir, args.push_to_hub, private=args.private or None, token=args.token)
        print(f"Uploaded to the Hub: {hub_url}")


def build_parser() -> HfArgumentParser:
    """The parser of `segret-convert`'s options (`ConversionArguments`)."""
    return command_parser(ConversionArguments, __doc__)


def main(argv: list[str] | None = None) -> int:
    """Run the conversion; returns the process exit status (1 on a rejected checkpoint or arguments)."""
    parser = build_parser()
    (args,) = parser.parse_args_into_dataclasses(argv)
    if (args.variant is None) == (args.architecture is None):
        parser.error("pass exactly one of --variant and --architecture.")
    try:
        convert_checkpoint_file(args)
    except (CheckpointConversionError, FileExistsError, FileNotFoundError, ValueError) as error:
        return report_error(f"{error}\nNothing was written.", 1)
    return 0
