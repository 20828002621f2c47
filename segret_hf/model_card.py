"""Hugging Face Hub model cards (README.md) for SegRet checkpoints.

One renderer serves both the checkpoint converter and the training script, so every published SegRet
model states the same things the same way: variant and exact parameter count, where the weights came
from, which numbers were *measured* on these weights and which are only *quoted* from the paper.
Paper numbers are never presented as a measurement of the checkpoint they are attached to, and the paper's
table appears only for models whose classes are one of the paper's datasets. The numbers are also in the
card's `model-index` metadata (`segret_hf.model_index`), which the Hub shows on the model page. Local files
and folders are named by their own name, never by their path on the machine that wrote the card.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from .data.label_sets import canonical_name
from .data.presets import get_preset
from .model_index import METRIC_NAMES, Measurement, measured_results, paper_results

CARD_TAGS = ["segret", "semantic-segmentation", "vision"]

# mIoU (single-scale, multi-scale) from the paper's tables: Tables 1-3 (tiny) and 6-8 (small, base,
# large). Where the appendix prose disagrees with Table 7 (small/base on Cityscapes) the table is used.
PAPER_MIOU: dict[str, dict[str, tuple[float, float]]] = {
    "tiny": {"ade20k": (48.76, 49.39), "cityscapes": (81.75, 82.17), "coco-stuff": (42.22, 43.32)},
    "small": {"ade20k": (50.7, 51.29), "cityscapes": (82.93, 83.52), "coco-stuff": (44.32, 45.48)},
    "base": {"ade20k": (51.63, 52.13), "cityscapes": (83.28, 83.87), "coco-stuff": (45.92, 46.06)},
    "large": {"ade20k": (52.0, 52.23), "cityscapes": (83.36, 83.91), "coco-stuff": (45.78, 46.63)},
}

DATASET_TITLES = {
    "ade20k": "ADE20K",
    "cityscapes": "Cityscapes",
    "coco-stuff": "COCO-Stuff",
    "coco-stuff-10k": "COCO-Stuff-10K",
}

# `datasets:` metadata for models with these classes: the Hub ids the corresponding transformers
# checkpoints (SegFormer) use, so the cards are found by the same dataset filters.
_HUB_DATASET_IDS = {
    "ade20k": "scene_parse_150",
    "cityscapes": "cityscapes",
    "coco-stuff": "coco-stuff",
    "coco-stuff-10k": "coco-stuff-10k",
}

SEGRET_BIBTEX = """@article{li2025segret,
  title   = {SegRet: An Efficient Design for Semantic Segmentation with Retentive Network},
  author  = {Li, Zhiyuan and Chang, Yi and Wu, Yuan},
  journal = {arXiv preprint arXiv:2502.14014},
  year    = {2025}
}"""

RMT_BIBTEX = """@inproceedings{fan2024rmt,
  title     = {RMT: Retentive Networks Meet Vision Transformers},
  author    = {Fan, Qihang and Huang, Huaibo and Chen, Mingrui and Liu, Hongmin and He, Ran},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2024},
  note      = {arXiv:2309.11523}
}"""


@dataclass(frozen=True)
class SourceCheckpoint:
    """The original file a converted model came from, identified well enough to re-check it."""

    file_name: str
    sha256: str
    description: str


def paper_miou(variant: str | None, dataset: str | None) -> tuple[float, float] | None:
    """The paper's (single-scale, multi-scale) mIoU for a variant and dataset, or None if it reports none.

    COCO-Stuff-10K and COCO-Stuff share one entry: the paper's "COCO-Stuff" results are on the 10K split
    (its abstract names COCO-Stuff10K) and both label sets have the same 171 classes.
    """
    if variant is None or dataset is None:
        return None
    key = canonical_name(dataset)
    key = "coco-stuff" if key == "coco-stuff-10k" else key
    return PAPER_MIOU.get(variant, {}).get(key)


def is_hub_id(reference: str) -> bool:
    """Whether `reference` names a Hub repository (`name` or `namespace/name`) rather than a local path."""
    return not Path(reference).exists() and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", reference) is not None


def public_name(reference: str) -> str:
    """A Hub id as it is; a local file or folder by its own name, never by its path on this machine."""
    return reference if is_hub_id(reference) else Path(reference).resolve().name


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(v) for v in value)
    return str(value)


def _metadata(
    model_name: str,
    license: str,
    datasets: Sequence[str] | None,
    base_model: str | None,
    tags: Sequence[str],
    eval_results: list[EvalResult],
) -> str:
    data = ModelCardData(
        model_name=model_name,
        license=license,
        library_name="transformers",
        pipeline_tag="image-segmentation",
        tags=list(tags),
        datasets=list(datasets) if datasets else None,
        base_model=base_model,
        eval_results=eval_results or None,
    )
    return f"---\n{data.to_yaml()}\n---\n"


def _title(variant: str | None, dataset: str | None, decoder_trained: bool) -> str:
    name = f"SegRet-{variant.capitalize()}" if variant else "SegRet (custom architecture)"
    if not decoder_trained:
        return f"{name} with an ImageNet-pretrained RMT backbone (decoder not trained)"
    return f"{name} for {DATASET_TITLES[dataset]} semantic segmentation" if dataset else name


def _details(
    variant: str | None,
    num_parameters: int,
    num_labels: int,
    dataset: str | None,
    source: SourceCheckpoint | None,
    architecture: Mapping[str, Any] | None,
) -> list[str]:
    rows = [("Variant", variant or "custom (not one of the paper's four sizes)")]
    rows.append(("Parameters", f"{num_parameters:,} ({num_parameters / 1e6:.2f}M)"))
    classes = f"{num_labels}" + (f" ({DATASET_TITLES[dataset]} classes)" if dataset else "")
    rows.append(("Classes", classes))
    if source is not None:
        rows.append(("Source checkpoint", f"`{source.file_name}` ({source.description})"))
        rows.append(("Source sha256", f"`{source.sha256}`"))
    for key, value in (architecture or {}).items():
        rows.append((f"`{key}`", _format_value(value)))
    lines = ["## Model details", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return lines + [""]


def _results(
    variant: str | None,
    dataset: str | None,
    converted: bool,
    decoder_trained: bool,
    measurement: Measurement | None,
    measurement_note: str | None,
) -> list[str]:
    lines = ["## Results", ""]
    if measurement is not None:
        lines += ["### Measured on these weights", ""]
        if measurement_note:
            lines += [measurement_note, ""]
        lines += ["| Metric | Value |", "|---|---|"]
        lines += [f"| {METRIC_NAMES[key]} | {_format_value(value)} |" for key, value in measurement.metrics.items()]
        lines.append("")
    lines += ["### Reported by the paper", ""]
    if variant is None:
        return lines + ["The paper reports results only for its four sizes (tiny, small, base, large).", ""]
    if dataset is None:
        return lines + [
            "The paper reports results on ADE20K, Cityscapes and COCO-Stuff-10K; this model's classes are none of "
            "these, so its numbers do not apply here.",
            "",
        ]
    measured_by = "this conversion" if converted else "the training run that produced these weights"
    lines += [
        f"The mIoU values below are **as reported by the paper, not measured by {measured_by}** "
        "(SS: single-scale, MS: multi-scale with flips; mmsegmentation evaluation).",
        "",
    ]
    if not decoder_trained:
        lines += [
            "They are what SegRet reaches *after* fine-tuning on this dataset; this checkpoint's decoder is "
            "untrained and will not produce meaningful segmentations before fine-tuning.",
            "",
        ]
    single, multi = paper_miou(variant, dataset)
    height, width = get_preset(dataset).recipe(variant).crop_size  # the released config's training crop
    lines += ["| Dataset | Crop | mIoU (SS) | mIoU (MS) |", "|---|---|---|---|"]
    lines += [f"| {DATASET_TITLES[dataset]} | {height}x{width} | {single} | {multi} |", ""]
    if dataset.startswith("coco-stuff"):
        lines += ["The paper's COCO-Stuff results are on COCO-Stuff-10K (named in its abstract).", ""]
    return lines


def _usage(model_id: str) -> list[str]:
    return [
        "## Usage",
        "",
        "The modelling code is stored next to the weights, so `trust_remote_code=True` is all transformers "
        "needs; with the `segret-hf` package installed, `import segret_hf` registers the same classes locally "
        "instead.",
        "",
        "```python",
        "import torch",
        "from PIL import Image",
        "from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation, pipeline",
        "",
        f'model_id = "{model_id}"',
        "processor = AutoImageProcessor.from_pretrained(model_id, trust_remote_code=True)",
        "model = AutoModelForSemanticSegmentation.from_pretrained(model_id, trust_remote_code=True).eval()",
        "",
        'image = Image.open("image.jpg")',
        'inputs = processor(images=image, return_tensors="pt")',
        "with torch.no_grad():",
        "    outputs = model(**inputs)  # logits: (batch, num_labels, height / 4, width / 4)",
        "segmentation = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.size[::-1]])[0]",
        "",
        "# Or one binary mask per class present in the image:",
        'segmenter = pipeline("image-segmentation", model=model_id, trust_remote_code=True)',
        "masks = segmenter(image)",
        "```",
        "",
    ]


def render_model_card(
    *,
    num_parameters: int,
    num_labels: int,
    model_id: str,
    variant: str | None = None,
    dataset: str | None = None,
    source: SourceCheckpoint | None = None,
    decoder_trained: bool = True,
    architecture: Mapping[str, Any] | None = None,
    measurement: Measurement | None = None,
    measurement_note: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    license: str = "apache-2.0",
    base_model: str | None = None,
    hub_datasets: Sequence[str] | None = None,
    extra_tags: Sequence[str] = (),
) -> str:
    """Markdown for a SegRet checkpoint's README.md, Hub metadata (with `model-index`) included.

    Args:
        num_parameters: exact parameter count of the saved model.
        num_labels: number of output classes.
        model_id: Hub repo id or local path used in the usage snippet; `model-index` names the model by
            `public_name(model_id)`.
        variant: `tiny`/`small`/`base`/`large`, or None for a custom architecture (then give `architecture`).
        dataset: label set the classes come from (any spelling `segret_hf.data.label_sets` accepts), if known.
        source: original checkpoint of a converted model; its presence marks the card as a conversion, whose
            paper numbers then go into `model-index` as quoted, unverified results.
        decoder_trained: False when only the backbone is pretrained (RMT ImageNet checkpoint).
        architecture: fields to list for a custom architecture.
        measurement: numbers measured on these weights (e.g. by the training script), shown as such.
        measurement_note: how `measurement` was obtained, in words.
        hyperparameters: training settings to list.
        license: Hub license id.
        base_model: Hub id (or local folder name) of the checkpoint these weights were trained from.
        hub_datasets: `datasets:` metadata; defaults to the Hub id of `dataset`'s classes.
        extra_tags: tags besides `CARD_TAGS`.
    """
    dataset = canonical_name(dataset) if dataset else None
    lines = [
        f"# {_title(variant, dataset, decoder_trained)}",
        "",
        "[SegRet](https://arxiv.org/abs/2502.14014) semantic segmentation: an RMT (Vision RetNet) backbone with "
        "Manhattan-decay retention and a lightweight decoder with zero-initialised residual layers, as a "
        "transformers model (`SegRetForSemanticSegmentation`, logits at 1/4 of the input resolution).",
        "",
    ]
    if source is not None:
        lines += [
            f"Converted from the original checkpoint `{source.file_name}`; every original tensor was either mapped "
            "or deliberately dropped (unused or derived buffers), with shapes and decay buffers checked against "
            "the architecture.",
            "",
        ]
    if not decoder_trained:
        lines += [
            "**Only the backbone is pretrained** (ImageNet-1k classification). The decoder is freshly "
            "initialised: fine-tune this model on a segmentation dataset before using it.",
            "",
        ]
    lines += _details(variant, num_parameters, num_labels, dataset, source, architecture)
    lines += _results(variant, dataset, source is not None, decoder_trained, measurement, measurement_note)
    if hyperparameters:
        lines += ["## Training hyper-parameters", "", "| | |", "|---|---|"]
        lines += [f"| {key} | {_format_value(value)} |" for key, value in hyperparameters.items()]
        lines.append("")
    lines += _usage(model_id)
    lines += ["## Citation", "", "```bibtex", SEGRET_BIBTEX, "", RMT_BIBTEX, "```", ""]

    eval_results = measured_results(measurement) if measurement is not None else []
    quoted = paper_miou(variant, dataset)
    if source is not None and decoder_trained and quoted is not None:
        eval_results += paper_results(dataset, quoted)
    if hub_datasets is None:
        hub_datasets = [_HUB_DATASET_IDS[dataset]] if dataset else None
    metadata = _metadata(
        public_name(model_id), license, hub_datasets, base_model, [*CARD_TAGS, *extra_tags], eval_results
    )
    return metadata + "\n" + "\n".join(lines)


__all__ = [
    "CARD_TAGS",
    "DATASET_TITLES",
    "PAPER_MIOU",
    "SourceCheckpoint",
    "is_hub_id",
    "paper_miou",
    "public_name",
    "render_model_card",
]
