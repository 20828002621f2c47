#!/usr/bin/env python
"""Validation mIoU against training steps for SegRet trained from scratch, with and without augmentation.

Every run is one `segret_hf.training.run` job (the Trainer, AdamW groups, poly schedule, gradient clipping
(none by default) and evaluation protocol of `scripts/train.py`), logging the loss and gradient norm of every
step and evaluating every `--eval_steps`. The modes differ only in how training samples are prepared:

- `augmented`: `scripts/train.py` as shipped, the paper's augmentation (random rescale 0.5-2.0 around the
  train scale, category-balanced crop, flip, photometric distortion);
- `plain`: no augmentation, each training image resized by the image processor to the crop (labels by
  nearest neighbour), so the model trains on images like the validation ones;
- `augmented-no-shrink`: the paper's augmentation with the rescale ratio drawn from 1.0-2.0 only
  (`--resize_ratio_range 1 2`): no image ends up smaller than the crop, so no crop is partly padding;
- `augmented-clip`, `plain-clip`: as `augmented` / `plain` with gradients clipped at norm 1
  (`--max_grad_norm 1`, transformers' default; `scripts/train.py` follows the released configs, which do not
  clip);
- `augmented-warmup`: as `augmented` with `--warmup_steps 30` (mmcv's linear warmup from 1e-6 x lr).

Datasets: `sample`, the street scenes shipped in `segret_hf/training/sample_data`, and `shapes`, generated
here (background, circle, square, triangle on noisy backgrounds, written in Hub parquet layout to a
temporary folder, seeded).

    python benchmarks/learning_curve.py                       # 2 datasets x 2 modes x 300 steps
    python benchmarks/learning_curve.py --datasets shapes --modes augmented-no-shrink --tag learning-curve-ablations

Results: a table on stdout and `<device>_<tag>.json` / `.md` in `--output_dir` (default benchmarks/results).
Learning curves count steps, not seconds, so a busy machine slows them down without changing them.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from segret_bench.environment import describe_environment, load  # noqa: E402

from segret_hf.data.loading import load_split  # noqa: E402
from segret_hf.image_processing_segret import SegRetImageProcessor  # noqa: E402
from segret_hf.training import run  # noqa: E402
from segret_hf.training.sample_data import SAMPLE_DATASET_DIR  # noqa: E402
from segret_hf.training.transforms import PaperAugmentation  # noqa: E402

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"
SHAPE_CLASSES = ("background", "circle", "square", "triangle")
SPIKE_TOLERANCE = 1.0
"""A step's loss above `SPIKE_TOLERANCE x` the first step's loss counts as a spike."""


# --------------------------------------------------------------------------------------------- datasets


def _shapes_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image: a noisy two-colour gradient background with 1-4 shapes (later ones drawn on top)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    direction = rng.uniform(0, 2 * np.pi)
    t = ((np.cos(direction) * xs + np.sin(direction) * ys) / size * 0.5 + 0.5)[..., None]
    canvas = start * (1 - t) + end * t
    labels = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(1, 5)):
        kind = int(rng.integers(1, len(SHAPE_CLASSES)))
        radius = rng.uniform(0.08, 0.25) * size
        cy, cx = rng.uniform(radius * 0.5, size - radius * 0.5, 2)
        if kind == 1:
            mask = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2
        elif kind == 2:
            mask = (np.abs(ys - cy) <= radius * 0.9) & (np.abs(xs - cx) <= radius * 0.9)
        else:  # a triangle with a random orientation: inside all three edges' half-planes
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2, 4]) * np.pi / 3
            corners = np.stack([cx + radius * 1.2 * np.cos(angles), cy + radius * 1.2 * np.sin(angles)], axis=1)
            mask = np.ones((size, size), dtype=bool)
            for (x0, y0), (x1, y1) in zip(corners, np.roll(corners, -1, axis=0)):
                mask &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
        canvas[mask] = rng.uniform(0, 255, 3)
        labels[mask] = kind
    canvas += rng.normal(0, 12, canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8), labels


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def make_shapes_dataset(
    folder: Path, num_train: int = 400, num_validation: int = 50, size: int = 96, seed: int = 0
) -> Path:
    """Write the geometric-shapes dataset in Hub layout (`data/{split}-*.parquet`, `id2label.json`)."""
    import datasets

    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, count, split_seed in (("train", num_train, seed), ("validation", num_validation, seed + 1)):
        rng = np.random.default_rng(split_seed)
        rows: dict[str, list[dict[str, Any]]] = {"image": [], "annotation": []}
        for index in range(count):
            image, labels = _shapes_image(rng, size)
            rows["image"].append({"bytes": _png(image), "path": f"{split}_{index:04d}.png"})
            rows["annotation"].append({"bytes": _png(labels), "path": f"{split}_{index:04d}_label.png"})
        features = datasets.Features({"image": datasets.Image(), "annotation": datasets.Image()})
        dataset = datasets.Dataset.from_dict(rows, features=features)
        dataset.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    id2label = {str(index): name for index, name in enumerate(SHAPE_CLASSES)}
    (folder / "id2label.json").write_text(json.dumps(id2label, indent=2) + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------------------------- the runs


class ResizeToCrop:
    """The no-augmentation training transform: the image processor's resize of the whole image to the crop
    (bilinear) and its normalisation; the label map resized to the crop by nearest neighbour."""

    def __init__(self, crop_size: tuple[int, int]) -> None:
        self.crop_size = crop_size
        self.processor = SegRetImageProcessor(size={"height": crop_size[0], "width": crop_size[1]})
        self.epoch = 0  # set by the Trainer's epoch callback; nothing here is random

    def __call__(self, pixels: torch.Tensor, label: torch.Tensor, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        processed = self.processor.preprocess(pixels.to(torch.float32), do_convert_rgb=False, return_tensors="pt")
        labels = F.interpolate(label[None, None].to(torch.float32), size=self.crop_size, mode="nearest")
        return processed["pixel_values"][0], labels[0, 0].to(torch.int64)


@dataclass(frozen=True)
class Mode:
    """How one run prepares its training samples."""

    description: str
    extra_flags: tuple[str, ...] = ()
    plain: bool = False


MODES: dict[str, Mode] = {
    "augmented": Mode("scripts/train.py as shipped: the paper's augmentation"),
    "plain": Mode("no augmentation: whole image resized to the crop", plain=True),
    "augmented-no-shrink": Mode(
        "the paper's augmentation with rescale ratio 1.0-2.0 (no crop smaller than the crop size)",
        extra_flags=("--resize_ratio_range", "1.0", "2.0"),
    ),
    "augmented-clip": Mode(
        "the paper's augmentation with gradients clipped at norm 1 (--max_grad_norm 1, transformers' default)",
        extra_flags=("--max_grad_norm", "1"),
    ),
    "plain-clip": Mode("no augmentation, gradients clipped at norm 1", extra_flags=("--max_grad_norm", "1"), plain=True),
    "augmented-warmup": Mode(
        "the paper's augmentation with a 30-step linear warmup from 1e-6 x lr (--warmup_steps 30)",
        extra_flags=("--warmup_steps", "30"),
    ),
}


@dataclass(frozen=True)
class Settings:
    """What every run shares."""

    model_variant: str = "tiny"
    max_steps: int = 300
    eval_steps: int = 50
    batch_size: int = 8
    learning_rate: float = 3e-4
    crop_size: int = 96
    seed: int = 0
    early_steps: int = 25


def train_flags(settings: Settings, dataset: Path, output_dir: Path, mode: Mode) -> list[str]:
    """The `scripts/train.py` command line of one run."""
    return [
        "--model_variant", settings.model_variant,
        "--dataset_name", str(dataset),
        "--output_dir", str(output_dir),
        "--overwrite_output_dir",
        "--crop_size", str(settings.crop_size),
        "--per_device_train_batch_size", str(settings.batch_size),
        "--per_device_eval_batch_size", str(settings.batch_size),
        "--learning_rate", str(settings.learning_rate),
        "--max_steps", str(settings.max_steps),
        "--eval_strategy", "steps",
        "--eval_steps", str(settings.eval_steps),
        "--logging_steps", "1",
        "--save_strategy", "no",
        "--prediction_overlays", "0",
        "--seed", str(settings.seed),
        "--report_to", "none",
        "--disable_tqdm", "true",
        *mode.extra_flags,
    ]  # fmt: skip


def train_once(settings: Settings, dataset: Path, mode: Mode, work_dir: Path) -> list[dict[str, Any]]:
    """Train one run; returns the Trainer's log history (one entry per step, one per evaluation)."""
    output_dir = work_dir / "run"
    flags = train_flags(settings, dataset, output_dir, mode)
    if mode.plain:
        run.train(run.parse_arguments(flags), train_transform=ResizeToCrop((settings.crop_size,) * 2))
    else:
        run.main(flags)
    history = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))["log_history"]
    shutil.rmtree(output_dir)
    return history


def summarise(history: list[dict[str, Any]], early_steps: int) -> dict[str, Any]:
    """Loss and gradient-norm statistics and the mIoU curve of one run's log history."""
    steps = [entry for entry in history if "loss" in entry and "grad_norm" in entry]
    losses = [float(entry["loss"]) for entry in steps]
    grad_norms = [float(entry["grad_norm"]) for entry in steps]
    early = slice(0, early_steps)
    peak = int(np.argmax(losses))
    initial = losses[0]
    later = losses[1:]
    return {
        "initial_loss": initial,
        "early_loss_mean": statistics.fmean(losses[early]),
        "early_loss_max": max(losses[early]),
        "max_loss": losses[peak],
        "max_loss_step": steps[peak]["step"],
        "max_loss_after_first_step": max(later) if later else None,
        "spike": bool(later) and max(later) > SPIKE_TOLERANCE * initial,
        "final_loss_mean_last_25": statistics.fmean(losses[-25:]),
        "initial_grad_norm": grad_norms[0],
        "early_grad_norm_median": statistics.median(grad_norms[early]),
        "early_grad_norm_max": max(grad_norms[early]),
        "mean_iou": {str(entry["step"]): entry["eval_mean_iou"] for entry in history if "eval_mean_iou" in entry},
        "eval_loss": {str(entry["step"]): entry["eval_loss"] for entry in history if "eval_loss" in entry},
        "losses": losses,
        "grad_norms": grad_norms,
    }


def augmentation_statistics(dataset: Path, settings: Settings, mode: Mode, split: str = "train") -> dict[str, float]:
    """Over one epoch of `split` as the mode's transform prepares it: the share of crop pixels without a label
    (padding of images rescaled below the crop, plus the dataset's own ignored pixels), against the share of
    ignored pixels in the dataset itself."""
    arguments = run.parse_arguments(train_flags(settings, dataset, Path(tempfile.gettempdir()), mode))
    processor = SegRetImageProcessor()
    if mode.plain:
        transform = ResizeToCrop(arguments.sizes.crop_size)
    else:
        transform = PaperAugmentation(
            arguments.sizes,
            processor,
            seed=settings.seed,
            ratio_range=arguments.recipe.resize_ratio_range,
            cat_max_ratio=arguments.recipe.cat_max_ratio,
        )
    unlabelled, source_unlabelled, pixels, source_pixels = 0, 0, 0, 0
    for row, example in enumerate(load_split(str(dataset), split)):
        image = torch.from_numpy(np.array(example["image"].convert("RGB"))).permute(2, 0, 1).contiguous()
        label = torch.from_numpy(np.array(example["annotation"]))
        _, labels = transform(image, label, row)
        unlabelled += int((labels == 255).sum())
        pixels += labels.numel()
        source_unlabelled += int((label == 255).sum())
        source_pixels += label.numel()
    return {"unlabelled_share": unlabelled / pixels, "dataset_unlabelled_share": source_unlabelled / source_pixels}


def compare(runs: dict[str, dict[str, Any]], final_step: str) -> dict[str, Any] | None:
    """Augmented vs plain mIoU of one dataset at the last evaluation (gap relative to plain), and any spikes."""
    if "augmented" not in runs or "plain" not in runs:
        return None
    augmented = runs["augmented"]["mean_iou"].get(final_step)
    plain = runs["plain"]["mean_iou"].get(final_step)
    if augmented is None or plain is None:
        return None
    gap = (plain - augmented) / plain if plain > 0 else None
    return {
        "step": int(final_step),
        "augmented_mean_iou": augmented,
        "plain_mean_iou": plain,
        "relative_gap": gap,
        "no_spike": not any(result["spike"] for result in runs.values()),
    }


# --------------------------------------------------------------------------------------------- reporting


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_markdown(results: dict[str, Any]) -> str:
    env, settings = results["environment"], results["settings"]
    device = env["device"]
    lines = [
        "# SegRet learning curves: validation mIoU against steps, with and without augmentation",
        "",
        f"- Date: {env['date']}",
        (
            f"- Device: {device['type']}, {device['cpu_model']}, {device['cpu_count']} CPUs, "
            f"{device['torch_threads']} torch threads"
        ),
        f"- torch {env['torch']}, transformers {env['transformers']}, Python {env['python']}",
        f"- Settings: {', '.join(f'{key}={value}' for key, value in settings.items())}",
        f"- Command: `{env['command']}`",
        f"- Machine load at start / end: {env['load_start']['load_average']} / {env['load_end']['load_average']}",
        "- Spike: a step's training loss above the first step's. Relative gap: (plain - augmented) / plain.",
        "",
        "Modes: " + "; ".join(f"`{name}`: {MODES[name].description}" for name in results["modes"]),
        "",
    ]
    eval_steps = sorted({int(step) for data in results["datasets"].values() for run_ in data["runs"].values()
                         for step in run_["mean_iou"]})  # fmt: skip
    early = settings["early_steps"]
    header = [
        "dataset", "mode", "loss step 1", f"loss 1-{early} mean", f"loss 1-{early} max", "max loss after step 1",
        "spike", "grad norm step 1", f"grad norm 1-{early} median", "unlabelled crop pixels",
        *(f"mIoU @{step}" for step in eval_steps),
    ]  # fmt: skip
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, data in results["datasets"].items():
        for mode, result in data["runs"].items():
            stats = data.get("augmentation", {}).get(mode, {})
            row = [
                name, mode, _f(result["initial_loss"]), _f(result["early_loss_mean"]), _f(result["early_loss_max"]),
                f"{_f(result['max_loss_after_first_step'])} (step {result['max_loss_step']})" if result["spike"]
                else _f(result["max_loss_after_first_step"]),
                "yes" if result["spike"] else "no", _f(result["initial_grad_norm"], 1),
                _f(result["early_grad_norm_median"], 2),
                f"{stats['unlabelled_share']:.1%}" if stats else "–",
                *(_f(result["mean_iou"].get(str(step))) for step in eval_steps),
            ]  # fmt: skip
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for name, data in results["datasets"].items():
        check = data.get("comparison")
        if check:
            lines.append(
                f"- {name}: augmented {check['augmented_mean_iou']:.3f} vs plain {check['plain_mean_iou']:.3f} at "
                f"step {check['step']}, relative gap {_f(check['relative_gap'], 3)}; loss spikes: "
                f"{'none' if check['no_spike'] else 'yes'}."
            )
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], output_dir: Path, tag: str) -> tuple[Path, Path]:
    """`<device>_<tag>.json` and `.md`: one canonical file per configuration, rewritten by each run of it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{results['environment']['device']['type']}_{tag}"
    json_path, markdown_path = output_dir / f"{stem}.json", output_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(results), encoding="utf-8")
    return json_path, markdown_path


# --------------------------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=["sample", "shapes"], default=["sample", "shapes"])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["augmented", "plain"])
    parser.add_argument("--model_variant", default=defaults.model_variant)
    parser.add_argument("--max_steps", type=int, default=defaults.max_steps)
    parser.add_argument("--eval_steps", type=int, default=defaults.eval_steps)
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--crop_size", type=int, default=defaults.crop_size)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="training seed (init, order, augmentation)")
    parser.add_argument("--shapes_seed", type=int, default=0, help="seed of the generated shapes dataset")
    parser.add_argument("--early_steps", type=int, default=defaults.early_steps, help="steps of the early stats")
    parser.add_argument("--shapes_train", type=int, default=400, help="generated training images (default 400)")
    parser.add_argument("--shapes_validation", type=int, default=50, help="generated validation images (default 50)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (default 1: on a shared CPU one thread is several times faster per step than two)",
    )  # fmt: skip
    parser.add_argument("--output_dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="default: benchmarks/results")
    parser.add_argument("--tag", default="learning-curve", help="file name after the device (default learning-curve)")
    return parser


def run_benchmark(args: argparse.Namespace, log=print) -> dict[str, Any]:
    """Every dataset x mode run, with the environment, settings and per-dataset comparison."""
    settings = Settings(
        args.model_variant, args.max_steps, args.eval_steps, args.batch_size, args.learning_rate, args.crop_size,
        args.seed, args.early_steps,
    )  # fmt: skip
    shapes = {"shapes_train": args.shapes_train, "shapes_validation": args.shapes_validation}
    results: dict[str, Any] = {
        "environment": describe_environment(torch.device("cpu")),
        "settings": vars(settings) | shapes | {"shapes_seed": args.shapes_seed},
        "modes": list(args.modes),
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="segret-learning-curve-") as temporary:
        work_dir = Path(temporary)
        for name in args.datasets:
            if name == "sample":
                dataset = SAMPLE_DATASET_DIR
            else:
                dataset = make_shapes_dataset(work_dir / "shapes", args.shapes_train, args.shapes_validation,
                                              args.crop_size, args.shapes_seed)  # fmt: skip
            data: dict[str, Any] = {"path": str(dataset) if name == "sample" else "generated", "runs": {}}
            data["augmentation"] = {
                mode: augmentation_statistics(dataset, settings, MODES[mode]) for mode in args.modes
            }
            for mode in args.modes:
                log(f"== {name} / {mode}: {args.max_steps} steps")
                history = train_once(settings, dataset, MODES[mode], work_dir)
                data["runs"][mode] = summarise(history, settings.early_steps)
                log(f"== {name} / {mode}: mIoU {data['runs'][mode]['mean_iou']}")
            data["comparison"] = compare(data["runs"], str(args.max_steps))
            results["datasets"][name] = data
    results["environment"]["load_end"] = load()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    results = run_benchmark(args)
    json_path, markdown_path = write_results(results, args.output_dir, args.tag)
    print(render_markdown(results))
    print(f"wrote {json_path} and {markdown_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
