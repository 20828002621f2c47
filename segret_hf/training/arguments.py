"""Command-line arguments of the training script and the paper's defaults.

Every `TrainingArguments` field is accepted as usual. On top of transformers' own defaults, the script
applies the paper's recipe (AdamW, lr 1e-4, weight decay 0.01, polynomial decay with power 0.9 to 0) and,
with `--dataset_preset`, the dataset's crop size, total batch size and iteration count. A default applies
only where the user did not set the flag, which is why the parser first finds out which flags were given
(on the command line or in a JSON/YAML file) before building the dataclasses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..configuration_segret import SEGRET_VARIANTS
from ..data.presets import DATASET_PRESETS, DatasetPreset, get_preset
from ..inference import parse_hw
from .sample_data import SAMPLE_DATASET_DIR, SAMPLE_JOB_DEFAULTS

PAPER_LEARNING_RATE = 1e-4
PAPER_WEIGHT_DECAY = 0.01
PAPER_POLY_POWER = 0.9
DEFAULT_CROP_SIZE = 512
PRESET_CHOICES = (*DATASET_PRESETS, "coco-stuff-10k")


@dataclass
class ModelArguments:
    """Which network to train: a fresh variant, a saved SegRet to fine-tune, optionally a pretrained backbone."""

    model_variant: str | None = field(
        default=None,
        metadata={"help": "Train a freshly initialised SegRet of this size.", "choices": list(SEGRET_VARIANTS)},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Fine-tune a saved SegRet (local folder or Hub id). Its classifier is re-initialised when the "
            "dataset's classes differ from the model's."
        },
    )
    backbone_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Initialise the backbone from a converted SegRet folder / Hub id, or from an original RMT "
            "ImageNet (or SegRet mmsegmentation) .pth file; the decoder starts fresh."
        },
    )


@dataclass
class DataArguments:
    """Which data to train on and how to read it."""

    dataset_name: str = field(
        default=str(SAMPLE_DATASET_DIR),
        metadata={
            "help": "Hub dataset id, local folder in Hub layout (data/train-*.parquet, ...) or save_to_disk "
            "folder. Defaults to the small synthetic dataset shipped with segret_hf, which also brings CPU-sized "
            "defaults (96-pixel crops, 150 steps, evaluation every 50, 2 prediction pictures)."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Dataset configuration (Hub)."})
    dataset_revision: str | None = field(
        default=None,
        metadata={
            "help": "Hub branch, tag or commit of the dataset, e.g. refs/convert/parquet (the Hub's parquet export "
            "of datasets that are loading scripts, such as scene_parse_150)."
        },
    )
    dataset_preset: str | None = field(
        default=None,
        metadata={
            "help": "Apply the paper's facts and defaults for this dataset (classes, label mapping, crop size, "
            "batch size, iterations, resize scales).",
            "choices": list(PRESET_CHOICES),
        },
    )
    image_column_name: str | None = field(default=None, metadata={"help": "Column holding the images."})
    label_column_name: str | None = field(default=None, metadata={"help": "Column holding the label maps."})
    id2label: str | None = field(
        default=None,
        metadata={
            "help": 'Class names: a JSON file ({"0": "sky", ...} or a list) or a built-in label set (ade20k, '
            "cityscapes, coco-stuff, coco-stuff-10k)."
        },
    )
    do_reduce_labels: bool | None = field(
        default=None,
        metadata={"help": "Map label 0 to 255 (ignored) and every other label l to l - 1 (ADE20K-style)."},
    )
    labels_are_train_ids: bool = field(
        default=False,
        metadata={
            "help": "The label maps already hold train ids (e.g. Cityscapes *_labelTrainIds.png): skip the "
            "preset's raw-id lookup table."
        },
    )
    crop_size: str | None = field(
        default=None, metadata={"help": "Training crop: N or HxW (default: the preset's, else 512)."}
    )
    train_scale: str | None = field(
        default=None,
        metadata={
            "help": "LONGxSHORT bound of the keep-ratio training rescale before the 0.5-2.0 ratio (mmseg "
            "img_scale; default: the preset's, else 4*C x C with C the larger crop side)."
        },
    )
    test_scale: str | None = field(
        default=None,
        metadata={"help": "LONGxSHORT bound of the keep-ratio evaluation resize (default: the train scale)."},
    )
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    validation_split: str = field(default="validation", metadata={"help": "Split to evaluate on."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation rows."})
    streaming: bool = field(default=False, metadata={"help": "Stream the dataset instead of preparing it on disk."})
    rows_to_check: int = field(
        default=32,
        metadata={"help": "Rows per split decoded and checked before training (columns, sizes, label values)."},
    )


@dataclass
class OutputArguments:
    """What happens in the output directory besides checkpoints."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Allow writing into a non-empty --output_dir (it is refused otherwise, unless resuming)."},
    )
    prediction_overlays: int = field(
        default=0,
        metadata={
            "help": "After training, write prediction overlays (with a legend) and image | label | prediction "
            "strips of the first N validation images to OUTPUT_DIR/predictions."
        },
    )


@dataclass(frozen=True)
class SizeArguments:
    """The parsed geometry of a run: crop `(height, width)` and the `(long, short)` resize bounds."""

    crop_size: tuple[int, int]
    train_scale: tuple[int, int]
    test_scale: tuple[int, int]


def parse_size(text: str, what: str) -> tuple[int, int]:
    """`"512"` -> (512, 512); `"512x1024"` -> (512, 1024); a ValueError naming the flag otherwise."""
    try:
        return parse_hw(str(text))
    except ValueError as error:
        raise ValueError(f"--{what}: {error}") from error


def resolve_sizes(data_args: DataArguments, preset: DatasetPreset | None) -> SizeArguments:
    """Crop and resize scales from the flags, else the preset, else scales derived from the crop."""
    if data_args.crop_size is not None:
        crop = parse_size(data_args.crop_size, "crop_size")
    else:
        crop = preset.crop_size if preset else (DEFAULT_CROP_SIZE, DEFAULT_CROP_SIZE)
    if data_args.train_scale is not None:
        train_scale = parse_size(data_args.train_scale, "train_scale")
    elif preset is not None and data_args.crop_size is None:
        train_scale = preset.train_scale
    else:  # ADE20K's ratio: crop 512 -> scale (2048, 512)
        train_scale = (4 * max(crop), max(crop))
    if data_args.test_scale is not None:
        test_scale = parse_size(data_args.test_scale, "test_scale")
    elif preset is not None and data_args.crop_size is None and data_args.train_scale is None:
        test_scale = preset.test_scale
    else:
        test_scale = train_scale
    return SizeArguments(crop, tuple(sorted(train_scale, reverse=True)), tuple(sorted(test_scale, reverse=True)))


def preset_for(model_args: ModelArguments, data_args: DataArguments) -> DatasetPreset | None:
    """The dataset preset adjusted to the model variant (e.g. ADE20K large trains on 640 crops)."""
    if data_args.dataset_preset is None:
        return None
    preset = get_preset(data_args.dataset_preset)
    return preset.for_variant(model_args.model_variant) if model_args.model_variant else preset


def _parser() -> HfArgumentParser:
    return HfArgumentParser((ModelArguments, DataArguments, OutputArguments, TrainingArguments))


def _explicit_arguments(parser: HfArgumentParser, argv: list[str]) -> dict[str, Any]:
    """The values the user actually gave, from the command line or from a single JSON/YAML file."""
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        text = Path(argv[0]).read_text(encoding="utf-8")
        return dict(json.loads(text) if argv[0].endswith(".json") else yaml.safe_load(text))
    for action in parser._actions:
        action.default = argparse.SUPPRESS
        action.required = False
    return vars(parser.parse_args(argv))


def default_values(
    model_args: ModelArguments, data_args: DataArguments, explicit: dict[str, Any], world_size: int
) -> dict[str, Any]:
    """Values for every flag the user left unset: the paper's recipe, the preset's facts, or (on the shipped
    sample dataset) CPU-sized settings."""
    defaults: dict[str, Any] = {
        "learning_rate": PAPER_LEARNING_RATE,
        "weight_decay": PAPER_WEIGHT_DECAY,
        # The transforms read the image and label columns: the Trainer must not drop them.
        "remove_unused_columns": False,
        # Metrics come from a streaming confusion matrix, updated batch by batch.
        "batch_eval_metrics": True,
        "metric_for_best_model": "mean_iou",
        # Every parameter takes part in every forward pass; the search DDP would otherwise do is wasted.
        "ddp_find_unused_parameters": False,
    }
    if "lr_scheduler_type" not in explicit:
        defaults["lr_scheduler_type"] = "polynomial"
        defaults["lr_scheduler_kwargs"] = {"power": PAPER_POLY_POWER, "lr_end": 0.0}
    preset = preset_for(model_args, data_args)
    if preset is not None:
        defaults["max_steps"] = preset.train_iterations
        accumulation = int(explicit.get("gradient_accumulation_steps", 1))
        # The paper's batch sizes are totals over all GPUs.
        per_device = math.ceil(preset.train_batch_size / (world_size * accumulation))
        defaults["per_device_train_batch_size"] = max(1, per_device)
        defaults["learning_rate"] = preset.learning_rate
        defaults["weight_decay"] = preset.weight_decay
    elif Path(data_args.dataset_name).resolve() == SAMPLE_DATASET_DIR:
        defaults.update(SAMPLE_JOB_DEFAULTS)
    return {key: value for key, value in defaults.items() if key not in explicit}


def parse_arguments(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, DataArguments, OutputArguments, TrainingArguments, SizeArguments]:
    """Parse the command line (or one JSON/YAML file) with the paper's defaults filled in."""
    argv = sys.argv[1:] if argv is None else list(argv)
    explicit = _explicit_arguments(_parser(), argv)
    own_parser = HfArgumentParser((ModelArguments, DataArguments))
    model_args, data_args = own_parser.parse_dict(explicit, allow_extra_keys=True)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    values = {**default_values(model_args, data_args, explicit, world_size), **explicit}
    model_args, data_args, output_args, training_args = _parser().parse_dict(values)
    sizes = resolve_sizes(data_args, preset_for(model_args, data_args))
    return model_args, data_args, output_args, training_args, sizes
