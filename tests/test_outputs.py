"""Outputs the transformers way: hidden-state selection as SegFormer does it, retention maps under `eager`,
typed keyword arguments, stage features on the gradient path, registered attention functions."""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface, SegformerConfig, SegformerForSemanticSegmentation
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from segret_hf import SegRetBackbone, SegRetConfig, SegRetForSemanticSegmentation, SegRetModel

from helpers import SMALL_ARCHITECTURE

SELECTIONS = [True, False, [0, 2], [3], (1,), [-1], 2]


def segret(**overrides) -> SegRetForSemanticSegmentation:
    torch.manual_seed(0)
    return SegRetForSemanticSegmentation(SegRetConfig(**{**SMALL_ARCHITECTURE, "num_labels": 5, **overrides})).eval()


def selected(hidden_states) -> list[bool] | None:
    return None if hidden_states is None else [state is not None for state in hidden_states]


@pytest.mark.parametrize("selection", SELECTIONS, ids=str)
def test_hidden_state_selection_matches_segformer(selection) -> None:
    """Whatever `output_hidden_states` means to SegFormer in the installed transformers, it means to SegRet."""
    segformer = SegformerForSemanticSegmentation(
        SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1])
    ).eval()
    model = segret()
    pixel_values = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert selected(model(pixel_values, output_hidden_states=selection).hidden_states) == selected(
            segformer(pixel_values, output_hidden_states=selection).hidden_states
        )
        assert selected(model.segret(pixel_values, output_hidden_states=selection).hidden_states) == selected(
            segformer.segformer(pixel_values, output_hidden_states=selection).hidden_states
        )


def test_selected_hidden_states_are_the_stage_features_and_logits_do_not_change() -> None:
    model = segret()
    pixel_values = torch.randn(2, 3, 61, 83)
    with torch.no_grad():
        everything = model(pixel_values, output_hidden_states=True)
        some = model(pixel_values, output_hidden_states=[1, 3])
        none = model(pixel_values)
    assert none.hidden_states is None
    torch.testing.assert_close(some.logits, everything.logits, atol=0, rtol=0)
    torch.testing.assert_close(none.logits, everything.logits, atol=0, rtol=0)
    torch.testing.assert_close(some.hidden_states[1], everything.hidden_states[1], atol=0, rtol=0)
    assert [tuple(h.shape) for h in everything.hidden_states] == [
        (2, 16, 16, 21), (2, 32, 8, 11), (2, 48, 4, 6), (2, 64, 2, 3),
    ]  # fmt: skip


def test_config_output_hidden_states_is_the_default() -> None:
    model = segret(output_hidden_states=True)
    with torch.no_grad():
        assert len(model(torch.randn(1, 3, 32, 32)).hidden_states) == 4
        assert model(torch.randn(1, 3, 32, 32), output_hidden_states=False).hidden_states is None


@pytest.mark.parametrize("model_class", [SegRetModel, SegRetForSemanticSegmentation])
def test_every_hidden_state_carries_a_gradient(model_class) -> None:
    torch.manual_seed(0)
    model = model_class(SegRetConfig(**SMALL_ARCHITECTURE, num_labels=5)).train()
    outputs = model(torch.randn(2, 3, 48, 64), output_hidden_states=True)
    for state in outputs.hidden_states:
        state.retain_grad()
    result = outputs.logits if model_class is SegRetForSemanticSegmentation else outputs.last_hidden_state
    result.square().mean().backward()
    assert all(state.grad is not None and state.grad.abs().sum() > 0 for state in outputs.hidden_states)


def test_eager_returns_the_retention_maps() -> None:
    model = segret(attn_implementation="eager")
    pixel_values = torch.randn(2, 3, 50, 70)  # stage sizes 13x18, 7x9, 4x5, 2x3
    with torch.no_grad():
        outputs = model(pixel_values, output_attentions=True)
        plain = model(pixel_values)
    torch.testing.assert_close(outputs.logits, plain.logits, atol=0, rtol=0)
    heads = SMALL_ARCHITECTURE["num_attention_heads"]
    assert len(outputs.attentions) == sum(SMALL_ARCHITECTURE["depths"])  # one entry per block, in order
    rows, columns = outputs.attentions[0]  # stage 0 is decomposed: a (rows, columns) pair
    assert rows.shape == (2, 13, heads[0], 18, 18) and columns.shape == (2, 18, heads[0], 13, 13)
    rows, columns = outputs.attentions[1]
    assert rows.shape == (2, 7, heads[1], 9, 9) and columns.shape == (2, 9, heads[1], 7, 7)
    assert [tuple(a.shape) for a in outputs.attentions[2:]] == [(2, 4, 20, 20), (2, 4, 20, 20), (2, 4, 6, 6)]
    maps = [m for entry in outputs.attentions for m in (entry if isinstance(entry, tuple) else (entry,))]
    for probabilities in maps:
        assert (probabilities >= 0).all()
        torch.testing.assert_close(probabilities.sum(-1), torch.ones(probabilities.shape[:-1]), atol=1e-5, rtol=0)
    # Nearer keys weigh more on average: the Manhattan decay is visible in the maps.
    last = outputs.attentions[-1].mean(dim=(0, 1))  # (6, 6) over the 2x3 tokens
    assert last[0, 1] > last[0, 5]


@pytest.mark.parametrize("implementation", ["sdpa", "flex_attention"])
def test_attention_maps_need_eager(implementation: str) -> None:
    model = segret(attn_implementation=implementation)
    with pytest.raises(ValueError, match="output_attentions=True needs attn_implementation='eager'"):
        model(torch.randn(1, 3, 32, 32), output_attentions=True)


@pytest.mark.parametrize("model_class", [SegRetModel, SegRetForSemanticSegmentation, SegRetBackbone])
def test_unknown_keyword_arguments_are_refused(model_class) -> None:
    model = model_class(SegRetConfig(**SMALL_ARCHITECTURE, num_labels=5)).eval()
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['output_hidden_state'\]"):
        model(torch.randn(1, 3, 32, 32), output_hidden_state=True)


def test_return_dict_false_gives_a_tuple() -> None:
    model = segret()
    with torch.no_grad():
        logits, hidden_states = model(torch.randn(1, 3, 32, 32), output_hidden_states=True, return_dict=False)
    assert logits.shape == (1, 5, 8, 8) and len(hidden_states) == 4


def test_registered_attention_function_is_called_through_the_interface() -> None:
    calls = []

    def counting_sdpa(module, query, key, value, attention_mask, **kwargs):
        calls.append(attention_mask.shape)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("segret_test_counting_sdpa", counting_sdpa)
    model = segret()
    pixel_values = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        reference = model(pixel_values).logits
        model.set_attn_implementation("segret_test_counting_sdpa")
        logits = model(pixel_values).logits
    torch.testing.assert_close(logits, reference, atol=1e-6, rtol=0)
    # Decomposed blocks attend twice (rows, columns), whole-image blocks once: 2 + 2 + 1 + 1 + 1.
    assert len(calls) == 7


@pytest.mark.parametrize("implementation", ["paged|eager", "flash_attention_2"])
def test_attention_functions_without_a_bias_are_refused(implementation: str) -> None:
    from segret_hf.attention_segret import RetentionBias, retention_attention, retention_decay

    q = k = v = torch.randn(1, 3, 4, 8)
    bias = RetentionBias.build(retention_decay(2, 2.0, 4.0), 3, 4, False, "sdpa", torch.float32)
    with pytest.raises(ValueError, match="retention adds a distance bias"):
        retention_attention(implementation, q, k, v, bias, 2, False)
