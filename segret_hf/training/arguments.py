"""Command-line arguments of the training script and the released recipes' defaults.

Every `TrainingArguments` field is accepted as usual. On top of transformers' own defaults, the script
applies a released recipe (:mod:`segret_hf.data.recipes`): with `--dataset_preset`, the configuration
released for that dataset and model variant (learning rate, betas, weight decay, parameter-wise rules,
warmup, poly schedule, total batch, iterations, crop, scales); without one, the generic recipe. A default
applies only where the user did not set the flag, which is why the parser first finds out which flags were
given (on the command line or in a JSON/YAML file) before building the dataclasses. The recipe that
results, overrides included, is returned with the arguments so that the run, its card and its
`trainer_state.json` all state the same numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..cli.dataset_arguments import DatasetArguments
from ..configuration_segret import SEGRET_VARIANTS, SegRetConfig
from ..data.presets import get_preset
from ..data.recipes import DEFAULT_RECIPE, PARAMWISE_REGIMES, TrainingRecipe
from ..inference import parse_hw
from .loader_defaults import data_loader_defaults
from .sample_data import SAMPLE_DATASET_DIR, SAMPLE_JOB_DEFAULTS

logger = logging.getLogger(__name__)


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
    """How the training run uses its dataset (which one, and how its labels are read: `DatasetArguments`)."""

    id2label: str | None = field(
        default=None,
        metadata={
            "help": 'Class names: a JSON file ({"0": "sky", ...} or a list) or a built-in label set (ade20k, '
            "cityscapes, coco-stuff, coco-stuff-10k)."
        },
    )
    crop_size: str | None = field(
        default=None, metadata={"help": "Training crop: N or HxW (default: the recipe's, 512 without a preset)."}
    )
    train_scale: str | None = field(
        default=None,
        metadata={
            "help": "LONGxSHORT bound of the keep-ratio training rescale before the random ratio (mmseg "
            "img_scale; default: the recipe's, or 4*C x C with C the larger side of a --crop_size given)."
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
    skip_unreadable_samples: bool = field(
        default=False,
        metadata={
            "help": "Train on when a training row's image or label map cannot be decoded: the next readable row "
            "takes its place, and the skipped rows are logged and listed in the model card. Without it such a "
            "row stops the run with an error naming it."
        },
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


@dataclass
class RecipeArguments:
    """Recipe fields that `TrainingArguments` has no flag for; unset ones come from the recipe."""

    paramwise_regime: str | None = field(
        default=None,
        metadata={
            "help": "Parameter-wise optimiser rules: none, res (backbone norms at 0.1x lr without decay, no decay on "
            "other norms) or sf3 (decoder at 10x lr, no decay on 'norm' parameters). Default: the recipe's.",
            "choices": list(PARAMWISE_REGIMES),
        },
    )
    warmup_start_factor: float | None = field(
        default=None,
        metadata={
            "help": "Factor of the learning rate at step 0 of the linear warmup (mmcv warmup_ratio; the length is "
            "--warmup_steps). Default: the recipe's (1e-6)."
        },
    )
    resize_ratio_range: list[float] | None = field(
        default=None,
        metadata={"help": "Two numbers: range of the random rescale ratio around --train_scale (default 0.5 2.0)."},
    )
    cat_max_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Random crops where one class covers at least this fraction of the labelled pixels are "
            "redrawn (up to 10 times). Default: the recipe's (0.75); 1 disables."
        },
    )


@dataclass(frozen=True)
class SizeArguments:
    """The parsed geometry of a run: crop `(height, width)` and the `(long, short)` resize bounds."""

    crop_size: tuple[int, int]
    train_scale: tuple[int, int]
    test_scale: tuple[int, int]


def resolve_sizes(data_args: DataArguments, recipe: TrainingRecipe) -> SizeArguments:
    """Crop and resize scales from the flags, else the recipe; scales follow a crop given without them."""
    crop = parse_hw(data_args.crop_size, "--crop_size") if data_args.crop_size is not None else recipe.crop_size
    if data_args.train_scale is not None:
        train_scale = parse_hw(data_args.train_scale, "--train_scale")
    elif data_args.crop_size is None:
        train_scale = recipe.train_scale
    else:  # the ADE20K ratio: crop 512 -> scale (2048, 512)
        train_scale = (4 * max(crop), max(crop))
    if data_args.test_scale is not None:
        test_scale = parse_hw(data_args.test_scale, "--test_scale")
    elif data_args.crop_size is None and data_args.train_scale is None:
        test_scale = recipe.test_scale
    else:
        test_scale = train_scale
    return SizeArguments(crop, tuple(sorted(train_scale, reverse=True)), tuple(sorted(test_scale, reverse=True)))


def recipe_variant(model_args: ModelArguments) -> str | None:
    """The released variant whose recipe applies: the one asked for, else the one the starting model is."""
    if model_args.model_variant:
        return model_args.model_variant
    source = model_args.model_name_or_path or model_args.backbone_checkpoint
    if source and not Path(source).is_file():
        try:
            return SegRetConfig.from_pretrained(source).matching_variant()
        except OSError:
            return None  # the model setup reports an unreadable model with its own message
    return None


def base_recipe(model_args: ModelArguments, dataset_preset: str | None) -> TrainingRecipe:
    """The released recipe of the preset and variant, or the generic one without a preset."""
    if dataset_preset is None:
        return DEFAULT_RECIPE
    variant = recipe_variant(model_args)
    if variant is None:
        logger.warning("The model is not a released variant: using the tiny recipe of %s.", dataset_preset)
    return get_preset(dataset_preset).recipe(variant)


ARGUMENT_CLASSES = (
    ModelArguments, DatasetArguments, DataArguments, OutputArguments, RecipeArguments, TrainingArguments
)
"""The dataclasses of the training command line, in the order `parse_arguments` fills them."""


_NOT_GIVEN = object()
"""What `_explicit_arguments` fills the namespace with before parsing: a flag that keeps it was not given."""


def _explicit_arguments(argv: list[str]) -> dict[str, Any]:
    """The values the user actually gave, from the command line or from a single JSON/YAML file.

    On the command line, argparse applies no default to a destination that the namespace it fills already
    holds, so a namespace pre-filled with a marker keeps exactly the flags not given, whatever their spelling
    (`--flag value`, `--flag=value`, a bare boolean flag or its `--no_` form) and even when a given value
    equals the default.
    """
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        text = Path(argv[0]).read_text(encoding="utf-8")
        return dict(json.loads(text) if argv[0].endswith(".json") else yaml.safe_load(text))
    names = [item.name for cls in ARGUMENT_CLASSES for item in fields(cls)]
    unset = argparse.Namespace(**dict.fromkeys(names, _NOT_GIVEN))
    namespace = HfArgumentParser(ARGUMENT_CLASSES).parse_args(argv, unset)
    return {name: value for name, value in vars(namespace).items() if value is not _NOT_GIVEN}


def default_values(
    model_args: ModelArguments, dataset_args: DatasetArguments, explicit: dict[str, Any], world_size: int
) -> dict[str, Any]:
    """Values for every flag the user left unset: the recipe's, or (on the shipped sample dataset, which is
    the default) CPU-sized settings."""
    recipe = base_recipe(model_args, dataset_args.dataset_preset)
    defaults: dict[str, Any] = {
        "dataset_name": str(SAMPLE_DATASET_DIR),
        "learning_rate": recipe.learning_rate,
        "weight_decay": recipe.weight_decay,
        "adam_beta1": recipe.adam_betas[0],
        "adam_beta2": recipe.adam_betas[1],
        "max_grad_norm": recipe.max_grad_norm,
        "warmup_steps": recipe.warmup_iterations,
        # The transforms read the image and label columns: the Trainer must not drop them.
        "remove_unused_columns": False,
        # Metrics come from a streaming confusion matrix, updated batch by batch.
        "batch_eval_metrics": True,
        "metric_for_best_model": "mean_iou",
        # Every parameter takes part in every forward pass; the search DDP would otherwise do is wasted.
        "ddp_find_unused_parameters": False,
        # Worker processes on the available cores, prefetching; pinned memory on CUDA.
        **data_loader_defaults(explicit, world_size),
    }
    if "lr_scheduler_type" not in explicit:
        # SegRetTrainer runs "polynomial" as mmcv's poly schedule (segret_hf.training.schedule).
        defaults["lr_scheduler_type"] = "polynomial"
        defaults["lr_scheduler_kwargs"] = {"power": recipe.poly_power, "lr_end": recipe.min_learning_rate}
    if dataset_args.dataset_preset is not None:
        defaults["max_steps"] = recipe.iterations
        accumulation = int(explicit.get("gradient_accumulation_steps", 1))
        # The released batch sizes are totals over 4 GPUs.
        per_device = math.ceil(recipe.total_batch_size / (world_size * accumulation))
        defaults["per_device_train_batch_size"] = max(1, per_device)
    elif Path(dataset_args.dataset_name or SAMPLE_DATASET_DIR).resolve() == SAMPLE_DATASET_DIR:
        defaults.update(SAMPLE_JOB_DEFAULTS)
    return {key: value for key, value in defaults.items() if key not in explicit}


def effective_recipe(
    base: TrainingRecipe, training_args: TrainingArguments, recipe_args: RecipeArguments, sizes: SizeArguments
) -> TrainingRecipe:
    """The recipe this run actually follows: ``base`` with every flag the user set applied.

    ``config_file`` keeps naming the released config the run started from; :func:`recipe_overrides` lists
    what differs from it.
    """
    scheduler_kwargs = training_args.lr_scheduler_kwargs or {}
    ratio_range = recipe_args.resize_ratio_range
    if ratio_range is not None and (len(ratio_range) != 2 or not 0 < ratio_range[0] <= ratio_range[1]):
        raise ValueError(f"--resize_ratio_range takes two numbers 0 < LOW <= HIGH; got {ratio_range}.")
    return replace(
        base,
        learning_rate=training_args.learning_rate,
        adam_betas=(training_args.adam_beta1, training_args.adam_beta2),
        max_grad_norm=training_args.max_grad_norm or 0.0,
        weight_decay=training_args.weight_decay,
        paramwise_regime=recipe_args.paramwise_regime or base.paramwise_regime,
        warmup_iterations=training_args.get_warmup_steps(max(training_args.max_steps, 0)),
        warmup_start_factor=_first_set(recipe_args.warmup_start_factor, base.warmup_start_factor),
        poly_power=float(scheduler_kwargs.get("power", base.poly_power)),
        min_learning_rate=float(scheduler_kwargs.get("lr_end", base.min_learning_rate)),
        samples_per_gpu=training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps,
        num_gpus=training_args.world_size,
        iterations=training_args.max_steps,  # -1: the length is set by --num_train_epochs
        crop_size=sizes.crop_size,
        train_scale=sizes.train_scale,
        resize_ratio_range=tuple(ratio_range) if ratio_range is not None else base.resize_ratio_range,
        cat_max_ratio=_first_set(recipe_args.cat_max_ratio, base.cat_max_ratio),
        test_scale=sizes.test_scale,
    )


def _first_set(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def recipe_overrides(base: TrainingRecipe, effective: TrainingRecipe) -> dict[str, tuple[Any, Any]]:
    """``{field: (released, used)}`` for every recipe field this run changed (batch compared as a total)."""
    if base.config_file is None:
        return {}  # the generic recipe is a starting point, not a released configuration to compare with
    released, used = base.to_dict(), effective.to_dict()
    ignored = {"samples_per_gpu", "num_gpus"}
    return {key: (released[key], used[key]) for key in released if key not in ignored and released[key] != used[key]}


@dataclass(frozen=True)
class ParsedArguments:
    """Everything a training run is configured by, after defaults and overrides are applied."""

    model: ModelArguments
    dataset: DatasetArguments
    data: DataArguments
    output: OutputArguments
    training: TrainingArguments
    sizes: SizeArguments
    recipe: TrainingRecipe
    """The recipe the run follows (the released one with the user's flags applied)."""
    released_recipe: TrainingRecipe
    """The released (or generic) recipe it started from."""


def parse_arguments(argv: list[str] | None = None) -> ParsedArguments:
    """Parse the command line (or one JSON/YAML file) with the recipe's defaults filled in."""
    argv = sys.argv[1:] if argv is None else list(argv)
    explicit = _explicit_arguments(argv)
    model_args, dataset_args = HfArgumentParser((ModelArguments, DatasetArguments)).parse_dict(
        explicit, allow_extra_keys=True
    )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    values = {**default_values(model_args, dataset_args, explicit, world_size), **explicit}
    model_args, dataset_args, data_args, output_args, recipe_args, training_args = HfArgumentParser(
        ARGUMENT_CLASSES
    ).parse_dict(values)
    released = base_recipe(model_args, dataset_args.dataset_preset)
    sizes = resolve_sizes(data_args, released)
    recipe = effective_recipe(released, training_args, recipe_args, sizes)
    return ParsedArguments(model_args, dataset_args, data_args, output_args, training_args, sizes, recipe, released)
