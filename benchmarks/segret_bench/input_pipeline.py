"""Input-pipeline benchmark: training samples per second (decode + augmentation), before and after.

A GPU step on SegRet takes tens of milliseconds; the data loader must produce a batch in that time on the
host's cores. This measures what one core and the whole machine deliver on synthetic rows shaped like the
paper's datasets (ADE20K: 683x512 JPEG, crop 512, train scale 2048x512; Cityscapes: 2048x1024 PNG, crop
512x1024, train scale 2048x1024), read through the same `datasets` + `SplitTransform` path as training.

"Before" is the training data path at `BASELINE_REVISION` (torchvision v2 transforms on float32 images,
images decoded by `datasets`/PIL), read from git into a temporary module; "after" is the working tree. Both
run in the same process on the same rows, interleaved round by round (`timing.time_interleaved`), so that
load drifting on a shared machine moves both alike; the paired ratio is the median of per-round ratios.
"""

from __future__ import annotations

import importlib.util
import io
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import datasets
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from segret_hf import SegRetImageProcessor
from segret_hf.data.label_maps import LabelMapping
from segret_hf.data.presets import get_preset
from segret_hf.training import transforms
from segret_hf.training.arguments import SizeArguments
from segret_hf.training.data import INDEX_COLUMN, SplitSource
from segret_hf.training.decoding import keep_encoded

from .environment import describe_environment, load
from .timing import Timing, time_interleaved

BASELINE_REVISION = "e7a8ecd11cc67c6cfe6466978ab10b9aa5c1ca37"
"""The last commit whose training transforms augmented float32 images decoded through PIL."""

REPOSITORY = Path(__file__).resolve().parents[2]
TRANSFORMS_PATH = "segret_hf/training/transforms.py"
VARIANTS = ("before", "after")


@dataclass(frozen=True)
class Case:
    """One dataset shape: stored image size and format, label classes, and the paper's crop and scale."""

    name: str
    height: int
    width: int
    image_format: str
    classes: int
    preset: str
    crop_size: tuple[int, int]
    train_scale: tuple[int, int]


CASES = {
    "ade20k": Case("ade20k", 512, 683, "JPEG", 12, "ade20k", (512, 512), (2048, 512)),
    "cityscapes": Case("cityscapes", 1024, 2048, "PNG", 19, "cityscapes", (512, 1024), (2048, 1024)),
}


def load_baseline(revision: str) -> ModuleType:
    """`segret_hf.training.transforms` as it was at `revision`, imported under another name in the package."""
    source = subprocess.run(
        ["git", "show", f"{revision}:{TRANSFORMS_PATH}"], cwd=REPOSITORY, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="segret-baseline-")) / "transforms_baseline.py"
    path.write_text(source, encoding="utf-8")
    name = "segret_hf.training._transforms_baseline"  # inside the package, so its relative imports resolve
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # DataLoader workers find it again by name
    spec.loader.exec_module(module)
    return module


def _encoded(array: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format=image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    return buffer.getvalue()


def synthetic_row(case: Case, raw_ids: np.ndarray, seed: int) -> tuple[bytes, bytes]:
    """A photo-like image (smooth colour field, per-region tints, sensor noise) and a label map of regions.

    Regions are nearest-site cells of `3 * classes` random sites, each with one of `raw_ids`, so that crops
    usually hold several classes (the category-balanced crop rarely retries), as on real scenes.
    """
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, case.height // 32 + 1, case.width // 32 + 1), dtype=np.float32))
    field = F.interpolate(coarse, size=(case.height, case.width), mode="bicubic", align_corners=False)[0]
    coarse_height, coarse_width = -(-case.height // 8), -(-case.width // 8)  # label cells on an 8x coarser grid
    sites = rng.random((3 * case.classes, 2)) * (coarse_height, coarse_width)
    rows, cols = np.mgrid[0:coarse_height, 0:coarse_width]
    nearest = ((rows[..., None] - sites[:, 0]) ** 2 + (cols[..., None] - sites[:, 1]) ** 2).argmin(-1)
    cells = np.repeat(np.repeat(nearest, 8, axis=0), 8, axis=1)[: case.height, : case.width]
    label = raw_ids[cells % case.classes].astype(np.uint8)
    tint = rng.random((len(sites), 3)) * 80
    image = field.permute(1, 2, 0).numpy() * 180 + tint[cells] + rng.normal(0, 6, (case.height, case.width, 3))
    return _encoded(np.clip(image, 0, 255).astype(np.uint8), case.image_format), _encoded(label, "PNG")


def synthetic_split(case: Case, rows: int) -> tuple[datasets.Dataset, LabelMapping]:
    """`rows` distinct samples as an in-memory split with Image columns, and the preset's label mapping."""
    preset = get_preset(case.preset)
    mapping = LabelMapping.for_dataset(preset.num_labels, preset, None)
    if mapping.reduce:
        raw_ids = np.arange(1, case.classes + 1)  # 0 is "unlabelled"
    else:
        raw_ids = np.flatnonzero(preset.label_set.lut() != mapping.ignore_index)[: case.classes]
    samples = [synthetic_row(case, raw_ids, seed) for seed in range(rows)]
    features = datasets.Features(
        {"image": datasets.Image(), "annotation": datasets.Image(), INDEX_COLUMN: datasets.Value("int64")}
    )
    columns = {
        "image": [{"bytes": image, "path": None} for image, _ in samples],
        "annotation": [{"bytes": label, "path": None} for _, label in samples],
        INDEX_COLUMN: list(range(rows)),
    }
    return datasets.Dataset.from_dict(columns, features=features), mapping


def training_splits(case: Case, rows: int, baseline: ModuleType) -> dict[str, datasets.Dataset]:
    """The split as training reads it, per variant: `SplitTransform(PaperAugmentation)` applied on access."""
    split, mapping = synthetic_split(case, rows)
    processor = SegRetImageProcessor()
    sizes = SizeArguments(case.crop_size, case.train_scale, case.train_scale)
    source = SplitSource(case.name, "train", "image", "annotation")
    before = baseline.SplitTransform(processor, mapping, source, baseline.PaperAugmentation(sizes, processor, seed=0))
    after = transforms.SplitTransform(processor, mapping, source, transforms.PaperAugmentation(sizes, processor, seed=0))
    return {"before": split.with_transform(before), "after": keep_encoded(split, "image").with_transform(after)}


def _batches(split: datasets.Dataset, batch_size: int) -> Callable[[], object]:
    """A step that reads the next `batch_size` rows (cycling over the split), as the loader's fetcher does."""
    position = [0]

    def step() -> object:
        indices = [(position[0] + offset) % len(split) for offset in range(batch_size)]
        position[0] += batch_size
        return split.__getitems__(indices)

    return step


def _epochs(split: datasets.Dataset, batch_size: int, workers: int, samples: int) -> Callable[[], object]:
    """A step that runs `samples` rows through a DataLoader with `workers` persistent worker processes."""
    loader = DataLoader(
        split,
        batch_size=batch_size,
        sampler=[index % len(split) for index in range(samples)],
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )

    def step() -> object:
        for _ in loader:
            pass
        return loader

    return step


def _paired_ratio(before: Timing, after: Timing) -> float | None:
    """Median over rounds of before-time / after-time: the speed-up, least moved by drifting load."""
    if not before.times_s or not after.times_s:
        return None
    return statistics.median(b / a for b, a in zip(before.times_s, after.times_s))


def _rows(case: Case, scope: str, timings: dict[str, Timing], samples_per_call: int) -> list[dict[str, Any]]:
    speedup = _paired_ratio(timings["before"], timings["after"])
    rows = []
    for variant in VARIANTS:
        timing = timings[variant]
        rows.append(
            {
                "case": case.name,
                "scope": scope,
                "variant": variant,
                "status": timing.status,
                "samples_per_s": samples_per_call / timing.median_s if timing.times_s else None,
                "samples_per_s_best": samples_per_call / timing.min_s if timing.times_s else None,
                "speedup_paired": speedup if variant == "after" else None,
            }
        )
    return rows


@dataclass
class InputBenchmarkOptions:
    """What to measure; `benchmarks/input_pipeline.py` fills it from the command line."""

    cases: list[str]
    rows: int = 8
    batch_size: int = 8
    repeats: int = 5
    warmup: int = 1
    workers: int | None = None
    machine_samples: int = 64
    skip_machine: bool = False
    baseline_revision: str = BASELINE_REVISION


def run_input_benchmark(options: InputBenchmarkOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Samples/s per core (one thread, in this process) and per machine (DataLoader workers on every core)."""
    workers = options.workers if options.workers is not None else len(os.sched_getaffinity(0))
    baseline = load_baseline(options.baseline_revision)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    environment = describe_environment(torch.device("cpu"))
    results: list[dict[str, Any]] = []
    try:
        for name in options.cases:
            case = CASES[name]
            splits = training_splits(case, options.rows, baseline)
            log(f"{name}: per core, {options.batch_size} samples per call")
            steps = {variant: _batches(splits[variant], options.batch_size) for variant in VARIANTS}
            timings = time_interleaved(steps, options.warmup, options.repeats, torch.device("cpu"), log)
            results += _rows(case, "core (1 thread)", timings, options.batch_size)
            if options.skip_machine:
                continue
            log(f"{name}: per machine, {workers} workers, {options.machine_samples} samples per call")
            steps = {
                variant: _epochs(splits[variant], options.batch_size, workers, options.machine_samples)
                for variant in VARIANTS
            }
            timings = time_interleaved(steps, options.warmup, options.repeats, torch.device("cpu"), log)
            results += _rows(case, f"machine ({workers} workers)", timings, options.machine_samples)
    finally:
        torch.set_num_threads(threads)
    environment["load_end"] = load()
    settings = {key: value for key, value in vars(options).items() if key != "cases"}
    return {"environment": environment, "settings": {**settings, "workers": workers}, "results": results}


def render_input_markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table, with the machine and its load."""
    environment, device = report["environment"], report["environment"]["device"]

    def number(value: float | None, digits: int = 1) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    def pressure(when: str) -> str:
        psi = environment[f"load_{when}"]["cpu_pressure"]
        share = "n/a" if psi is None else f"{psi['avg60']:.0f}% (60 s)"
        return f"load average {environment[f'load_{when}']['load_average']}, CPU pressure {share}"

    lines = [
        f"- {environment['date']}, {device['cpu_model']}, {device['cpu_count']} CPUs, torch {environment['torch']}",
        f"- Command: `{environment['command']}`",
        f"- Settings: {', '.join(f'{key}={value}' for key, value in report['settings'].items())}",
        f"- Machine load at start / end: {pressure('start')} / {pressure('end')}",
        "",
        "| case | scope | variant | samples/s (median) | samples/s (best) | speed-up (paired) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['case']} | {row['scope']} | {row['variant']} | {number(row['samples_per_s'])} | "
            f"{number(row['samples_per_s_best'])} | {number(row['speedup_paired'], 2)} |"
        )
    return "\n".join(lines)
