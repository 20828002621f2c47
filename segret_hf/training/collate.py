"""Batching: pad to the largest sample, keep the true sizes, and refuse labels that are not class ids.

Training crops are already padded to the crop size, so padding is a no-op there. Validation images keep
their aspect ratio and labels their original size, so a batch mixes sizes: images are padded with 0 and
labels with the ignore index, and `image_sizes` / `label_sizes` say which part of each is real, so the
evaluation step can run every image at exactly its own size.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.label_maps import invalid_label_mask
from ..data.label_sets import IGNORE_INDEX
from .data import SegmentationDataError


def _pad_stack(tensors: list[torch.Tensor], fill: float) -> torch.Tensor:
    height = max(t.shape[-2] for t in tensors)
    width = max(t.shape[-1] for t in tensors)
    batch = tensors[0].new_full((len(tensors), *tensors[0].shape[:-2], height, width), fill)
    for index, tensor in enumerate(tensors):
        batch[index, ..., : tensor.shape[-2], : tensor.shape[-1]] = tensor
    return batch


class SegmentationCollator:
    """`data_collator` for the Trainer: `pixel_values`, `labels`, `image_sizes`, `label_sizes`.

    The label check repeats the one done while decoding on purpose: it is the last point before the loss,
    where an out-of-range id would otherwise become a CUDA device-side assert without any hint of the row.
    """

    def __init__(self, num_labels: int, dataset_name: str, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_labels = num_labels
        self.dataset_name = dataset_name
        self.ignore_index = ignore_index

    def _check_labels(self, label: torch.Tensor, row: int) -> None:
        bad = invalid_label_mask(label, self.num_labels, self.ignore_index)
        if bad.any():
            values = torch.unique(label[bad])[:10].tolist()
            raise SegmentationDataError(
                f"Dataset {self.dataset_name!r}, row {row}: label values {values} reached the batch although they "
                f"are not class ids 0..{self.num_labels - 1} nor the ignore value {self.ignore_index}."
            )

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        for example in examples:
            self._check_labels(example["labels"], example["row"])
        images = [example["pixel_values"] for example in examples]
        labels = [example["labels"] for example in examples]
        return {
            "pixel_values": _pad_stack(images, 0.0),
            "labels": _pad_stack(labels, self.ignore_index),
            "image_sizes": torch.tensor([image.shape[-2:] for image in images]),
            "label_sizes": torch.tensor([label.shape[-2:] for label in labels]),
        }
