"""Pictures of the trained model's predictions on a few validation images, written after training.

A quick visual check that the numbers mean something: for each image, an overlay of the prediction with
a legend, and an `image | label | prediction` strip.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import torch

from ..data.label_maps import LabelMapping
from ..image_processing_segret import SegRetImageProcessor
from ..modeling_segret import SegRetForSemanticSegmentation
from ..visualization import palette_for_labels, render_segmentation, side_by_side
from .data import SplitSource, train_id_label


@torch.no_grad()
def write_prediction_overlays(
    model: SegRetForSemanticSegmentation,
    processor: SegRetImageProcessor,
    dataset: datasets.Dataset | datasets.IterableDataset,
    source: SplitSource,
    mapping: LabelMapping,
    output_dir: str | Path,
    count: int,
) -> list[Path]:
    """Predict the first `count` rows of `dataset` (raw, untransformed) and save the pictures; returns paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    palette, _ = palette_for_labels(id2label)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    written = []
    if isinstance(dataset, datasets.IterableDataset):
        rows = dataset.take(count)
    else:
        rows = dataset.select(range(min(count, len(dataset))))
    for row, example in enumerate(rows):
        image = example[source.image_column]
        _, label = train_id_label(example[source.label_column], mapping, source, row)
        inputs = processor(images=image, return_tensors="pt").to(device)
        outputs = model(pixel_values=inputs["pixel_values"].to(model.dtype))
        prediction = processor.post_process_semantic_segmentation(outputs, target_sizes=[label.shape])[0].cpu()
        overlay_path = output_dir / f"{source.split}_{row:04d}_overlay.png"
        render_segmentation(image, prediction, id2label, palette).save(overlay_path)
        strip_path = output_dir / f"{source.split}_{row:04d}_image_label_prediction.png"
        side_by_side(image, label, prediction.numpy(), palette, mapping.ignore_index).save(strip_path)
        written += [overlay_path, strip_path]
    model.train(was_training)
    return written
