"""Stored label maps -> train-id arrays: decoding a dataset's label value and converting its ids.

Training and evaluation read labels through these, so a model is trained and scored on the same ids and
both refuse the same bad values. Errors are :class:`LabelMapError`, whose message names the value only
generically: each caller knows where the value came from (dataset, split, row; sample index) and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import PIL.Image

from .label_sets import IGNORE_INDEX
from .presets import DatasetPreset

_INDEX_MAP_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")
"""PIL modes whose pixels are single integers (class ids), as opposed to colours."""


class LabelMapError(ValueError):
    """A label value that is not a class-id map, or raw ids that the label conversion cannot map."""


def label_map_array(value: Any, what: str = "the label map") -> np.ndarray:
    """`(H, W)` int64 class ids from a decoded label value.

    Accepts a PIL image in an index mode (L, P, I;16, I, ...), or anything numpy reads as integers
    (arrays, nested lists) shaped `(H, W)`, `(H, W, 1)` or `(1, H, W)`. A colour image or another shape
    raises :class:`LabelMapError` whose message starts with `what`, the caller's name for the value.
    """
    if isinstance(value, PIL.Image.Image):
        if value.mode not in _INDEX_MAP_MODES:
            raise LabelMapError(
                f"{what} is a {value.mode!r} image; labels must be single-channel class-id maps (modes L, P, "
                "I;16, I). Convert colour-coded masks to class ids first."
            )
        value = np.array(value)
    label = np.asarray(value)
    if label.ndim == 3 and 1 in (label.shape[0], label.shape[-1]):
        label = label.squeeze(0 if label.shape[0] == 1 else -1)
    if label.ndim != 2 or not (np.issubdtype(label.dtype, np.integer) or label.dtype == np.bool_):
        raise LabelMapError(
            f"{what} has shape {label.shape} and dtype {label.dtype}; expected a (height, width) map of integer "
            "class ids."
        )
    return label.astype(np.int64)


def reduce_labels(label: np.ndarray) -> np.ndarray:
    """ADE20K/COCO-Stuff "reduce labels": 0 (unlabelled) -> 255, every other id -> id - 1, 255 stays."""
    label = label.astype(np.int64)
    return np.where((label == 0) | (label == IGNORE_INDEX), IGNORE_INDEX, label - 1)


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
        bad = (labels != self.ignore_index) & ((labels < 0) | (labels >= self.num_labels))
        return np.unique(labels[bad])

    def describe(self) -> str:
        """Short name of the conversion, for reports and error messages."""
        if self.reduce:
            return "reduce labels (0 -> 255, l -> l - 1)"
        return "preset lookup table (raw ids -> train ids)" if self.lookup is not None else "as stored (train ids)"
