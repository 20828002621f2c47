"""`Trainer` pieces for SegRet: the paper's optimiser groups, exact-protocol evaluation, streaming metrics.

Only what the stock Trainer cannot express is overridden:

* `create_optimizer`: the recipe's parameter-wise rules as per-group weight decay and learning rate
  (see `optim`).
* `create_scheduler`: `polynomial` runs as the released configs' mmcv poly schedule with linear warmup
  (see `schedule`); any other `--lr_scheduler_type` is transformers' own.
* `compute_loss`: the batch carries `image_sizes` / `label_sizes` for evaluation; only the model inputs are
  passed to the network.
* `evaluate`: every process evaluates the main process's BatchNorm statistics (the saved ones).
* `prediction_step`: each validation image runs at its own size (the paper's test protocol, no padding
  effects), its logits are resized to its label's size, and the step returns a per-image confusion matrix
  instead of logits. Full-resolution logits never leave the step, and the Trainer's cross-process
  gathering (which drops the duplicate samples of an uneven last batch) works on fixed-size tensors.
* `create_model_card`: SegRet's own card (variant, parameters, measured metrics, hyper-parameters).
* `get_train_dataloader`: drops the last training batch when it would hold a single sample (BatchNorm
  cannot normalise one value per channel, which a small crop gives in the last stage); evaluation batches
  are left alone, which `--dataloader_drop_last` would not do.
* `get_train_dataloader`, `get_eval_dataloader`: the loaders seed their workers from a generator of their
  own, not the global one, so that persistent workers keep resuming exact (see `loader_defaults`).
* `_save_checkpoint`: a full disk is reported as such, naming the checkpoint (see `saving`), and the
  incomplete checkpoint folder is removed.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from transformers import EvalPrediction, Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, SchedulerType

from ..data.label_sets import IGNORE_INDEX
from ..data.recipes import DEFAULT_RECIPE, TrainingRecipe
from ..metrics import SegmentationMetric
from .loader_defaults import own_worker_seed_generator
from .optim import parameter_groups
from .saving import reporting_full_disk
from .schedule import PolySchedule
from .transforms import PaperAugmentation

MODEL_INPUTS = ("pixel_values", "labels")


class SegRetTrainer(Trainer):
    """Trainer with SegRet's optimiser, evaluation step and model card.

    Args:
        recipe: the recipe the run follows; its parameter-wise regime and warmup start factor are the two
            settings `TrainingArguments` cannot carry (the rest is in the arguments already).
        write_model_card: called with the trainer to write `README.md` into the output directory; used by
            `create_model_card`, which `push_to_hub` calls.
    """

    def __init__(
        self,
        *args: Any,
        recipe: TrainingRecipe = DEFAULT_RECIPE,
        write_model_card: Callable[[Trainer], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.recipe = recipe
        self._write_model_card = write_model_card

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            groups = parameter_groups(
                opt_model, self.args.learning_rate, self.args.weight_decay, self.recipe.paramwise_regime
            )
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        if self.lr_scheduler is None and self.args.lr_scheduler_type == SchedulerType.POLYNOMIAL:
            kwargs = self.args.lr_scheduler_kwargs or {}
            schedule = PolySchedule(
                total_steps=num_training_steps,
                power=float(kwargs.get("power", self.recipe.poly_power)),
                min_lr=float(kwargs.get("lr_end", self.recipe.min_learning_rate)),
                warmup_steps=self.args.get_warmup_steps(num_training_steps),
                warmup_start_factor=self.recipe.warmup_start_factor,
            )
            self.lr_scheduler = schedule.scheduler(self.optimizer if optimizer is None else optimizer)
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        """The Trainer's loader, with its own worker-seed generator and without a last batch of one sample (see
        the module docstring)."""
        dataset = self.train_dataset
        samples_per_step = self._train_batch_size * self.args.world_size
        if not hasattr(dataset, "__len__") or samples_per_step == 1 or len(dataset) % samples_per_step != 1:
            return own_worker_seed_generator(super().get_train_dataloader(), self._worker_seed)
        if len(dataset) == 1:
            raise ValueError(
                "The training split has a single row: a batch needs at least 2 samples for BatchNorm. Add rows "
                "(or drop --max_train_samples 1)."
            )
        drop_last = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = True
        try:
            return own_worker_seed_generator(super().get_train_dataloader(), self._worker_seed)
        finally:
            self.args.dataloader_drop_last = drop_last

    def get_eval_dataloader(self, eval_dataset: str | Dataset | None = None) -> torch.utils.data.DataLoader:
        """The Trainer's loader, with its own worker-seed generator: with persistent workers, the first
        evaluation after resuming would otherwise draw from the global generator where the uninterrupted run
        did not."""
        return own_worker_seed_generator(super().get_eval_dataloader(eval_dataset), self._worker_seed)

    @property
    def _worker_seed(self) -> int:
        return self.args.data_seed if self.args.data_seed is not None else self.args.seed

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        try:
            with reporting_full_disk(folder, f"checkpoint {folder.name}"):
                super()._save_checkpoint(model, trial)
        except OSError:
            if self.args.should_save:
                shutil.rmtree(folder, ignore_errors=True)  # incomplete: it must not be resumed from
            raise

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        model_inputs = {key: inputs[key] for key in MODEL_INPUTS if key in inputs}
        return super().compute_loss(model, model_inputs, return_outputs, num_items_in_batch)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Evaluate the weights that get saved: the main process's. Without SyncBatchNorm (CPU processes)
        each process's BatchNorm running statistics drift apart, so they are taken from process 0 first."""
        if self.args.world_size > 1 and torch.distributed.is_initialized():
            for buffer in self.accelerator.unwrap_model(self.model).buffers():
                torch.distributed.broadcast(buffer.data, src=0)
        return super().evaluate(*args, **kwargs)

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Loss over all labelled pixels of the batch, and `(batch, num_labels, num_labels)` confusion matrices."""
        inputs = self._prepare_inputs(inputs)
        config = self.accelerator.unwrap_model(self.model).config
        num_labels, ignore_index = config.num_labels, config.semantic_loss_ignore_index
        pixel_values, labels = inputs["pixel_values"], inputs["labels"]
        image_sizes, label_sizes = inputs["image_sizes"].tolist(), inputs["label_sizes"].tolist()
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, size in enumerate(image_sizes):
            by_size[tuple(size)].append(index)

        loss_sum = pixel_values.new_zeros((), dtype=torch.float32)
        labelled = 0
        confusions: list[torch.Tensor | None] = [None] * len(image_sizes)
        with torch.no_grad():
            for (height, width), indices in by_size.items():
                logits = model(pixel_values=pixel_values[indices, :, :height, :width]).logits.float()
                for position, index in enumerate(indices):
                    label = labels[index, : label_sizes[index][0], : label_sizes[index][1]]
                    scores = F.interpolate(
                        logits[position : position + 1], size=label.shape, mode="bilinear", align_corners=False
                    )
                    loss_sum += F.cross_entropy(scores, label[None], ignore_index=ignore_index, reduction="sum")
                    labelled += int((label != ignore_index).sum())
                    if not prediction_loss_only:
                        metric = SegmentationMetric(num_labels, ignore_index=ignore_index)
                        metric.update(scores.argmax(dim=1)[0], label)
                        confusions[index] = metric.confusion_matrix
        loss = loss_sum / max(labelled, 1)
        if prediction_loss_only:
            return loss, None, None
        return loss, torch.stack(confusions), inputs["label_sizes"]

    def create_model_card(self, **kwargs: Any) -> None:
        """Write SegRet's model card (the Trainer's generic card knows nothing of the architecture)."""
        if self.is_world_process_zero() and self._write_model_card is not None:
            self._write_model_card(self)


def _metric_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_") or "class"


class StreamingSegmentationMetrics:
    """`compute_metrics` for `batch_eval_metrics=True`: sums the per-image confusion matrices of each batch
    and reports, after the last batch, `mean_iou`, `mean_accuracy`, `overall_accuracy` and `iou_<class>`
    (logged by the Trainer as `eval_mean_iou`, `eval_iou_sky`, ...). Memory is one K x K matrix.
    """

    def __init__(self, id2label: dict[int, str], ignore_index: int = IGNORE_INDEX) -> None:
        self.metric = SegmentationMetric(len(id2label), ignore_index=ignore_index)
        keys: dict[str, int] = {}
        for class_id in sorted(id2label):
            key = f"iou_{_metric_key(id2label[class_id])}"
            keys[key if key not in keys else f"{key}_{class_id}"] = class_id
        self.class_keys = keys

    def __call__(self, eval_prediction: EvalPrediction, compute_result: bool) -> dict[str, float]:
        self.metric.merge(eval_prediction.predictions.sum(dim=0))
        if not compute_result:
            return {}
        results = self.metric.compute()
        self.metric.reset()
        metrics = {name: results[name] for name in ("mean_iou", "mean_accuracy", "overall_accuracy")}
        metrics.update({key: results["per_category_iou"][class_id] for key, class_id in self.class_keys.items()})
        return metrics


class AugmentationEpochCallback(TrainerCallback):
    """Tells the augmentation which epoch starts, so its per-sample randomness is keyed by (epoch, row).

    Called before the epoch's data loader is iterated (and its workers started), also after resuming,
    where `state.epoch` holds the fractional epoch of the checkpoint.
    """

    def __init__(self, augmentation: PaperAugmentation) -> None:
        self.augmentation = augmentation

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.augmentation.epoch = int(state.epoch or 0)


class RecipeCallback(TrainerCallback, ExportableState):
    """Records the recipe of the run in `trainer_state.json` (under `stateful_callbacks`), next to the
    step it belongs to, so a checkpoint says how it was trained."""

    def __init__(self, recipe: dict[str, Any], released_from: str | None = None) -> None:
        self.recipe = recipe
        self.released_from = released_from

    def state(self) -> dict[str, Any]:
        return {"args": {"recipe": self.recipe, "released_from": self.released_from}, "attributes": {}}
