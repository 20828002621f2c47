"""Per-dataset facts and the released training recipes of each SegRet variant.

A :class:`DatasetPreset` says how a dataset's annotations are read (classes, label reduction, column
names), how its test images are resized, and which released configuration trains each variant on it
(:mod:`segret_hf.data.recipes`). ``get_preset("ade20k").recipe("tiny")`` is the
``SegRet.T.512x512.ade.160k_res.py`` recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Mapping

from .label_sets import ADE20K, CITYSCAPES, COCO_STUFF, COCO_STUFF_10K, LabelSet, canonical_name
from .recipes import ADE20K_RECIPES, CITYSCAPES_RECIPES, COCO_STUFF_10K_RECIPES, TrainingRecipe

MULTI_SCALE_RATIOS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
"""Test-time ratios of multi-scale ("MS") evaluation (mmseg `--aug-test`), each also flipped."""


@dataclass(frozen=True)
class DatasetPreset:
    """Everything dataset-specific that a SegRet training or evaluation run needs.

    ``do_reduce_labels`` is the flag for the image processor; where it is False the raw
    annotations still need ``label_set.lut()`` unless they are already train-id maps. The
    ``*_column_candidates`` are the column names used by common Hugging Face Hub copies, in order
    of preference; :func:`segret_hf.data.loading.resolve_columns` picks the ones a dataset has.
    """

    name: str
    label_set: LabelSet
    do_reduce_labels: bool
    image_column_candidates: tuple[str, ...]
    label_column_candidates: tuple[str, ...]
    recipes: Mapping[str, TrainingRecipe]
    """Released configuration per model variant (``tiny``, ``small``, ``base``, ``large``)."""
    test_size_divisor: int | None = None
    """After the keep-ratio test resize, round each side up to a multiple of this and stretch the image to it
    (mmseg ``AlignedResize``); None keeps the resized size."""

    @property
    def num_labels(self) -> int:
        """Number of classes, i.e. the model's ``num_labels``."""
        return self.label_set.num_labels

    def recipe(self, variant: str | None) -> TrainingRecipe:
        """The released recipe of ``variant`` on this dataset; tiny's when the variant is unknown (None)."""
        key = (variant or "tiny").lower()
        if key not in self.recipes:
            raise ValueError(f"No released {self.name} recipe for variant {variant!r}; known: {sorted(self.recipes)}.")
        return self.recipes[key]


_IMAGE_COLUMNS = ("image", "img")
_LABEL_COLUMNS = ("semantic_segmentation", "label", "annotation", "segmentation", "mask")

DATASET_PRESETS: Mapping[str, DatasetPreset] = MappingProxyType(
    {
        "ade20k": DatasetPreset(
            name="ade20k",
            label_set=ADE20K,
            # SceneParsing PNGs store 0 = "other", 1..150 = classes: reduce labels.
            do_reduce_labels=True,
            # scene_parse_150 on the Hub uses "image" / "annotation".
            image_column_candidates=_IMAGE_COLUMNS,
            label_column_candidates=("annotation", "semantic_segmentation", "label", "segmentation", "mask"),
            recipes=ADE20K_RECIPES,
            test_size_divisor=32,
        ),
        "cityscapes": DatasetPreset(
            name="cityscapes",
            label_set=CITYSCAPES,
            # Cityscapes trains on the 19 train ids: raw labelIds go through the LUT instead.
            do_reduce_labels=False,
            image_column_candidates=_IMAGE_COLUMNS,
            label_column_candidates=_LABEL_COLUMNS,
            recipes=CITYSCAPES_RECIPES,
        ),
        "coco-stuff": DatasetPreset(
            name="coco-stuff",
            label_set=COCO_STUFF,
            # COCO ids have gaps, so a plain "minus one" is wrong: the LUT maps them to 0..170.
            # The 10k release's .mat labels are 1-based: use get_preset("coco-stuff-10k").
            do_reduce_labels=False,
            image_column_candidates=_IMAGE_COLUMNS,
            label_column_candidates=_LABEL_COLUMNS,
            # Only COCO-Stuff-10k configs were released; the 164k split trains with the same recipes.
            recipes=COCO_STUFF_10K_RECIPES,
            test_size_divisor=32,
        ),
    }
)
"""Canonical dataset name -> dataset facts and released recipes."""


def get_preset(name: str) -> DatasetPreset:
    """The preset of ``"ade20k"``, ``"cityscapes"``, ``"coco-stuff"`` or ``"coco-stuff-10k"``, in any spelling
    :func:`~segret_hf.data.label_sets.get_label_set` accepts.

    ``"coco-stuff-10k"`` (the released configs' split) is COCO-Stuff with the label set of the 10k release's
    1-based annotations.
    """
    key = canonical_name(name)
    if key == "coco-stuff-10k":
        return replace(DATASET_PRESETS["coco-stuff"], name=key, label_set=COCO_STUFF_10K)
    return DATASET_PRESETS[key]
