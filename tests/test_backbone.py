"""`SegRetBackbone` through `AutoBackbone`, and transformers' own heads (UperNet, Mask2Former) built on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi
from transformers import AutoBackbone, Mask2FormerConfig, UperNetConfig, UperNetForSemanticSegmentation
from transformers.models.mask2former.modeling_mask2former import Mask2FormerPixelLevelModule

from segret_hf import SegRetBackbone, SegRetConfig, SegRetForSemanticSegmentation

from helpers import SMALL_ARCHITECTURE

ALL_STAGES = ["stage1", "stage2", "stage3", "stage4"]


def backbone_config(**overrides) -> SegRetConfig:
    return SegRetConfig(**{**SMALL_ARCHITECTURE, **overrides})


def test_auto_backbone_from_config_follows_the_backbone_conventions() -> None:
    backbone = AutoBackbone.from_config(backbone_config())
    assert type(backbone) is SegRetBackbone
    assert backbone.stage_names == ALL_STAGES
    assert backbone.out_features == ["stage4"] and backbone.out_indices == [3]  # transformers' default: last stage
    assert backbone.channels == [64]
    outputs = backbone.eval()(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in outputs.feature_maps] == [(1, 64, 2, 3)]
    assert outputs.hidden_states is None


def test_out_features_and_out_indices_select_stages_and_survive_saving(tmp_path) -> None:
    config = backbone_config(out_indices=[0, 2])
    assert config.out_features == ["stage1", "stage3"]
    config.save_pretrained(tmp_path)
    reloaded = SegRetConfig.from_pretrained(tmp_path)
    assert reloaded.out_features == ["stage1", "stage3"] and reloaded.out_indices == [0, 2]
    backbone = SegRetBackbone(reloaded).eval()
    assert backbone.channels == [16, 48]
    with torch.no_grad():
        outputs = backbone(torch.randn(2, 3, 64, 96), output_hidden_states=True)
    assert [tuple(f.shape) for f in outputs.feature_maps] == [(2, 16, 16, 24), (2, 48, 4, 6)]
    assert outputs.feature_maps[1] is outputs.hidden_states[2]
    with pytest.raises(ValueError, match="out_features must be a subset of stage_names"):
        backbone_config(out_features=["stem"])


def test_backbone_loads_the_weights_of_a_segmentation_checkpoint(tmp_path, monkeypatch) -> None:
    # AutoBackbone.from_pretrained asks the Hub whether the name is a repository (else it tries timm); the Hub
    # answers for this folder here, offline.
    monkeypatch.setattr(HfApi, "repo_exists", lambda self, repo_id, **kwargs: Path(repo_id) == tmp_path)
    torch.manual_seed(0)
    segmenter = SegRetForSemanticSegmentation(backbone_config(num_labels=3)).eval()
    segmenter.save_pretrained(tmp_path)
    backbone = AutoBackbone.from_pretrained(str(tmp_path), out_features=ALL_STAGES).eval()
    assert type(backbone) is SegRetBackbone
    pixel_values = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        expected = segmenter(pixel_values, output_hidden_states=True).hidden_states
        features = backbone(pixel_values).feature_maps
    for feature, reference in zip(features, expected, strict=True):
        torch.testing.assert_close(feature, reference, atol=0, rtol=0)


def test_upernet_with_a_segret_backbone_trains_saves_and_reloads(tmp_path) -> None:
    torch.manual_seed(0)
    config = UperNetConfig(
        backbone_config=backbone_config(out_features=ALL_STAGES),
        hidden_size=32,
        auxiliary_channels=16,
        num_labels=4,
    )
    model = UperNetForSemanticSegmentation(config)
    assert type(model.backbone) is SegRetBackbone
    pixel_values, labels = torch.randn(2, 3, 64, 80), torch.randint(0, 4, (2, 64, 80))
    outputs = model(pixel_values, labels=labels)
    assert outputs.logits.shape == (2, 4, 64, 80)
    outputs.loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())

    model.eval().save_pretrained(tmp_path)
    reloaded = UperNetForSemanticSegmentation.from_pretrained(tmp_path).eval()
    assert type(reloaded.backbone) is SegRetBackbone
    assert reloaded.config.backbone_config.out_features == ALL_STAGES
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values).logits, model(pixel_values).logits, atol=0, rtol=0)


def test_mask2former_pixel_level_module_runs_on_segret_features() -> None:
    config = Mask2FormerConfig(
        backbone_config=backbone_config(out_features=ALL_STAGES),
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=64,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        dim_feedforward=64,
        num_queries=4,
    )
    module = Mask2FormerPixelLevelModule(config).eval()
    with torch.no_grad():
        outputs = module(torch.randn(1, 3, 64, 80), output_hidden_states=True)
    assert [tuple(f.shape) for f in outputs.encoder_hidden_states] == [
        (1, 16, 16, 20), (1, 32, 8, 10), (1, 48, 4, 5), (1, 64, 2, 3),
    ]  # fmt: skip
    assert outputs.decoder_last_hidden_state.shape == (1, 32, 16, 20)  # mask features at stride 4
