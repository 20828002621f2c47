"""The training entry point: arguments -> checks -> data -> model -> Trainer -> outputs.

Everything that can be wrong with the inputs (arguments, output directory, dataset columns, labels, model
setup) is checked before the output directory is created, so a failed start leaves nothing behind.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path
from typing import Callable

import datasets
import torch
import transformers
from accelerate import PartialState
from torch import nn
from transformers import TrainingArguments, set_seed

from ..data.label_maps import LabelMapping
from ..data.presets import DatasetPreset
from ..image_processing_segret import SegRetImageProcessor
from .arguments import DataArguments, OutputArguments, ParsedArguments, parse_arguments, preset_for, recipe_overrides
from .card import RunDescription, write_model_card
from .collate import SegmentationCollator
from .data import (
    SegmentationDataError,
    Split,
    SplitSource,
    check_split,
    label_mapping,
    load_training_split,
    resolve_id2label,
    resolve_split_columns,
)
from .decoding import keep_encoded
from .loader_defaults import log_data_loader_settings
from .models import build_model
from .overlays import write_prediction_overlays
from .trainer import AugmentationEpochCallback, RecipeCallback, SegRetTrainer, StreamingSegmentationMetrics
from .transforms import EvaluationResize, PaperAugmentation, SplitTransform

logger = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"
TrainTransform = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
"""A training sample's transform: decoded `(3, H, W)` image, `(H, W)` label map and row -> model inputs."""
STREAM_SHUFFLE_BUFFER = 1000


class OutputDirectoryError(ValueError):
    """The output directory holds a previous run that this one would mix with."""


def check_output_dir(training_args: TrainingArguments, output_args: OutputArguments) -> None:
    """Refuse a non-empty output directory unless overwriting or resuming; check the checkpoint to resume."""
    resume = training_args.resume_from_checkpoint
    if resume is not None and not (Path(resume) / "trainer_state.json").is_file():
        raise OutputDirectoryError(
            f"--resume_from_checkpoint {resume!r} is not a checkpoint folder (no trainer_state.json); "
            "pass a checkpoint-<step> folder written by a previous run."
        )
    output_dir = Path(training_args.output_dir)
    if output_dir.is_dir() and any(output_dir.iterdir()) and not output_args.overwrite_output_dir and resume is None:
        entries = sorted(path.name for path in output_dir.iterdir())
        raise OutputDirectoryError(
            f"Output directory {str(output_dir)!r} is not empty ({entries[:8]}). Pass --overwrite_output_dir to "
            "write into it, --resume_from_checkpoint to continue one of its checkpoints, or another --output_dir."
        )


def _prepare_split(
    raw: Split,
    source: SplitSource,
    processor: SegRetImageProcessor,
    mapping: LabelMapping,
    transform: PaperAugmentation | EvaluationResize,
) -> Split:
    """Attach the decode + transform step lazily: nothing is materialised, rows are transformed when read.

    Images stay encoded until then: the transform decodes the stored bytes itself (see `decoding.py`)."""
    raw = keep_encoded(raw, source.image_column)
    split_transform = SplitTransform(processor, mapping, source, transform)
    if isinstance(raw, datasets.IterableDataset):
        return raw.map(split_transform.with_indices, batched=True, with_indices=True, remove_columns=raw.column_names)
    return raw.with_transform(split_transform)


def _validation_split(
    data_args: DataArguments, preset: DatasetPreset | None, mapping: LabelMapping, required: bool
) -> tuple[Split, SplitSource] | tuple[None, None]:
    """The checked validation split; when evaluation was not asked for, a missing one only skips evaluation."""
    try:
        raw = load_training_split(data_args, data_args.validation_split, data_args.max_eval_samples)
    except SegmentationDataError:
        if required:
            raise
        logger.warning("No split %r: the run will not be evaluated.", data_args.validation_split)
        return None, None
    source = resolve_split_columns(data_args, preset, raw, data_args.validation_split)
    check_split(raw, source, mapping, data_args.rows_to_check)
    return raw, source


def sync_batch_norm(model: nn.Module, training_args: TrainingArguments) -> nn.Module:
    """BatchNorm statistics over the global batch when training on several GPUs (as mmseg's SyncBN)."""
    if training_args.world_size > 1:
        if training_args.device.type == "cpu":
            logger.warning("SyncBatchNorm needs GPUs; on CPU each process normalises with its own batch.")
        else:
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _setup_logging(training_args: TrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    # The run's own summary (recipe, classes, sizes) is shown by default on the main process, as the
    # transformers example scripts do; --log_level still sets it explicitly.
    own_level = logging.INFO if training_args.should_log and training_args.log_level == "passive" else level
    logging.getLogger("segret_hf").setLevel(own_level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)


def _final_evaluation(trainer: SegRetTrainer) -> dict[str, float]:
    """Metrics of the final model: those of an evaluation already run at the last step, else a new one.

    Evaluating a large validation set twice in a row (last step, then end of training) would only cost time.
    """
    state = trainer.state
    last = next((entry for entry in reversed(state.log_history) if "eval_mean_iou" in entry), None)
    if last is not None and last["step"] == state.global_step and not trainer.args.load_best_model_at_end:
        return {key: value for key, value in last.items() if key.startswith("eval_") or key == "epoch"}
    return trainer.evaluate()


def train(arguments: ParsedArguments, train_transform: TrainTransform | None = None) -> dict[str, float]:
    """Run one training job; returns the final evaluation metrics (empty without a validation split).

    `train_transform` replaces the paper's augmentation of the training samples (for experiments such as
    `benchmarks/learning_curve.py`, which trains on plain resized images to measure what the augmentation
    does): called as `(pixels, label, row) -> (pixel_values, labels)`, it is also given the `epoch` attribute
    at the start of every epoch.
    """
    model_args, data_args, output_args = arguments.model, arguments.data, arguments.output
    training_args, sizes, recipe = arguments.training, arguments.sizes, arguments.recipe
    check_output_dir(training_args, output_args)
    if data_args.streaming and training_args.max_steps <= 0:
        raise SegmentationDataError("--streaming needs --max_steps: a stream has no length to count epochs by.")
    preset = preset_for(data_args)
    overrides = recipe_overrides(arguments.released_recipe, recipe)
    logger.info("Recipe %s", recipe.describe())
    if overrides:
        logger.info("Changed from %s: %s", arguments.released_recipe.config_file or "the generic recipe", overrides)
    log_data_loader_settings(training_args)

    # The main process prepares the datasets cache first; the others then read it instead of racing to write it.
    with training_args.main_process_first(desc="loading and checking the dataset"):
        train_raw = load_training_split(data_args, data_args.train_split, data_args.max_train_samples)
        train_source = resolve_split_columns(data_args, preset, train_raw, data_args.train_split)
        id2label = resolve_id2label(data_args, preset, train_raw, train_source.label_column)
        mapping = label_mapping(data_args, preset, len(id2label))
        check_split(train_raw, train_source, mapping, data_args.rows_to_check)
        eval_raw, eval_source = _validation_split(data_args, preset, mapping, training_args.do_eval)
    logger.info(
        "Classes: %d (%s...); labels: %s; crop %s, train scale %s, test scale %s",
        len(id2label), list(id2label.values())[:5], mapping.describe(), sizes.crop_size, sizes.train_scale,
        sizes.test_scale,
    )

    set_seed(training_args.seed)
    model = sync_batch_norm(build_model(model_args, id2label), training_args)
    # Every process has passed the checks before the main one creates the output directory.
    PartialState().wait_for_everyone()
    processor = SegRetImageProcessor(
        size={"shortest_edge": sizes.test_scale[1], "longest_edge": sizes.test_scale[0]},
        size_divisor=preset.test_size_divisor if preset else None,
        do_reduce_labels=mapping.reduce,
    )
    augmentation = train_transform or PaperAugmentation(
        sizes,
        processor,
        seed=training_args.seed,
        ignore_index=mapping.ignore_index,
        ratio_range=recipe.resize_ratio_range,
        cat_max_ratio=recipe.cat_max_ratio,
    )
    if isinstance(train_raw, datasets.IterableDataset):
        # A stream has no sampler: shuffle through a buffer, reseeded every epoch by the Trainer.
        train_raw = train_raw.shuffle(seed=training_args.seed, buffer_size=STREAM_SHUFFLE_BUFFER)
    train_dataset = _prepare_split(train_raw, train_source, processor, mapping, augmentation)
    eval_dataset = None
    if eval_raw is not None:
        eval_dataset = _prepare_split(eval_raw, eval_source, processor, mapping, EvaluationResize(processor))

    run = RunDescription(
        dataset_name=data_args.dataset_name,
        dataset_preset=preset.name if preset else None,
        validation_split=data_args.validation_split,
        recipe=recipe,
        recipe_overrides=overrides,
        base_model=model_args.model_name_or_path,
        backbone_checkpoint=model_args.backbone_checkpoint,
    )
    trainer = SegRetTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        data_collator=SegmentationCollator(len(id2label), data_args.dataset_name, mapping.ignore_index),
        compute_metrics=StreamingSegmentationMetrics(id2label, mapping.ignore_index),
        callbacks=[
            AugmentationEpochCallback(augmentation),
            RecipeCallback(recipe.to_dict(), arguments.released_recipe.config_file),
        ],
        recipe=recipe,
        write_model_card=partial(write_model_card, run=run),
    )

    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    eval_metrics: dict[str, float] = {}
    if eval_dataset is not None:
        eval_metrics = _final_evaluation(trainer)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        if output_args.prediction_overlays > 0 and trainer.is_world_process_zero():
            written = write_prediction_overlays(
                trainer.accelerator.unwrap_model(trainer.model),
                processor,
                eval_raw,
                eval_source,
                mapping,
                Path(training_args.output_dir) / PREDICTIONS_DIR,
                output_args.prediction_overlays,
            )
            logger.info("Prediction pictures: %s", [str(path) for path in written])
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training")
    return eval_metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Parse the command line and train; see `scripts/train.py --help`."""
    arguments = parse_arguments(argv)
    _setup_logging(arguments.training)
    return train(arguments)


def cli() -> int:
    """The `segret-train` console command: exit status 0 after a run (`main` returns the metrics instead)."""
    main()
    return 0
