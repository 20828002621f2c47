"""Loading the training and validation splits, deciding what the labels mean, and checking the data early.

Everything here runs before the output directory is created or the model is built, so that a wrong column
name, a label value that is not a class id, or an image whose label map has another size stops the run in
seconds with a message that names the dataset, split, column, row and value, instead of hours later in a
worker process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import PIL.Image

from ..data.label_maps import (
    LabelMapError,
    LabelMapping,
    dataset_id2label,
    label_map_array,
    parse_id2label_spec,
)
from ..data.loading import DatasetScriptError, load_split, resolve_columns
from ..data.presets import DatasetPreset

logger = logging.getLogger(__name__)

INDEX_COLUMN = "__segret_row__"
"""Row number added to every split: augmentation randomness and error messages are keyed by it."""

Split = datasets.Dataset | datasets.IterableDataset


class SegmentationDataError(ValueError):
    """The dataset does not fit the run (column, label value, sizes); the message says where and what."""


@dataclass(frozen=True)
class SplitSource:
    """Where rows come from, for messages: dataset, split and the two columns."""

    dataset: str
    split: str
    image_column: str
    label_column: str

    def where(self, row: int | None = None, column: str | None = None) -> str:
        text = f"dataset {self.dataset!r}, split {self.split!r}"
        if column is not None:
            text += f", column {column!r}"
        return text + (f", row {row}" if row is not None else "")


def load_training_split(
    name: str,
    split: str,
    max_samples: int | None = None,
    *,
    config_name: str | None = None,
    revision: str | None = None,
    streaming: bool = False,
    split_flag: str = "--train_split",
) -> Split:
    """One split as a map-style Dataset (or an IterableDataset when `streaming`), cut to `max_samples`.

    The row number is added as a column (not materialised with the images: an in-memory int column), so
    transforms applied with `with_transform` know which row they see. A stream reads the data files (Hub or
    local Hub layout) as they are, without first copying them into the datasets cache. A missing split is
    named, with the flag (`split_flag`) that chooses it.
    """
    try:
        dataset = load_split(name, split, config_name, revision, streaming=streaming)
    except DatasetScriptError as error:
        raise SegmentationDataError(str(error)) from error
    except ValueError as error:
        raise SegmentationDataError(f"{error} Choose the split with {split_flag}.") from error
    if isinstance(dataset, datasets.IterableDataset):
        return dataset if max_samples is None else dataset.take(max_samples)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    return dataset.add_column(INDEX_COLUMN, np.arange(len(dataset), dtype=np.int64))


def resolve_id2label(
    id2label_spec: str | None,
    preset: DatasetPreset | None,
    dataset_name: str,
    dataset: Split,
    label_column: str,
    revision: str | None = None,
) -> dict[int, str]:
    """Class names by id: `id2label_spec` (`--id2label`), else the preset, else what the dataset declares."""
    try:
        if id2label_spec is not None:
            (id2label, _), source = parse_id2label_spec(id2label_spec), id2label_spec
        elif preset is not None:
            id2label, source = preset.label_set.id2label, f"preset {preset.name!r}"
        else:
            id2label = dataset_id2label(dataset_name, dataset, label_column, revision)
            source = f"dataset {dataset_name!r}"
    except ValueError as error:  # an unreadable class list: the message names the file
        raise SegmentationDataError(str(error)) from error
    if id2label is None:
        raise SegmentationDataError(
            f"Dataset {dataset_name!r} does not say what its classes are (no id2label.json beside the data, no "
            "ClassLabel feature). Pass --id2label FILE.json or --dataset_preset."
        )
    if len(id2label) < 2:
        raise SegmentationDataError(f"The classes from {source} are {id2label}; segmentation needs at least two.")
    return id2label


def resolve_split_columns(
    name: str,
    split: str,
    dataset: Split,
    preset: DatasetPreset | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> SplitSource:
    """Find the image and label columns (the ones named, else the preset's or common names) and check their
    feature types (when the dataset declares them)."""
    columns = [column for column in (dataset.column_names or []) if column != INDEX_COLUMN]
    if not columns:  # a streamed dataset without declared features: look at the first row
        columns = [column for column in next(iter(dataset)) if column != INDEX_COLUMN]
    try:
        image_column, label_column = resolve_columns(columns, image_column, label_column, preset)
    except ValueError as error:
        raise SegmentationDataError(f"Dataset {name!r}, split {split!r}: {error}") from error
    source = SplitSource(name, split, image_column, label_column)
    features = dataset.features or {}
    for column in (image_column, label_column):
        feature = features.get(column)
        if feature is not None and not isinstance(feature, datasets.Image):
            raise SegmentationDataError(
                f"{source.where(column=column)} holds {feature!r}, not images. Name the image and label-map "
                f"columns with --image_column_name / --label_column_name; the dataset has columns {columns}."
            )
    return source


def train_id_label(
    value: Any, mapping: LabelMapping, source: SplitSource, row: int
) -> tuple[np.ndarray, np.ndarray]:
    """`(raw ids, train ids)` of a decoded label map; decoding and conversion errors name the row."""
    where = source.where(row, source.label_column)
    try:
        raw = label_map_array(value)
    except LabelMapError as error:
        raise SegmentationDataError(f"{where}: {error}") from error
    try:
        return raw, mapping(raw)
    except LabelMapError as error:
        raise SegmentationDataError(f"{where}: {error}.") from error


def image_hw(value: Any, source: SplitSource, row: int) -> tuple[int, int]:
    """`(height, width)` of a decoded image, or a SegmentationDataError when the value is not an image."""
    if isinstance(value, PIL.Image.Image):
        return value.height, value.width
    if isinstance(value, np.ndarray) and value.ndim in (2, 3):
        return value.shape[0], value.shape[1]
    raise SegmentationDataError(f"{source.where(row, source.image_column)} holds a {type(value).__name__}, not an image.")


def check_sample(image: Any, label: np.ndarray, mapping: LabelMapping, source: SplitSource, row: int) -> None:
    """Raise when an image and its (mapped) label map disagree in size or hold values that are not class ids."""
    size = image_hw(image, source, row)
    if size != label.shape:
        raise SegmentationDataError(
            f"{source.where(row)}: the image ({source.image_column!r}) is {size[0]}x{size[1]} but its label map "
            f"({source.label_column!r}) is {label.shape[0]}x{label.shape[1]} (height x width); they must be "
            "pixel-aligned."
        )
    try:
        mapping.check_values(label, source.where(row, source.label_column))
    except LabelMapError as error:
        raise SegmentationDataError(str(error)) from error


def _rows_to_check(dataset: Split, count: int) -> list[tuple[int, dict[str, Any]]]:
    """Up to `count` rows spread evenly over a map-style split, or the first `count` of a stream."""
    if isinstance(dataset, datasets.IterableDataset):
        return list(enumerate(dataset.take(count)))
    indices = np.unique(np.linspace(0, len(dataset) - 1, num=min(count, len(dataset))).round().astype(int))
    return [(int(index), dataset[int(index)]) for index in indices]


def check_split(dataset: Split, source: SplitSource, mapping: LabelMapping, count: int) -> None:
    """Decode and check a sample of rows now, so that bad data fails before training starts."""
    if not isinstance(dataset, datasets.IterableDataset) and len(dataset) == 0:
        raise SegmentationDataError(f"{source.where()} is empty.")
    raw_values: set[int] = set()
    for row, example in _rows_to_check(dataset, count):
        raw, label = train_id_label(example[source.label_column], mapping, source, row)
        check_sample(example[source.image_column], label, mapping, source, row)
        raw_values.update(np.unique(raw).tolist())
    looks_converted = raw_values <= set(range(mapping.num_labels)) | {mapping.ignore_index}
    if mapping.lookup is not None and looks_converted:
        logger.warning(
            "%s: every raw label value checked (%s) is already a train id or 255, which is typical of maps that "
            "hold train ids (e.g. *_labelTrainIds.png); if so, pass --labels_are_train_ids to skip the lookup "
            "table.",
            source.where(), sorted(raw_values),
        )
