"""The model card (README.md) of a training run, rendered by the project's shared card writer.

It states what was trained (variant, exact parameter count, classes), on what, with which settings, and
the metrics *measured* by this run's last evaluation, so a pushed checkpoint documents itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from transformers import Trainer

from ..data.label_sets import canonical_name
from ..data.recipes import TrainingRecipe
from ..model_card import render_model_card
from .optim import REGIMES

SUMMARY_METRICS = ("mean_iou", "mean_accuracy", "overall_accuracy")


@dataclass(frozen=True)
class RunDescription:
    """What the card says about the data and the starting point of the run."""

    dataset_name: str
    dataset_preset: str | None
    validation_split: str
    recipe: TrainingRecipe
    recipe_overrides: dict[str, tuple[Any, Any]]
    base_model: str | None
    backbone_checkpoint: str | None
    skipped_rows: Callable[[], list[int]] = list
    """Training rows skipped as unreadable (`--skip_unreadable_samples`), known only once training ran."""


def _last_evaluation(log_history: list[dict[str, Any]]) -> dict[str, Any] | None:
    evaluations = [entry for entry in log_history if "eval_mean_iou" in entry]
    return evaluations[-1] if evaluations else None


def _plain(value: Any) -> str:
    """Enum members (e.g. `OptimizerNames.ADAMW_TORCH`) as the value a user would type."""
    return str(getattr(value, "value", value))


def _hub_id(name: str | None) -> str | None:
    """`name` if it looks like a Hub repo id rather than a local path."""
    return name if name and not Path(name).exists() and name.count("/") == 1 else None


def model_card_text(trainer: Trainer, run: RunDescription) -> str:
    """Markdown of the card for the trainer's model in its current state."""
    args = trainer.args
    model = trainer.accelerator.unwrap_model(trainer.model)
    evaluation = _last_evaluation(trainer.state.log_history)
    metrics = note = None
    if evaluation is not None:
        metrics = {name: evaluation[f"eval_{name}"] for name in SUMMARY_METRICS}
        long_side, short_side = run.recipe.test_scale
        divisor = getattr(trainer.processing_class, "size_divisor", None)
        aligned = f", then each side stretched up to a multiple of {divisor}" if divisor else ""
        note = (
            f"Single-scale evaluation on split `{run.validation_split}` of `{run.dataset_name}` at step "
            f"{evaluation['step']}: images resized with their aspect ratio kept (short side at most "
            f"{short_side}, long side at most {long_side}{aligned}), logits resized to the label size, "
            "pixels labelled 255 ignored. Fractions in [0, 1]."
        )
    hyperparameters = {
        "dataset": run.dataset_name + (f" (preset {run.dataset_preset})" if run.dataset_preset else ""),
        "initialisation": run.base_model or run.backbone_checkpoint or "random",
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
    dataset = None
    if run.dataset_preset:
        dataset = canonical_name(run.dataset_preset)
    return render_model_card(
        num_parameters=model.num_parameters(),
        num_labels=model.config.num_labels,
        model_id=args.hub_model_id or args.output_dir,
        variant=model.config.matching_variant(),
        dataset=dataset,
        metrics=metrics,
        metrics_note=note,
        hyperparameters=hyperparameters,
        base_model=_hub_id(run.base_model),
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
