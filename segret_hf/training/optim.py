"""AdamW parameter groups of the released configs: mmcv's ``DefaultOptimizerConstructor`` rules, exactly.

The released configs use three parameter-wise regimes (``docs/recipes.md``):

* ``none``: every parameter at the base learning rate and weight decay (norms and biases decay too).
* ``res``: 97 custom keys naming every backbone norm of the largest variant (block LayerNorms, stem and
  downsampler BatchNorms) at lr x0.1 without decay, plus ``norm_decay_mult=0`` for every other norm
  (the decoder's BatchNorms). The keys list the depths ``[4, 8, 25, 8]`` whatever the variant; keys that
  match nothing are harmless, as in mmcv.
* ``sf3``: SegFormer's rules: ``pos_block`` and ``norm`` without decay, ``head`` at lr x10. On SegRet,
  ``head`` catches the whole decoder and ``norm`` the block LayerNorms and downsampler BatchNorms; the
  stem BatchNorms match nothing and keep their decay.

mmcv matches a key when it is a substring of the parameter's full name in the original model, tries keys
longest first (ties alphabetically), and lets the first match decide; only unmatched parameters of norm
layers get ``norm_decay_mult``. The rules are therefore applied to each parameter's original name
(:func:`segret_hf.conversion.original_parameter_name`), so the released keys work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ..conversion import original_parameter_name

NORM_LAYERS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)
"""The module types mmcv treats as norms for ``norm_decay_mult``."""

RES_KEY_DEPTHS = (4, 8, 25, 8)
"""Stage depths the released ``res`` key list is written for (base/large), used for every variant."""


@dataclass(frozen=True)
class ParamwiseRule:
    """Multipliers of the base learning rate and weight decay for parameters matching one key."""

    lr_mult: float = 1.0
    decay_mult: float = 1.0


@dataclass(frozen=True)
class ParamwiseRegime:
    """mmcv ``paramwise_cfg``: custom keys and an optional multiplier for the decay of unmatched norms."""

    description: str
    custom_keys: Mapping[str, ParamwiseRule] = field(default_factory=dict)
    norm_decay_mult: float = 1.0

    def rule_for(self, original_name: str, in_norm_layer: bool) -> ParamwiseRule:
        """The multipliers mmcv gives the parameter called ``original_name``."""
        for key in sorted(sorted(self.custom_keys), key=len, reverse=True):
            if key in original_name:
                return self.custom_keys[key]
        return ParamwiseRule(decay_mult=self.norm_decay_mult if in_norm_layer else 1.0)


def _res_keys() -> dict[str, ParamwiseRule]:
    slow_no_decay = ParamwiseRule(lr_mult=0.1, decay_mult=0.0)
    keys = [
        f"backbone.layers.{stage}.blocks.{block}.{norm}"
        for norm in ("retention_layer_norm", "final_layer_norm")
        for stage, depth in enumerate(RES_KEY_DEPTHS)
        for block in range(depth)
    ]
    keys += [f"backbone.patch_embed.proj.{index}" for index in (1, 4, 7, 10)]
    keys += [f"backbone.layers.{stage}.downsample.norm" for stage in range(3)]
    return dict.fromkeys(keys, slow_no_decay)


REGIMES: Mapping[str, ParamwiseRegime] = MappingProxyType(
    {
        "none": ParamwiseRegime("every parameter at the base learning rate and weight decay"),
        "res": ParamwiseRegime(
            "backbone norms at 0.1x learning rate without weight decay, decoder norms without weight decay",
            custom_keys=_res_keys(),
            norm_decay_mult=0.0,
        ),
        "sf3": ParamwiseRegime(
            "decoder at 10x learning rate; block and downsampler norms without weight decay",
            custom_keys={
                "pos_block": ParamwiseRule(decay_mult=0.0),
                "norm": ParamwiseRule(decay_mult=0.0),
                "head": ParamwiseRule(lr_mult=10.0),
            }
        ),
    }
)


def parameter_groups(
    model: nn.Module, learning_rate: float, weight_decay: float, regime: str = "none"
) -> list[dict[str, Any]]:
    """AdamW groups of ``model`` under a released regime: one group per distinct (lr, weight decay).

    Each group also carries ``param_names`` (our parameter names, a key torch optimisers keep), so tests
    and logs can say who got what.
    """
    if regime not in REGIMES:
        raise ValueError(f"Unknown parameter-wise regime {regime!r}; choose one of {list(REGIMES)}.")
    rules = REGIMES[regime]
    in_norm = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters(recurse=False)}
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        rule = rules.rule_for(original_parameter_name(name), id(parameter) in in_norm)
        key = (learning_rate * rule.lr_mult, weight_decay * rule.decay_mult)
        group = groups.setdefault(key, {"params": [], "param_names": [], "lr": key[0], "weight_decay": key[1]})
        group["params"].append(parameter)
        group["param_names"].append(name)
    return list(groups.values())
