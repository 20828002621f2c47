"""The classes a converted model predicts: from its classifier, the checkpoint's metadata, the architecture or
the command line, refusing any two sources that disagree."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..data.label_maps import config_label_fields
from ..data.label_sets import LABEL_SETS
from .checkpoint import CheckpointConversionError, OriginalCheckpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelSpec:
    """The classes a converted model predicts, and the dataset they belong to when that is known."""

    num_labels: int
    id2label: dict[int, str] | None = None
    dataset: str | None = None

    def config_fields(self) -> dict[str, Any]:
        """`num_labels`, and `id2label` / `label2id` when the names are known, for the model config."""
        return config_label_fields(self.id2label) if self.id2label is not None else {"num_labels": self.num_labels}


def dataset_of_class_names(class_names: list[str]) -> str | None:
    """The built-in label set whose classes (in order) are `class_names`, ignoring surrounding spaces."""
    names = [name.strip() for name in class_names]
    for label_set in LABEL_SETS.values():
        if [name.strip() for name in label_set.class_names] == names:
            return label_set.name
    return None


def resolve_labels(
    checkpoint: OriginalCheckpoint,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    id2label_dataset: str | None = None,
    architecture_num_classes: int | None = None,
) -> LabelSpec:
    """Decide the class count and names, refusing any two sources that disagree.

    An mmseg checkpoint's classifier fixes the count; every other source (`--num_labels`, `--id2label`, the
    architecture's `num_classes`, the checkpoint's `meta["CLASSES"]`) must agree with it. An explicit
    `--id2label` names the classes in preference to `meta["CLASSES"]`. A backbone-only checkpoint has no
    classifier, so the count must come from the command line or the architecture; there the architecture's
    `num_classes` is only the original constructor's default (the classes it was built for), so an explicit
    `--num_labels` / `--id2label` replaces it, with a note in the log.
    """
    sources: list[tuple[str, int]] = []
    classifier = checkpoint.head.get("decode_head.linear_pred.weight")
    if classifier is not None:
        sources.append(("the checkpoint's classifier (decode_head.linear_pred.weight)", classifier.shape[0]))
    if num_labels is not None:
        sources.append(("--num_labels", num_labels))
    if id2label is not None:
        sources.append(("--id2label", len(id2label)))
    explicit = num_labels is not None or id2label is not None
    if architecture_num_classes is not None and classifier is None and explicit:
        logger.warning(
            "The architecture's num_classes (%d) is not used: this backbone-only checkpoint has no classifier, "
            "and the classes given on the command line decide the new head.",
            architecture_num_classes,
        )
    elif architecture_num_classes is not None:
        sources.append(("the architecture's num_classes", architecture_num_classes))
    if id2label is None and checkpoint.class_names:
        sources.append(('the checkpoint\'s meta["CLASSES"]', len(checkpoint.class_names)))
        id2label = dict(enumerate(checkpoint.class_names))
    if not sources:
        raise CheckpointConversionError(
            "This backbone-only (RMT ImageNet) checkpoint does not say how many classes the segmentation model "
            "should predict: pass --num_labels or --id2label."
        )
    counts = {count for _, count in sources}
    if len(counts) > 1:
        raise CheckpointConversionError(
            "Conflicting numbers of classes: " + ", ".join(f"{name} gives {count}" for name, count in sources) + "."
        )
    count = counts.pop()
    if count < 1:
        raise CheckpointConversionError(f"The number of classes must be positive, got {count}.")
    dataset = id2label_dataset
    if dataset is None and id2label is not None:
        dataset = dataset_of_class_names(list(id2label.values()))
    return LabelSpec(count, id2label, dataset)
