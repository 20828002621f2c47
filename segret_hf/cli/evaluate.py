"""`segret-evaluate` (`scripts/evaluate.py`): mIoU & co. of a semantic-segmentation model on a dataset split.

    segret-evaluate --model path/to/model --dataset_name data/ade20k --dataset_preset ade20k \\
        --split validation --output_file results.json      # a folder from scripts/prepare_dataset.py
    segret-evaluate ... --multi_scale --flip                 # the paper's "MS" numbers
    segret-evaluate ... --sliding_window --window 512 --stride 341

The protocol, the checks and the report live in :mod:`segret_hf.evaluation`. Exit status 2, with one `error:`
line, on bad input; 1 when some samples could not be read (they are listed, and excluded from the metrics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from transformers import AutoConfig, HfArgumentParser

from ..configuration_segret import SegRetConfig
from ..data.presets import MULTI_SCALE_RATIOS, get_preset
from ..evaluation import EvaluationData, EvaluationOptions, EvaluationReport, describe_failures, evaluate
from ..inference import DTYPES, InferenceProtocol, default_stride, parse_hw
from ..output_files import check_output_file
from .dataset_arguments import DatasetArguments
from .errors import report_error
from .parsing import command_parser


@dataclass
class EvaluationArguments:
    """Options of `segret-evaluate` besides the dataset's: the model, the protocol, the outputs."""

    model: str = field(metadata={"help": "Model folder or Hub id (with its image processor)."})
    split: str = field(default="validation", metadata={"help": "Split to evaluate."})
    output_file: str | None = field(default=None, metadata={"help": "Write the metrics and the protocol to this JSON."})
    batch_size: int = field(default=1, metadata={"help": "Images per forward pass."})
    device: str | None = field(default=None, metadata={"help": "Default: cuda when available, else cpu."})
    dtype: str = field(default="float32", metadata={"help": "Inference dtype.", "choices": list(DTYPES)})
    max_samples: int | None = field(default=None, metadata={"help": "Evaluate only the first N rows."})
    multi_scale: bool = field(default=False, metadata={"help": f"Average over ratios {MULTI_SCALE_RATIOS}."})
    scales: list[float] | None = field(default=None, metadata={"help": "Custom ratios (implies multi-scale)."})
    flip: bool = field(default=False, metadata={"help": "Also average horizontally flipped predictions."})
    sliding_window: bool = field(
        default=False, metadata={"help": "mmseg slide inference instead of whole image."}
    )
    window: str | None = field(
        default=None, metadata={"help": "Window N or HxW (default: the preset's released crop)."}
    )
    stride: str | None = field(default=None, metadata={"help": "Step N or HxW (default: 2/3 of the window)."})
    size_divisor: int | None = field(
        default=None,
        metadata={
            "help": "Stretch each resized image to multiples of N (mmseg AlignedResize; 0: no alignment). Default: "
            "the preset's choice (32 for ADE20K and COCO-Stuff, none for Cityscapes), else the model's image "
            "processor."
        },
    )
    save_predictions: str | None = field(
        default=None, metadata={"help": "Write image|label|prediction PNGs to this folder.", "metavar": "DIR"}
    )
    save_predictions_count: int = field(default=16, metadata={"help": "How many samples to draw."})
    no_progress: bool = field(default=False, metadata={"help": "Hide the progress bar."})


def _released_crop(model: str, dataset_preset: str) -> tuple[int, int]:
    """Training crop of the released config for the model's variant on the dataset (tiny's for other models)."""
    config = AutoConfig.from_pretrained(model)
    variant = config.matching_variant() if isinstance(config, SegRetConfig) else None
    return get_preset(dataset_preset).recipe(variant).crop_size


def inference_protocol(args: EvaluationArguments, dataset_preset: str | None) -> InferenceProtocol:
    """The inference protocol the flags describe; errors name the offending flag."""
    scales = tuple(args.scales) if args.scales else (MULTI_SCALE_RATIOS if args.multi_scale else (1.0,))
    window = stride = None
    if args.sliding_window:
        window = parse_hw(args.window, "--window") if args.window else None
        if window is None and dataset_preset:
            window = _released_crop(args.model, dataset_preset)
        if window is None:
            raise ValueError("--sliding_window needs --window (or a --dataset_preset to take its crop size).")
        stride = parse_hw(args.stride, "--stride") if args.stride else default_stride(window)
    elif args.window or args.stride:
        raise ValueError("--window/--stride only apply with --sliding_window.")
    return InferenceProtocol(scales=scales, flip=args.flip, window=window, stride=stride)


def run(dataset: DatasetArguments, args: EvaluationArguments, protocol: InferenceProtocol) -> EvaluationReport:
    """Evaluate as the parsed options say (see :func:`segret_hf.evaluation.evaluate`)."""
    data = EvaluationData(split=args.split, max_samples=args.max_samples, **asdict(dataset))
    options = EvaluationOptions(
        protocol=protocol,
        size_divisor=args.size_divisor,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        progress=not args.no_progress,
        predictions_dir=args.save_predictions,
        num_saved_predictions=args.save_predictions_count,
    )
    return evaluate(args.model, data, options)


def build_parser() -> HfArgumentParser:
    """The parser of `segret-evaluate`'s options (`DatasetArguments`, `EvaluationArguments`)."""
    return command_parser((DatasetArguments, EvaluationArguments), __doc__)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns the process exit status."""
    parser = build_parser()
    dataset, args = parser.parse_args_into_dataclasses(argv)
    if dataset.dataset_name is None:
        parser.error("the following arguments are required: --dataset_name")
    try:
        protocol = inference_protocol(args, dataset.dataset_preset)
    except ValueError as error:
        parser.error(str(error))
    try:
        if args.output_file:
            check_output_file(args.output_file, "--output_file")
        report = run(dataset, args, protocol)
    except (ValueError, OSError) as error:  # bad input: the message names it; no traceback needed
        return report_error(error, 2)
    print(report.format_table())
    print(f"{report.num_samples} samples in {report.seconds:.1f} s, protocol {protocol.to_dict()}")
    if args.output_file:
        report.write_json(args.output_file)
        print(f"Wrote {args.output_file}")
    if report.failures:
        return report_error(
            f"{len(report.failures)} sample(s) could not be read and were excluded from the metrics: "
            f"{describe_failures(report.failures)}",
            1,
        )
    return 0
