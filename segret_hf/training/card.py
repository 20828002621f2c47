"""The model card (README.md) of a training run, rendered by the project's shared card writer.

It states what was trained (variant, exact parameter count, classes), on what, with which settings, and
the metrics *measured* by this run's last evaluation, so a pushed checkpoint documents itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import Trainer

from ..conversion import matching_variant
from ..data.label_sets import canonical_name
from ..model_card import render_model_card

SUMMARY_METRICS = ("mean_iou", "mean_accuracy", "overall_accuracy")


@dataclass(frozen=True)
class RunDescription:
    """What the card says about the data and the starting point of the run."""

    dataset_name: str
    dataset_preset: str | None
    validation_split: str
    crop_size: tuple[int, int]
    train_scale: tuple[int, int]
    test_scale: tuple[int, int]
    base_model: str | None
    backbone_checkpoint: str | None


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
        note = (
            f"Single-scale evaluation on split `{run.validation_split}` of `{run.dataset_name}` at step "
            f"{evaluation['step']}: images resized with their aspect ratio kept (short side at most "
            f"{run.test_scale[1]}, long side at most {run.test_scale[0]}), logits resized to the label size, "
            "pixels labelled 255 ignored. Fractions in [0, 1]."
        )
    total_batch = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    hyperparameters = {
        "dataset": run.dataset_name + (f" (preset {run.dataset_preset})" if run.dataset_preset else ""),
        "initialisation": run.base_model or run.backbone_checkpoint or "random",
        "training steps": trainer.state.global_step,
        "total batch size": total_batch,
        "crop (height x width)": f"{run.crop_size[0]}x{run.crop_size[1]}",
        "rescale bound (long x short), ratio 0.5-2.0": f"{run.train_scale[0]}x{run.train_scale[1]}",
        "optimizer": f"{_plain(args.optim)} (backbone norms at 0.1x lr; no decay on norms, biases, layer scales)",
        "learning rate": args.learning_rate,
        "weight decay": args.weight_decay,
        "lr schedule": f"{_plain(args.lr_scheduler_type)} {args.lr_scheduler_kwargs or ''}".strip(),
        "warmup steps": args.warmup_steps,
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "seed": args.seed,
    }
    dataset = None
    if run.dataset_preset:
        dataset = canonical_name(run.dataset_preset)
    return render_model_card(
        num_parameters=model.num_parameters(),
        num_labels=model.config.num_labels,
        model_id=args.hub_model_id or args.output_dir,
        variant=matching_variant(model.config),
        dataset=dataset,
        metrics=metrics,
        metrics_note=note,
        hyperparameters=hyperparameters,
        base_model=_hub_id(run.base_model),
    )


def write_model_card(trainer: Trainer, run: RunDescription) -> Path:
    """Write README.md into the output directory (main process only) and return its path."""
    path = Path(trainer.args.output_dir) / "README.md"
    path.write_text(model_card_text(trainer, run), encoding="utf-8")
    return path
