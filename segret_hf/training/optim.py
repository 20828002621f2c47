"""Parameter groups of the paper's optimiser (mmsegmentation `paramwise_cfg`).

AdamW with weight decay on weights only: biases, every normalisation layer and the layer-scale vectors
get none, because decaying them pulls scales and offsets towards zero rather than regularising capacity.
The backbone's normalisation layers also train at a tenth of the learning rate, so fine-tuning does not
quickly wash out the statistics-carrying parameters learned in pretraining.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

BACKBONE_NORM_LR_MULTIPLIER = 0.1
NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, _BatchNorm)
NO_DECAY_NAME_PARTS = ("layer_scale",)


def parameter_groups(model: nn.Module, learning_rate: float, weight_decay: float) -> list[dict[str, Any]]:
    """Three AdamW groups: decayed weights; undecayed biases / norms / layer scales; backbone norms at 0.1x lr.

    The backbone is `model.base_model` (`model.segret` for SegRet). Groups left empty are dropped.
    """
    backbone = {id(p) for p in model.base_model.parameters()} if model.base_model is not model else set()
    norm_parameters = {
        id(p) for module in model.modules() if isinstance(module, NORM_LAYERS) for p in module.parameters(recurse=False)
    }
    decay, no_decay, backbone_norms = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if id(parameter) in norm_parameters and id(parameter) in backbone:
            backbone_norms.append(parameter)
        elif id(parameter) in norm_parameters or name.endswith("bias") or any(p in name for p in NO_DECAY_NAME_PARTS):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr": learning_rate},
        {"params": no_decay, "weight_decay": 0.0, "lr": learning_rate},
        {"params": backbone_norms, "weight_decay": 0.0, "lr": learning_rate * BACKBONE_NORM_LR_MULTIPLIER},
    ]
    return [group for group in groups if group["params"]]
