"""The Hub-ready folder of a converted model: its image processor, all-or-nothing writing, and the upload.

The folder holds `model.safetensors` + `config.json` (with the modelling code, for `trust_remote_code`),
`preprocessor_config.json` and a model card `README.md`. It is assembled beside its destination and renamed
into place when complete (:mod:`segret_hf.output_folders`), so a failed conversion never leaves a partial or
mixed folder behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from ..data.presets import get_preset
from ..image_processing_segret import SegRetImageProcessor
from ..inference import size_divisor_override
from ..modeling_segret import SegRetForSemanticSegmentation
from ..output_folders import staged_output_dir


def release_processor(
    dataset: str | None,
    variant: str | None,
    size: dict[str, int] | None = None,
    size_divisor: int | None = None,
) -> SegRetImageProcessor:
    """The image processor saved with a converted model: the paper's test protocol for the model's dataset.

    `size` (the resize target) defaults to the released config's keep-ratio test scale for the dataset and
    variant (e.g. short side 512, long side 2048 on ADE20K), else the processor's 512x512. `size_divisor`
    (mmseg `AlignedResize`, 0 for none) defaults to the dataset's (32 for ADE20K and COCO-Stuff, none for
    Cityscapes or unknown classes).
    """
    preset = get_preset(dataset) if dataset is not None else None
    kwargs: dict[str, Any] = size_divisor_override(size_divisor, preset)
    if size is None and preset is not None:
        long_side, short_side = preset.recipe(variant).test_scale
        size = {"shortest_edge": short_side, "longest_edge": long_side}
    if size is not None:
        kwargs["size"] = size
    if preset is not None:
        kwargs["do_reduce_labels"] = preset.do_reduce_labels
    return SegRetImageProcessor(**kwargs)


def write_folder(
    output_dir: str | Path, model: SegRetForSemanticSegmentation, processor: SegRetImageProcessor, card: str
) -> Path:
    """Write model, processor and model card to `output_dir` as one unit (replacing what was there)."""
    output_dir = Path(output_dir)
    with staged_output_dir(output_dir) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / "README.md").write_text(card)
    return output_dir


def push(folder: str | Path, repo_id: str, private: bool | None = None, token: str | None = None) -> str:
    """Create (if needed) the Hub model repo and upload `folder` to it; returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message="Upload SegRet converted from the original checkpoint",
    )
    return commit.commit_url
