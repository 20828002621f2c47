"""The released SegRet training and test configurations, one :class:`TrainingRecipe` per config file.

Every number below is read from the resolved mmsegmentation configs of the official repository (see
``docs/recipes.md`` for the per-config table and how the configs were resolved). The released configs
disagree on almost every optimisation setting, so there is no single "SegRet recipe": learning rate,
weight decay, warmup, schedule power, batch and even the parameter-wise rules change per config. Only
the twelve configs whose networks match the released checkpoints (decoder width 256 for tiny/small/base,
512 for large) are kept; six Cityscapes configs cannot be built as written and have no recipe.

A recipe is pure data. Training turns it into optimiser groups (:mod:`segret_hf.training.optim`), a
learning-rate schedule (:mod:`segret_hf.training.schedule`), augmentation and default arguments;
evaluation reads its test scale; cards print it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Mapping

PARAMWISE_REGIMES: tuple[str, ...] = ("none", "res", "sf3")
"""Parameter-wise optimiser rules of the released configs (see :mod:`segret_hf.training.optim`)."""


@dataclass(frozen=True)
class TrainingRecipe:
    """One released configuration: optimiser, schedule, batch, augmentation geometry and test resize.

    The defaults are the values most released configs share; they are also what a run without a
    dataset preset starts from (with the "none" parameter-wise regime and no warmup).

    Sizes: ``crop_size`` is ``(height, width)``; ``train_scale`` / ``test_scale`` are mmseg's
    ``(long_edge, short_edge)`` keep-ratio bounds. ``warmup_start_factor`` is mmcv's ``warmup_ratio``:
    the factor the learning rate starts at before rising linearly to the schedule over
    ``warmup_iterations``.
    """

    config_file: str | None = None
    learning_rate: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    max_grad_norm: float = 0.0
    """Gradient-norm clipping threshold; 0 means none, as in every released config (empty optimizer_config)."""
    paramwise_regime: str = "none"
    warmup_iterations: int = 0
    warmup_start_factor: float = 1e-6
    poly_power: float = 0.9
    min_learning_rate: float = 0.0
    samples_per_gpu: int = 4
    num_gpus: int = 4
    iterations: int = 160_000
    crop_size: tuple[int, int] = (512, 512)
    train_scale: tuple[int, int] = (2048, 512)
    resize_ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    test_scale: tuple[int, int] = (2048, 512)

    def __post_init__(self) -> None:
        if self.paramwise_regime not in PARAMWISE_REGIMES:
            raise ValueError(
                f"Unknown parameter-wise regime {self.paramwise_regime!r}; choose one of {list(PARAMWISE_REGIMES)}."
            )

    @property
    def total_batch_size(self) -> int:
        """Images per optimiser step over all GPUs (the configs' ``samples_per_gpu`` x 4 GPUs)."""
        return self.samples_per_gpu * self.num_gpus

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus the total batch size, for cards, logs and ``trainer_state.json``."""
        values = asdict(self)
        values = {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}
        values["total_batch_size"] = self.total_batch_size
        return values

    def describe(self) -> str:
        """One line for the training log."""
        warmup = (
            f"linear warmup {self.warmup_iterations} it from x{self.warmup_start_factor:g}"
            if self.warmup_iterations
            else "no warmup"
        )
        clipping = f"gradients clipped at norm {self.max_grad_norm:g}" if self.max_grad_norm else "no gradient clipping"
        return (
            f"{self.config_file or 'generic recipe'}: AdamW lr {self.learning_rate:g} betas {self.adam_betas} "
            f"wd {self.weight_decay:g}, {clipping}, paramwise {self.paramwise_regime}, {warmup}, poly power "
            f"{self.poly_power:g} to {self.min_learning_rate:g}, {self.iterations} it x batch "
            f"{self.total_batch_size} ({self.num_gpus}x{self.samples_per_gpu}), crop {self.crop_size}, train scale "
            f"{self.train_scale} x {self.resize_ratio_range}, cat_max_ratio {self.cat_max_ratio}, test scale "
            f"{self.test_scale}"
        )


DEFAULT_RECIPE = TrainingRecipe()
"""The recipe of a run without a dataset preset."""

_WARMUP = {"warmup_iterations": 1500, "warmup_start_factor": 1e-6}
_RES = {"paramwise_regime": "res"}

ADE20K_RECIPES: Mapping[str, TrainingRecipe] = MappingProxyType(
    {
        "tiny": TrainingRecipe("SegRet.T.512x512.ade.160k_res.py", weight_decay=1e-4, **_RES),
        "small": TrainingRecipe("SegRet.S.512x512.ade.160k_res.py", **_RES, **_WARMUP),
        "base": TrainingRecipe("SegRet.B.512x512.ade.160k_res_256.py", **_RES),
        "large": TrainingRecipe(
            "SegRet.L.640x640.ade.160k_res.py",
            crop_size=(640, 640),
            train_scale=(2048, 640),
            test_scale=(2048, 640),
            **_RES,
        ),
    }
)

_CITYSCAPES = {
    "samples_per_gpu": 2,
    "crop_size": (512, 1024),
    "train_scale": (4096, 1024),
    "test_scale": (2048, 1024),
}
CITYSCAPES_RECIPES: Mapping[str, TrainingRecipe] = MappingProxyType(
    {
        "tiny": TrainingRecipe("SegRet.T.512x1024.city.160k.py", **_RES, **_CITYSCAPES),
        "small": TrainingRecipe("SegRet.S.512x1024.city.160k.py", poly_power=1.0, **_WARMUP, **_CITYSCAPES),
        "base": TrainingRecipe("SegRet.B.512x1024.city.160k.py", poly_power=1.0, **_WARMUP, **_CITYSCAPES),
        "large": TrainingRecipe("SegRet.L.512x1024.city.160k.py", **_RES, **_CITYSCAPES),
    }
)

COCO_STUFF_10K_RECIPES: Mapping[str, TrainingRecipe] = MappingProxyType(
    {
        "tiny": TrainingRecipe(
            "SegRet.T.512x512.coco10k.80k.py", learning_rate=2e-4, weight_decay=1e-4, iterations=80_000, **_RES, **_WARMUP
        ),
        # The file name says 80k; the config trains 60k iterations at 8 images per GPU.
        "small": TrainingRecipe("SegRet.S.512x512.coco10k.80k.py", samples_per_gpu=8, iterations=60_000, **_RES),
        "base": TrainingRecipe("SegRet.B.512x512.coco10k.80k.py", iterations=80_000, **_RES, **_WARMUP),
        # Its parameter-wise block is commented out in the config: no rules.
        "large": TrainingRecipe("SegRet.L.512x512.coco10k.80k.py", iterations=80_000, **_WARMUP),
    }
)
