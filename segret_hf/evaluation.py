"""Evaluate a semantic-segmentation model on a dataset split the way the SegRet paper did.

One pass over the split: each batch is decoded, predicted under an :class:`~segret_hf.inference.InferenceProtocol`
(single scale, multi-scale + flip, or sliding window) and counted into a streaming confusion matrix
(:class:`~segret_hf.metrics.SegmentationMetric`), so memory does not grow with the dataset. Pixels labelled
255 are ignored; classes absent from both labels and predictions get NaN and do not enter the means.

Bad inputs stop the run early with an error that names the problem (class-count mismatch between model and
dataset, label values that are not class ids, image/label size mismatch). Images that cannot be decoded are
skipped, collected with their index and reported at the end, so one corrupt file neither crashes a long run
nor disappears silently.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from .data.label_maps import LabelMapError, LabelMapping, dataset_id2label, label_map_array
from .data.loading import load_split, resolve_columns
from .data.presets import DatasetPreset, get_preset
from .inference import InferenceProtocol, SegmentationInferencer, image_size, size_divisor_override
from .metrics import SegmentationMetric, format_per_class_table
from .visualization import palette_for_labels, side_by_side

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleFailure:
    """A sample that could not be read: its row index, the column, and the decoder's message."""

    index: int
    column: str
    error: str


@dataclass
class EvaluationReport:
    """Metrics of one evaluation plus everything needed to tell how they were obtained."""

    metrics: dict[str, Any]
    id2label: dict[int, str]
    num_samples: int
    failures: list[SampleFailure] = field(default_factory=list)
    seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def format_table(self) -> str:
        """Per-class IoU / accuracy table with the mIoU summary, for the console."""
        return format_per_class_table(self.metrics, self.id2label)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content; NaN (class absent from labels and predictions) becomes `null`."""
        content = {
            **self.metadata,
            "num_samples": self.num_samples,
            "metrics": {
                **self.metrics,
                "class_names": [self.id2label.get(i, str(i)) for i in range(len(self.metrics["per_category_iou"]))],
            },
            "failed_samples": [vars(failure) for failure in self.failures],
            "seconds": round(self.seconds, 3),
        }
        return _nan_to_none(content)

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as indented, strictly valid JSON (no NaN literals)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(item) for item in value]
    return value


def check_label_compatibility(
    model_id2label: Mapping[int, str],
    dataset_classes: Mapping[int, str] | None = None,
    preset: DatasetPreset | None = None,
) -> None:
    """Refuse to score a model against a dataset with a different number of classes.

    A class-count mismatch makes every number meaningless (ids mean different classes), so it raises;
    differing names with the same count are only logged, since many configs carry placeholder names.
    """
    num_labels = len(model_id2label)
    references = []
    if dataset_classes is not None:
        references.append(("the dataset's id2label", dict(dataset_classes)))
    if preset is not None:
        references.append((f"dataset preset {preset.name!r}", preset.label_set.id2label))
    for source, reference in references:
        if len(reference) != num_labels:
            raise ValueError(
                f"The model predicts {num_labels} classes but {source} has {len(reference)}. Evaluate a model "
                "trained on this dataset (its config.json id2label must list the same classes)."
            )
        differing = [
            index
            for index in range(num_labels)
            if str(model_id2label.get(index, "")).strip() != str(reference.get(index, "")).strip()
        ]
        if differing:
            first = differing[0]
            logger.warning(
                "%d of %d class names differ between the model and %s (first: id %d is %r vs %r); ids are "
                "compared as they are.",
                len(differing), num_labels, source, first, model_id2label.get(first), reference.get(first),
            )


def _decoder(feature: Any) -> Any:
    """How to turn a stored value of `feature` into an image/array (Image features decode lazily)."""
    if isinstance(feature, datasets.Image):
        return datasets.Image(mode=feature.mode).decode_example
    return np.asarray


class _SampleReader:
    """Decodes rows into `(index, image, train-id label)`, recording unreadable ones instead of raising."""

    def __init__(self, dataset: datasets.Dataset, image_column: str, label_column: str, mapping: LabelMapping) -> None:
        self.columns = (image_column, label_column)
        self.decoders = {column: _decoder(dataset.features[column]) for column in self.columns}
        self.mapping = mapping
        self.failures: list[SampleFailure] = []

    def without_decoding(self, dataset: datasets.Dataset) -> datasets.Dataset:
        """`dataset` with Image columns left encoded, so a corrupt file fails in :meth:`read`, not in `[]`."""
        dataset = dataset.select_columns(list(self.columns))
        for column in self.columns:
            if isinstance(dataset.features[column], datasets.Image):
                dataset = dataset.cast_column(column, datasets.Image(decode=False))
        return dataset

    def read(self, index: int, raw_image: Any, raw_label: Any) -> tuple[int, Any, np.ndarray] | None:
        decoded = []
        for column, raw in zip(self.columns, (raw_image, raw_label)):
            try:
                decoded.append(self.decoders[column](raw))
            except Exception as error:  # any decoder failure: record it with the index, keep going
                self.failures.append(SampleFailure(index, column, f"{type(error).__name__}: {error}"))
                return None
        image, label = decoded[0], label_map_array(decoded[1], f"The label of sample {index}")
        try:
            label = self.mapping(label)
        except LabelMapError as error:
            raise ValueError(f"Sample {index}: {error}.") from error
        if image_size(image) != label.shape:
            raise ValueError(
                f"Sample {index}: the image is {image_size(image)} (height, width) but its label is "
                f"{label.shape}; labels must be pixel-aligned with their images."
            )
        self.mapping.check_values(label, f"Sample {index}")
        return index, image, label


def evaluate_dataset(
    inferencer: SegmentationInferencer,
    dataset: datasets.Dataset,
    image_column: str,
    label_column: str,
    label_mapping: LabelMapping | None = None,
    max_samples: int | None = None,
    predictions_dir: str | Path | None = None,
    num_saved_predictions: int = 0,
    progress: bool = True,
) -> EvaluationReport:
    """Score `inferencer` on the first `max_samples` rows of `dataset` (all rows when `None`).

    `label_mapping` turns stored label maps into the model's class ids (default: stored as train ids, 255
    ignored). Labels are compared at their stored resolution (predictions are resized to it). With
    `predictions_dir`, `image | label | prediction` strips of the first `num_saved_predictions` evaluated
    samples are written there as `<row index>.png`.
    """
    mapping = label_mapping or LabelMapping(inferencer.num_labels)
    if mapping.num_labels != inferencer.num_labels:
        raise ValueError(
            f"The label mapping is for {mapping.num_labels} classes but the model predicts {inferencer.num_labels}."
        )
    count = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    reader = _SampleReader(dataset, image_column, label_column, mapping)
    rows = reader.without_decoding(dataset.select(range(count)))
    metric = SegmentationMetric(inferencer.num_labels, ignore_index=mapping.ignore_index)
    palette, _ = palette_for_labels(inferencer.id2label)
    if predictions_dir is not None:
        Path(predictions_dir).mkdir(parents=True, exist_ok=True)
    evaluated = saved = 0
    start_time = time.perf_counter()
    with tqdm(total=count, desc="Evaluating", unit="img", disable=not progress) as bar:
        for start in range(0, count, inferencer.batch_size):
            batch = rows[start : start + inferencer.batch_size]
            samples = [
                sample
                for offset, raw in enumerate(zip(batch[image_column], batch[label_column]))
                if (sample := reader.read(start + offset, *raw)) is not None
            ]
            if samples:
                probabilities = inferencer.predict_probabilities([image for _, image, _ in samples])
                for (index, image, label), probs in zip(samples, probabilities):
                    prediction = probs.argmax(dim=0)
                    metric.update(prediction, torch.from_numpy(label))
                    if predictions_dir is not None and saved < num_saved_predictions:
                        strip = side_by_side(image, label, prediction.cpu().numpy(), palette, mapping.ignore_index)
                        strip.save(Path(predictions_dir) / f"{index:06d}.png")
                        saved += 1
                evaluated += len(samples)
            bar.update(min(inferencer.batch_size, count - start))
    if reader.failures:
        logger.error("%d unreadable sample(s) skipped: %s", len(reader.failures), describe_failures(reader.failures))
    return EvaluationReport(
        metrics=metric.compute(),
        id2label=inferencer.id2label,
        num_samples=evaluated,
        failures=reader.failures,
        seconds=time.perf_counter() - start_time,
    )


def describe_failures(failures: list[SampleFailure], limit: int = 10) -> str:
    """`index (column): error` of the first `limit` unreadable samples, for logs and the console."""
    text = "; ".join(f"index {f.index} ({f.column}): {f.error}" for f in failures[:limit])
    return text + (f"; ... and {len(failures) - limit} more" if len(failures) > limit else "")


@dataclass(frozen=True)
class EvaluationData:
    """The rows to score and how their labels are read (fields named as the command-line flags).

    `dataset_preset` (`ade20k`, `cityscapes`, `coco-stuff`, ...) supplies column names, the label conversion
    (see :class:`~segret_hf.data.label_maps.LabelMapping`) and the class list to check the model against; the
    other fields override it. `do_reduce_labels=None` means "the preset's choice, else off".
    `dataset_revision` is the Hub branch, tag or commit to read (e.g. `refs/convert/parquet`); `max_samples`
    keeps the first rows only.
    """

    dataset_name: str
    split: str = "validation"
    dataset_config_name: str | None = None
    dataset_revision: str | None = None
    dataset_preset: str | None = None
    image_column_name: str | None = None
    label_column_name: str | None = None
    do_reduce_labels: bool | None = None
    labels_are_train_ids: bool = False
    max_samples: int | None = None


@dataclass(frozen=True)
class EvaluationOptions:
    """How the model is run, and what is kept besides the metrics.

    `size_divisor` aligns the resized test images to its multiples (0: not at all); `None` takes the
    preset's choice, else the model's image processor config (see :func:`size_divisor_override`). With
    `predictions_dir`, `image | label | prediction` strips of the first `num_saved_predictions` samples are
    written there.
    """

    protocol: InferenceProtocol = field(default_factory=InferenceProtocol)
    size_divisor: int | None = None
    batch_size: int = 1
    device: str | None = None
    dtype: str = "float32"
    predictions_dir: str | Path | None = None
    num_saved_predictions: int = 0
    progress: bool = True


def evaluate(model: str, data: EvaluationData, options: EvaluationOptions | None = None) -> EvaluationReport:
    """Load `model` (folder or Hub id) and the split `data` names, check that they fit, and evaluate."""
    options = options or EvaluationOptions()
    preset = get_preset(data.dataset_preset) if data.dataset_preset else None
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")

    dataset = load_split(data.dataset_name, data.split, data.dataset_config_name, data.dataset_revision)
    image_column, label_column = resolve_columns(
        dataset.column_names, data.image_column_name, data.label_column_name, preset
    )
    processor_overrides = size_divisor_override(options.size_divisor, preset)
    inferencer = SegmentationInferencer.from_pretrained(
        model,
        options.protocol,
        batch_size=options.batch_size,
        device=device,
        dtype=options.dtype,
        image_processor_kwargs=processor_overrides,
    )
    used_size_divisor = getattr(inferencer.image_processor, "size_divisor", None)
    if processor_overrides and used_size_divisor != processor_overrides["size_divisor"]:
        raise ValueError(
            f"The model's {type(inferencer.image_processor).__name__} has no size_divisor setting, so test images "
            f"cannot be aligned to multiples of {processor_overrides['size_divisor']} (asked for by --size_divisor "
            "or the dataset preset). Pass --size_divisor 0 to evaluate without alignment."
        )
    dataset_classes = dataset_id2label(data.dataset_name, dataset, label_column, data.dataset_revision)
    check_label_compatibility(inferencer.id2label, dataset_classes, preset)
    mapping = LabelMapping.for_dataset(inferencer.num_labels, preset, data.do_reduce_labels, data.labels_are_train_ids)

    report = evaluate_dataset(
        inferencer,
        dataset,
        image_column,
        label_column,
        label_mapping=mapping,
        max_samples=data.max_samples,
        predictions_dir=options.predictions_dir,
        num_saved_predictions=options.num_saved_predictions,
        progress=options.progress,
    )
    report.metadata = {
        "model": model,
        "dataset": {
            "name": data.dataset_name,
            "config": data.dataset_config_name,
            "revision": data.dataset_revision,
            "split": data.split,
            "preset": preset.name if preset else None,
            "image_column": image_column,
            "label_column": label_column,
            "do_reduce_labels": mapping.reduce,
            "labels": mapping.describe(),
            "num_rows": len(dataset),
        },
        "protocol": {
            **options.protocol.to_dict(),
            "resize": dict(inferencer.image_processor.size),
            "size_divisor": used_size_divisor,
            "fusion": "softmax probabilities averaged at the label's original size",
            "ignore_index": mapping.ignore_index,
            "batch_size": options.batch_size,
            "device": str(inferencer.device),
            "dtype": options.dtype,
        },
    }
    return report
