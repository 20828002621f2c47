"""The released recipes: preset tables, parameter-wise optimiser rules, the mmcv schedule, and a run that
records its recipe.

The expected values are written here independently of the package, from the resolved configs (the
per-config table of the recipes documentation), so a typo in `segret_hf.data.recipes` cannot hide.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import write_parquet_dataset
from segret_hf import SegRetConfig, SegRetForSemanticSegmentation
from segret_hf.conversion.keys import original_parameter_name, rename_backbone_key, rename_head_key
from segret_hf.data.presets import get_preset
from segret_hf.data.recipes import PARAMWISE_REGIMES
from segret_hf.training.optim import REGIMES, parameter_groups
from segret_hf.training.run import main
from segret_hf.training.schedule import PolySchedule

# config file: dataset, variant, lr, wd, regime, warmup (iterations, start factor), power, samples per GPU,
# iterations, crop (h, w), train scale, test scale.
RELEASED = {
    "SegRet.T.512x512.ade.160k_res.py": ("ade20k", "tiny", 1e-4, 1e-4, "res", (0, None), 0.9, 4, 160_000, (512, 512), (2048, 512), (2048, 512)),
    "SegRet.S.512x512.ade.160k_res.py": ("ade20k", "small", 1e-4, 0.01, "res", (1500, 1e-6), 0.9, 4, 160_000, (512, 512), (2048, 512), (2048, 512)),
    "SegRet.B.512x512.ade.160k_res_256.py": ("ade20k", "base", 1e-4, 0.01, "res", (0, None), 0.9, 4, 160_000, (512, 512), (2048, 512), (2048, 512)),
    "SegRet.L.640x640.ade.160k_res.py": ("ade20k", "large", 1e-4, 0.01, "res", (0, None), 0.9, 4, 160_000, (640, 640), (2048, 640), (2048, 640)),
    "SegRet.T.512x1024.city.160k.py": ("cityscapes", "tiny", 1e-4, 0.01, "res", (0, None), 0.9, 2, 160_000, (512, 1024), (4096, 1024), (2048, 1024)),
    "SegRet.S.512x1024.city.160k.py": ("cityscapes", "small", 1e-4, 0.01, "none", (1500, 1e-6), 1.0, 2, 160_000, (512, 1024), (4096, 1024), (2048, 1024)),
    "SegRet.B.512x1024.city.160k.py": ("cityscapes", "base", 1e-4, 0.01, "none", (1500, 1e-6), 1.0, 2, 160_000, (512, 1024), (4096, 1024), (2048, 1024)),
    "SegRet.L.512x1024.city.160k.py": ("cityscapes", "large", 1e-4, 0.01, "res", (0, None), 0.9, 2, 160_000, (512, 1024), (4096, 1024), (2048, 1024)),
    "SegRet.T.512x512.coco10k.80k.py": ("coco-stuff-10k", "tiny", 2e-4, 1e-4, "res", (1500, 1e-6), 0.9, 4, 80_000, (512, 512), (2048, 512), (2048, 512)),
    "SegRet.S.512x512.coco10k.80k.py": ("coco-stuff-10k", "small", 1e-4, 0.01, "res", (0, None), 0.9, 8, 60_000, (512, 512), (2048, 512), (2048, 512)),
    "SegRet.B.512x512.coco10k.80k.py": ("coco-stuff-10k", "base", 1e-4, 0.01, "res", (1500, 1e-6), 0.9, 4, 80_000, (512, 512), (2048, 512), (2048, 512)),
    "SegRet.L.512x512.coco10k.80k.py": ("coco-stuff-10k", "large", 1e-4, 0.01, "none", (1500, 1e-6), 0.9, 4, 80_000, (512, 512), (2048, 512), (2048, 512)),
}  # fmt: skip
ALIGNED = {"ade20k": 32, "coco-stuff-10k": 32, "cityscapes": None}


@pytest.mark.parametrize("config_file", sorted(RELEASED))
def test_every_released_config_has_its_preset(config_file: str) -> None:
    dataset, variant, lr, wd, regime, warmup, power, per_gpu, iterations, crop, train_scale, test_scale = RELEASED[
        config_file
    ]
    preset = get_preset(dataset)
    recipe = preset.recipe(variant)
    assert recipe.config_file == config_file
    assert (recipe.learning_rate, recipe.weight_decay, recipe.paramwise_regime) == (lr, wd, regime)
    assert recipe.warmup_iterations == warmup[0]
    if warmup[0]:
        assert recipe.warmup_start_factor == warmup[1]
    assert (recipe.poly_power, recipe.min_learning_rate, recipe.adam_betas) == (power, 0.0, (0.9, 0.999))
    assert (recipe.samples_per_gpu, recipe.total_batch_size, recipe.iterations) == (per_gpu, 4 * per_gpu, iterations)
    assert (recipe.crop_size, recipe.train_scale, recipe.test_scale) == (crop, train_scale, test_scale)
    assert (recipe.resize_ratio_range, recipe.cat_max_ratio, recipe.max_grad_norm) == ((0.5, 2.0), 0.75, 0.0)
    assert preset.test_size_divisor == ALIGNED[dataset]


def test_unknown_variant_and_regime_are_refused() -> None:
    with pytest.raises(ValueError, match="No released cityscapes recipe"):
        get_preset("cityscapes").recipe("huge")
    with pytest.raises(ValueError, match="parameter-wise regime"):
        parameter_groups(SegRetForSemanticSegmentation(SegRetConfig.from_variant("tiny")), 1e-4, 0.01, "bogus")
    assert tuple(REGIMES) == PARAMWISE_REGIMES


def test_original_names_invert_the_converter() -> None:
    for variant in ("tiny", "base"):
        model = SegRetForSemanticSegmentation(SegRetConfig.from_variant(variant))
        for name, _ in model.named_parameters():
            original = original_parameter_name(name)
            if original.startswith("backbone."):
                assert "segret." + rename_backbone_key(original.removeprefix("backbone.")) == name
            else:
                assert rename_head_key(original) == name
    with pytest.raises(ValueError, match="not a SegRet parameter"):
        original_parameter_name("decode_head.extra.weight")


# ---------------------------------------------------------------------------------------------------------
# Parameter-wise rules, checked parameter by parameter against the rules stated in our own names
# ---------------------------------------------------------------------------------------------------------

LR, WD = 1e-4, 0.01


def _backbone_block_norm(name: str) -> bool:
    return name.startswith("segret.stages.") and ("retention_layer_norm" in name or "ffn_layer_norm" in name)


def _stem_norm(name: str) -> bool:
    return name.startswith("segret.stem.") and ".normalization." in name


def _downsample_norm(name: str) -> bool:
    return ".downsample.normalization." in name


def _expected_none(name: str) -> tuple[float, float]:
    return LR, WD


def _expected_res(name: str) -> tuple[float, float]:
    if _backbone_block_norm(name) or _stem_norm(name) or _downsample_norm(name):
        return 0.1 * LR, 0.0
    if name.startswith("decode_head.") and ("zero_norm" in name or "fuse_norm" in name):
        return LR, 0.0  # norm_decay_mult=0
    return LR, WD


def _expected_sf3(name: str) -> tuple[float, float]:
    if name.startswith("decode_head."):
        return 10 * LR, WD  # "head" wins over "norm" (same length, alphabetical), BNs included
    if _backbone_block_norm(name) or _downsample_norm(name):
        return LR, 0.0
    return LR, WD  # the stem BatchNorms ("patch_embed.proj.N") match no key and keep their decay


@pytest.mark.parametrize(
    ("regime", "expected"), [("none", _expected_none), ("res", _expected_res), ("sf3", _expected_sf3)]
)
def test_parameter_groups_per_regime_for_tiny(regime: str, expected) -> None:
    model = SegRetForSemanticSegmentation(SegRetConfig.from_variant("tiny", num_labels=150))
    groups = parameter_groups(model, LR, WD, regime)
    seen = {}
    for group in groups:
        for name, parameter in zip(group["param_names"], group["params"]):
            assert name not in seen
            seen[name] = (group["lr"], group["weight_decay"])
            assert parameter is model.get_parameter(name)
    assert set(seen) == {name for name, _ in model.named_parameters()}
    for name, (lr, wd) in seen.items():
        assert (lr, wd) == pytest.approx(expected(name)), name
    if regime == "res":  # 35 backbone norm modules of tiny match a key (14 + 14 + 4 + 3), two tensors each
        assert sum(1 for lr, _ in seen.values() if lr == pytest.approx(0.1 * LR)) == 70


def test_groups_work_with_adamw() -> None:
    model = SegRetForSemanticSegmentation(SegRetConfig.from_variant("tiny", num_labels=3))
    optimizer = torch.optim.AdamW(parameter_groups(model, LR, WD, "res"), betas=(0.9, 0.999))
    model(pixel_values=torch.randn(1, 3, 64, 64), labels=torch.randint(0, 3, (1, 64, 64))).loss.backward()
    optimizer.step()
    assert sorted(group["lr"] for group in optimizer.param_groups) == pytest.approx([0.1 * LR, LR, LR])


# ---------------------------------------------------------------------------------------------------------
# Schedule: mmcv PolyLrUpdaterHook with linear warmup
# ---------------------------------------------------------------------------------------------------------


def _mmcv_lr(base: float, step: int, total: int, power: float, min_lr: float, warmup: int, ratio: float) -> float:
    regular = (base - min_lr) * (1 - step / total) ** power + min_lr
    if step < warmup:
        k = (1 - step / warmup) * (1 - ratio)
        return regular * (1 - k)
    return regular


@pytest.mark.parametrize(("power", "min_lr"), [(0.9, 0.0), (1.0, 1e-6)])
def test_schedule_follows_the_mmcv_formula(power: float, min_lr: float) -> None:
    schedule = PolySchedule(total_steps=160_000, power=power, min_lr=min_lr, warmup_steps=1500, warmup_start_factor=1e-6)
    for step in (0, 1, 750, 1500, 1501, 159_999):
        for base in (1e-4, 1e-3):
            expected = _mmcv_lr(base, step, 160_000, power, min_lr, 1500, 1e-6)
            assert schedule.learning_rate(base, step) == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert schedule.learning_rate(1e-4, 0) == pytest.approx(1e-4 * 1e-6)
    assert schedule.learning_rate(1e-4, 160_000) == pytest.approx(min_lr)


def test_scheduler_keeps_each_group_multiplier() -> None:
    weights = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.AdamW([{"params": [weights[0]], "lr": 1e-4}, {"params": [weights[1]], "lr": 1e-3}])
    schedule = PolySchedule(total_steps=400, power=1.0, min_lr=1e-6, warmup_steps=150, warmup_start_factor=1e-5)
    scheduler = schedule.scheduler(optimizer)
    for step in range(400):
        for group, base in zip(optimizer.param_groups, (1e-4, 1e-3)):
            assert group["lr"] == pytest.approx(_mmcv_lr(base, step, 400, 1.0, 1e-6, 150, 1e-5), rel=1e-9)
        optimizer.step()
        scheduler.step()
    with pytest.raises(ValueError, match="at least one step"):
        PolySchedule(total_steps=0)


# ---------------------------------------------------------------------------------------------------------
# A run with a preset prints and records its recipe
# ---------------------------------------------------------------------------------------------------------


def test_cityscapes_small_run_records_its_recipe(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    labels = [rng.choice(np.array([7, 8, 26], dtype=np.uint8), size=(32, 64)) for _ in range(4)]
    dataset = write_parquet_dataset(tmp_path / "city", labels)
    output = tmp_path / "run"
    caplog.set_level(logging.INFO, logger="segret_hf")
    main(
        [
            "--dataset_name", str(dataset), "--dataset_preset", "cityscapes", "--model_variant", "small",
            "--output_dir", str(output), "--max_steps", "3", "--crop_size", "32x64", "--logging_steps", "1",
            "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--report_to", "none",
            "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--save_strategy", "no",
        ]
    )  # fmt: skip
    assert "SegRet.S.512x1024.city.160k.py" in caplog.text and "paramwise none" in caplog.text

    state = json.loads((output / "trainer_state.json").read_text())
    recorded = state["stateful_callbacks"]["RecipeCallback"]["args"]
    assert recorded["released_from"] == "SegRet.S.512x1024.city.160k.py"
    recipe = recorded["recipe"]
    assert (recipe["paramwise_regime"], recipe["warmup_iterations"], recipe["poly_power"]) == ("none", 1500, 1.0)
    assert (recipe["learning_rate"], recipe["weight_decay"], recipe["iterations"]) == (1e-4, 0.01, 3)
    assert recipe["train_scale"] == [256, 64]  # derived from the explicit crop

    # The logged learning rates are the mmcv schedule's (warmup from 1e-6 over 1500 of 3 steps, power 1).
    logged = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    expected = [_mmcv_lr(1e-4, step, 3, 1.0, 0.0, 1500, 1e-6) for step in range(3)]
    assert logged == pytest.approx(expected, rel=1e-6)

    card = (output / "README.md").read_text()
    assert "SegRet.S.512x1024.city.160k.py" in card and "power 1 to 0" in card
    assert "changed from the released config" in card and "iterations 160000 -> 3" in card
    processor = json.loads((output / "preprocessor_config.json").read_text())
    assert processor["size"] == {"shortest_edge": 64, "longest_edge": 256} and processor.get("size_divisor") is None
