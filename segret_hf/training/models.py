"""The network a run starts from: a fresh variant or a saved SegRet, optionally with a pretrained backbone.

The class list always comes from the dataset: a saved model whose classes differ keeps everything but its
classifier, which is re-initialised for the new classes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..checkpoint_files import check_weight_files
from ..configuration_segret import PER_STAGE_FIELDS, SegRetConfig
from ..conversion import convert, load_original_checkpoint
from ..data.label_maps import config_label_fields
from ..modeling_segret import SegRetForSemanticSegmentation, SegRetModel

logger = logging.getLogger(__name__)


class ModelSetupError(ValueError):
    """The model arguments do not describe a network that can be built."""


def _check_local_folder(name_or_path: str) -> None:
    """A local model folder's files are checked before loading, so a damaged one is named (Hub ids are not)."""
    if Path(name_or_path).is_dir():
        check_weight_files(name_or_path)


def _from_pretrained(name_or_path: str, id2label: dict[int, str]) -> SegRetForSemanticSegmentation:
    _check_local_folder(name_or_path)
    config = SegRetConfig.from_pretrained(name_or_path)
    same_classes = {int(k): v for k, v in config.id2label.items()} == id2label
    if not same_classes:
        logger.warning(
            "%s predicts %d classes (%s...); the dataset has %d. The classifier is re-initialised for the "
            "dataset's classes.",
            name_or_path, config.num_labels, list(config.id2label.values())[:5], len(id2label),
        )
    model = SegRetForSemanticSegmentation.from_pretrained(
        name_or_path, ignore_mismatched_sizes=not same_classes, **config_label_fields(id2label)
    )
    if not same_classes and config.num_labels == len(id2label):
        model.decode_head.classifier.reset_parameters()  # same shape, other classes: start it afresh
    return model


def backbone_state_dict(checkpoint: str, config: SegRetConfig) -> dict[str, torch.Tensor]:
    """Backbone weights for a model of `config` from a converted folder / Hub id or an original .pth file.

    Original files go through the project's converter (every tensor mapped or deliberately dropped, shapes
    and decay buffers checked); a full SegRet mmseg checkpoint contributes only its backbone.
    """
    if Path(checkpoint).is_file():
        original = load_original_checkpoint(checkpoint).backbone_only()
        return convert(original, config).model.segret.state_dict()
    _check_local_folder(checkpoint)
    backbone = SegRetModel.from_pretrained(checkpoint)
    # Weights cannot tell which stages are decomposed, so a converted backbone must agree with the model on
    # every per-stage field, not only on tensor shapes.
    differences = [
        f"{name}: {getattr(backbone.config, name)} (checkpoint) vs {getattr(config, name)} (model)"
        for name in PER_STAGE_FIELDS
        if list(getattr(backbone.config, name)) != list(getattr(config, name))
    ]
    if differences:
        raise ModelSetupError(
            f"The backbone checkpoint {checkpoint!r} has another architecture than the model being trained: "
            + "; ".join(differences)
            + ". Pick the matching --model_variant, or leave it out to take the checkpoint's architecture."
        )
    return backbone.state_dict()


def build_model(
    id2label: dict[int, str],
    variant: str | None = None,
    name_or_path: str | None = None,
    backbone_checkpoint: str | None = None,
) -> SegRetForSemanticSegmentation:
    """The model to train, with the dataset's classes in its config: a fresh `variant`, or the saved SegRet at
    `name_or_path` to fine-tune, or one whose architecture a converted `backbone_checkpoint` folder gives; the
    backbone then loads `backbone_checkpoint` when given."""
    if variant and name_or_path:
        raise ModelSetupError(
            "Pass either --model_variant (fresh model) or --model_name_or_path (fine-tune), not both."
        )
    if name_or_path:
        model = _from_pretrained(name_or_path, id2label)
    elif variant:
        model = SegRetForSemanticSegmentation(SegRetConfig.from_variant(variant, **config_label_fields(id2label)))
    elif backbone_checkpoint and not Path(backbone_checkpoint).is_file():
        # A converted backbone folder carries its architecture; only the decoder is new.
        config = SegRetConfig.from_pretrained(backbone_checkpoint, **config_label_fields(id2label))
        model = SegRetForSemanticSegmentation(config)
    else:
        raise ModelSetupError(
            "Say which network to train: --model_variant {tiny,small,base,large} for a fresh model, "
            "--model_name_or_path to fine-tune a saved SegRet, or --backbone_checkpoint with a converted folder "
            "(an original .pth file needs --model_variant or --model_name_or_path for the architecture)."
        )
    if backbone_checkpoint:
        model.segret.load_state_dict(backbone_state_dict(backbone_checkpoint, model.config))
    return model
