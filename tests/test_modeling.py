"""Tests of SegRetConfig / SegRetModel / SegRetForSemanticSegmentation and their transformers integration.

All networks here are tiny random ones (or built on the meta device), so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForSemanticSegmentation, pipeline
from transformers.utils import logging as hf_logging

import segret_hf
from segret_hf import SegRetConfig, SegRetForSemanticSegmentation, SegRetImageProcessor, SegRetModel

from helpers import SMALL_ARCHITECTURE, randomise

ID2LABEL = {0: "sky", 1: "road", 2: "tree", 3: "car", 4: "person"}


def tiny_config(**overrides) -> SegRetConfig:
    return SegRetConfig(**{**SMALL_ARCHITECTURE, "num_labels": 5, **overrides})


@pytest.fixture
def no_prompt(monkeypatch):
    """Fail instead of hanging if transformers asks an interactive question (trust_remote_code prompt)."""
    prompts = []

    def refuse(prompt: str = "") -> str:
        prompts.append(prompt)
        raise RuntimeError(f"unexpected interactive prompt: {prompt}")

    monkeypatch.setattr(builtins, "input", refuse)
    return prompts


@pytest.fixture
def saved_model(tmp_path):
    """A random tiny model and its processor saved with save_pretrained (model code copied for remote code)."""
    torch.manual_seed(0)
    model = SegRetForSemanticSegmentation(tiny_config(id2label=ID2LABEL)).eval()
    with torch.no_grad():  # the default init, plus live ZIR branches; images then show several classes
        for projection in model.decode_head.linear_c:
            projection.zero_conv.weight.normal_(std=0.05)
    folder = tmp_path / "segret-tiny"
    model.save_pretrained(folder)
    SegRetImageProcessor(size={"height": 96, "width": 128}).save_pretrained(folder)
    return model, folder


# ------------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant, expected",
    [("tiny", 13_474_998), ("small", 25_983_862), ("base", 53_029_822), ("large", 95_795_150)],
)
def test_parameter_counts_match_the_released_networks(variant, expected):
    with torch.device("meta"):
        model = SegRetForSemanticSegmentation(SegRetConfig.from_variant(variant, num_labels=150))
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_attention_heads": [3, 2, 4, 4]}, "do not divide"),
        ({"hidden_sizes": [16, 32, 48]}, "4 entries"),
        ({"depths": [1, 1, 2, 1, 1]}, "4 entries"),
        ({"decomposed_retention": [True, True]}, "4 entries"),
        ({"decay_heads_ranges": [-4.0, 4.0, 6.0, 6.0]}, "decay rate outside"),
        ({"decay_init_values": [float("nan"), 2.0, 2.0, 2.0]}, "decay_init_values must be finite"),
        ({"decay_init_values": [0.0, 2.0, 2.0, 2.0]}, "decay rate outside"),
        ({"mlp_ratios": [-3.0, 3.0, 3.0, 3.0]}, "mlp_ratios must be positive"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps must be a positive"),
        ({"layer_scale_init_value": float("inf")}, "layer_scale_init_value must be finite"),
    ],
)
def test_config_rejects_impossible_networks(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="Unknown SegRet variant 'huge'"):
        SegRetConfig.from_variant("huge")


# ------------------------------------------------------------------------------------------------------
# Forward pass, attention implementations, loss
# ------------------------------------------------------------------------------------------------------


def test_forward_on_odd_size_and_batch_two():
    model = randomise(SegRetForSemanticSegmentation(tiny_config()))
    pixel_values = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        outputs = model(pixel_values, output_hidden_states=True)
    assert outputs.logits.shape == (2, 5, 25, 33)  # ceil(97 / 4), ceil(131 / 4)
    shapes = [tuple(h.shape) for h in outputs.hidden_states]
    assert shapes == [(2, 16, 25, 33), (2, 32, 13, 17), (2, 48, 7, 9), (2, 64, 4, 5)]
    with torch.no_grad():
        single = model(pixel_values[1:]).logits
    torch.testing.assert_close(single, outputs.logits[1:], atol=1e-5, rtol=1e-5)


def test_backbone_returns_stage_features():
    backbone = SegRetModel(tiny_config()).eval()
    with torch.no_grad():
        outputs = backbone(torch.randn(1, 3, 97, 131), output_hidden_states=True)
    assert outputs.last_hidden_state.shape == (1, 64, 4, 5)
    assert len(outputs.hidden_states) == 4


def test_eager_and_sdpa_agree():
    model = randomise(SegRetForSemanticSegmentation(tiny_config()))
    pixel_values = torch.randn(1, 3, 61, 83)
    results = {}
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        with torch.no_grad():
            results[implementation] = model(pixel_values, output_hidden_states=True)
    torch.testing.assert_close(results["eager"].logits, results["sdpa"].logits, atol=1e-5, rtol=0)
    for eager, sdpa in zip(results["eager"].hidden_states, results["sdpa"].hidden_states):
        torch.testing.assert_close(eager, sdpa, atol=1e-5, rtol=0)


def test_loss_ignores_255_and_matches_a_manual_cross_entropy():
    model = randomise(SegRetForSemanticSegmentation(tiny_config()))
    pixel_values = torch.randn(2, 3, 40, 56)
    labels = torch.randint(0, 5, (2, 40, 56))
    labels[:, :10] = 255
    labels[1, :, 30:] = 255
    with torch.no_grad():
        outputs = model(pixel_values, labels=labels)
    upsampled = F.interpolate(outputs.logits, size=(40, 56), mode="bilinear", align_corners=False)
    log_probs = upsampled.log_softmax(dim=1).permute(0, 2, 3, 1)  # (B, H, W, classes)
    valid = labels != 255
    expected = -log_probs[valid].gather(1, labels[valid][:, None]).mean()
    torch.testing.assert_close(outputs.loss, expected, atol=1e-6, rtol=1e-6)

    relabelled = labels.clone()
    relabelled[~valid] = 255  # ignored pixels do not count, whatever lies under them
    with torch.no_grad():
        assert model(pixel_values, labels=relabelled).loss == outputs.loss


def test_zir_convs_start_at_zero():
    model = SegRetForSemanticSegmentation(tiny_config())
    for projection in model.decode_head.linear_c:
        assert torch.count_nonzero(projection.zero_conv.weight) == 0
        assert torch.count_nonzero(projection.zero_conv.bias) == 0
        assert torch.count_nonzero(projection.proj.weight) > 0
    assert torch.count_nonzero(model.decode_head.linear_fuse.weight) > 0


def test_without_zir_the_branch_is_gone():
    with_zir = SegRetForSemanticSegmentation(tiny_config())
    without = SegRetForSemanticSegmentation(tiny_config(use_zero_init_residual=False))
    assert not any("zero_" in key for key in without.state_dict())
    assert all(projection.zero_conv is None for projection in without.decode_head.linear_c)
    # Each removed branch: 1x1 conv C_i -> C with bias, plus BN weight and bias.
    hidden = SMALL_ARCHITECTURE["decoder_hidden_size"]
    removed = sum(width * hidden + hidden + 2 * hidden for width in SMALL_ARCHITECTURE["hidden_sizes"])
    assert with_zir.num_parameters() - without.num_parameters() == removed
    with torch.no_grad():
        assert without.eval()(torch.randn(1, 3, 33, 47)).logits.shape == (1, 5, 9, 12)


def test_gradient_checkpointing_training_step_matches_plain_backward():
    config = tiny_config(drop_path_rate=0.0, classifier_dropout_prob=0.0)
    torch.manual_seed(0)
    plain = SegRetForSemanticSegmentation(config)
    checkpointed = SegRetForSemanticSegmentation(config)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable()
    assert checkpointed.is_activation_checkpointing and not plain.is_activation_checkpointing

    pixel_values = torch.randn(2, 3, 48, 64)
    labels = torch.randint(0, 5, (2, 48, 64))
    gradients = []
    for model in (plain, checkpointed):
        model.train()
        model(pixel_values, labels=labels).loss.backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters()})
    assert set(gradients[0]) == set(gradients[1])
    for name in gradients[0]:
        torch.testing.assert_close(gradients[1][name], gradients[0][name], atol=1e-5, rtol=1e-4, msg=name)

    before = checkpointed.segret.stages[0].blocks[0].retention.q_proj.weight.detach().clone()
    torch.optim.SGD(checkpointed.parameters(), lr=0.1).step()
    assert not torch.equal(before, checkpointed.segret.stages[0].blocks[0].retention.q_proj.weight)


# ------------------------------------------------------------------------------------------------------
# Saving, loading, Auto classes, remote code, pipeline
# ------------------------------------------------------------------------------------------------------


def test_save_and_load_round_trip(saved_model):
    model, folder = saved_model
    reloaded = SegRetForSemanticSegmentation.from_pretrained(folder).eval()
    pixel_values = torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        assert torch.equal(model(pixel_values).logits, reloaded(pixel_values).logits)
    assert reloaded.config.id2label == ID2LABEL
    assert reloaded.config.to_dict()["hidden_sizes"] == SMALL_ARCHITECTURE["hidden_sizes"]


def test_auto_classes_resolve_after_import(saved_model, no_prompt):
    _, folder = saved_model
    assert isinstance(AutoConfig.from_pretrained(folder), SegRetConfig)
    assert isinstance(AutoConfig.for_model("segret"), SegRetConfig)
    assert type(AutoModel.from_pretrained(folder)) is SegRetModel
    assert type(AutoModelForSemanticSegmentation.from_pretrained(folder)) is SegRetForSemanticSegmentation
    assert type(AutoModelForSemanticSegmentation.from_config(tiny_config())) is SegRetForSemanticSegmentation
    assert type(AutoImageProcessor.from_pretrained(folder)) is SegRetImageProcessor
    assert no_prompt == []


def test_remote_code_load_without_segret_hf(saved_model, tmp_path):
    """Every Auto class in the saved `auto_map` loads the folder's own code where segret_hf cannot be imported."""
    model, folder = saved_model
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    image.save(tmp_path / "image.png")
    inputs = SegRetImageProcessor.from_pretrained(folder)(images=image, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs, output_hidden_states=True)
    torch.save(
        {"pixel_values": inputs["pixel_values"], "logits": outputs.logits, "hidden_states": outputs.hidden_states},
        tmp_path / "ref.pt",
    )

    script = textwrap.dedent(
        f"""
        import builtins, importlib.abc, io, logging, sys

        class BlockSegRet(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "segret_hf" or name.startswith("segret_hf."):
                    raise ImportError("segret_hf is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockSegRet())
        try:
            import segret_hf
        except ImportError:
            pass
        else:
            raise SystemExit("segret_hf is importable: the test would not exercise remote code")

        def no_prompt(prompt=""):
            raise SystemExit(f"interactive prompt: {{prompt}}")

        builtins.input = no_prompt

        import torch
        from huggingface_hub import HfApi
        from PIL import Image
        from transformers import (
            AutoBackbone, AutoConfig, AutoImageProcessor, AutoModel, AutoModelForSemanticSegmentation, pipeline,
        )
        from transformers.utils import logging as hf_logging

        folder = {str(folder)!r}
        # AutoBackbone.from_pretrained asks the Hub whether the name is a repository; answer for the folder.
        HfApi.repo_exists = lambda self, repo_id, **kwargs: repo_id == folder
        log = io.StringIO()
        hf_logging.get_logger("transformers").addHandler(logging.StreamHandler(log))

        def remote(obj):
            assert type(obj).__module__.startswith("transformers_modules"), type(obj).__module__
            return obj

        ref = torch.load("ref.pt")
        config = remote(AutoConfig.from_pretrained(folder, trust_remote_code=True))
        processor = remote(AutoImageProcessor.from_pretrained(folder, trust_remote_code=True))
        segmenter = remote(AutoModelForSemanticSegmentation.from_pretrained(folder, trust_remote_code=True).eval())
        base = remote(AutoModel.from_pretrained(folder, trust_remote_code=True).eval())
        backbone = remote(AutoBackbone.from_pretrained(folder, trust_remote_code=True, out_indices=[0, 1, 2, 3]).eval())
        assert config.model_type == "segret"
        pixel_values = processor(images=Image.open("image.png"), return_tensors="pt")["pixel_values"]
        assert torch.equal(pixel_values, ref["pixel_values"])
        with torch.no_grad():
            differences = [(segmenter(pixel_values).logits - ref["logits"]).abs().max().item()]
            for outputs in (base(pixel_values, output_hidden_states=True).hidden_states, backbone(pixel_values).feature_maps):
                differences += [(a - b).abs().max().item() for a, b in zip(outputs, ref["hidden_states"], strict=True)]
        segments = pipeline("image-segmentation", model=folder, trust_remote_code=True)(Image.open("image.png"))
        assert segments and all(s["mask"].size == (53, 37) for s in segments)
        assert "is not supported for image-segmentation" not in log.getvalue(), log.getvalue()
        print("max_abs_diff", max(differences))
        assert not any(name.startswith("segret_hf") for name in sys.modules if sys.modules[name] is not None)
        """
    )
    env = {
        **os.environ,
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    diff = float(result.stdout.split("max_abs_diff")[-1])
    assert diff <= 1e-6


def _segmentation_reference(model, processor, image):
    inputs = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    return processor.post_process_semantic_segmentation(outputs, target_sizes=[image.size[::-1]])[0]


def test_pipeline_returns_one_mask_per_present_class(saved_model, no_prompt):
    model, folder = saved_model
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), mode="RGBA")
    expected = _segmentation_reference(model, SegRetImageProcessor.from_pretrained(folder), image)
    present = sorted(torch.unique(expected).tolist())

    # The classes come from segret_hf (imported above), so no remote code is needed.
    segmenter = pipeline("image-segmentation", model=str(folder))
    assert type(segmenter.model) is SegRetForSemanticSegmentation
    results = segmenter(image)

    assert [r["label"] for r in results] == [ID2LABEL[c] for c in present]
    assert len(present) > 1
    for result, class_id in zip(results, present):
        assert result["mask"].size == image.size
        mask = np.array(result["mask"]) > 0
        assert np.array_equal(mask, (expected == class_id).numpy())
    assert no_prompt == []


def test_pipeline_asks_no_question_without_trust_remote_code(saved_model, monkeypatch):
    """`pipeline("image-segmentation", model=folder)` must not prompt about remote code.

    transformers' pipeline probes `AutoVideoProcessor`, which would derive a non-existent `SegRetVideoProcessor`
    from the `auto_map` of `preprocessor_config.json` and ask whether to trust it; segret_hf registers that
    SegRet has no video processor.
    """
    prompts = []

    def record(prompt: str = "") -> str:
        prompts.append(prompt)
        raise EOFError

    monkeypatch.setattr(builtins, "input", record)
    _, folder = saved_model
    image = Image.fromarray(np.zeros((21, 34, 3), dtype=np.uint8))
    results = pipeline("image-segmentation", model=str(folder))(image)
    assert results and all(r["mask"].size == image.size for r in results)
    assert prompts == []


def test_pipeline_logs_no_error_for_segret(saved_model):
    _, folder = saved_model
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    hf_logging.get_logger("transformers").addHandler(handler)
    try:
        pipeline("image-segmentation", model=str(folder))(Image.fromarray(np.zeros((21, 34, 3), dtype=np.uint8)))
    finally:
        hf_logging.get_logger("transformers").removeHandler(handler)
    assert "not supported" not in log.getvalue(), log.getvalue()


SEGFORMER_PIPELINE = """
import hashlib, io, json, logging, sys
import numpy as np, torch
from PIL import Image
from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor, pipeline
from transformers.pipelines.image_segmentation import ImageSegmentationPipeline
from transformers.utils import logging as hf_logging

folder, with_segret = sys.argv[1], sys.argv[2] == "1"
if with_segret:
    import segret_hf
log = io.StringIO()
hf_logging.get_logger("transformers").addHandler(logging.StreamHandler(log))
torch.manual_seed(0)
config = SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
                         num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
SegformerForSemanticSegmentation(config).save_pretrained(folder)
SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
segmenter = pipeline("image-segmentation", model=folder)
image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
results = [(r["label"], hashlib.sha256(np.array(r["mask"]).tobytes()).hexdigest()) for r in segmenter(image)]
print(json.dumps({
    "results": results,
    "log": [line for line in log.getvalue().splitlines() if "Writing model shards" not in line],
    "components": sorted(k for k, v in vars(segmenter).items() if k.endswith("processor") and v is not None),
    "pipeline_class": sorted(k for k in vars(ImageSegmentationPipeline) if not k.startswith("__")),
    "load_video_processor": ImageSegmentationPipeline._load_video_processor,
}))
"""


def test_segformer_pipelines_behave_the_same_with_segret_hf_imported(tmp_path):
    """segret_hf changes nothing for other models: same masks, same log, same pipeline class attributes."""
    runs = []
    for with_segret in ("0", "1"):
        result = subprocess.run(
            [sys.executable, "-c", SEGFORMER_PIPELINE, str(tmp_path / f"segformer-{with_segret}"), with_segret],
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        runs.append(json.loads(result.stdout.splitlines()[-1]))
    without, with_segret = runs
    assert without["results"] and with_segret == without


def test_config_json_is_plain_and_auto_mapped(saved_model):
    _, folder = saved_model
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "segret"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_segret.SegRetConfig",
        "AutoModel": "modeling_segret.SegRetModel",
        "AutoModelForSemanticSegmentation": "modeling_segret.SegRetForSemanticSegmentation",
        "AutoBackbone": "modeling_segret.SegRetBackbone",
    }
    processor_config = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor_config["auto_map"] == {"AutoImageProcessor": "image_processing_segret.SegRetImageProcessor"}
    assert config["architectures"] == ["SegRetForSemanticSegmentation"]
    assert segret_hf.SegRetConfig.from_pretrained(folder).num_labels == 5


def test_fresh_model_is_initialised_as_the_original_code():
    torch.manual_seed(0)
    model = SegRetForSemanticSegmentation(SegRetConfig.from_variant("tiny", num_labels=4)).train()
    head = model.decode_head
    for stage in head.linear_c:
        assert not stage.zero_conv.weight.any() and not stage.zero_conv.bias.any()  # ZIR starts at zero
        assert stage.proj.weight.abs().max() <= 1 / stage.proj.in_features**0.5  # PyTorch default (uniform)
    assert head.classifier.weight.abs().max() <= 1 / 256**0.5  # PyTorch default, not Kaiming (std 0.71)
    assert head.linear_fuse.weight.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)  # fan_out, ReLU
    q_proj = model.segret.stages[2].blocks[0].retention.q_proj
    assert q_proj.weight.std().item() == pytest.approx(0.02, rel=0.1) and not q_proj.bias.any()  # RMT
    stem = model.segret.stem.layers[0].convolution  # PyTorch default: uniform within 1/sqrt(fan_in)
    assert stem.weight.abs().max() <= 1 / 27**0.5
    labels = torch.randint(0, 4, (2, 64, 64))
    loss = model(pixel_values=torch.randn(2, 3, 64, 64), labels=labels).loss
    assert loss.item() == pytest.approx(math.log(4), abs=0.3)  # a near-uniform first prediction
