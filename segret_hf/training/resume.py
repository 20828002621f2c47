"""Checks of the checkpoint a run resumes from, before anything is written.

The Trainer reads a checkpoint's files one by one once training starts: a truncated optimizer state fails
deep in `torch.load`, a corrupt `trainer_state.json` as a bare `JSONDecodeError`, and a checkpoint of
another variant or class count as a long "size mismatch for ..." list, each after the output directory was
created. Here every file is checked first, and the checkpoint's architecture is compared with the model this
run built, so the message says which file is damaged, or which setting differs from the run that wrote it.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open
from torch import nn

from ..checkpoint_files import CheckpointFileError, check_weight_files, read_json_file
from ..configuration_segret import PER_STAGE_FIELDS, SegRetConfig

TRAINER_STATE = "trainer_state.json"
_COMPARED_FIELDS = ("num_labels", *PER_STAGE_FIELDS, "decoder_hidden_size")
_LISTED = 5


class ResumeCheckpointError(ValueError):
    """The checkpoint to resume from is incomplete, damaged, or belongs to another model."""


def _checkpoint_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            shapes.update({key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()})
    return shapes


def _config_differences(folder: Path, config: SegRetConfig) -> list[str]:
    path = folder / "config.json"
    if not path.is_file():
        return []
    saved = read_json_file(path, "The checkpoint's config")
    if "num_labels" not in saved and "id2label" in saved:
        saved["num_labels"] = len(saved["id2label"])
    differences = []
    for name in _COMPARED_FIELDS:
        if name in saved and saved[name] != getattr(config, name):
            differences.append(f"{name} {saved[name]} (checkpoint) vs {getattr(config, name)} (this run)")
    return differences


def _shape_differences(folder: Path, model: nn.Module) -> list[str]:
    saved = _checkpoint_shapes(folder)
    if not saved:
        return []
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    differences = [
        f"{key} {saved[key]} (checkpoint) vs {expected[key]} (this run)"
        for key in saved
        if key in expected and saved[key] != expected[key]
    ]
    unknown = sorted(set(saved) - set(expected))
    if unknown:
        differences.append(f"tensors this model does not have: {unknown[:_LISTED]}")
    return differences


def check_resume_folder(folder: str | Path) -> None:
    """Raise ResumeCheckpointError unless `folder` is a checkpoint folder whose files are all intact."""
    folder = Path(folder)
    if not (folder / TRAINER_STATE).is_file():
        raise ResumeCheckpointError(
            f"--resume_from_checkpoint {str(folder)!r} is not a checkpoint folder (no {TRAINER_STATE}); pass a "
            "checkpoint-<step> folder written by a previous run."
        )
    try:
        check_weight_files(folder)
    except CheckpointFileError as error:
        raise ResumeCheckpointError(
            f"Cannot resume from {str(folder)!r}: {error} An earlier checkpoint of the run can be resumed instead."
        ) from None


def check_resume_architecture(folder: str | Path, model: nn.Module) -> None:
    """Raise ResumeCheckpointError unless the checkpoint in `folder` was written by a model like `model`."""
    folder = Path(folder)
    differences = _config_differences(folder, model.config) or _shape_differences(folder, model)
    if differences:
        raise ResumeCheckpointError(
            f"Cannot resume from {str(folder)!r}: it was written by another model than the one this run builds ("
            + "; ".join(differences[:_LISTED])
            + "). Resume with the model flags of the run that wrote it (--model_variant / --model_name_or_path, "
            "--id2label, --dataset_preset), or start a new run without --resume_from_checkpoint."
        )
