"""Tests of the original-checkpoint converter, run through scripts/convert_original_checkpoint.py.

The fixtures (a small random network in both original formats, with the outputs the original implementation
gave) live in the project's shared folder, next to the repository.
"""

from __future__ import annotations

import builtins
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from PIL import Image
from safetensors.torch import load_file

from segret_hf import SegRetConfig, SegRetForSemanticSegmentation
from segret_hf.cli.convert import image_size_argument
from segret_hf.conversion import file_sha256
from segret_hf.data.label_sets import ADE20K_CLASSES
from segret_hf.model_index import paper_results

from helpers import SMALL_ARCHITECTURE, load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "convert_original_checkpoint.py"
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "original_checkpoints"
MMSEG = FIXTURES / "tiny_a_mmseg.pth"
RMT = FIXTURES / "tiny_a_rmt_imagenet.pth"
ARCHITECTURE = FIXTURES / "tiny_a_architecture.json"
EXPECTED = FIXTURES / "tiny_a_expected.safetensors"

pytestmark = pytest.mark.skipif(
    not EXPECTED.is_file(), reason=f"original-checkpoint fixtures not found at {FIXTURES} (shared folder absent)"
)


convert_script = load_script(SCRIPT)


def run_converter(*args: str | Path) -> int:
    return convert_script.main([str(a) for a in args])


@pytest.fixture(scope="module")
def expected():
    return load_file(EXPECTED)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Both fixture formats converted once: the mmseg one through the real command line, the RMT one via main()."""
    root = tmp_path_factory.mktemp("converted")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--checkpoint", str(MMSEG), "--architecture", str(ARCHITECTURE),
         "--output_dir", str(root / "mmseg")],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "5 classes" in result.stdout and "175,805 parameters" in result.stdout
    assert run_converter("--checkpoint", RMT, "--architecture", ARCHITECTURE, "--output_dir", root / "rmt") == 0
    return {"mmseg": root / "mmseg", "rmt_imagenet": root / "rmt"}


# ------------------------------------------------------------------------------------------------------
# The fixture is reproduced from the converted folders
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("checkpoint_format", ["mmseg", "rmt_imagenet"])
def test_fixture_reproduced(converted, expected, checkpoint_format, implementation):
    model = SegRetForSemanticSegmentation.from_pretrained(
        converted[checkpoint_format], attn_implementation=implementation, dtype=torch.float32
    ).eval()
    assert model.config._attn_implementation == implementation
    with torch.no_grad():
        outputs = model(expected["pixel_values"], output_hidden_states=True)
    for index, feature in enumerate(outputs.hidden_states):
        torch.testing.assert_close(feature, expected[f"hidden_state_{index}"], atol=1e-4, rtol=0)
    if checkpoint_format == "mmseg":
        torch.testing.assert_close(outputs.logits, expected["logits"], atol=1e-5, rtol=0)
    else:  # backbone only: the decoder is freshly initialised, ZIR convs at zero
        assert outputs.logits.shape == expected["logits"].shape
        assert all(torch.count_nonzero(p.zero_conv.weight) == 0 for p in model.decode_head.linear_c)


def test_output_folder_contents(converted):
    for folder in converted.values():
        names = {p.name for p in folder.iterdir()}
        assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= names
        assert {"modeling_segret.py", "configuration_segret.py", "image_processing_segret.py"} <= names
        assert not any(name.endswith((".bin", ".pth")) for name in names)
    config = json.loads((converted["mmseg"] / "config.json").read_text())
    # mmseg meta["CLASSES"] become the labels.
    assert config["id2label"] == {str(i): f"class_{i}" for i in range(5)}
    assert config["decomposed_retention"] == [True, True, False, False]
    processor = json.loads((converted["mmseg"] / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 512, "width": 512}
    leftovers = [p.name for p in converted["mmseg"].parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


# ------------------------------------------------------------------------------------------------------
# Rejected conversions write nothing
# ------------------------------------------------------------------------------------------------------


def _modified_mmseg(tmp_path: Path, edit) -> Path:
    raw = torch.load(MMSEG, weights_only=True)
    edit(raw["state_dict"])
    path = tmp_path / "modified.pth"
    torch.save(raw, path)
    return path


def _add_unexpected(state):
    state["backbone.layers.0.blocks.0.extra.weight"] = torch.zeros(3)


def _drop_key(state):
    del state["backbone.layers.0.blocks.0.ffn.fc1.bias"]


def _reshape(state):
    state["backbone.layers.1.blocks.0.ffn.fc2.bias"] = torch.zeros(33)


def _corrupt_decay(state):
    state["backbone.layers.2.Relpos.decay"] = state["backbone.layers.2.Relpos.decay"] * 2


REJECTIONS = {
    "unexpected key": (_add_unexpected, [], ["layers.0.blocks.0.extra.weight", "unexpected original tensors"]),
    "missing key": (_drop_key, [], ["segret.stages.0.blocks.0.ffn.fc1.bias", "lacks"]),
    "shape mismatch": (
        _reshape,
        [],
        ["layers.1.blocks.0.ffn.fc2.bias (33,) -> segret.stages.1.blocks.0.ffn.fc2.bias (32,)"],
    ),
    "wrong decay buffer": (_corrupt_decay, [], ["layers.2.Relpos.decay", "decay buffers disagree"]),
    "conflicting num_labels": (None, ["--num_labels", "7"], ["--num_labels gives 7", "classifier", "gives 5"]),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejected_checkpoint_writes_nothing(case, tmp_path, capsys):
    edit, extra_args, messages = REJECTIONS[case]
    checkpoint = _modified_mmseg(tmp_path, edit) if edit else MMSEG
    before = sorted(p.name for p in tmp_path.iterdir())
    status = run_converter(
        "--checkpoint", checkpoint, "--architecture", ARCHITECTURE, "--output_dir", tmp_path / "out", *extra_args
    )
    error = capsys.readouterr().err
    assert status == 1
    for message in messages:
        assert message in error
    assert "Nothing was written" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_wrong_variant_is_rejected(tmp_path, capsys):
    status = run_converter("--checkpoint", MMSEG, "--variant", "tiny", "--output_dir", tmp_path / "out")
    error = capsys.readouterr().err
    assert status == 1
    assert "patch_embed.proj.0.weight (8, 3, 3, 3) -> segret.stem.layers.0.convolution.weight (32, 3, 3, 3)" in error
    assert "layers.0.Relpos.decay" in error
    assert list(tmp_path.iterdir()) == []


def test_backbone_checkpoint_needs_a_class_count(tmp_path, capsys):
    architecture = json.loads(ARCHITECTURE.read_text())
    del architecture["num_classes"]
    (tmp_path / "arch.json").write_text(json.dumps(architecture))
    status = run_converter(
        "--checkpoint", RMT, "--architecture", tmp_path / "arch.json", "--output_dir", tmp_path / "out"
    )
    assert status == 1
    assert "pass --num_labels or --id2label" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_non_empty_output_dir_is_refused_then_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    args = ["--checkpoint", MMSEG, "--architecture", ARCHITECTURE, "--output_dir", out]
    assert run_converter(*args) == 1
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    assert run_converter(*args, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or retired folders left


def test_pickled_objects_are_not_loaded(tmp_path, capsys):
    checkpoint = tmp_path / "pickled.pth"
    torch.save({"state_dict": {}, "meta": {"palette": np.zeros(3)}}, checkpoint)
    status = run_converter("--checkpoint", checkpoint, "--architecture", ARCHITECTURE, "--output_dir", tmp_path / "o")
    assert status == 1
    assert "weights_only=True" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pickled.pth"]


def test_variant_and_architecture_are_exclusive(tmp_path):
    with pytest.raises(SystemExit):
        run_converter(
            "--checkpoint", MMSEG, "--variant", "tiny", "--architecture", ARCHITECTURE, "--output_dir", tmp_path / "o"
        )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------------
# Labels, image size
# ------------------------------------------------------------------------------------------------------


def test_id2label_overrides_meta_classes_and_sizes_the_processor(tmp_path):
    (tmp_path / "names.json").write_text(json.dumps([f"thing {i}" for i in range(5)]))
    status = run_converter(
        "--checkpoint", MMSEG, "--architecture", ARCHITECTURE, "--output_dir", tmp_path / "out",
        "--id2label", tmp_path / "names.json", "--image_size", "96x128",
    )  # fmt: skip
    assert status == 0
    config = SegRetConfig.from_pretrained(tmp_path / "out")
    assert config.id2label[3] == "thing 3" and config.label2id["thing 3"] == 3
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 96, "width": 128}


def test_image_size_argument():
    assert image_size_argument("640") == {"height": 640, "width": 640}
    assert image_size_argument("512x1024") == {"height": 512, "width": 1024}
    assert image_size_argument(None) is None
    for bad in ("0", "512x", "axb", "1x2x3"):
        with pytest.raises(ValueError):
            image_size_argument(bad)


# ------------------------------------------------------------------------------------------------------
# A released variant, end to end: synthetic SegRet-Tiny in the mmseg format -> card with paper results
# ------------------------------------------------------------------------------------------------------

# Our parameter names -> the original's (ARCHITECTURE.md, "Original checkpoint formats"), written independently
# of the converter so that the round trip checks its mapping.
_TO_ORIGINAL = [
    (r"segret\.stem\.layers\.(\d)\.convolution\.(\w+)", lambda m: f"patch_embed.proj.{3 * int(m[1])}.{m[2]}"),
    (r"segret\.stem\.layers\.(\d)\.normalization\.(\w+)", lambda m: f"patch_embed.proj.{3 * int(m[1]) + 1}.{m[2]}"),
    (r"segret\.stages\.(\d)\.downsample\.convolution\.(\w+)", lambda m: f"layers.{m[1]}.downsample.reduction.{m[2]}"),
    (r"segret\.stages\.(\d)\.downsample\.normalization\.(\w+)", lambda m: f"layers.{m[1]}.downsample.norm.{m[2]}"),
    (r"segret\.stages\.(\d)\.blocks\.(\d+)\.(.+)", lambda m: f"layers.{m[1]}.blocks.{m[2]}.{_block_part(m[3])}"),
    (r"decode_head\.linear_c\.(\d)\.proj\.(\w+)", lambda m: f"linear_c{int(m[1]) + 1}.proj.{m[2]}"),
    (r"decode_head\.linear_c\.(\d)\.zero_conv\.(\w+)", lambda m: f"linear_c{int(m[1]) + 1}.zeroLayer.conv.{m[2]}"),
    (r"decode_head\.linear_c\.(\d)\.zero_norm\.(\w+)", lambda m: f"linear_c{int(m[1]) + 1}.zeroLayer.bn.{m[2]}"),
    (r"decode_head\.linear_fuse\.(\w+)", lambda m: f"linear_fuse.conv.{m[1]}"),
    (r"decode_head\.fuse_norm\.(\w+)", lambda m: f"linear_fuse.bn.{m[1]}"),
    (r"decode_head\.classifier\.(\w+)", lambda m: f"linear_pred.{m[1]}"),
]
_BLOCK_PARTS = {
    "position_encoding.convolution": "pos.conv",
    "retention.lepe.convolution": "retention.lepe.conv",
    "ffn_layer_norm": "final_layer_norm",
}


def _block_part(rest: str) -> str:
    module, leaf = rest.rsplit(".", 1)
    return f"{_BLOCK_PARTS.get(module, module)}.{leaf}"


def mmseg_state_dict(model: SegRetForSemanticSegmentation) -> dict[str, torch.Tensor]:
    """The model's weights as the original mmseg SegRet checkpoint would store them."""
    state = {}
    for key, tensor in model.state_dict().items():
        if match := re.fullmatch(r"segret\.stages\.(\d)\.blocks\.(\d+)\.layer_scale_([12])", key):
            state[f"backbone.layers.{match[1]}.blocks.{match[2]}.gamma_{match[3]}"] = tensor.reshape(1, 1, 1, -1)
            continue
        for pattern, rename in _TO_ORIGINAL:
            if match := re.fullmatch(pattern, key):
                original = rename(match)
                prefix = "decode_head." if key.startswith("decode_head.") else "backbone."
                state[prefix + original] = tensor.clone()
                break
        else:
            raise AssertionError(f"no original name for {key}")
    config = model.config
    for stage, heads in enumerate(config.num_attention_heads):
        head_index = torch.arange(heads, dtype=torch.float32)
        decay = torch.log(1 - 2 ** (-2.0 - config.decay_heads_ranges[stage] * head_index / heads))
        state[f"backbone.layers.{stage}.Relpos.decay"] = decay
        state[f"backbone.layers.{stage}.Relpos.angle"] = torch.zeros(config.hidden_sizes[stage] // heads // 2)
    state["decode_head.conv_seg.weight"] = torch.zeros(config.num_labels, 128, 1, 1)
    state["decode_head.conv_seg.bias"] = torch.zeros(config.num_labels)
    return state


@pytest.fixture(scope="module")
def tiny_variant(tmp_path_factory):
    """A random SegRet-Tiny (150 ADE20K classes) saved as an mmseg checkpoint, then converted with --variant."""
    root = tmp_path_factory.mktemp("tiny_variant")
    torch.manual_seed(0)
    source = SegRetForSemanticSegmentation(SegRetConfig.from_variant("tiny", num_labels=150)).eval()
    with torch.no_grad():
        for projection in source.decode_head.linear_c:
            projection.zero_conv.weight.normal_(std=0.02)
    checkpoint = root / "segret_tiny_ade20k.pth"
    meta = {"mmseg_version": "0.13.0", "CLASSES": list(ADE20K_CLASSES)}
    torch.save({"meta": meta, "state_dict": mmseg_state_dict(source)}, checkpoint)
    out = root / "segret-tiny-ade"
    assert run_converter("--checkpoint", checkpoint, "--variant", "tiny", "--output_dir", out) == 0
    return source, checkpoint, out


def test_layer_scale_architecture_round_trip(tmp_path):
    architecture = {
        "embed_dims": [16, 32, 48, 64], "depths": [1, 1, 2, 1], "num_heads": [2, 2, 4, 4],
        "init_values": [2, 2, 2, 2], "heads_ranges": [4, 4, 6, 6], "mlp_ratios": [3, 3, 3, 3],
        "chunkwise_recurrents": [True, True, True, False], "layerscales": [False, False, True, True],
        "layer_init_values": 1e-6, "decoder_hidden_size": 32, "num_classes": 3,
    }  # fmt: skip
    (tmp_path / "arch.json").write_text(json.dumps(architecture))
    torch.manual_seed(0)
    config = SegRetConfig(
        **SMALL_ARCHITECTURE,
        decomposed_retention=[True, True, True, False],
        layer_scale=[False, False, True, True],
        num_labels=3,
    )
    source = SegRetForSemanticSegmentation(config).eval()
    with torch.no_grad():
        for block in source.segret.stages[2].blocks:
            block.layer_scale_1.uniform_(0.5, 1.5)
            block.layer_scale_2.uniform_(0.5, 1.5)
    torch.save({"state_dict": mmseg_state_dict(source)}, tmp_path / "ls.pth")
    out = tmp_path / "out"
    assert run_converter("--checkpoint", tmp_path / "ls.pth", "--architecture", tmp_path / "arch.json",
                         "--output_dir", out) == 0  # fmt: skip
    converted = SegRetForSemanticSegmentation.from_pretrained(out).eval()
    for converted_block, source_block in zip(converted.segret.stages[2].blocks, source.segret.stages[2].blocks):
        assert torch.equal(converted_block.layer_scale_2, source_block.layer_scale_2)
    pixel_values = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        torch.testing.assert_close(converted(pixel_values).logits, source(pixel_values).logits, atol=1e-5, rtol=0)


def test_variant_round_trip(tiny_variant):
    source, _, out = tiny_variant
    converted = SegRetForSemanticSegmentation.from_pretrained(out).eval()
    assert converted.num_parameters() == 13_474_998
    pixel_values = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(converted(pixel_values).logits, source(pixel_values).logits, atol=1e-5, rtol=0)
    assert converted.config.id2label[7] == "bed "  # mmseg class names, verbatim
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["do_reduce_labels"] is True  # ADE20K convention
    assert processor["size_divisor"] == 32  # the paper's ADE20K test resize (mmseg AlignedResize)
    assert processor["size"] == {"shortest_edge": 512, "longest_edge": 2048}  # the released tiny config's scale


def test_size_divisor_follows_the_dataset_unless_given(tmp_path, capsys):
    architecture = json.loads(ARCHITECTURE.read_text())
    del architecture["num_classes"]  # the backbone checkpoint takes its classes from --id2label
    (tmp_path / "arch.json").write_text(json.dumps(architecture))

    def processor_config(*args: str) -> dict:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        common = ("--checkpoint", RMT, "--architecture", tmp_path / "arch.json", "--output_dir", out)
        assert run_converter(*common, *args) == 0
        return json.loads((out / "preprocessor_config.json").read_text())

    assert processor_config("--id2label", "coco-stuff")["size_divisor"] == 32
    cityscapes = processor_config("--id2label", "cityscapes")
    assert "size_divisor" not in cityscapes  # plain resize, saved as the default
    assert cityscapes["size"] == {"shortest_edge": 1024, "longest_edge": 2048}  # unknown variant: tiny's config
    assert "size_divisor" not in processor_config("--id2label", "ade20k", "--size_divisor", "0")
    assert processor_config("--id2label", "cityscapes", "--size_divisor", "64")["size_divisor"] == 64
    common = ("--checkpoint", RMT, "--architecture", tmp_path / "arch.json", "--id2label", "ade20k")
    assert run_converter(*common, "--output_dir", tmp_path / "bad", "--size_divisor", "-32") == 1
    assert "size_divisor must be a non-negative integer" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_variant_card(tiny_variant):
    _, checkpoint, out = tiny_variant
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "image-segmentation"
    assert card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0"
    assert card.data.tags == ["segret", "semantic-segmentation", "vision"]
    assert card.data.datasets == ["scene_parse_150"]
    assert card.data.eval_results == paper_results("ade20k", (48.76, 49.39))  # quoted, unverified, paper as source
    text = card.text
    assert "# SegRet-Tiny for ADE20K semantic segmentation" in text
    assert "13,474,998" in text
    assert checkpoint.name in text and file_sha256(checkpoint) in text
    assert "as reported by the paper, not measured by this conversion" in text
    assert "| ADE20K | 512x512 | 48.76 | 49.39 |" in text
    assert "Cityscapes" not in text.split("## Results")[1].split("## Usage")[0]
    assert "trust_remote_code=True" in text and 'pipeline("image-segmentation"' in text
    assert "arXiv:2502.14014" in text and "arXiv:2309.11523" in text
    assert "Li, Zhiyuan and Chang, Yi and Wu, Yuan" in text
    assert "Fan, Qihang and Huang, Huaibo and Chen, Mingrui and Liu, Hongmin and He, Ran" in text


def test_card_usage_snippet_runs(converted, tmp_path, monkeypatch):
    """The card's Python block works as written against the converted folder, without prompting."""
    folder = converted["mmseg"]
    text = (folder / "README.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert f'model_id = "{folder}"' in snippet
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)).save(
        tmp_path / "image.jpg"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("interactive prompt"))
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["segmentation"].shape == (45, 61)
    assert {m["label"] for m in namespace["masks"]} <= {f"class_{i}" for i in range(5)}


def test_backbone_only_card(converted):
    card = ModelCard.load(converted["rmt_imagenet"] / "README.md")
    assert "decoder not trained" in card.text
    assert "Only the backbone is pretrained" in card.text
    assert "RMT ImageNet-1k classification checkpoint" in card.text
    assert file_sha256(RMT) in card.text


# ------------------------------------------------------------------------------------------------------
# Hub upload
# ------------------------------------------------------------------------------------------------------


def test_push_to_hub(tmp_path, monkeypatch):
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = kwargs
        calls["uploaded_files"] = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
        return type("Commit", (), {"commit_url": "https://huggingface.co/me/segret-fixture/commit/abc"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    out = tmp_path / "out"
    status = run_converter(
        "--checkpoint", MMSEG, "--architecture", ARCHITECTURE, "--output_dir", out,
        "--push_to_hub", "me/segret-fixture", "--private",
    )  # fmt: skip
    assert status == 0
    repo_id, kwargs = calls["create_repo"]
    assert repo_id == "me/segret-fixture" and kwargs["exist_ok"] and kwargs["private"] is True
    assert calls["upload_folder"]["repo_id"] == "me/segret-fixture"
    assert Path(calls["upload_folder"]["folder_path"]) == out
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= set(
        calls["uploaded_files"]
    )
    assert 'model_id = "me/segret-fixture"' in (out / "README.md").read_text()
