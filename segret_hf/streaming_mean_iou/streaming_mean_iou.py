"""Streaming mean IoU for semantic segmentation, as an `evaluate` metric with `segret_hf.metrics`' numbers.

`evaluate`'s own `mean_iou` stores every prediction and label map until `compute` and then holds them all in
memory at once; for ADE20K's 2,000 validation images that is gigabytes. This module stores, per `add_batch`,
only how many pixels fell on each (label, prediction) pair present in the batch, a few hundred numbers per
image whatever its size, and builds the confusion matrix from them in `compute`. Everything else is
`evaluate`'s: the on-disk cache, `add` / `add_batch` / `compute`, several processes writing one result.

Usage, offline (the metric ships with segret_hf):

```python
import evaluate
import segret_hf.streaming_mean_iou

metric = evaluate.load(segret_hf.streaming_mean_iou.PATH)
for predictions, labels in batches:  # class-id maps of any shape, numpy / torch / PIL
    metric.add_batch(predictions=predictions, references=labels)
results = metric.compute(num_labels=150, ignore_index=255)
```

`results` are `segret_hf.metrics.SegmentationMetric.compute`'s: `mean_iou`, `mean_accuracy`,
`overall_accuracy` (fractions in [0, 1]) and `per_category_iou` / `per_category_accuracy`, with the semantics
of `evaluate`'s `mean_iou` without `reduce_labels` (map labels beforehand, e.g. with the image processor).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import datasets
import evaluate
import numpy as np

from segret_hf.metrics import SegmentationMetric
from segret_hf.model_card import SEGRET_BIBTEX

_KWARGS_DESCRIPTION = """
Args:
    predictions: class-id maps (integer arrays, tensors or images), one per image or one batched array.
    references: label maps of the same shapes.
    num_labels (`int`): number of classes; given to `compute`.
    ignore_index (`int`, defaults to 255): label value whose pixels are not counted; given to `compute`.
Returns:
    mean_iou, mean_accuracy, overall_accuracy, per_category_iou, per_category_accuracy.
"""

_PAIRS = datasets.Features(
    {"label": datasets.Value("int64"), "prediction": datasets.Value("int64"), "pixels": datasets.Value("int64")}
)


def _class_ids(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise TypeError(
            f"{what} must hold integer class ids, got dtype {array.dtype}; for predictions, take the argmax of "
            "the logits resized to the label size."
        )
    return array.astype(np.int64, copy=False)


def _maps(values: Any) -> Iterable[Any]:
    """One batched array, or a sequence of maps whose sizes may differ."""
    return [values] if isinstance(values, np.ndarray) or hasattr(values, "dim") else values


def pair_counts(predictions: Any, references: Any) -> dict[str, list[int]]:
    """Pixels per (label, prediction) pair over a batch, as the columns this module stores."""
    keys = []
    for prediction, reference in zip(_maps(predictions), _maps(references), strict=True):
        prediction, reference = _class_ids(prediction, "predictions"), _class_ids(reference, "references")
        if prediction.shape != reference.shape:
            raise ValueError(
                f"A prediction of shape {prediction.shape} comes with a reference of shape {reference.shape}; "
                "resize the logits to the label size before the argmax."
            )
        keys.append(np.stack([reference.ravel(), prediction.ravel()], axis=1))
    pairs, pixels = np.unique(np.concatenate(keys), axis=0, return_counts=True)
    return {"label": pairs[:, 0].tolist(), "prediction": pairs[:, 1].tolist(), "pixels": pixels.tolist()}


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class StreamingMeanIoU(evaluate.Metric):
    """mIoU from (label, prediction) pixel counts: memory and cache grow with the classes, not the pixels."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation=SEGRET_BIBTEX,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_PAIRS,
            reference_urls=["https://arxiv.org/abs/2502.14014"],
        )

    def add_batch(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> None:
        """Count a batch of class-id maps (see the module docstring)."""
        if kwargs:
            raise TypeError(f"add_batch takes predictions and references, got also {sorted(kwargs)}.")
        super().add_batch(**pair_counts(predictions, references))

    def add(self, *, prediction: Any = None, reference: Any = None, **kwargs: Any) -> None:
        """Count one class-id map."""
        if kwargs:
            raise TypeError(f"add takes prediction and reference, got also {sorted(kwargs)}.")
        self.add_batch(predictions=[prediction], references=[reference])

    def compute(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> dict[str, Any] | None:
        """Results over everything added (plus `predictions` / `references` if given); None off process 0."""
        if predictions is not None or references is not None:
            self.add_batch(predictions=predictions, references=references)
        return super().compute(**kwargs)

    def _compute(
        self, label: list[int], prediction: list[int], pixels: list[int], num_labels: int, ignore_index: int = 255
    ) -> dict[str, Any]:
        labels, predictions, counts = (np.asarray(column, dtype=np.int64) for column in (label, prediction, pixels))
        kept = labels != ignore_index
        labels, predictions, counts = labels[kept], predictions[kept], counts[kept]
        for name, values in (("references", labels), ("predictions", predictions)):
            outside = (values < 0) | (values >= num_labels)
            if outside.any():
                raise ValueError(
                    f"{name} contain the value {int(values[outside][0])}, outside the class ids [0, {num_labels - 1}] "
                    f"and not ignore_index={ignore_index}; check num_labels and map the labels to train ids first."
                )
        matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
        np.add.at(matrix, (labels, predictions), counts)
        return SegmentationMetric(num_labels, ignore_index).merge(matrix).compute()
