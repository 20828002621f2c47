"""`model-index` results (`huggingface_hub.EvalResult`) for SegRet model cards.

The Hub reads a card's `model-index` metadata to show the results of a model on its page and to compare
models on a dataset; numbers that are only in the card's Markdown are invisible there. Each number a card
reports becomes one result, stating the dataset (Hub id, configuration, split), the metric and how it was
obtained:

* numbers *measured* on the weights (a training run's evaluation) carry the protocol in the metric name and
  `metric_args` (scales, flip, test resize);
* numbers *quoted* from the paper for a converted release checkpoint name the paper as their `source` and
  are `verified: false`, as everything not computed by the Hub's own evaluation is.

Values are fractions in [0, 1], the unit of `evaluate`'s `mean_iou` and of the training logs (the paper's
percentages are divided by 100).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import EvalResult

from .data.label_sets import canonical_name

TASK_TYPE = "image-segmentation"
TASK_NAME = "Semantic Segmentation"
PAPER_URL = "https://arxiv.org/abs/2502.14014"
PAPER_SOURCE = "SegRet paper (arXiv 2502.14014), mmsegmentation evaluation"

METRIC_NAMES = {"mean_iou": "mIoU", "mean_accuracy": "mAcc", "overall_accuracy": "aAcc"}
"""Result keys of `segret_hf.metrics.SegmentationMetric` (and `evaluate`'s `mean_iou`) -> card names."""

SINGLE_SCALE: dict[str, Any] = {"scales": [1.0], "flip": False}
MULTI_SCALE: dict[str, Any] = {"scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "flip": True}
"""mmsegmentation's multi-scale test (the paper's "MS"): these resize ratios, each also flipped."""


@dataclass(frozen=True)
class Benchmark:
    """A dataset the paper reports results on, as the Hub names it."""

    hub_id: str
    title: str
    config: str | None
    split: str


# The paper's "COCO-Stuff" results are on COCO-Stuff-10K (named in its abstract), evaluated on its 1,000
# test images; ADE20K and Cityscapes on their validation sets.
PAPER_BENCHMARKS: dict[str, Benchmark] = {
    "ade20k": Benchmark("scene_parse_150", "ADE20K", "scene_parsing", "validation"),
    "cityscapes": Benchmark("cityscapes", "Cityscapes", None, "validation"),
    "coco-stuff-10k": Benchmark("coco-stuff-10k", "COCO-Stuff-10K", None, "test"),
}


def paper_benchmark(dataset: str) -> Benchmark:
    """The benchmark the paper evaluated a label set on (COCO-Stuff's classes: on COCO-Stuff-10K)."""
    key = canonical_name(dataset)
    return PAPER_BENCHMARKS["coco-stuff-10k" if key == "coco-stuff" else key]


@dataclass(frozen=True)
class Measurement:
    """Numbers measured on a model's weights and what produced them.

    Args:
        metrics: values in [0, 1] keyed by `METRIC_NAMES` keys (`mean_iou`, `mean_accuracy`, `overall_accuracy`).
        dataset_id: Hub dataset id, or a local dataset's folder name.
        dataset_title: readable dataset name.
        split: evaluated split.
        protocol: how predictions were made (`scales`, `flip`, test resize, ...), stored as `metric_args`.
        description: short protocol name for the metric names, e.g. "single-scale".
        dataset_config: Hub dataset configuration, if one was chosen.
        dataset_revision: Hub dataset revision, if one was chosen.
    """

    metrics: Mapping[str, float]
    dataset_id: str
    dataset_title: str
    split: str
    protocol: Mapping[str, Any] = field(default_factory=lambda: dict(SINGLE_SCALE))
    description: str = "single-scale"
    dataset_config: str | None = None
    dataset_revision: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"Measurement metrics must be among {sorted(METRIC_NAMES)}, got {unknown}.")


def measured_results(measurement: Measurement) -> list[EvalResult]:
    """One result per measured metric, on the measured dataset and split."""
    return [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=measurement.dataset_id,
            dataset_name=measurement.dataset_title,
            dataset_config=measurement.dataset_config,
            dataset_split=measurement.split,
            dataset_revision=measurement.dataset_revision,
            metric_type=key,
            metric_name=f"{METRIC_NAMES[key]} ({measurement.description})",
            metric_value=float(value),
            metric_args=dict(measurement.protocol),
        )
        for key, value in measurement.metrics.items()
    ]


def paper_results(dataset: str, miou: tuple[float, float]) -> list[EvalResult]:
    """The paper's single- and multi-scale mIoU (in percent) for a release checkpoint's dataset."""
    benchmark = paper_benchmark(dataset)
    return [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=benchmark.hub_id,
            dataset_name=benchmark.title,
            dataset_config=benchmark.config,
            dataset_split=benchmark.split,
            metric_type="mean_iou",
            metric_name=f"mIoU ({name})",
            metric_value=round(percent / 100, 6),
            metric_args=dict(protocol),
            verified=False,
            source_name=PAPER_SOURCE,
            source_url=PAPER_URL,
        )
        for name, protocol, percent in (("single-scale", SINGLE_SCALE, miou[0]), ("multi-scale, flip", MULTI_SCALE, miou[1]))
    ]


__all__ = [
    "METRIC_NAMES",
    "PAPER_BENCHMARKS",
    "Benchmark",
    "Measurement",
    "measured_results",
    "paper_benchmark",
    "paper_results",
]
