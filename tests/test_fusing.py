"""Fusing for inference: `eval()` puts fused modules (BatchNorms folded) in place, `train()` the originals back.

Tiny random networks with random BatchNorm statistics, on the CPU, in a few seconds.
"""

from __future__ import annotations

import copy

import pytest
import torch

from segret_hf import SegRetBackbone, SegRetConfig, SegRetForSemanticSegmentation
from segret_hf.modeling_segret import (
    SegRetConvNorm,
    SegRetDecodeHead,
    SegRetFusedModule,
    SegRetStageProjection,
)

from helpers import SMALL_ARCHITECTURE, randomise

FUSED_UNITS = [
    "segret.stem.layers.0",
    "segret.stem.layers.1",
    "segret.stem.layers.2",
    "segret.stem.layers.3",
    "segret.stages.0.downsample",
    "segret.stages.1.downsample",
    "segret.stages.2.downsample",
    "decode_head",
    "decode_head.linear_c.0",
    "decode_head.linear_c.1",
    "decode_head.linear_c.2",
    "decode_head.linear_c.3",
]


def tiny_config(**overrides) -> SegRetConfig:
    return SegRetConfig(**{**SMALL_ARCHITECTURE, "num_labels": 5, "drop_path_rate": 0.0, **overrides})


def fused_units(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, SegRetFusedModule)]


def logits(model: SegRetForSemanticSegmentation, pixel_values: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values).logits


@pytest.mark.parametrize("use_zero_init_residual", [True, False])
def test_fused_and_unfused_eval_outputs_agree(use_zero_init_residual):
    model = randomise(SegRetForSemanticSegmentation(tiny_config(use_zero_init_residual=use_zero_init_residual)))
    expected_units = FUSED_UNITS if use_zero_init_residual else FUSED_UNITS[:8]  # no ZIR branch: nothing to fold
    assert fused_units(model) == expected_units
    pixel_values = torch.randn(2, 3, 61, 83)
    with torch.no_grad():
        fused = model(pixel_values, output_hidden_states=True)
        model.unfuse()
        assert fused_units(model) == [] and not model.training
        unfused = model(pixel_values, output_hidden_states=True)
    torch.testing.assert_close(fused.logits, unfused.logits, atol=1e-5, rtol=0)
    for fused_feature, unfused_feature in zip(fused.hidden_states, unfused.hidden_states, strict=True):
        torch.testing.assert_close(fused_feature, unfused_feature, atol=1e-5, rtol=0)


def test_backbone_fuses_its_stem_and_downsamplers():
    backbone = randomise(SegRetBackbone(tiny_config(out_features=["stage1", "stage2", "stage3", "stage4"])))
    assert fused_units(backbone) == [name.removeprefix("segret.") for name in FUSED_UNITS[:7]]
    pixel_values = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        fused = backbone(pixel_values).feature_maps
        unfused = backbone.unfuse()(pixel_values).feature_maps
    for fused_map, unfused_map in zip(fused, unfused, strict=True):
        torch.testing.assert_close(fused_map, unfused_map, atol=1e-5, rtol=0)


def test_train_puts_back_the_very_same_modules():
    model = SegRetForSemanticSegmentation(tiny_config())
    before = dict(model.named_modules())
    model.eval()
    assert fused_units(model) == FUSED_UNITS
    model.train()
    after = dict(model.named_modules())
    assert after.keys() == before.keys() and all(after[name] is before[name] for name in before)
    assert all(module.training for module in after.values())
    assert isinstance(model.decode_head, SegRetDecodeHead)
    assert isinstance(model.decode_head.linear_c[0], SegRetStageProjection)
    assert isinstance(model.segret.stem.layers[0], SegRetConvNorm)
    model.eval()
    assert fused_units(model) == FUSED_UNITS and not any(module.training for module in model.modules())


def test_state_dict_and_parameters_are_the_same_fused_or_not():
    model = randomise(SegRetForSemanticSegmentation(tiny_config()))
    fused_state = model.state_dict()
    fused_parameters = [name for name, _ in model.named_parameters()]
    model.unfuse()
    unfused_state = model.state_dict()
    assert list(fused_state) == list(unfused_state)
    assert all(torch.equal(fused_state[key], unfused_state[key]) for key in unfused_state)
    assert fused_parameters == [name for name, _ in model.named_parameters()]


def test_fuse_needs_eval_mode():
    model = SegRetForSemanticSegmentation(tiny_config()).train()
    with pytest.raises(ValueError, match="only eval mode uses"):
        model.fuse()
    assert fused_units(model) == []


def test_batch_norm_hooks_fire_while_unfused():
    """Fused, the BatchNorms do not run (their maths is in the folded weights); `unfuse()` runs them in eval mode."""
    model = randomise(SegRetForSemanticSegmentation(tiny_config()))
    calls = []
    for norm in (model.segret.stem.layers[0].normalization, model.decode_head.fuse_norm):
        norm.register_forward_hook(lambda module, args, output: calls.append(module))
    pixel_values = torch.randn(1, 3, 32, 32)
    logits(model, pixel_values)
    assert calls == []
    logits(model.unfuse(), pixel_values)
    assert calls == [model.segret.stem.layers[0].normalization, model.decode_head.fuse_norm]
    logits(model.fuse(), pixel_values)
    assert len(calls) == 2


def test_training_after_eval_updates_the_original_parameters():
    """Gradients reach every parameter, exactly as in a model that was never fused, and none reach folded tensors."""
    config = tiny_config(classifier_dropout_prob=0.0)
    evaluated = randomise(SegRetForSemanticSegmentation(config))
    assert not any(tensor.requires_grad for tensor in evaluated.buffers())
    logits(evaluated, torch.randn(1, 3, 32, 32))
    never_fused = SegRetForSemanticSegmentation(config)
    never_fused.load_state_dict(evaluated.state_dict())
    pixel_values, labels = torch.randn(2, 3, 40, 48), torch.randint(0, 5, (2, 40, 48))
    gradients = []
    for model in (evaluated.train(), never_fused.train()):
        model(pixel_values, labels=labels).loss.backward()
        gradients.append({name: parameter.grad for name, parameter in model.named_parameters()})
    assert all(gradient is not None for gradient in gradients[0].values())
    for name, gradient in gradients[1].items():
        torch.testing.assert_close(gradients[0][name], gradient, atol=1e-6, rtol=1e-5, msg=name)


def test_changed_weights_are_folded_again():
    model = randomise(SegRetForSemanticSegmentation(tiny_config()))
    reference = copy.deepcopy(model).unfuse()
    pixel_values = torch.randn(1, 3, 40, 56)

    # A training step, then eval(): the folded weights are those of the trained parameters and statistics.
    model.train()
    model(pixel_values, labels=torch.randint(0, 5, (1, 40, 56))).loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    reference.load_state_dict(model.state_dict())
    torch.testing.assert_close(logits(model.eval(), pixel_values), logits(reference, pixel_values), atol=1e-5, rtol=0)

    # In eval mode: a loaded state dict, and weights or statistics changed in place, take effect at once.
    other = randomise(SegRetForSemanticSegmentation(tiny_config()), seed=1).state_dict()
    model.load_state_dict(other)
    reference.load_state_dict(other)
    torch.testing.assert_close(logits(model, pixel_values), logits(reference, pixel_values), atol=1e-5, rtol=0)
    with torch.no_grad():
        for target in (model, reference):
            target.decode_head.fuse_norm.running_var.mul_(3)
            target.segret.stem.layers[2].convolution.weight.add_(0.1)
            target.decode_head.linear_c[1].zero_conv.weight.fill_(0.2)
    torch.testing.assert_close(logits(model, pixel_values), logits(reference, pixel_values), atol=1e-5, rtol=0)


def test_fused_model_casts_and_copies_with_its_folded_tensors():
    model = randomise(SegRetForSemanticSegmentation(tiny_config()))
    double = copy.deepcopy(model).double()
    assert fused_units(double) == FUSED_UNITS
    assert all(tensor.dtype == torch.float64 for tensor in double.buffers() if tensor.is_floating_point())
    pixel_values = torch.randn(1, 3, 32, 40, dtype=torch.float64)
    expected = logits(model, pixel_values.float())
    torch.testing.assert_close(logits(double, pixel_values).float(), expected, atol=1e-5, rtol=0)
    assert next(model.parameters()).dtype == torch.float32


def test_save_pretrained_from_a_fused_model_reloads_the_same_outputs(tmp_path):
    model = randomise(SegRetForSemanticSegmentation(tiny_config()))
    assert fused_units(model) == FUSED_UNITS
    model.save_pretrained(tmp_path)
    reloaded = SegRetForSemanticSegmentation.from_pretrained(tmp_path)
    assert fused_units(reloaded) == FUSED_UNITS  # from_pretrained ends with eval()
    assert list(reloaded.state_dict()) == list(model.unfuse().state_dict())
    pixel_values = torch.randn(1, 3, 45, 70)
    assert torch.equal(logits(reloaded, pixel_values), logits(model.fuse(), pixel_values))
