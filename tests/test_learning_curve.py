"""Smoke tests of benchmarks/learning_curve.py: the shapes dataset, the no-augmentation transform, the summary,
and the whole command line on a few steps (structure only, never a metric's value)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import learning_curve  # noqa: E402


def test_shapes_dataset_is_hub_layout_seeded_and_labelled(tmp_path: Path) -> None:
    first = learning_curve.make_shapes_dataset(tmp_path / "a", num_train=12, num_validation=3, seed=5)
    second = learning_curve.make_shapes_dataset(tmp_path / "b", num_train=12, num_validation=3, seed=5)
    for split in ("train", "validation"):
        name = f"data/{split}-00000-of-00001.parquet"
        assert (first / name).read_bytes() == (second / name).read_bytes()
    id2label = json.loads((first / "id2label.json").read_text())
    assert id2label == {"0": "background", "1": "circle", "2": "square", "3": "triangle"}
    train = datasets.load_dataset(str(first), split="train")
    assert len(train) == 12 and train.features["image"] == datasets.Image()
    labels = np.stack([np.array(row["annotation"]) for row in train])
    assert labels.shape == (12, 96, 96) and set(np.unique(labels)) == {0, 1, 2, 3}
    assert np.array(train[0]["image"]).shape == (96, 96, 3)


def test_resize_to_crop_stretches_image_and_keeps_label_values() -> None:
    transform = learning_curve.ResizeToCrop((32, 32))
    pixels = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    label = torch.from_numpy(np.random.default_rng(0).choice([0, 2, 255], size=(40, 60)).astype(np.uint8))
    pixel_values, labels = transform(pixels, label, row=0)
    assert pixel_values.shape == (3, 32, 32) and pixel_values.dtype == torch.float32
    assert labels.shape == (32, 32) and labels.dtype == torch.int64
    assert set(labels.unique().tolist()) <= {0, 2, 255}


def test_summary_flags_a_loss_above_the_first_step() -> None:
    def history(losses: list[float]) -> list[dict]:
        steps = [{"step": i + 1, "loss": loss, "grad_norm": 10.0 / (i + 1)} for i, loss in enumerate(losses)]
        return steps + [{"step": len(losses), "eval_mean_iou": 0.5, "eval_loss": 0.7}]

    calm = learning_curve.summarise(history([2.0, 1.5, 1.9, 1.0]), early_steps=2)
    assert not calm["spike"] and calm["initial_loss"] == 2.0 and calm["early_loss_max"] == 2.0
    assert calm["early_loss_mean"] == pytest.approx(1.75) and calm["mean_iou"] == {"4": 0.5}
    assert calm["initial_grad_norm"] == 10.0
    spiky = learning_curve.summarise(history([2.0, 1.5, 2.5, 1.0]), early_steps=2)
    assert spiky["spike"] and spiky["max_loss_step"] == 3


def test_cli_runs_every_dataset_and_mode_and_writes_json_and_markdown(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        learning_curve.main(
            [
                "--datasets", "shapes", "--modes", "augmented", "plain", "--max_steps", "2", "--eval_steps", "2",
                "--batch_size", "2", "--early_steps", "2", "--shapes_train", "4", "--shapes_validation", "2",
                "--output_dir", str(tmp_path), "--tag", "smoke",
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    results = json.loads((tmp_path / "cpu_smoke.json").read_text())
    shapes = results["datasets"]["shapes"]
    assert set(shapes["runs"]) == {"augmented", "plain"}
    for run in shapes["runs"].values():
        assert len(run["losses"]) == 2 and len(run["grad_norms"]) == 2 and set(run["mean_iou"]) == {"2"}
        assert isinstance(run["spike"], bool) and run["initial_loss"] > 0
    assert shapes["augmentation"]["plain"]["unlabelled_share"] == 0.0
    assert set(shapes["comparison"]) >= {"relative_gap", "no_spike"}
    assert "command" in results["environment"] and "load_end" in results["environment"]
    markdown = (tmp_path / "cpu_smoke.md").read_text()
    assert "| shapes | augmented |" in markdown and "| shapes | plain |" in markdown and "mIoU @2" in markdown
