"""Every retention implementation computes the reference (`eager`) maths, on the fixture and odd sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from segret_hf import SegRetConfig, SegRetForSemanticSegmentation
from segret_hf.attention_segret import RetentionBias, retention_attention, retention_decay
from segret_hf.conversion import config_from_architecture, convert, load_original_checkpoint

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "original_checkpoints"
IMPLEMENTATIONS = ("eager", "sdpa", "flex_attention")
# flex_attention compiles its kernels on first use: tens of seconds on a small CPU.
FLEX_SLOW = pytest.param("flex_attention", marks=pytest.mark.slow)
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"shared fixtures not found at {FIXTURES}")


@pytest.fixture(scope="module")
def fixture_models() -> dict[str, SegRetForSemanticSegmentation]:
    checkpoint = load_original_checkpoint(FIXTURES / "tiny_a_mmseg.pth")
    architecture = json.loads((FIXTURES / "tiny_a_architecture.json").read_text())
    return {
        impl: convert(checkpoint, config_from_architecture(architecture), impl).model for impl in IMPLEMENTATIONS
    }


@needs_fixtures
@pytest.mark.parametrize("implementation", ["eager", "sdpa", FLEX_SLOW])
def test_fixture_logits_for_every_implementation(fixture_models, implementation: str) -> None:
    expected = load_file(FIXTURES / "tiny_a_expected.safetensors")
    with torch.no_grad():
        outputs = fixture_models[implementation](expected["pixel_values"], output_hidden_states=True)
    torch.testing.assert_close(outputs.logits, expected["logits"], atol=1e-5, rtol=0)
    for index, feature in enumerate(outputs.hidden_states):
        torch.testing.assert_close(feature, expected[f"hidden_state_{index}"], atol=1e-4, rtol=0)


@needs_fixtures
@pytest.mark.parametrize("implementation", ["sdpa", FLEX_SLOW])
def test_implementations_agree_with_eager_on_odd_sizes(fixture_models, implementation: str) -> None:
    pixel_values = torch.randn(2, 3, 97, 131, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = fixture_models["eager"](pixel_values).logits
        logits = fixture_models[implementation](pixel_values).logits
    assert logits.shape == (2, 5, 25, 33)
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("decomposed", [True, False])
@pytest.mark.parametrize("implementation", ["sdpa", "flex_attention"])
def test_bfloat16_retention_agrees_with_eager(implementation: str, decomposed: bool) -> None:
    generator = torch.Generator().manual_seed(1)
    heads, height, width = 4, 7, 9
    q, k, v = (torch.randn(2, height, width, heads * 16, generator=generator).bfloat16() for _ in range(3))
    decay = retention_decay(heads, 2.0, 6.0)
    outputs = {}
    for impl in ("eager", implementation):
        bias = RetentionBias.build(decay, height, width, decomposed, impl, torch.bfloat16)
        outputs[impl] = retention_attention(impl, q, k, v, bias, heads, decomposed)[0].float()
    torch.testing.assert_close(outputs[implementation], outputs["eager"], atol=2e-2, rtol=0)


def test_stage_bias_is_built_once_per_stage() -> None:
    config = SegRetConfig(
        hidden_sizes=[16, 32, 48, 64], depths=[2, 2, 3, 2], num_attention_heads=[2, 2, 4, 4], decoder_hidden_size=32,
        num_labels=3,
    )  # fmt: skip
    model = SegRetForSemanticSegmentation(config).eval()
    calls = []
    for stage in model.segret.stages:
        original = stage.decay_bias
        stage.decay_bias = lambda x, original=original: calls.append(1) or original(x)
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert len(calls) == len(model.segret.stages)


def test_unsupported_attention_implementation_is_rejected() -> None:
    model = SegRetForSemanticSegmentation(SegRetConfig(num_labels=3))
    with pytest.raises((ValueError, ImportError)):
        model.set_attn_implementation("flash_attention_2")


def test_attention_implementation_is_switchable_after_loading() -> None:
    model = SegRetForSemanticSegmentation(SegRetConfig(num_labels=3, attn_implementation="eager"))
    assert model.config._attn_implementation == "eager"
    model.set_attn_implementation("sdpa")
    assert model.config._attn_implementation == "sdpa"


def test_sdpa_bands_large_whole_stage_biases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the bias budget, sdpa attends in bands of query rows; the result is the same attention."""
    import segret_hf.attention_segret as attention

    generator = torch.Generator().manual_seed(2)
    heads, height, width = 4, 13, 11
    q, k, v = (torch.randn(2, height, width, heads * 16, generator=generator) for _ in range(3))
    decay = retention_decay(heads, 2.0, 6.0)
    eager = RetentionBias.build(decay, height, width, False, "eager", torch.float32)
    reference, _ = retention_attention("eager", q, k, v, eager, heads, False)
    # A budget of three image rows of queries: bands of 3, 3, 3, 3 and 1 rows.
    monkeypatch.setattr(attention, "FULL_BIAS_BUDGET_BYTES", heads * width * height * width * 4 * 3)
    banded = RetentionBias.build(decay, height, width, False, "sdpa", torch.float32)
    assert banded.full is None
    torch.testing.assert_close(retention_attention("sdpa", q, k, v, banded, heads, False)[0], reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("decomposed", [True, False])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_exported_graphs_attend_in_chunks_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch, implementation: str, decomposed: bool
) -> None:
    """Under torch.export retention runs in chunks inside a scan loop (no whole-image bias): same attention.

    Small chunks (5 query tokens, 2 image rows or columns) make several chunks, the last one filled up.
    """
    import segret_hf.attention_segret as attention

    generator = torch.Generator().manual_seed(3)
    heads, height, width = 4, 7, 9
    q, k, v = (torch.randn(2, height, width, heads * 16, generator=generator) for _ in range(3))
    decay = retention_decay(heads, 2.0, 6.0)
    eager = RetentionBias.build(decay, height, width, decomposed, "eager", torch.float32)
    reference, _ = retention_attention("eager", q, k, v, eager, heads, decomposed)
    monkeypatch.setattr(attention, "EXPORT_CHUNK_TOKENS", 5)
    monkeypatch.setattr(attention, "EXPORT_CHUNK_LINES", 2)
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    monkeypatch.setattr(torch.compiler, "_is_exporting_flag", True)  # what torch.export sets for its trace
    bias = RetentionBias.build(decay, height, width, decomposed, implementation, torch.float32)
    assert bias.full is None
    out, weights = retention_attention(implementation, q, k, v, bias, heads, decomposed)
    assert weights is None
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)


def test_compiled_models_keep_the_eager_kernels_where_dynamo_claims_to_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch 2.11's Dynamo answers `is_exporting()` with True under torch.compile too; without torch.export's own
    flag that answer must not send the model down the export-only scan loop (Inductor cannot compile it)."""
    import segret_hf.attention_segret as attention

    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    monkeypatch.setattr(torch.compiler, "_is_exporting_flag", False)
    assert not attention.is_exporting()
    bias = RetentionBias.build(retention_decay(2, 2.0, 6.0), 3, 4, False, "sdpa", torch.float32)
    assert bias.full is not None  # the whole-image bias of eager execution, not the per-chunk slices of export
    monkeypatch.setattr(torch.compiler, "_is_exporting_flag", True)
    assert attention.is_exporting()


@pytest.mark.parametrize("head_size", [8, 12])
def test_flex_attention_pads_heads_below_its_kernel_minimum(head_size: int) -> None:
    """FlexAttention's GPU kernels need heads of 16 channels or more: smaller heads are padded, same result."""
    generator = torch.Generator().manual_seed(4)
    heads, height, width = 2, 5, 6
    q, k, v = (torch.randn(1, height, width, heads * head_size, generator=generator) for _ in range(3))
    decay = retention_decay(heads, 2.0, 6.0)
    outputs = {}
    for implementation in ("eager", "flex_attention"):
        bias = RetentionBias.build(decay, height, width, False, implementation, torch.float32)
        outputs[implementation] = retention_attention(implementation, q, k, v, bias, heads, False)[0]
    assert outputs["flex_attention"].shape == q.shape
    torch.testing.assert_close(outputs["flex_attention"], outputs["eager"], atol=1e-5, rtol=0)


def test_flex_attention_may_compile_past_dynamos_default_recompile_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each (dtype, heads, head size) needs its own compiled kernel; at Dynamo's default limit of 8 the compiled
    function would silently run uncompiled and materialise every score matrix."""
    import segret_hf.attention_segret as attention

    limits = []

    def recording_flex(q, k, v, score_mod, scale):
        limits.append(torch._dynamo.config.recompile_limit)
        return torch.zeros_like(q)

    monkeypatch.setattr(attention, "_compiled_flex_attention", lambda: recording_flex)
    q = torch.randn(1, 3, 4, 32)
    bias = RetentionBias.build(retention_decay(2, 2.0, 6.0), 3, 4, False, "flex_attention", torch.float32)
    retention_attention("flex_attention", q, q, q, bias, 2, False)
    assert limits == [attention.FLEX_RECOMPILE_LIMIT] and attention.FLEX_RECOMPILE_LIMIT > 8
    assert torch._dynamo.config.recompile_limit == 8  # restored after the call
