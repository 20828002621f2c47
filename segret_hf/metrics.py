"""Streaming semantic-segmentation metric (mIoU, accuracies) shared by training and evaluation.

Everything is derived from one ``num_labels x num_labels`` confusion matrix, so memory does not
grow with the number of images, updates can stay on the GPU, and results from several processes
combine by summing matrices (``torch.distributed.all_reduce(metric.confusion_matrix)`` or
:meth:`SegmentationMetric.merge`). The numbers follow mmsegmentation's ``IoUMetric`` and the
``evaluate`` library's ``mean_iou`` (with ``reduce_labels=False``):

* IoU of class c = TP / (TP + FP + FN); NaN when c is neither predicted nor labelled.
* Accuracy of class c = TP / (pixels labelled c); NaN when no pixel is labelled c.
* Means ignore NaN entries; overall accuracy = all TP / all labelled pixels.
* Pixels whose reference equals ``ignore_index`` are skipped entirely.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch

from .data.label_maps import invalid_label_mask
from .data.label_sets import IGNORE_INDEX

ArrayLike = Union[torch.Tensor, np.ndarray]


def _as_tensor(values: ArrayLike, what: str) -> torch.Tensor:
    """Integer tensor view of ``values``; rejects float input because it usually means logits."""
    if isinstance(values, np.ndarray):
        if not (np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_):
            raise TypeError(f"{what} must hold integer class ids, got a numpy array of dtype {values.dtype}.")
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64))
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or numpy.ndarray, got {type(values).__name__}.")
    if values.dtype.is_floating_point or values.dtype.is_complex:
        raise TypeError(
            f"{what} must hold integer class ids, got dtype {values.dtype}. "
            "For predictions, take logits.argmax(dim=1) after resizing the logits to the label size."
        )
    return values


class SegmentationMetric:
    """Accumulates a confusion matrix over batches and reports mIoU and accuracies.

    ``confusion_matrix[label, prediction]`` counts pixels (int64). It lives on the device of the
    latest update, so GPU batches are counted without host synchronisation beyond one validity
    check per update.
    """

    def __init__(self, num_labels: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}.")
        self.num_labels = num_labels
        self.ignore_index = ignore_index
        self.confusion_matrix = torch.zeros(num_labels, num_labels, dtype=torch.int64)

    def reset(self) -> None:
        """Forget all counts (e.g. at the start of each evaluation)."""
        self.confusion_matrix = torch.zeros_like(self.confusion_matrix)

    def update(self, predictions: ArrayLike, references: ArrayLike) -> None:
        """Count one batch; ``predictions`` and ``references`` are same-shaped class-id maps.

        Any shape works ((H, W), (B, H, W), ...). Raises ValueError when the shapes differ or a
        non-ignored pixel has a value outside ``[0, num_labels)``.
        """
        preds = _as_tensor(predictions, "predictions")
        refs = _as_tensor(references, "references")
        if preds.shape != refs.shape:
            raise ValueError(
                f"predictions have shape {tuple(preds.shape)} but references have shape {tuple(refs.shape)}. "
                "Resize the logits to the label size (bilinear, align_corners=False) before argmax, "
                "and drop any channel dimension."
            )
        # Count where the data already is; a numpy side joins the accelerator side, not vice versa.
        device = preds.device if preds.device.type != "cpu" else refs.device
        refs = refs.to(device=device, dtype=torch.int64)
        preds = preds.to(device=device, dtype=torch.int64)
        n = self.num_labels
        valid = refs != self.ignore_index
        bad_refs = invalid_label_mask(refs, n, self.ignore_index)
        bad_preds = valid & ((preds < 0) | (preds >= n))
        has_bad_refs, has_bad_preds = torch.stack([bad_refs.any(), bad_preds.any()]).tolist()
        if has_bad_refs:
            value = int(refs[bad_refs][0])
            raise ValueError(
                f"references contain the value {value}, which is neither a class id in [0, {n - 1}] nor "
                f"ignore_index={self.ignore_index}. Remap raw annotations to train ids first (ADE20K: "
                "do_reduce_labels=True; Cityscapes/COCO-Stuff: segret_hf.data.label_lut(name)), or fix "
                "num_labels / ignore_index to match the labels."
            )
        if has_bad_preds:
            value = int(preds[bad_preds][0])
            raise ValueError(
                f"predictions contain the value {value}, outside the class ids [0, {n - 1}]. "
                f"The model's num_labels does not match this metric's num_labels={n}."
            )
        # Ignored pixels go to an extra bin that is dropped, avoiding a data-dependent gather.
        index = torch.where(valid, refs * n + preds, n * n)
        counts = torch.bincount(index.reshape(-1), minlength=n * n + 1)[: n * n].reshape(n, n)
        if self.confusion_matrix.device != counts.device:
            self.confusion_matrix = self.confusion_matrix.to(counts.device)
        self.confusion_matrix += counts

    def merge(self, other: SegmentationMetric | ArrayLike) -> SegmentationMetric:
        """Add another metric's (or a raw ``num_labels x num_labels``) confusion matrix; returns self.

        Used to combine per-process or per-dataset-shard results.
        """
        matrix = other.confusion_matrix if isinstance(other, SegmentationMetric) else _as_tensor(other, "other")
        expected = (self.num_labels, self.num_labels)
        if tuple(matrix.shape) != expected:
            raise ValueError(f"Cannot merge a confusion matrix of shape {tuple(matrix.shape)} into one of shape {expected}.")
        self.confusion_matrix += matrix.to(device=self.confusion_matrix.device, dtype=torch.int64)
        return self

    def compute(self) -> dict[str, Any]:
        """``mean_iou``, ``mean_accuracy``, ``overall_accuracy`` (floats in [0, 1] or NaN) and the
        ``per_category_iou`` / ``per_category_accuracy`` lists, with the semantics in the module
        docstring."""
        matrix = self.confusion_matrix.cpu().numpy().astype(np.float64)
        true_positive = np.diag(matrix)
        area_label = matrix.sum(axis=1)
        area_pred = matrix.sum(axis=0)
        union = area_label + area_pred - true_positive
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = true_positive / union
            accuracy = true_positive / area_label
            overall = true_positive.sum() / matrix.sum()
        return {
            "mean_iou": _nanmean(iou),
            "mean_accuracy": _nanmean(accuracy),
            "overall_accuracy": float(overall),
            "per_category_iou": iou.tolist(),
            "per_category_accuracy": accuracy.tolist(),
        }


def _nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN entries, NaN (without a RuntimeWarning) when there are none."""
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else math.nan


def format_per_class_table(
    results: Mapping[str, Any],
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    digits: int = 2,
) -> str:
    """Plain-text table of per-class IoU and accuracy (in %) plus the summary, for console logs.

    ``results`` is the output of :meth:`SegmentationMetric.compute`; ``class_names`` may be a list
    or an ``id2label`` mapping (int or str keys, as in a loaded ``config.json``).
    """
    ious = list(results["per_category_iou"])
    accuracies = list(results["per_category_accuracy"])
    if class_names is None:
        names = [str(index) for index in range(len(ious))]
    elif isinstance(class_names, Mapping):
        names = [str(class_names.get(index, class_names.get(str(index), index))) for index in range(len(ious))]
    else:
        names = [str(name) for name in class_names]
    if len(names) != len(ious):
        raise ValueError(f"Got {len(names)} class names for {len(ious)} classes.")

    def percent(value: float) -> str:
        return "nan" if math.isnan(value) else f"{100 * value:.{digits}f}"

    rows = [(name.strip() or repr(name), percent(iou), percent(acc)) for name, iou, acc in zip(names, ious, accuracies)]
    header = ("Class", "IoU", "Acc")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(3)]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"

    def line(row: tuple[str, str, str]) -> str:
        return f"| {row[0]:<{widths[0]}} | {row[1]:>{widths[1]}} | {row[2]:>{widths[2]}} |"

    summary = (
        f"mIoU: {percent(results['mean_iou'])}  mAcc: {percent(results['mean_accuracy'])}  "
        f"aAcc: {percent(results['overall_accuracy'])}"
    )
    return "\n".join([rule, line(header), rule, *map(line, rows), rule, summary])
