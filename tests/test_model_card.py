"""Model cards as the Hub reads them: `model-index` results, `datasets`, `base_model`, tags, local names, and a
YAML header that `ModelCard.load` / `metadata_load` give back unchanged."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import EvalResult, ModelCard, metadata_load

from segret_hf import SegRetConfig, SegRetForSemanticSegmentation
from segret_hf.data.presets import get_preset
from segret_hf.data.recipes import DEFAULT_RECIPE
from segret_hf.model_card import PAPER_MIOU, SourceCheckpoint, paper_miou, public_name, render_model_card
from segret_hf.model_index import PAPER_URL, Measurement, paper_results
from segret_hf.training.card import RunDescription, model_card_text

from helpers import TINY_ARCHITECTURE


def load_back(text: str, tmp_path: Path) -> tuple[ModelCard, dict]:
    """The card as the Hub parses it, and its raw metadata; both must equal what was written."""
    path = tmp_path / "README.md"
    path.write_text(text, encoding="utf-8")
    card = ModelCard.load(path)
    assert metadata_load(path) == card.data.to_dict()
    assert ModelCard(card.content).data.to_dict() == card.data.to_dict()
    return card, metadata_load(path)


def converted_card(dataset: str | None, decoder_trained: bool = True) -> str:
    return render_model_card(
        num_parameters=13_474_998,
        num_labels=150,
        model_id="/somewhere/on/disk/segret-tiny-ade",
        variant="tiny",
        dataset=dataset,
        source=SourceCheckpoint("segret_tiny_ade.pth", "0" * 64, "SegRet mmsegmentation checkpoint"),
        decoder_trained=decoder_trained,
    )


def test_converted_card_quotes_the_paper_in_model_index(tmp_path) -> None:
    card, metadata = load_back(converted_card("ade20k"), tmp_path)
    assert card.data.model_name == "segret-tiny-ade"  # the folder's name, not its path
    assert card.data.eval_results == paper_results("ade20k", (48.76, 49.39))
    single, multi = card.data.eval_results
    assert (single.dataset_type, single.dataset_config, single.dataset_split) == (
        "scene_parse_150", "scene_parsing", "validation",
    )  # fmt: skip
    assert (single.metric_type, single.metric_value, multi.metric_value) == ("mean_iou", 0.4876, 0.4939)
    assert single.metric_name == "mIoU (single-scale)" and multi.metric_name == "mIoU (multi-scale, flip)"
    assert multi.metric_args == {"scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "flip": True}
    assert all(r.verified is False and r.source_url == PAPER_URL and "2502.14014" in r.source_name for r in (single, multi))
    results = metadata["model-index"][0]["results"]
    assert len(results) == 1 and results[0]["source"]["url"] == PAPER_URL
    assert "/somewhere" not in card.content.split("\n---\n", 1)[0]  # the usage snippet keeps the path to load


def test_coco_stuff_paper_numbers_are_on_the_10k_test_split(tmp_path) -> None:
    card, _ = load_back(converted_card("coco-stuff"), tmp_path)
    assert {(r.dataset_type, r.dataset_split) for r in card.data.eval_results} == {("coco-stuff-10k", "test")}


def test_backbone_only_and_foreign_classes_carry_no_paper_results(tmp_path) -> None:
    backbone_only, _ = load_back(converted_card("ade20k", decoder_trained=False), tmp_path)
    assert backbone_only.data.eval_results is None
    assert "| ADE20K | 512x512 | 48.76 | 49.39 |" in backbone_only.text  # the target it can be tuned for
    assert "Cityscapes |" not in backbone_only.text
    unknown, _ = load_back(converted_card(None), tmp_path)
    assert unknown.data.eval_results is None
    assert "| Dataset | Crop |" not in unknown.text and "none of these" in unknown.text


def tiny_model(num_labels: int = 6) -> SegRetForSemanticSegmentation:
    return SegRetForSemanticSegmentation(SegRetConfig(**TINY_ARCHITECTURE, num_labels=num_labels))


def fake_trainer(model, output_dir: str, *, evaluated: bool = True, size_divisor: int | None = None, hub_model_id=None):
    """What `model_card_text` reads from a Trainer, without training."""
    log_history = [{"loss": 1.0, "step": 10}]
    if evaluated:
        log_history.append(
            {"eval_mean_iou": 0.871234, "eval_mean_accuracy": 0.9, "eval_overall_accuracy": 0.95, "step": 150}
        )
    args = SimpleNamespace(
        output_dir=output_dir, hub_model_id=hub_model_id, lr_scheduler_type="polynomial",
        lr_scheduler_kwargs={"power": 1.0}, bf16=False, fp16=False, seed=42,
    )  # fmt: skip
    return SimpleNamespace(
        args=args,
        accelerator=SimpleNamespace(unwrap_model=lambda m: m),
        model=model,
        state=SimpleNamespace(log_history=log_history, global_step=150),
        processing_class=SimpleNamespace(size_divisor=size_divisor),
    )


def run_description(dataset_name: str, **overrides) -> RunDescription:
    fields = dict(
        dataset_name=dataset_name, dataset_preset=None, validation_split="validation", recipe=DEFAULT_RECIPE,
        recipe_overrides={}, base_model=None,
    )  # fmt: skip
    return RunDescription(**{**fields, **overrides})


def test_training_on_a_local_folder_names_it_by_its_folder_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "datasets" / "street_scenes"
    start = tmp_path / "checkpoints" / "segret-tiny-city"
    data.mkdir(parents=True)
    start.mkdir(parents=True)
    (tmp_path / "outputs" / "sample").mkdir(parents=True)  # the Trainer's output directory exists by now
    trainer = fake_trainer(tiny_model(), "outputs/sample")
    text = model_card_text(trainer, run_description(str(data), base_model=str(start)))
    card, _ = load_back(text, tmp_path)
    assert str(tmp_path) not in text  # no path of this machine anywhere in the card
    assert card.data.datasets is None  # a local folder is not a Hub dataset
    assert card.data.base_model == "segret-tiny-city"
    assert card.data.model_name == "sample"
    assert "generated_from_trainer" in card.data.tags and "segret" in card.data.tags
    expected = {"mean_iou": 0.871234, "mean_accuracy": 0.9, "overall_accuracy": 0.95}
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == expected
    for result in card.data.eval_results:
        assert (result.dataset_type, result.dataset_name, result.dataset_split) == (
            "street_scenes", "street_scenes", "validation",
        )  # fmt: skip
        assert result.metric_name.endswith("(single-scale)") and result.verified is None
        assert result.metric_args == {"scales": [1.0], "flip": False, "test_scale": "2048x512", "ignore_index": 255}
    assert "| mIoU | 0.871234 |" in text and "of `street_scenes` at step 150" in text
    assert "| Dataset | Crop |" not in text  # six synthetic classes: the paper's table does not apply
    assert "| released config | none (generic recipe) |" in text  # the recipe rows are kept


def test_training_on_a_hub_dataset_records_its_id_config_revision_and_base_model(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing named like the Hub ids exists here
    trainer = fake_trainer(tiny_model(150), "segret-tiny-ade", size_divisor=32, hub_model_id="me/segret-tiny-ade")
    run = run_description(
        "someone/ade20k-parquet", dataset_preset="ade20k", dataset_config_name="scene_parsing",
        dataset_revision="refs/convert/parquet", recipe=get_preset("ade20k").recipe("tiny"),
        base_model="someone/segret-tiny-imagenet",
    )  # fmt: skip
    card, metadata = load_back(model_card_text(trainer, run), tmp_path)
    assert card.data.datasets == ["someone/ade20k-parquet"]
    assert card.data.base_model == "someone/segret-tiny-imagenet"
    assert card.data.model_name == "me/segret-tiny-ade"
    first = card.data.eval_results[0]
    assert (first.dataset_type, first.dataset_name, first.dataset_config, first.dataset_revision) == (
        "someone/ade20k-parquet", "ADE20K", "scene_parsing", "refs/convert/parquet",
    )  # fmt: skip
    assert first.metric_args["size_divisor"] == 32 and first.metric_args["test_scale"] == "2048x512"
    assert len(metadata["model-index"][0]["results"]) == 1  # one dataset, three metrics
    assert all(r.source_url is None for r in card.data.eval_results)  # measured here, not quoted


def test_a_local_preset_folder_is_listed_under_the_presets_hub_dataset(tmp_path) -> None:
    data = tmp_path / "ade20k"
    data.mkdir()
    trainer = fake_trainer(tiny_model(150), str(tmp_path / "out"))
    card, _ = load_back(model_card_text(trainer, run_description(str(data), dataset_preset="ade20k")), tmp_path)
    assert card.data.datasets == ["scene_parse_150"]
    assert card.data.eval_results[0].dataset_type == "ade20k"  # what was measured: the local folder


def test_a_card_before_any_evaluation_has_no_model_index(tmp_path) -> None:
    trainer = fake_trainer(tiny_model(), "out", evaluated=False)
    card, metadata = load_back(model_card_text(trainer, run_description("someone/dataset")), tmp_path)
    assert card.data.eval_results is None and "model-index" not in metadata


def test_public_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "ade20k").mkdir(parents=True)
    assert public_name("someone/dataset") == "someone/dataset"
    assert public_name("scene_parse_150") == "scene_parse_150"
    assert public_name("data/ade20k") == "ade20k"
    assert public_name(str(tmp_path / "rmt_t.pth")) == "rmt_t.pth"
    assert public_name("./outputs/run/") == "run"


def test_measurement_refuses_unknown_metrics() -> None:
    with pytest.raises(ValueError, match="Measurement metrics must be among"):
        Measurement({"miou": 0.5}, "d", "d", "validation")
    assert isinstance(paper_results("cityscapes", (81.75, 82.17))[0], EvalResult)


def test_card_for_a_training_run():
    text = render_model_card(
        num_parameters=25_983_862,
        num_labels=19,
        model_id="someone/segret-small-cityscapes",
        variant="small",
        dataset="cityscapes",
        measurement=Measurement({"mean_iou": 0.8123, "mean_accuracy": 0.88}, "cityscapes", "Cityscapes", "validation"),
        measurement_note="Cityscapes val, single scale.",
        hyperparameters={"learning_rate": 1e-4, "crop_size": (512, 1024)},
        base_model="someone/rmt-small",
    )
    card = ModelCard(text)
    assert card.data.datasets == ["cityscapes"] and card.data.base_model == "someone/rmt-small"
    assert "### Measured on these weights" in text and "| mIoU | 0.8123 |" in text
    assert "not measured by the training run that produced these weights" in text
    assert "| Cityscapes | 512x1024 | 82.93 | 83.52 |" in text
    assert "| crop_size | 512, 1024 |" in text
    assert "Converted from" not in text


def test_paper_table():
    assert paper_miou("large", "ade20k") == (52.0, 52.23)
    assert paper_miou("base", "coco-stuff-10k") == (45.92, 46.06)
    assert paper_miou(None, "ade20k") is None
    assert set(PAPER_MIOU) == {"tiny", "small", "base", "large"}
    large_ade = render_model_card(num_parameters=1, num_labels=150, model_id="x", variant="large", dataset="ade20k")
    assert "| ADE20K | 640x640 | 52.0 | 52.23 |" in large_ade
