"""Per-dataset defaults for training and evaluating SegRet as the paper did.

Sources, cited per field below:

* [paper] SegRet paper, section "Implementation details": "We randomly flip and crop the ADE20K and
  COCO-Stuff dataset to a size of 512x512 and ... the Cityscapes dataset ... 512x1024. Specifically,
  on the ADE20K dataset, the Large model is randomly cropped to 640x640 ... AdamW optimizer, with a
  learning rate of 0.0001 and weight decay of 0.01. The batch sizes for ADE20K and COCO-Stuff were
  set to 16, while Cityscapes was set to 8. ADE20K and Cityscapes were trained for 160k
  iterations, and COCO-Stuff for 80k iterations. The evaluation process followed the same
  settings as Mask2former." Training ran on four GPUs, so the batch sizes are totals.
* [mmseg] The mmsegmentation / Mask2Former dataset configs the paper builds on (the paper gives
  no resize scale): ``RandomResize(scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True)``
  for ADE20K and COCO-Stuff, ``scale=(2048, 1024)`` for Cityscapes, and the same scale with
  ``keep_ratio=True`` at test time (ADE20K 640 crop: ``(2560, 640)``).
* [arch] ARCHITECTURE.md, "Loss and evaluation": label reduction, single-scale test sizes and the
  multi-scale ratios.

Scales are mmsegmentation's ``(long_edge, short_edge)`` bounds with the aspect ratio kept: the
image is resized by the largest factor that keeps its long side <= ``long_edge`` and its short side
<= ``short_edge``. Crop sizes are ``(height, width)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Iterable, Mapping

from .label_sets import ADE20K, CITYSCAPES, COCO_STUFF, COCO_STUFF_10K, LabelSet, canonical_name

MULTI_SCALE_RATIOS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
"""[arch] Test-time ratios of the paper's multi-scale ("MS") results, each also flipped."""


@dataclass(frozen=True)
class DatasetPreset:
    """Everything dataset-specific that a SegRet training or evaluation run needs.

    ``do_reduce_labels`` is the flag for the image processor; where it is False the raw
    annotations still need ``label_set.lut()`` unless they are already train-id maps. The
    ``*_column_candidates`` are the column names used by common Hugging Face Hub copies, in order
    of preference; :meth:`resolve_columns` picks the ones a given dataset actually has.
    """

    name: str
    label_set: LabelSet
    do_reduce_labels: bool
    image_column_candidates: tuple[str, ...]
    label_column_candidates: tuple[str, ...]
    crop_size: tuple[int, int]
    train_batch_size: int
    train_iterations: int
    train_scale: tuple[int, int]
    test_scale: tuple[int, int]
    learning_rate: float = 1e-4  # [paper] AdamW
    weight_decay: float = 0.01  # [paper]
    test_size_divisor: int | None = None
    """After the keep-ratio test resize, round each side up to a multiple of this and stretch the image to it
    (mmseg ``AlignedResize``); None keeps the resized size."""
    resize_ratio_range: tuple[float, float] = (0.5, 2.0)  # [mmseg] random rescale around train_scale
    multi_scale_ratios: tuple[float, ...] = MULTI_SCALE_RATIOS
    ignore_index: int = 255  # [arch] cross-entropy ignore index
    variant_overrides: Mapping[str, Mapping[str, tuple[int, int]]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    """Per-model-variant replacements of ``crop_size`` / ``train_scale`` / ``test_scale``."""

    @property
    def num_labels(self) -> int:
        """Number of classes, i.e. the model's ``num_labels``."""
        return self.label_set.num_labels

    def for_variant(self, variant: str) -> DatasetPreset:
        """This preset with the sizes a model variant was trained with (e.g. ADE20K large: 640)."""
        overrides = self.variant_overrides.get(variant.lower(), {})
        return replace(self, **overrides) if overrides else self

    def resolve_columns(self, column_names: Iterable[str]) -> tuple[str, str]:
        """``(image_column, label_column)`` of a loaded dataset, chosen from the candidates.

        Raises ValueError naming the available columns, so a Hub copy with unusual names fails
        at start-up rather than deep inside preprocessing.
        """
        available = list(column_names)
        chosen = []
        for kind, candidates in (("image", self.image_column_candidates), ("label", self.label_column_candidates)):
            match = next((name for name in candidates if name in available), None)
            if match is None:
                raise ValueError(
                    f"No {kind} column for {self.name!r}: expected one of {list(candidates)}, the dataset has "
                    f"{available}. Pass the column name explicitly."
                )
            chosen.append(match)
        return chosen[0], chosen[1]


DATASET_PRESETS: Mapping[str, DatasetPreset] = MappingProxyType(
    {
        "ade20k": DatasetPreset(
            name="ade20k",
            label_set=ADE20K,
            # [arch] SceneParsing PNGs store 0 = "other", 1..150 = classes: reduce labels.
            do_reduce_labels=True,
            # scene_parse_150 on the Hub uses "image" / "annotation".
            image_column_candidates=("image", "img"),
            label_column_candidates=("annotation", "label", "semantic_segmentation", "segmentation", "mask"),
            crop_size=(512, 512),  # [paper]
            train_batch_size=16,  # [paper] total over 4 GPUs
            train_iterations=160_000,  # [paper]
            train_scale=(2048, 512),  # [mmseg]
            test_scale=(2048, 512),  # [arch]/[mmseg] short side 512
            test_size_divisor=32,
            variant_overrides=MappingProxyType(
                # [paper] large is cropped to 640x640; [arch] its test short side is 640.
                {"large": MappingProxyType({"crop_size": (640, 640), "train_scale": (2560, 640), "test_scale": (2560, 640)})}
            ),
        ),
        "cityscapes": DatasetPreset(
            name="cityscapes",
            label_set=CITYSCAPES,
            # [arch] Cityscapes trains on the 19 train ids: raw labelIds go through the LUT instead.
            do_reduce_labels=False,
            image_column_candidates=("image", "img"),
            label_column_candidates=("semantic_segmentation", "label", "annotation", "segmentation", "mask"),
            crop_size=(512, 1024),  # [paper]
            train_batch_size=8,  # [paper] total over 4 GPUs
            train_iterations=160_000,  # [paper]
            train_scale=(2048, 1024),  # [mmseg]
            test_scale=(2048, 1024),  # [arch] whole 1024x2048 image
        ),
        "coco-stuff": DatasetPreset(
            name="coco-stuff",
            label_set=COCO_STUFF,
            # COCO ids have gaps, so a plain "minus one" is wrong: the LUT maps them to 0..170.
            # The paper's COCO-Stuff-10k .mat labels are 1-based: use get_preset("coco-stuff-10k").
            do_reduce_labels=False,
            image_column_candidates=("image", "img"),
            label_column_candidates=("semantic_segmentation", "label", "annotation", "segmentation", "mask"),
            crop_size=(512, 512),  # [paper]
            train_batch_size=16,  # [paper] total over 4 GPUs
            train_iterations=80_000,  # [paper]
            train_scale=(2048, 512),  # [mmseg]
            test_scale=(2048, 512),  # [mmseg] short side 512
            test_size_divisor=32,
        ),
    }
)
"""Canonical dataset name -> paper defaults."""


def get_preset(name: str) -> DatasetPreset:
    """The preset of ``"ade20k"``, ``"cityscapes"`` or ``"coco-stuff"``, in any spelling
    :func:`~segret_hf.data.label_sets.get_label_set` accepts.

    ``"coco-stuff-10k"`` (the paper's split) gets COCO-Stuff's training defaults with the label
    set of the 10k release's 1-based annotations.
    """
    key = canonical_name(name)
    if key == "coco-stuff-10k":
        return replace(DATASET_PRESETS["coco-stuff"], name=key, label_set=COCO_STUFF_10K)
    return DATASET_PRESETS[key]
