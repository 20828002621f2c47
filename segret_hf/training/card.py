"""The model card (README.md) of a training run, rendered by the project's shared card writer.

It states what was trained (variant, exact parameter count, classes), on what, with which settings, and
the metrics *measured* by this run's last evaluation, in the Markdown and in the `model-index` metadata the
Hub shows, so a pushed checkpoint documents itself. Hub datasets and checkpoints are named by their Hub id,
local ones by their file or folder name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from transformers import Trainer

from ..data.label_sets import IGNORE_INDEX, canonical_name
from ..data.recipes import TrainingRecipe
from ..model_card import DATASET_TITLES, is_hub_id, public_name, render_model_card
from ..model_index import SINGLE_SCALE, Measurement
from .optim import REGIMES

SUMMARY_METRICS = ("mean_iou", "mean_accuracy", "overall_accuracy")
TRAINER_TAGS = ("generated_from_trainer",)


@dataclass(frozen=True)
class RunDescription:
    """What the card says about the data and the starting point of the run."""

    dataset_name: str
    dataset_preset: str | None
    validation_split: str
    recipe: TrainingRecipe
    recipe_overrides: dict[str, tuple[Any, Any]]
    base_model: str | None
    """The saved model or backbone checkpoint the weights started from; None for a fresh model."""
    dataset_config_name: str | None = None
    dataset_revision: str | None = None
    skipped_rows: Callable[[], list[int]] = list
    """Training rows skipped as unreadable (`--skip_unreadable_samples`), known only once training ran."""


def _last_evaluation(log_history: list[dict[str, Any]]) -> dict[str, Any] | None:
    evaluations = [entry for entry in log_history if "eval_mean_iou" in entry]
    return evaluations[-1] if evaluations else None


def _plain(value: Any) -> str:
    """Enum members (e.g. `OptimizerNames.ADAMW_TORCH`) as the value a user would type."""
    return str(getattr(value, "value", value))


def _measurement(trainer: Trainer, run: RunDescription, evaluation: dict[str, Any]) -> tuple[Measurement, str]:
    """The last evaluation's numbers with the data and protocol that produced them, and the same in words."""
    dataset = public_name(run.dataset_name)
    long_side, short_side = run.recipe.test_scale
    divisor = getattr(trainer.processing_class, "size_divisor", None)
    protocol = {**SINGLE_SCALE, "test_scale": f"{long_side}x{short_side}", "ignore_index": IGNORE_INDEX}
    if divisor:
        protocol["size_divisor"] = divisor
    measurement = Measurement(
        metrics={name: evaluation[f"eval_{name}"] for name in SUMMARY_METRICS},
        dataset_id=dataset,
        dataset_title=DATASET_TITLES[canonical_name(run.dataset_preset)] if run.dataset_preset else dataset,
        split=run.validation_split,
        protocol=protocol,
        dataset_config=run.dataset_config_name,
        dataset_revision=run.dataset_revision,
    )
    aligned = f", then each side stretched up to a multiple of {divisor}" if divisor else ""
    note = (
        f"Single-scale evaluation on split `{run.validation_split}` of `{dataset}` at step "
        f"{evaluation['step']}: images resized with their aspect ratio kept (short side at most "
        f"{short_side}, long side at most {long_side}{aligned}), logits resized to the label size, "
        f"pixels labelled {IGNORE_INDEX} ignored. Fractions in [0, 1]."
    )
    return measurement, note


def model_card_text(trainer: Trainer, run: RunDescription) -> str:
    """Markdown of the card for the trainer's model in its current state."""
    args = trainer.args
    model = trainer.accelerator.unwrap_model(trainer.model)
    evaluation = _last_evaluation(trainer.state.log_history)
    measurement, note = _measurement(trainer, run, evaluation) if evaluation is not None else (None, None)
    hyperparameters = {
        "dataset": public_name(run.dataset_name) + (f" (preset {run.dataset_preset})" if run.dataset_preset else ""),
        "initialisation": public_name(run.base_model) if run.base_model else "random",
        "training steps": trainer.state.global_step,
        **recipe_rows(run.recipe, run.recipe_overrides),
        "lr schedule": f"{_plain(args.lr_scheduler_type)} {args.lr_scheduler_kwargs or ''}".strip(),
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "seed": args.seed,
    }
    skipped = run.skipped_rows()
    if skipped:
        listed = ", ".join(map(str, skipped[:20])) + (", ..." if len(skipped) > 20 else "")
        hyperparameters["unreadable training rows skipped"] = f"{len(skipped)} (rows {listed})"
    # A Hub dataset is named by its id; a local folder of a preset's data by the Hub id of that dataset (the
    # model's classes); other local data has no Hub id.
    hub_datasets = [run.dataset_name] if is_hub_id(run.dataset_name) else None if run.dataset_preset else []
    return render_model_card(
        num_parameters=model.num_parameters(),
        num_labels=model.config.num_labels,
        model_id=args.hub_model_id or args.output_dir,
        variant=model.config.matching_variant(),
        dataset=canonical_name(run.dataset_preset) if run.dataset_preset else None,
        measurement=measurement,
        measurement_note=note,
        hyperparameters=hyperparameters,
        base_model=public_name(run.base_model) if run.base_model else None,
        hub_datasets=hub_datasets,
        extra_tags=TRAINER_TAGS,
    )


def recipe_rows(recipe: TrainingRecipe, overrides: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Card rows stating the recipe a run followed and, where it departs from the released one, from what."""
    regime = REGIMES[recipe.paramwise_regime]
    warmup = (
        f"linear, {recipe.warmup_iterations} steps from {recipe.warmup_start_factor:g}x"
        if recipe.warmup_iterations
        else "none"
    )
    rows: dict[str, Any] = {
        "released config": recipe.config_file or "none (generic recipe)",
        "optimizer": f"AdamW, betas {tuple(recipe.adam_betas)}",
        "learning rate": recipe.learning_rate,
        "weight decay": recipe.weight_decay,
        "gradient clipping": f"at norm {recipe.max_grad_norm:g}" if recipe.max_grad_norm else "none",
        "parameter-wise rules": f"{recipe.paramwise_regime} ({regime.description})",
        "warmup": warmup,
        "poly schedule": f"power {recipe.poly_power:g} to {recipe.min_learning_rate:g} (mmcv PolyLrUpdaterHook)",
        "total batch size": recipe.total_batch_size,
        "crop (height x width)": f"{recipe.crop_size[0]}x{recipe.crop_size[1]}",
        "rescale bound (long x short) and ratio": f"{recipe.train_scale[0]}x{recipe.train_scale[1]}, "
        f"{recipe.resize_ratio_range[0]:g}-{recipe.resize_ratio_range[1]:g}",
        "crop cat_max_ratio": recipe.cat_max_ratio,
    }
    if overrides:
        rows["changed from the released config"] = "; ".join(
            f"{name} {released} -> {used}" for name, (released, used) in overrides.items()
        )
    return rows


def write_model_card(trainer: Trainer, run: RunDescription) -> Path:
    """Write README.md into the output directory (main process only) and return its path."""
    path = Path(trainer.args.output_dir) / "README.md"
    path.write_text(model_card_text(trainer, run), encoding="utf-8")
    return path
