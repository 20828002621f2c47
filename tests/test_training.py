"""Training script: end-to-end tiny runs, exact resume, Hub push, presets, augmentation, metrics, bad inputs.

All runs use a ~20k-parameter SegRet, 32-pixel crops and a handful of steps, on CPU and offline.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.utils.checkpoint
import transformers.modeling_utils
from huggingface_hub import HfApi
from safetensors.torch import load_file
from transformers import EvalPrediction, TrainerControl, TrainerState

from segret_hf import SegRetForSemanticSegmentation, SegRetImageProcessor
from segret_hf.conversion import (
    CheckpointConversionError,
    config_from_architecture,
    convert,
    load_original_checkpoint,
)
from segret_hf.data.label_maps import LabelMapping
from segret_hf.data.presets import get_preset
from segret_hf.evaluation import EvaluationData, EvaluationOptions, evaluate
from segret_hf.training.arguments import SizeArguments, parse_arguments
from segret_hf.training.collate import SegmentationCollator
from segret_hf.training.data import SegmentationDataError
from segret_hf.training.models import ModelSetupError, build_model
from segret_hf.training.resume import ResumeCheckpointError
from segret_hf.training.run import OutputDirectoryError, main, sync_batch_norm
from segret_hf.training.sample_data import CLASS_NAMES, SAMPLE_DATASET_DIR
from segret_hf.training.trainer import AugmentationEpochCallback, StreamingSegmentationMetrics
from segret_hf.training.transforms import PaperAugmentation, sample_seed

from helpers import INT_FEATURE, save_tiny_model, stripes, write_parquet_dataset, write_scenes_dataset

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "original_checkpoints"
SCENE_ID2LABEL = dict(enumerate(CLASS_NAMES))
STRIPE_ID2LABEL = {0: "class_0", 1: "class_1", 2: "class_2"}
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenes_dataset(tmp_path_factory.mktemp("scenes"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"), SCENE_ID2LABEL)


def run_args(dataset: Path, model: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--dataset_name", str(dataset), "--model_name_or_path", str(model), "--output_dir", str(output),
        "--crop_size", "32", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "2",
        "--report_to", "none", "--seed", "0", "--disable_tqdm", "true", "--dataloader_pin_memory", "false",
        "--dataloader_num_workers", "0",  # a worker start per tiny epoch would cost more than it saves
        *extra,
    ]  # fmt: skip


def log_history(output: Path) -> list[dict]:
    return json.loads((output / "trainer_state.json").read_text())["log_history"]


# ---------------------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------------------


def test_tiny_run_learns_logs_metrics_and_writes_outputs(scenes: Path, tiny_model: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    metrics = main(
        run_args(
            scenes, tiny_model, output, "--max_steps", "24", "--learning_rate", "3e-3", "--logging_steps", "4",
            "--eval_strategy", "steps", "--eval_steps", "12", "--save_steps", "12", "--prediction_overlays", "1",
        )
    )  # fmt: skip
    history = log_history(output)
    losses = [entry["loss"] for entry in history if "loss" in entry]
    # The original init starts near a uniform prediction over the 6 classes (ln 6 = 1.79), then learns.
    assert losses[0] == pytest.approx(np.log(6), abs=0.15) and losses[-1] < 0.85 * losses[0]

    evaluations = [entry for entry in history if "eval_loss" in entry]
    assert [entry["step"] for entry in evaluations] == [12, 24]
    for name in ("eval_mean_iou", "eval_mean_accuracy", "eval_overall_accuracy", "eval_iou_sky", "eval_iou_car"):
        assert name in evaluations[-1] and name in metrics
    assert 0.0 <= metrics["eval_overall_accuracy"] <= 1.0
    assert metrics["eval_mean_iou"] == pytest.approx(evaluations[-1]["eval_mean_iou"])

    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md", "eval_results.json"):
        assert (output / name).is_file(), name
    assert (output / "checkpoint-12" / "model.safetensors").is_file()
    config = json.loads((output / "config.json").read_text())
    assert config["id2label"] == {str(k): v for k, v in SCENE_ID2LABEL.items()}
    processor = json.loads((output / "preprocessor_config.json").read_text())
    assert processor["size"] == {"shortest_edge": 32, "longest_edge": 128}
    card = (output / "README.md").read_text()
    assert "Measured on these weights" in card and f"{metrics['eval_mean_iou']:.6g}" in card
    assert "training steps | 24" in card and "from transformers import" in card and "@article" in card
    assert sorted(p.name for p in (output / "predictions").iterdir()) == [
        "validation_0000_image_label_prediction.png",
        "validation_0000_overlay.png",
    ]
    reloaded = SegRetForSemanticSegmentation.from_pretrained(output)
    assert reloaded.config.num_labels == len(CLASS_NAMES)


def test_resume_continues_exactly(
    scenes: Path, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Resuming mid-epoch (step 3) and at an epoch boundary (step 4) gives the uninterrupted run's weights and
    losses, with the default persistent workers: one for training, one for evaluation (every 2 steps), both
    kept across epochs, where resumed runs start theirs at other points than the uninterrupted run."""
    common = ("--max_steps", "6", "--save_steps", "1", "--logging_steps", "1", "--learning_rate", "2e-3",
              "--eval_strategy", "steps", "--eval_steps", "2", "--save_total_limit", "6",
              "--dataloader_num_workers", "1")  # 3 epochs of 2 steps
    with caplog.at_level(logging.INFO, logger="segret_hf"):
        main(run_args(scenes, tiny_model, tmp_path / "straight", *common))
    assert "Data loader: 1 worker processes" in caplog.text and "persistent workers True" in caplog.text
    straight = load_file(tmp_path / "straight" / "model.safetensors")

    def losses_after(step: int, output: Path) -> list[tuple[int, float]]:
        return [(e["step"], e.get("loss", e.get("eval_loss"))) for e in log_history(output) if e["step"] > step]

    for step in (3, 4):
        resumed_output = tmp_path / f"resumed-{step}"
        checkpoint = tmp_path / "straight" / f"checkpoint-{step}"
        main(run_args(scenes, tiny_model, resumed_output, *common, "--resume_from_checkpoint", str(checkpoint)))
        resumed = load_file(resumed_output / "model.safetensors")
        for key, value in straight.items():
            torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=f"from step {step}: {key}")
        assert losses_after(step, resumed_output) == losses_after(step, tmp_path / "straight"), step


def test_gradient_accumulation_reports_the_same_loss_scale(scenes: Path, tiny_model: Path, tmp_path: Path) -> None:
    """Two micro-batches of 2 rows must report (and step on) the mean loss, like one batch of 4 rows."""
    common = ("--max_steps", "1", "--logging_steps", "1", "--eval_strategy", "no", "--max_eval_samples", "1")
    main(run_args(scenes, tiny_model, tmp_path / "whole", *common))
    main(run_args(scenes, tiny_model, tmp_path / "accumulated", *common, "--per_device_train_batch_size", "2",
                  "--gradient_accumulation_steps", "2"))  # fmt: skip
    whole, accumulated = (log_history(tmp_path / name)[0]["loss"] for name in ("whole", "accumulated"))
    assert accumulated == pytest.approx(whole, rel=0.15)


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_gradient_checkpointing_and_streaming_runs(
    scenes: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointed = []

    def counting_checkpoint(function, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        checkpointed.append(function)
        return torch.utils.checkpoint.checkpoint(function, *args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counting_checkpoint)
    metrics = main(
        run_args(scenes, tiny_model, tmp_path / "out", "--max_steps", "2", "--gradient_checkpointing", "--streaming")
    )
    assert len(checkpointed) == 2 * 4, "each of the 4 blocks is checkpointed in each of the 2 steps"
    assert np.isfinite(metrics["eval_loss"]) and "eval_mean_iou" in metrics
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.slow
def test_two_processes_train_with_ddp_and_gather_metrics_exactly(
    scenes: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """DDP on two CPU processes (gloo): each sees half the data, and the gathered metrics equal a
    single-process evaluation of the saved model, although the last batch is padded with duplicates."""
    output = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(TRAIN_SCRIPT),
        *run_args(scenes, tiny_model, output, "--use_cpu", "--max_steps", "2", "--max_eval_samples", "3",
                  "--per_device_eval_batch_size", "1"),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    state = json.loads((output / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and state["epoch"] == pytest.approx(2 / 1), "8 rows / (2 x 4) = 1 step per epoch"
    metrics = json.loads((output / "eval_results.json").read_text())
    report = evaluate(str(output), EvaluationData(str(scenes), max_samples=3), EvaluationOptions(progress=False))
    assert metrics["eval_mean_iou"] == pytest.approx(report.metrics["mean_iou"], abs=1e-6)
    assert metrics["eval_overall_accuracy"] == pytest.approx(report.metrics["overall_accuracy"], abs=1e-6)


def test_push_to_hub_goes_through_the_trainer(
    scenes: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict]] = []

    def create_repo(self: HfApi, repo_id: str, **kwargs: object) -> SimpleNamespace:
        calls.append(("create_repo", {"repo_id": repo_id}))
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self: HfApi, **kwargs: object) -> object:
        folder = Path(kwargs["folder_path"])
        calls.append(("upload_folder", {**kwargs, "files": sorted(p.name for p in folder.iterdir())}))
        if kwargs.get("run_as_future"):
            future: Future = Future()
            future.set_result(None)
            return future
        return SimpleNamespace(commit_url="https://hub/commit")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    output = tmp_path / "pushed"
    main(run_args(scenes, tiny_model, output, "--max_steps", "2", "--save_steps", "2", "--push_to_hub",
                  "--hub_model_id", "someone/segret-test"))  # fmt: skip

    assert calls[0] == ("create_repo", {"repo_id": "someone/segret-test"})
    uploads = [kwargs for name, kwargs in calls if name == "upload_folder"]
    assert all(u["repo_id"] == "someone/segret-test" and Path(u["folder_path"]) == output for u in uploads)
    final = uploads[-1]
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= set(final["files"])
    assert "SegRet" in (output / "README.md").read_text()


# ---------------------------------------------------------------------------------------------------------
# Arguments, presets, model setup, optimiser
# ---------------------------------------------------------------------------------------------------------


def test_recipe_defaults_apply_only_to_unset_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    base = ["--output_dir", str(tmp_path / "o"), "--dataset_preset", "cityscapes", "--model_variant", "tiny"]
    parsed = parse_arguments(base)
    args, sizes = parsed.training, parsed.sizes
    assert (args.max_steps, args.per_device_train_batch_size, args.learning_rate) == (160_000, 2, 1e-4)
    assert args.weight_decay == 0.01 and args.lr_scheduler_type.value == "polynomial"
    assert args.lr_scheduler_kwargs == {"power": 0.9, "lr_end": 0.0} and args.warmup_steps == 0
    assert args.max_grad_norm == 0.0  # the released configs do not clip (transformers' default would be 1.0)
    assert args.batch_eval_metrics and not args.remove_unused_columns
    assert sizes == SizeArguments((512, 1024), (4096, 1024), (2048, 1024))
    assert parsed.recipe.paramwise_regime == "res" and parsed.released_recipe.total_batch_size == 8

    parsed = parse_arguments(
        [*base, "--max_steps", "7", "--per_device_train_batch_size", "3", "--learning_rate", "5e-4",
         "--lr_scheduler_type", "cosine", "--crop_size", "64x96", "--paramwise_regime", "sf3"]
    )  # fmt: skip
    args = parsed.training
    assert (args.max_steps, args.per_device_train_batch_size, args.learning_rate) == (7, 3, 5e-4)
    assert args.lr_scheduler_type.value == "cosine" and not args.lr_scheduler_kwargs
    assert parsed.sizes == SizeArguments((64, 96), (384, 96), (384, 96))
    assert parsed.recipe.paramwise_regime == "sf3" and parsed.released_recipe.paramwise_regime == "res"

    sizes = parse_arguments(["--output_dir", "o", "--dataset_preset", "ade20k", "--model_variant", "large"]).sizes
    assert sizes.crop_size == (640, 640) and sizes.test_scale == (2048, 640)

    config = tmp_path / "run.json"
    config.write_text(json.dumps({"output_dir": "o", "dataset_preset": "coco-stuff", "learning_rate": 3e-4}))
    parsed = parse_arguments([str(config)])
    assert (parsed.training.learning_rate, parsed.training.max_steps) == (3e-4, 80_000)
    assert parsed.dataset.dataset_preset == "coco-stuff" and parsed.training.warmup_steps == 1500  # tiny's recipe


def test_sample_dataset_brings_cpu_sized_defaults() -> None:
    parsed = parse_arguments(["--model_variant", "tiny", "--output_dir", "o"])
    args = parsed.training
    assert Path(parsed.dataset.dataset_name) == SAMPLE_DATASET_DIR and parsed.sizes.crop_size == (96, 96)
    assert (args.max_steps, args.learning_rate, args.eval_strategy.value, parsed.output.prediction_overlays) == (
        150, 3e-4, "steps", 2,
    )
    assert parsed.recipe.config_file is None and parsed.recipe.paramwise_regime == "none"
    parsed = parse_arguments(["--output_dir", "o", "--max_steps", "5", "--crop_size", "64"])
    assert parsed.training.max_steps == 5 and parsed.sizes.crop_size == (64, 64)


def test_preset_label_mappings() -> None:
    cityscapes = LabelMapping.for_dataset(19, get_preset("cityscapes"), None)
    raw = np.array([[0, 7, 26, 33], [255, 24, 8, 1]])
    assert cityscapes(raw).tolist() == [[255, 0, 13, 18], [255, 11, 1, 255]]
    trusted = LabelMapping.for_dataset(19, get_preset("cityscapes"), None, labels_are_train_ids=True)
    assert trusted(raw).tolist() == raw.tolist()

    ade = LabelMapping.for_dataset(150, get_preset("ade20k"), None)
    assert ade(np.array([0, 1, 150, 255])).tolist() == [255, 0, 149, 255]

    coco = LabelMapping.for_dataset(171, get_preset("coco-stuff"), None)
    assert coco(np.array([0, 11, 12, 181, 182, 255])).tolist() == [0, 255, 11, 170, 255, 255]

    plain = LabelMapping.for_dataset(3, None, True)
    assert plain(np.array([0, 1, 3])).tolist() == [255, 0, 2]


def test_backbone_from_folder_and_original_checkpoint(tmp_path: Path, tiny_model: Path) -> None:
    backbone = SegRetForSemanticSegmentation.from_pretrained(tiny_model).segret.state_dict()
    model = build_model({0: "a", 1: "b"}, backbone_checkpoint=str(tiny_model))
    assert model.config.num_labels == 2 and model.config.hidden_sizes == [8, 16, 24, 32]
    for key, value in model.segret.state_dict().items():
        torch.testing.assert_close(value, backbone[key])
    with pytest.raises(ModelSetupError, match="another architecture"):
        build_model({0: "a", 1: "b"}, "tiny", backbone_checkpoint=str(tiny_model))

    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    architecture = json.loads((FIXTURES / "tiny_a_architecture.json").read_text())
    config = config_from_architecture(architecture, num_labels=2)
    SegRetForSemanticSegmentation(config).save_pretrained(tmp_path / "fixture_arch")
    rmt = str(FIXTURES / "tiny_a_rmt_imagenet.pth")
    model = build_model({0: "a", 1: "b", 2: "c"}, name_or_path=str(tmp_path / "fixture_arch"), backbone_checkpoint=rmt)
    expected = convert(load_original_checkpoint(rmt), config_from_architecture(architecture, num_labels=3)).model
    for key, value in model.segret.state_dict().items():
        torch.testing.assert_close(value, expected.segret.state_dict()[key])
    assert model.config.num_labels == 3
    with pytest.raises(CheckpointConversionError):
        build_model({0: "a", 1: "b"}, "tiny", backbone_checkpoint=rmt)


def test_batch_norm_is_synchronised_across_gpu_processes_only(tiny_model: Path) -> None:
    def batch_norms(model: torch.nn.Module) -> set[type]:
        return {type(m) for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}

    gpus = SimpleNamespace(world_size=2, device=torch.device("cuda"))
    model = sync_batch_norm(SegRetForSemanticSegmentation.from_pretrained(tiny_model), gpus)
    assert batch_norms(model) == {torch.nn.SyncBatchNorm}
    for arguments in (SimpleNamespace(world_size=1, device=torch.device("cuda")),
                      SimpleNamespace(world_size=2, device=torch.device("cpu"))):  # fmt: skip
        model = sync_batch_norm(SegRetForSemanticSegmentation.from_pretrained(tiny_model), arguments)
        assert batch_norms(model) == {torch.nn.BatchNorm2d}


# ---------------------------------------------------------------------------------------------------------
# Augmentation (see also test_transforms.py) and metrics
# ---------------------------------------------------------------------------------------------------------


def test_augmentation_depends_on_epoch_and_row_only() -> None:
    processor = SegRetImageProcessor()
    sizes = SizeArguments(crop_size=(32, 32), train_scale=(128, 32), test_scale=(128, 32))
    augmentation = PaperAugmentation(sizes, processor, seed=0)
    pixels, label = torch.rand(3, 40, 48) * 255, torch.randint(0, 3, (40, 48))
    first = augmentation(pixels, label, row=5)
    torch.manual_seed(123)  # the global generator must not matter
    assert all(torch.equal(a, b) for a, b in zip(first, augmentation(pixels, label, row=5)))
    assert not torch.equal(first[0], augmentation(pixels, label, row=6)[0])
    AugmentationEpochCallback(augmentation).on_epoch_begin(None, TrainerState(epoch=2.5), TrainerControl())
    assert augmentation.epoch == 2
    assert not torch.equal(first[0], augmentation(pixels, label, row=5)[0])


def test_per_sample_seeds_are_distinct_and_stable() -> None:
    seeds = {sample_seed(0, epoch, row) for epoch in range(3) for row in range(100)}
    assert len(seeds) == 300 and sample_seed(0, 1, 2) == sample_seed(0, 1, 2) and min(seeds) >= 0


def test_streaming_metrics_match_a_direct_count() -> None:
    id2label = {0: "sky", 1: "Traffic Light", 2: "sky "}
    metrics = StreamingSegmentationMetrics(id2label)
    assert list(metrics.class_keys) == ["iou_sky", "iou_traffic_light", "iou_sky_2"]
    first = torch.tensor([[[5, 1, 0], [0, 3, 0], [0, 0, 0]]])
    second = torch.tensor([[[1, 0, 0], [1, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]])
    assert metrics(EvalPrediction(predictions=first, label_ids=None), compute_result=False) == {}
    result = metrics(EvalPrediction(predictions=second, label_ids=None), compute_result=True)
    assert result["overall_accuracy"] == pytest.approx(10 / 12)
    assert result["iou_sky"] == pytest.approx(6 / 8) and result["iou_traffic_light"] == pytest.approx(4 / 6)
    assert np.isnan(result["iou_sky_2"]) and result["mean_iou"] == pytest.approx((6 / 8 + 4 / 6) / 2)
    again = metrics(EvalPrediction(predictions=first, label_ids=None), compute_result=True)
    assert again["overall_accuracy"] == pytest.approx(8 / 9), "state must reset after each evaluation"


# ---------------------------------------------------------------------------------------------------------
# Bad input: fails before training, names what is wrong, leaves no output directory
# ---------------------------------------------------------------------------------------------------------


def _fails(args: list[str], error: type[Exception], *fragments: str) -> None:
    output = Path(args[args.index("--output_dir") + 1])
    with pytest.raises(error) as raised:
        main(args)
    for fragment in fragments:
        assert fragment in str(raised.value), (fragment, str(raised.value))
    assert not output.exists(), "a failed start must not create the output directory"


def test_missing_column_lists_the_available_ones(scenes: Path, tiny_model: Path, tmp_path: Path) -> None:
    args = run_args(scenes, tiny_model, tmp_path / "o", "--label_column_name", "mask_png")
    _fails(args, SegmentationDataError, str(scenes), "mask_png", "'image'", "'annotation'")


def test_label_value_out_of_range_is_named(tmp_path: Path, tiny_model: Path) -> None:
    labels = [stripes() for _ in range(3)]
    labels[2][5, 5] = 9
    dataset = write_parquet_dataset(tmp_path / "data", labels, id2label=STRIPE_ID2LABEL)
    model = save_tiny_model(tmp_path / "model", STRIPE_ID2LABEL)
    args = run_args(dataset, model, tmp_path / "o", "--max_steps", "1")
    _fails(args, SegmentationDataError, str(dataset), "'train'", "'annotation'", "row 2", "[9]", "[0, 2]")


def test_reduce_labels_hint_when_values_are_one_based(tmp_path: Path) -> None:
    dataset = write_parquet_dataset(tmp_path / "data", [stripes() + 1 for _ in range(2)], id2label=STRIPE_ID2LABEL)
    model = save_tiny_model(tmp_path / "model", STRIPE_ID2LABEL)
    _fails(run_args(dataset, model, tmp_path / "o"), SegmentationDataError, "[3]", "--do_reduce_labels")


def test_image_label_size_mismatch_is_named(tmp_path: Path) -> None:
    labels = [stripes(), stripes()]
    images = [np.zeros((24, 32, 3), np.uint8), np.zeros((20, 32, 3), np.uint8)]
    dataset = write_parquet_dataset(tmp_path / "data", labels, images, id2label=STRIPE_ID2LABEL)
    model = save_tiny_model(tmp_path / "model", STRIPE_ID2LABEL)
    _fails(run_args(dataset, model, tmp_path / "o"), SegmentationDataError, "row 1", "20x32", "24x32")


def test_non_image_label_column_is_refused(tmp_path: Path) -> None:
    dataset = write_parquet_dataset(
        tmp_path / "data", [stripes(), stripes()], id2label=STRIPE_ID2LABEL, label_feature=INT_FEATURE
    )
    model = save_tiny_model(tmp_path / "model", STRIPE_ID2LABEL)
    _fails(run_args(dataset, model, tmp_path / "o"), SegmentationDataError, "'annotation'", "Value", "not images")


def test_colour_coded_label_maps_are_refused(tmp_path: Path) -> None:
    colour = [np.stack([stripes()] * 3, axis=-1) for _ in range(2)]
    dataset = write_parquet_dataset(tmp_path / "data", colour, id2label=STRIPE_ID2LABEL)
    model = save_tiny_model(tmp_path / "model", STRIPE_ID2LABEL)
    _fails(run_args(dataset, model, tmp_path / "o"), SegmentationDataError, "'RGB'", "row 0", "single-channel")


def test_classes_must_be_known(tmp_path: Path, tiny_model: Path) -> None:
    dataset = write_parquet_dataset(tmp_path / "data", [stripes(), stripes()])
    _fails(run_args(dataset, tiny_model, tmp_path / "o"), SegmentationDataError, "--id2label")
    (tmp_path / "gaps.json").write_text(json.dumps({"0": "a", "2": "b"}))
    args = run_args(dataset, tiny_model, tmp_path / "o", "--id2label", str(tmp_path / "gaps.json"))
    _fails(args, SegmentationDataError, "class ids must be exactly 0..1")
    args = run_args(dataset, tiny_model, tmp_path / "o", "--id2label", str(tmp_path / "missing.json"))
    _fails(args, SegmentationDataError, "missing.json", "neither an existing JSON file")


def test_missing_validation_split_when_evaluating(scenes: Path, tiny_model: Path, tmp_path: Path) -> None:
    args = run_args(scenes, tiny_model, tmp_path / "o", "--eval_strategy", "steps", "--validation_split", "val")
    _fails(args, SegmentationDataError, "'val'", "--validation_split")


def test_model_must_be_named(scenes: Path, tmp_path: Path) -> None:
    args = run_args(scenes, Path("unused"), tmp_path / "o")
    del args[args.index("--model_name_or_path") : args.index("--model_name_or_path") + 2]
    _fails(args, ModelSetupError, "--model_variant")


def test_non_empty_output_dir_is_refused_unless_overwriting(scenes: Path, tiny_model: Path, tmp_path: Path) -> None:
    output = tmp_path / "o"
    output.mkdir()
    (output / "old.txt").write_text("previous run")
    with pytest.raises(OutputDirectoryError, match="old.txt"):
        main(run_args(scenes, tiny_model, output, "--max_steps", "1"))
    assert sorted(p.name for p in output.iterdir()) == ["old.txt"]
    with pytest.raises(ResumeCheckpointError, match="not a checkpoint"):
        main(run_args(scenes, tiny_model, output, "--resume_from_checkpoint", str(output)))
    main(run_args(scenes, tiny_model, output, "--max_steps", "1", "--overwrite_output_dir"))
    assert (output / "model.safetensors").is_file()


def test_collator_refuses_out_of_range_labels() -> None:
    collator = SegmentationCollator(num_labels=3, dataset_name="toy")
    good = {"pixel_values": torch.zeros(3, 4, 5), "labels": torch.full((4, 5), 255), "row": 0}
    bad = {"pixel_values": torch.zeros(3, 6, 4), "labels": torch.full((6, 4), 7), "row": 11}
    taller = {**good, "pixel_values": torch.ones(3, 6, 4), "labels": torch.zeros(6, 4, dtype=torch.int64)}
    batch = collator([good, taller])
    assert batch["pixel_values"].shape == (2, 3, 6, 5) and batch["labels"][0, 5, 0] == 255
    assert batch["image_sizes"].tolist() == [[4, 5], [6, 4]] and batch["pixel_values"][1, :, :, 4].abs().sum() == 0
    with pytest.raises(SegmentationDataError, match=r"'toy', row 11: label values \[7\]"):
        collator([good, bad])


def test_shipped_sample_dataset_loads_with_its_classes() -> None:
    from segret_hf.data.label_maps import dataset_id2label
    from segret_hf.data.loading import load_split

    train = load_split(str(SAMPLE_DATASET_DIR), "train")
    assert len(train) == 40 and len(load_split(str(SAMPLE_DATASET_DIR), "validation")) == 10
    assert dataset_id2label(str(SAMPLE_DATASET_DIR), train, "annotation") == SCENE_ID2LABEL
    assert sum(p.stat().st_size for p in SAMPLE_DATASET_DIR.rglob("*") if p.is_file()) < 2_000_000
    example = train[0]
    label = np.array(example["annotation"])
    assert example["image"].size == (label.shape[1], label.shape[0])
    assert set(np.unique(label)) <= set(range(len(CLASS_NAMES))) | {255}


@pytest.mark.parametrize("bad", ["0", "axb", "3x4x5"])
def test_bad_sizes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="--crop_size"):
        parse_arguments(["--output_dir", "o", "--crop_size", bad])


def test_sample_data_is_reproducible() -> None:
    from segret_hf.training.sample_data import make_split

    first, second = make_split(2, 5, "train"), make_split(2, 5, "train")
    assert first[0]["annotation"].tobytes() == second[0]["annotation"].tobytes()
