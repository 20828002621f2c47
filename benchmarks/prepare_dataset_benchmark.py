#!/usr/bin/env python
"""Throughput and peak memory of scripts/prepare_dataset.py on synthetic Cityscapes-layout archives.

Builds `leftImg8bit_trainvaltest.zip` and `gtFine_trainvaltest.zip` with the official layout and names
in a temporary folder (photographs of the given size stored as PNG, labelIds maps with realistic regions;
a few encoded pictures reused under every name with a per-file PNG text chunk, so building the archives is
fast while every file is distinct and every row is still read, decoded and checked), then runs the preparation script once per image count in a fresh process and
prints rows per second and that process's peak RSS. Comparing counts shows whether memory grows with the
number of images (it should not: rows are written shard by shard).

    python benchmarks/prepare_dataset_benchmark.py --counts 500 2000 --size 2048x1024 --num_proc 1
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import PIL.Image

ROOT = Path(__file__).resolve().parents[1]
DISTINCT_FILES = 4
CITIES = ("aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg")


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _named(png: bytes, name: str) -> bytes:
    """`png` with a `tEXt` chunk holding `name` before its final IEND chunk: same pixels, distinct bytes."""
    body = b"tEXt" + b"Title\x00" + name.encode()
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return png[:-12] + chunk + png[-12:]


def _photo(rng: np.random.Generator, height: int, width: int) -> bytes:
    """Smooth colour regions plus sensor-like noise: compresses about as well as a street photograph."""
    coarse = rng.integers(0, 256, (height // 64 + 1, width // 64 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(PIL.Image.fromarray(coarse).resize((width, height), PIL.Image.BILINEAR), dtype=np.int16)
    noisy = smooth + rng.integers(-2, 3, smooth.shape, dtype=np.int16)
    return _png(np.clip(noisy, 0, 255).astype(np.uint8))


def _label_ids(rng: np.random.Generator, height: int, width: int) -> bytes:
    """Blocks of Cityscapes labelIds (road, sidewalk, building, vegetation, sky, car, ...)."""
    ids = np.array([0, 1, 7, 8, 11, 17, 20, 21, 23, 24, 26, 33], dtype=np.uint8)
    blocks = rng.choice(ids, size=(height // 32 + 1, width // 32 + 1))
    return _png(np.kron(blocks, np.ones((32, 32), np.uint8))[:height, :width])


def build_archives(folder: Path, count: int, height: int, width: int) -> list[Path]:
    """The two official Cityscapes archives with `count` train images (and 1/6 as many val images)."""
    rng = np.random.default_rng(0)
    photos = [_photo(rng, height, width) for _ in range(DISTINCT_FILES)]
    labels = [_label_ids(rng, height, width) for _ in range(DISTINCT_FILES)]
    left, fine = folder / "leftImg8bit_trainvaltest.zip", folder / "gtFine_trainvaltest.zip"
    with zipfile.ZipFile(left, "w") as images, zipfile.ZipFile(fine, "w") as annotations:
        for index in range(count):
            split = "val" if index % 6 == 5 else "train"
            city = CITIES[index % len(CITIES)]
            name = f"{city}_{index:06d}_000019"
            photo, label = photos[index % DISTINCT_FILES], labels[index % DISTINCT_FILES]
            images.writestr(f"leftImg8bit/{split}/{city}/{name}_leftImg8bit.png", _named(photo, name))
            annotations.writestr(f"gtFine/{split}/{city}/{name}_gtFine_labelIds.png", _named(label, name))
    return [left, fine]


def run_measured(command: list[str], log: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes; the largest of the process and its workers) of `command`."""
    start = time.perf_counter()
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[500, 2000], help="Images per run.")
    parser.add_argument("--size", default="2048x1024", help="WIDTHxHEIGHT of the images (Cityscapes: 2048x1024).")
    parser.add_argument("--num_proc", type=int, default=1)
    parser.add_argument("--max_shard_size", default="500MB")
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="prepare-benchmark-") as tmp:
        log = Path(tmp) / "log.txt"
        baseline_s, baseline_rss = run_measured([sys.executable, "-c", "import segret_hf.data.preparation"], log)
        print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}")
        print(f"images {width}x{height} PNG, num_proc {args.num_proc}, max_shard_size {args.max_shard_size}")
        print(f"import segret_hf.data.preparation alone: {baseline_s:.1f} s, peak RSS {baseline_rss / 2**20:.0f} MiB")
        print("| images | archives (MB) | output (MB) | seconds | rows/s | peak RSS (MiB) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for count in args.counts:
            folder = Path(tmp) / str(count)
            folder.mkdir()
            archives = build_archives(folder, count, height, width)
            output = folder / "prepared"
            command = [
                sys.executable, str(ROOT / "scripts" / "prepare_dataset.py"), "--dataset", "cityscapes",
                "--source", *map(str, archives), "--output_dir", str(output), "--num_proc", str(args.num_proc),
                "--max_shard_size", args.max_shard_size,
            ]  # fmt: skip
            seconds, peak = run_measured(command, log)
            archive_mb = sum(path.stat().st_size for path in archives) / 1e6
            output_mb = sum(path.stat().st_size for path in (output / "data").iterdir()) / 1e6
            print(
                f"| {count} | {archive_mb:.0f} | {output_mb:.0f} | {seconds:.1f} | {count / seconds:.1f} | "
                f"{peak / 2**20:.0f} |",
                flush=True,
            )
            for path in archives:
                path.unlink()


if __name__ == "__main__":
    main()
