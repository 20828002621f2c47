"""A small synthetic street-scene dataset that ships with the package.

It exists so that the training script has a default job that runs anywhere: offline, on a laptop CPU,
in a few minutes, and still shows that the model learns something visible. Every image is a procedurally
drawn outdoor scene (sky with clouds, grass, a road in perspective, buildings with windows, trees, cars)
with per-image lighting, textures, JPEG compression and sensor noise, so that colour alone does not
solve it (tree canopies and grass are both green, clouds are white like road markings, car colours vary).
Labels follow the PASCAL VOC habit of a one-pixel ``255`` (ignore) band on class boundaries, which
exercises the ignore index everywhere in the pipeline.

The layout on disk is that of a Hugging Face Hub dataset repository (``data/{split}-00000-of-00001.parquet``
with ``image``/``annotation`` Image columns, plus ``id2label.json``), so ``datasets.load_dataset(folder)``
and ``scripts/train.py --dataset_name folder`` read it like any Hub dataset.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
from datasets import Dataset, Features, Image
from transformers import HfArgumentParser

from ..data.label_maps import write_id2label_file
from ..data.label_sets import IGNORE_INDEX

SAMPLE_DATASET_DIR = Path(__file__).resolve().parent / "sample_data"
"""Where the committed copy of the sample dataset lives."""

SAMPLE_JOB_DEFAULTS: dict[str, Any] = {
    "crop_size": "96",
    "max_steps": 150,
    "learning_rate": 3e-4,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 4,
    "eval_strategy": "steps",
    "eval_steps": 50,
    "save_steps": 50,
    "save_total_limit": 1,
    "logging_steps": 10,
    "prediction_overlays": 2,
}
"""Defaults of a run on the sample dataset (flags given explicitly still win): sized for a CPU, so that
`scripts/train.py --model_variant tiny --output_dir DIR` trains, evaluates and draws predictions in minutes.
The learning rate is above the paper's 1e-4 because the model starts without ImageNet pretraining."""

CLASS_NAMES: tuple[str, ...] = ("sky", "grass", "road", "building", "tree", "car")
_SIZES = (112, 128, 144, 160)
_CAR_COLOURS = ((200, 40, 40), (230, 150, 30), (220, 210, 60), (120, 60, 160), (40, 40, 45), (235, 235, 235))


def _fill(canvas: np.ndarray, labels: np.ndarray, mask: np.ndarray, colour: np.ndarray, label: int) -> None:
    canvas[mask] = colour[mask] if colour.ndim == 3 else colour
    labels[mask] = label


def _texture(
    rng: np.random.Generator, height: int, width: int, base: tuple[int, int, int], spread: float
) -> np.ndarray:
    """Base colour with blotchy low-frequency variation plus fine grain, as a float (H, W, 3) array."""
    coarse = rng.normal(0.0, 1.0, (height // 8 + 2, width // 8 + 2))
    coarse = np.kron(coarse, np.ones((8, 8)))[:height, :width]
    grain = rng.normal(0.0, 0.5, (height, width))
    variation = spread * (coarse + grain)[..., None]
    return np.asarray(base, dtype=np.float64)[None, None] + variation


def _draw_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (uint8 RGB image, uint8 class-id map without boundary bands)."""
    ys, xs = np.mgrid[0:height, 0:width]
    canvas = np.zeros((height, width, 3), dtype=np.float64)
    labels = np.zeros((height, width), dtype=np.uint8)

    # Sky: vertical gradient with a few soft clouds.
    top, bottom = np.array([70, 120, 210]) + rng.integers(-20, 20, 3), np.array([170, 200, 240])
    t = (ys / height)[..., None]
    sky = top * (1 - t) + bottom * t
    for _ in range(rng.integers(0, 4)):
        cy, cx = rng.uniform(0.05, 0.3) * height, rng.uniform(0, width)
        ry, rx = rng.uniform(4, 10), rng.uniform(10, 30)
        cloud = np.exp(-(((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2))[..., None]
        sky = sky * (1 - cloud) + 245 * cloud
    _fill(canvas, labels, np.ones_like(labels, dtype=bool), sky, 0)

    # Ground: grass below a gently undulating horizon.
    horizon_base = rng.uniform(0.35, 0.55) * height
    horizon = horizon_base + 3 * np.sin(xs / width * rng.uniform(2, 6) + rng.uniform(0, 6))
    grass = _texture(rng, height, width, (70 + rng.integers(-15, 15), 150 + rng.integers(-20, 20), 55), 18)
    _fill(canvas, labels, ys >= horizon, grass, 1)

    # Buildings standing on the horizon (drawn before the road so the road stays in front).
    for _ in range(rng.integers(0, 4)):
        left, w = rng.uniform(-0.1, 0.9) * width, rng.uniform(0.12, 0.3) * width
        h = rng.uniform(0.12, 0.3) * height
        base_colour = [(150, 85, 65), (185, 175, 160), (120, 120, 135)][rng.integers(3)]
        body = (xs >= left) & (xs < left + w) & (ys >= horizon_base - h) & (ys < horizon_base + 2)
        wall = _texture(rng, height, width, base_colour, 6)
        windows = ((xs - int(left)) % 8 < 3) & ((ys - int(horizon_base - h)) % 9 < 4)
        wall[windows] = (40, 50, 70)
        _fill(canvas, labels, body, wall, 3)

    # Road: a trapezoid in perspective from the bottom edge to a vanishing point on the horizon.
    vanish_x = rng.uniform(0.3, 0.7) * width
    half_bottom = rng.uniform(0.25, 0.45) * width
    progress = np.clip((ys - horizon_base) / max(height - horizon_base, 1), 0, 1)
    centre = vanish_x + (width / 2 - vanish_x) * progress
    road = (ys >= horizon_base) & (np.abs(xs - centre) <= 1 + half_bottom * progress)
    asphalt = _texture(rng, height, width, (105, 105, 112), 7)
    dashes = (np.abs(xs - centre) <= 0.6 + 1.5 * progress) & ((ys // 6) % 2 == 0)
    asphalt[dashes] = (235, 235, 225)
    _fill(canvas, labels, road, asphalt, 2)

    # Trees on the grass beside the road: trunk plus textured canopy.
    for _ in range(rng.integers(1, 4)):
        side = rng.choice([-1, 1])
        foot_y = rng.uniform(horizon_base + 5, height - 5)
        foot_progress = np.clip((foot_y - horizon_base) / max(height - horizon_base, 1), 0, 1)
        foot_centre = vanish_x + (width / 2 - vanish_x) * foot_progress
        foot_x = foot_centre + side * (half_bottom * foot_progress + rng.uniform(8, 30))
        size = 6 + 18 * foot_progress
        trunk = (np.abs(xs - foot_x) <= size * 0.15) & (ys <= foot_y) & (ys >= foot_y - size * 1.2)
        canopy = ((xs - foot_x) / (size * 0.8)) ** 2 + ((ys - (foot_y - size * 1.5)) / size) ** 2 <= 1
        _fill(canvas, labels, trunk, np.asarray((95, 60, 35), dtype=np.float64), 4)
        leaves = _texture(rng, height, width, (35, 95 + rng.integers(-15, 15), 35), 16)
        _fill(canvas, labels, canopy, leaves, 4)

    # Cars on the road: body, darker cabin window, black wheels.
    for _ in range(rng.integers(0, 3)):
        car_y = rng.uniform(horizon_base + 8, height - 2)
        car_progress = np.clip((car_y - horizon_base) / max(height - horizon_base, 1), 0, 1)
        car_centre = vanish_x + (width / 2 - vanish_x) * car_progress
        car_x = car_centre + rng.uniform(-0.6, 0.6) * half_bottom * car_progress
        w, h = 10 + 30 * car_progress, 6 + 14 * car_progress
        body = (np.abs(xs - car_x) <= w / 2) & (ys <= car_y) & (ys >= car_y - h)
        colour = np.asarray(_CAR_COLOURS[rng.integers(len(_CAR_COLOURS))], dtype=np.float64)
        paint = np.broadcast_to(colour, (height, width, 3)).copy()
        cabin = (np.abs(xs - car_x) <= w / 3) & (ys < car_y - h * 0.55)
        paint[cabin] = (60, 75, 95)
        for wheel_x in (car_x - w / 3, car_x + w / 3):
            wheel = ((xs - wheel_x) ** 2 + (ys - car_y) ** 2) <= (h / 4) ** 2
            body |= wheel
            paint[wheel] = (20, 20, 20)
        _fill(canvas, labels, body, paint, 5)

    # Global lighting, colour cast and sensor noise.
    canvas = canvas * rng.uniform(0.75, 1.2) + rng.normal(0, 8, 3)[None, None]
    canvas += rng.normal(0, 6, canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8), labels


def _with_boundary_band(labels: np.ndarray) -> np.ndarray:
    """Class-id map with every pixel that touches another class (4-neighbourhood) set to ignore."""
    boundary = np.zeros(labels.shape, dtype=bool)
    vertical = labels[1:] != labels[:-1]
    horizontal = labels[:, 1:] != labels[:, :-1]
    boundary[1:] |= vertical
    boundary[:-1] |= vertical
    boundary[:, 1:] |= horizontal
    boundary[:, :-1] |= horizontal
    return np.where(boundary, IGNORE_INDEX, labels).astype(np.uint8)


def _encode(array: np.ndarray, format: str) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format=format, **({"quality": 90} if format == "JPEG" else {}))
    return buffer.getvalue()


def make_split(num_examples: int, seed: int, split: str) -> Dataset:
    """``num_examples`` scenes of random sizes as a Dataset with ``image`` (JPEG) and ``annotation`` (PNG)."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for index in range(num_examples):
        height, width = int(rng.choice(_SIZES)), int(rng.choice(_SIZES))
        image, labels = _draw_scene(rng, height, width)
        images.append({"bytes": _encode(image, "JPEG"), "path": f"{split}_{index:03d}.jpg"})
        annotations.append({"bytes": _encode(_with_boundary_band(labels), "PNG"), "path": f"{split}_{index:03d}.png"})
    features = Features({"image": Image(), "annotation": Image()})
    return Dataset.from_dict({"image": images, "annotation": annotations}, features=features)


def generate_sample_dataset(
    output_dir: str | Path = SAMPLE_DATASET_DIR, num_train: int = 40, num_validation: int = 10, seed: int = 0
) -> Path:
    """Write the sample dataset in Hub-repository layout and return its folder.

    The train and validation splits use different seeds, so validation scenes are unseen layouts.
    """
    output_dir = Path(output_dir)
    (output_dir / "data").mkdir(parents=True, exist_ok=True)
    for split, count, split_seed in (("train", num_train, seed), ("validation", num_validation, seed + 1)):
        make_split(count, split_seed, split).to_parquet(output_dir / "data" / f"{split}-00000-of-00001.parquet")
    write_id2label_file(output_dir, dict(enumerate(CLASS_NAMES)))
    return output_dir


@dataclass
class SampleDatasetArguments:
    """Options of `scripts/make_sample_dataset.py`, the arguments of :func:`generate_sample_dataset`."""

    output_dir: str = field(
        default=str(SAMPLE_DATASET_DIR), metadata={"help": "Destination folder (default: the package's copy)."}
    )
    num_train: int = field(default=40, metadata={"help": "Images in the train split."})
    num_validation: int = field(default=10, metadata={"help": "Images in the validation split."})
    seed: int = field(default=0, metadata={"help": "Seed of the train split (validation uses seed + 1)."})


def main(argv: list[str] | None = None) -> int:
    """Regenerate the sample dataset (deterministic) and print its folder; returns the exit status."""
    parser = HfArgumentParser(SampleDatasetArguments, description="Regenerate the sample dataset (deterministic).")
    (args,) = parser.parse_args_into_dataclasses(argv)
    print(generate_sample_dataset(**asdict(args)))
    return 0
