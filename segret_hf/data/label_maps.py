"""Labels, in one place: label-map decoding, train-id conversion, value checks and class names (`id2label`).

Training, evaluation, dataset preparation and the converter read labels through these, so a model is trained
and scored on the same ids, every entry point refuses the same bad values with the same message, and class
names are read by the same rules. Decoding and label reduction delegate to the image processor's helpers
(:mod:`segret_hf.image_processing_segret`), which must stay self-contained as remote code, so that
`processor(segmentation_maps=...)` and the dataset readers accept and convert exactly the same maps.

Errors are :class:`LabelMapError`, whose message names the value only as the caller describes it: each
caller knows where the value came from (dataset, split, row; sample index) and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image
import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HFValidationError

from ..checkpoint_files import read_json_file
from ..image_processing_segret import index_map_pixels, reduce_label_ids, single_channel_map
from .label_sets import IGNORE_INDEX, LABEL_SETS, canonical_name, get_label_set
from .presets import DatasetPreset

ID2LABEL_FILENAME = "id2label.json"
"""File the Hugging Face semantic-segmentation examples read class names from (dataset repo root)."""


class LabelMapError(ValueError):
    """A label value that is not a class-id map, or label ids that the label conversion cannot map or accept."""


# ------------------------------------------------------------------------------------------------------
# Label maps: decoding, conversion to train ids, value checks
# ------------------------------------------------------------------------------------------------------


def label_map_array(value: Any, what: str = "the label map") -> np.ndarray:
    """`(H, W)` int64 class ids from a decoded label value.

    Accepts a PIL image in an index mode (L, P, I;16, I, ...), or anything numpy reads as integers
    (arrays, nested lists) shaped `(H, W)`, `(H, W, 1)` or `(1, H, W)`. A colour image or another shape
    raises :class:`LabelMapError` whose message starts with `what`, the caller's name for the value.
    """
    try:
        if isinstance(value, PIL.Image.Image):
            value = index_map_pixels(value, what)
        label = single_channel_map(np.asarray(value), what)
    except ValueError as error:
        raise LabelMapError(str(error)) from None
    if not (np.issubdtype(label.dtype, np.integer) or label.dtype == np.bool_):
        raise LabelMapError(f"{what} has dtype {label.dtype}; expected a (height, width) map of integer class ids.")
    return label.astype(np.int64)


def reduce_labels(label: np.ndarray) -> np.ndarray:
    """ADE20K/COCO-Stuff "reduce labels": 0 (unlabelled) -> 255, every other id -> id - 1, 255 stays."""
    return reduce_label_ids(label.astype(np.int64))


def invalid_label_mask(
    labels: np.ndarray | torch.Tensor, num_labels: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray | torch.Tensor:
    """Where `labels` (an array or a tensor, on any device) hold neither a class id in `[0, num_labels)` nor
    `ignore_index`: the one definition of a valid label, checked by the readers, the collator and the metric."""
    return (labels != ignore_index) & ((labels < 0) | (labels >= num_labels))


@dataclass(frozen=True)
class LabelMapping:
    """The classes a model predicts and how stored label maps become their ids (`ignore_index` ignored).

    Stored maps are converted by ADE20K-style reduction, by a preset's lookup table for raw annotation ids
    (Cityscapes labelIds, COCO-Stuff ids), or not at all (maps that already hold train ids).
    """

    num_labels: int
    reduce: bool = False
    lookup: np.ndarray | None = field(default=None, repr=False)
    ignore_index: int = IGNORE_INDEX

    @classmethod
    def for_dataset(
        cls,
        num_labels: int,
        preset: DatasetPreset | None,
        do_reduce_labels: bool | None,
        labels_are_train_ids: bool = False,
    ) -> LabelMapping:
        """The mapping the flags and the preset imply (`do_reduce_labels=None`: the preset's choice, else off).

        The reduce flag comes first; otherwise a preset's raw annotations go through its lookup table (or its
        label reduction) unless the maps already hold train ids, which are then read as stored.
        """
        if do_reduce_labels is not None:
            reduce = do_reduce_labels
        else:  # maps that already hold train ids are not reduced either
            reduce = bool(preset and preset.do_reduce_labels and not labels_are_train_ids)
        use_lookup = preset is not None and not reduce and not labels_are_train_ids
        return cls(num_labels, reduce=reduce, lookup=preset.label_set.lut() if use_lookup else None)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Train ids of a raw `(H, W)` int map; LabelMapError when a raw id is outside the lookup table."""
        if self.reduce:
            return reduce_labels(raw)
        if self.lookup is not None:
            if raw.min() < 0 or raw.max() >= len(self.lookup):
                raise LabelMapError(f"raw label values must lie in [0, {len(self.lookup) - 1}] for the lookup table")
            return self.lookup[raw].astype(np.int64)
        return raw

    def invalid_values(self, labels: np.ndarray) -> np.ndarray:
        """Sorted distinct values that are neither a class id nor the ignore index."""
        return np.unique(labels[invalid_label_mask(labels, self.num_labels, self.ignore_index)])

    def check_values(self, labels: np.ndarray, where: str) -> None:
        """Raise LabelMapError, naming `where` and the flag that likely fixes it, when converted `labels` hold
        values that are neither class ids of the model nor the ignore index."""
        bad = self.invalid_values(labels)
        if not bad.size:
            return
        if not self.reduce and bad.max() == self.num_labels:
            hint = "If 0 means 'unlabelled' and the classes are 1..N (ADE20K, COCO-Stuff-10k), pass --do_reduce_labels."
        else:
            hint = (
                "Raw Cityscapes / COCO-Stuff ids need their --dataset_preset, maps already in train ids need "
                "--labels_are_train_ids; check --id2label / --dataset_preset / --do_reduce_labels against the "
                "annotations."
            )
        raise LabelMapError(
            f"{where} has label values {bad[:10].tolist()} outside the model's class ids [0, {self.num_labels - 1}] "
            f"(and not the ignore value {self.ignore_index}); labels were read {self.describe()}. {hint}"
        )

    def describe(self) -> str:
        """Short name of the conversion, for reports and error messages."""
        if self.reduce:
            return "reduce labels (0 -> 255, l -> l - 1)"
        return "preset lookup table (raw ids -> train ids)" if self.lookup is not None else "as stored (train ids)"


# ------------------------------------------------------------------------------------------------------
# Class names: an --id2label spec, or what a dataset declares
# ------------------------------------------------------------------------------------------------------


def config_label_fields(id2label: dict[int, str]) -> dict[str, Any]:
    """`num_labels`, `id2label` and `label2id` for a model config (given only `id2label`, transformers leaves
    `label2id` unset)."""
    return {"num_labels": len(id2label), "id2label": id2label, "label2id": {name: i for i, name in id2label.items()}}


def read_id2label_file(path: str | Path, what: str) -> dict[int, str]:
    """Class names from a JSON file, `{"0": "wall", ...}` or `["wall", ...]`, with ids exactly `0..N-1`.

    `what` names the file in errors (a flag such as `--id2label`, or the dataset's file).
    """
    path = Path(path)
    raw = read_json_file(path, what)
    if isinstance(raw, list):
        raw = dict(enumerate(raw))
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object {{id: name}} or a list of names, got {type(raw).__name__}.")
    try:
        id2label = {int(key): str(value) for key, value in raw.items()}
    except ValueError as error:
        raise ValueError(f"{path}: class ids must be integers ({error}).") from None
    ids = sorted(id2label)
    if not ids or ids != list(range(len(ids))):
        raise ValueError(f"{path}: class ids must be exactly 0..{len(ids) - 1}, got {ids[:20]}.")
    return id2label


def parse_id2label_spec(spec: str | Path) -> tuple[dict[int, str], str | None]:
    """The classes an `--id2label` value names: a JSON file (see :func:`read_id2label_file`) or a built-in
    label set (`ade20k`, `cityscapes`, `coco-stuff`, `coco-stuff-10k`, in any spelling).

    Returns the mapping and the canonical dataset name for built-in names (None for files), so that a model
    card can name the dataset.
    """
    if Path(spec).is_file():
        return read_id2label_file(spec, "--id2label"), None
    try:
        dataset = canonical_name(str(spec))
    except ValueError:
        raise ValueError(
            f"--id2label {spec!r} is neither an existing JSON file nor a built-in label set "
            f"({', '.join(LABEL_SETS)})."
        ) from None
    return get_label_set(dataset).id2label, dataset


def dataset_id2label(
    name_or_path: str,
    dataset: datasets.Dataset | datasets.IterableDataset,
    label_column: str,
    revision: str | None = None,
) -> dict[int, str] | None:
    """The classes a dataset declares, if it declares them; `None` when it does not.

    Looked up, in order: `id2label.json` in a local folder, `id2label.json` in the Hub dataset repo at
    `revision` (skipped quietly when offline or absent), the `ClassLabel` names of the label column.
    """
    path = Path(name_or_path)
    if path.is_dir():
        local = path / ID2LABEL_FILENAME
        if local.is_file():
            return read_id2label_file(local, "The dataset's class list")
    else:
        try:
            downloaded = hf_hub_download(name_or_path, ID2LABEL_FILENAME, repo_type="dataset", revision=revision)
        except (OSError, EntryNotFoundError, HFValidationError):
            pass  # no such file, no network, or not a Hub id: fall through to the features
        else:
            return read_id2label_file(downloaded, "The dataset's class list")
    feature = dataset.features.get(label_column) if dataset.features else None
    while isinstance(feature, (datasets.Sequence, list)):  # per-pixel ClassLabel stored as nested lists
        feature = feature.feature if isinstance(feature, datasets.Sequence) else feature[0]
    if isinstance(feature, datasets.ClassLabel):
        return dict(enumerate(feature.names))
    return None


def write_id2label_file(folder: str | Path, id2label: dict[int, str]) -> Path:
    """Write `folder/id2label.json` (`{"0": "wall", ...}`), the file :func:`dataset_id2label` reads back."""
    path = Path(folder) / ID2LABEL_FILENAME
    content = {str(index): name for index, name in sorted(id2label.items())}
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return path
