"""The training entry point: arguments -> checks -> data -> model -> Trainer -> outputs.

Everything that can be wrong with the inputs (arguments, output directory, dataset columns, labels, model
setup, the checkpoint to resume) is checked before the output directory is created, so a failed start leaves
nothing behind. The run then holds the directory's lock (`output_lock`) until its final save, which is
staged and published last (`saving`), so a second run cannot write into it and a killed one is recognised.
`cli` turns the expected failures (bad input, full disk) into one `error:` line and exit status 2.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import datasets
import torch
import transformers
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from torch import nn
from transformers import TrainingArguments, set_seed

from ..cli.errors import report_error
from ..data.label_maps import LabelMapping
from ..data.presets import DatasetPreset, get_preset
from ..image_processing_segret import SegRetImageProcessor
from .arguments import OutputArguments, ParsedArguments, parse_arguments, recipe_overrides
from .card import RunDescription, write_model_card
from .collate import SegmentationCollator
from .data import (
    SegmentationDataError,
    Split,
    SplitSource,
    check_split,
    load_training_split,
    resolve_id2label,
    resolve_split_columns,
)
from .decoding import keep_encoded
from .loader_defaults import log_data_loader_settings
from .models import build_model
from .output_lock import LOCK_NAME, OutputLockError, check_available, output_lock
from .overlays import write_prediction_overlays
from .readable import ReadableRows
from .resume import check_resume_architecture, check_resume_folder
from .saving import STAGING_NAME, publish, reporting_full_disk
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
    """Refuse a non-empty output directory unless overwriting or resuming, and one that another run holds or
    that an interrupted run left (see `output_lock`); check the files of the checkpoint to resume."""
    resume = training_args.resume_from_checkpoint
    if resume is not None:
        check_resume_folder(resume)
    output_dir = Path(training_args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirectoryError(f"--output_dir {str(output_dir)!r} is a file; name a folder.")
    if not output_dir.is_dir():
        return
    check_available(output_dir, resume is not None, output_args.overwrite_output_dir)
    _check_no_previous_run(training_args, output_args)


def _check_no_previous_run(training_args: TrainingArguments, output_args: OutputArguments) -> None:
    """Refuse an output directory holding anything but the lock, unless overwriting or resuming."""
    output_dir = Path(training_args.output_dir)
    entries = sorted(path.name for path in output_dir.iterdir() if path.name != LOCK_NAME)
    if entries and not output_args.overwrite_output_dir and training_args.resume_from_checkpoint is None:
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
    skip_unreadable: bool = False,
) -> Split | ReadableRows:
    """Attach the decode + transform step lazily: nothing is materialised, rows are transformed when read.

    Images stay encoded until then: the transform decodes the stored bytes itself (see `decoding.py`). Rows
    that cannot be decoded are named, or skipped with `skip_unreadable` (see `readable.py`)."""
    raw = keep_encoded(raw, source.image_column)
    split_transform = SplitTransform(processor, mapping, source, transform)
    if isinstance(raw, datasets.IterableDataset):
        return raw.map(split_transform.with_indices, batched=True, with_indices=True, remove_columns=raw.column_names)
    return ReadableRows(raw.with_transform(split_transform), raw, source, skip_unreadable)


@contextmanager
def _claimed_output_dir(training_args: TrainingArguments, output_args: OutputArguments) -> Iterator[None]:
    """The main process holds the output directory's lock for the block (see `output_lock`) and checks again,
    under the lock, that the directory is still free (a run into it may have finished meanwhile); the other
    processes learn the outcome, so a refusal stops every process."""
    resuming = training_args.resume_from_checkpoint is not None
    with ExitStack() as stack:
        failure: ValueError | None = None
        if training_args.process_index == 0:
            try:
                lock = output_lock(Path(training_args.output_dir), resuming, output_args.overwrite_output_dir)
                stack.enter_context(lock)
                _check_no_previous_run(training_args, output_args)
            except (OutputDirectoryError, OutputLockError) as error:
                failure = error
        if PartialState().num_processes > 1:
            message = broadcast_object_list([None if failure is None else str(failure)], from_process=0)[0]
            failure = failure or (OutputDirectoryError(message) if message is not None else None)
        if failure is not None:
            raise failure
        yield


def _load_split(arguments: ParsedArguments, split: str, max_samples: int | None, split_flag: str) -> Split:
    """One split of the run's dataset (see `load_training_split`)."""
    dataset = arguments.dataset
    return load_training_split(
        dataset.dataset_name,
        split,
        max_samples,
        config_name=dataset.dataset_config_name,
        revision=dataset.dataset_revision,
        streaming=arguments.data.streaming,
        split_flag=split_flag,
    )


def _split_columns(arguments: ParsedArguments, preset: DatasetPreset | None, raw: Split, split: str) -> SplitSource:
    """The checked image and label columns of a split (see `resolve_split_columns`)."""
    dataset = arguments.dataset
    return resolve_split_columns(
        dataset.dataset_name, split, raw, preset, dataset.image_column_name, dataset.label_column_name
    )


def _validation_split(
    arguments: ParsedArguments, preset: DatasetPreset | None, mapping: LabelMapping, required: bool
) -> tuple[Split, SplitSource] | tuple[None, None]:
    """The checked validation split; when evaluation was not asked for, a missing one only skips evaluation."""
    data_args = arguments.data
    try:
        raw = _load_split(arguments, data_args.validation_split, data_args.max_eval_samples, "--validation_split")
    except SegmentationDataError:
        if required:
            raise
        logger.warning("No split %r: the run will not be evaluated.", data_args.validation_split)
        return None, None
    source = _split_columns(arguments, preset, raw, data_args.validation_split)
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
    model_args, dataset_args, data_args = arguments.model, arguments.dataset, arguments.data
    output_args = arguments.output
    training_args, sizes, recipe = arguments.training, arguments.sizes, arguments.recipe
    check_output_dir(training_args, output_args)
    if data_args.streaming and training_args.max_steps <= 0:
        raise SegmentationDataError("--streaming needs --max_steps: a stream has no length to count epochs by.")
    if data_args.streaming and data_args.skip_unreadable_samples:
        raise SegmentationDataError(
            "--skip_unreadable_samples needs a map-style dataset: a stream cannot step over a row it failed to "
            "decode. Leave out --streaming (or the skip flag: unreadable rows then stop the run, named)."
        )
    preset = get_preset(dataset_args.dataset_preset) if dataset_args.dataset_preset is not None else None
    overrides = recipe_overrides(arguments.released_recipe, recipe)
    logger.info("Recipe %s", recipe.describe())
    if overrides:
        logger.info("Changed from %s: %s", arguments.released_recipe.config_file or "the generic recipe", overrides)
    log_data_loader_settings(training_args)

    # The main process prepares the datasets cache first; the others then read it instead of racing to write it.
    with training_args.main_process_first(desc="loading and checking the dataset"):
        train_raw = _load_split(arguments, data_args.train_split, data_args.max_train_samples, "--train_split")
        train_source = _split_columns(arguments, preset, train_raw, data_args.train_split)
        id2label = resolve_id2label(
            data_args.id2label,
            preset,
            dataset_args.dataset_name,
            train_raw,
            train_source.label_column,
            dataset_args.dataset_revision,
        )
        mapping = LabelMapping.for_dataset(
            len(id2label), preset, dataset_args.do_reduce_labels, dataset_args.labels_are_train_ids
        )
        check_split(train_raw, train_source, mapping, data_args.rows_to_check)
        eval_raw, eval_source = _validation_split(arguments, preset, mapping, training_args.do_eval)
    logger.info(
        "Classes: %d (%s...); labels: %s; crop %s, train scale %s, test scale %s",
        len(id2label), list(id2label.values())[:5], mapping.describe(), sizes.crop_size, sizes.train_scale,
        sizes.test_scale,
    )

    set_seed(training_args.seed)
    model = build_model(
        id2label, model_args.model_variant, model_args.model_name_or_path, model_args.backbone_checkpoint
    )
    model = sync_batch_norm(model, training_args)
    if training_args.resume_from_checkpoint is not None:
        check_resume_architecture(training_args.resume_from_checkpoint, model)
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
    train_dataset = _prepare_split(
        train_raw, train_source, processor, mapping, augmentation, data_args.skip_unreadable_samples
    )
    eval_dataset = None
    if eval_raw is not None:
        eval_dataset = _prepare_split(eval_raw, eval_source, processor, mapping, EvaluationResize(processor))

    run = RunDescription(
        dataset_name=dataset_args.dataset_name,
        dataset_preset=preset.name if preset else None,
        validation_split=data_args.validation_split,
        recipe=recipe,
        recipe_overrides=overrides,
        base_model=model_args.model_name_or_path or model_args.backbone_checkpoint,
        dataset_config_name=dataset_args.dataset_config_name,
        dataset_revision=dataset_args.dataset_revision,
        skipped_rows=partial(_skipped_rows, train_dataset),
    )
    with _claimed_output_dir(training_args, output_args):
        trainer = SegRetTrainer(
            model=model,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processor,
            data_collator=SegmentationCollator(len(id2label), dataset_args.dataset_name, mapping.ignore_index),
            compute_metrics=StreamingSegmentationMetrics(id2label, mapping.ignore_index),
            callbacks=[
                AugmentationEpochCallback(augmentation),
                RecipeCallback(recipe.to_dict(), arguments.released_recipe.config_file),
            ],
            recipe=recipe,
            write_model_card=partial(write_model_card, run=run),
        )
        train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        skipped = run.skipped_rows()
        if skipped:
            logger.warning(
                "%d unreadable training row(s) were skipped (recorded in the model card): %s", len(skipped), skipped
            )
        with reporting_full_disk(Path(training_args.output_dir), "the final model and results"):
            eval_metrics = _save_results(trainer, train_result.metrics, eval_raw, eval_source, mapping, output_args)
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training")
    return eval_metrics


def _skipped_rows(dataset: Split | ReadableRows) -> list[int]:
    """Training rows skipped as unreadable (none for a stream, which is not checked row by row)."""
    return dataset.skipped_rows if isinstance(dataset, ReadableRows) else []


def _save_results(
    trainer: SegRetTrainer,
    train_metrics: dict[str, float],
    eval_raw: Split | None,
    eval_source: SplitSource | None,
    mapping: LabelMapping,
    output_args: OutputArguments,
) -> dict[str, float]:
    """Final model, metrics, state, pictures and card; the model's files are published last (see `saving`).

    Returns the final evaluation metrics (empty without a validation split).
    """
    output_dir = Path(trainer.args.output_dir)
    staging = output_dir / STAGING_NAME
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)  # left by a run killed during its final save
    trainer.save_model(str(staging), _internal_call=True)
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()

    eval_metrics: dict[str, float] = {}
    if trainer.eval_dataset is not None:
        eval_metrics = _final_evaluation(trainer)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        if output_args.prediction_overlays > 0 and trainer.is_world_process_zero():
            written = write_prediction_overlays(
                trainer.accelerator.unwrap_model(trainer.model),
                trainer.processing_class,
                eval_raw,
                eval_source,
                mapping,
                output_dir / PREDICTIONS_DIR,
                output_args.prediction_overlays,
            )
            logger.info("Prediction pictures: %s", [str(path) for path in written])
    trainer.create_model_card()
    if trainer.is_world_process_zero():
        publish(staging, output_dir)
    return eval_metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Parse the command line and train; see `scripts/train.py --help`."""
    arguments = parse_arguments(argv)
    _setup_logging(arguments.training)
    return train(arguments)


def cli(argv: list[str] | None = None) -> int:
    """The `segret-train` command and `scripts/train.py`: exit status 0 after a run, 2 on an expected failure.

    Bad input (arguments, files, data, model, output directory) and a full disk are ValueErrors or OSErrors
    whose messages name the problem; they are printed as one `error:` line. Anything else is a bug and keeps
    its traceback.
    """
    try:
        main(argv)
    except (ValueError, OSError) as error:
        return report_error(error, 2)
    return 0
