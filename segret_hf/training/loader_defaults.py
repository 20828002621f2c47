"""Data-loader settings that fit the machine, for the flags the user did not set.

transformers' defaults load data in the training process itself (`dataloader_num_workers=0`), so every
decode and augmentation waits for the optimiser step and the step waits for them: a GPU then idles for most
of each step. Here the loader gets worker processes on the cores this process may use (one core is left to
the training process; processes of a multi-GPU run on the same machine split the cores), prefetches a few
batches per worker, and pins batches in page-locked memory when they go to a CUDA device (asynchronous
host-to-device copies).

Workers persist across epochs: they start once per run instead of at every epoch (a fork per worker, or
with the spawn start method a new interpreter importing torch and the dataset). `--resume_from_checkpoint`
stays exact because nothing in the loaders draws from the global torch generator, whose state the checkpoint
holds and dropout and drop-path use:

- a DataLoader draws its workers' base seed when an iterator is created: at every epoch, or only the first
  time with persistent workers. A resumed run creates iterators at other points than the uninterrupted one
  (the resumed epoch's batch-skipping loader, then a first iterator where the uninterrupted run kept its
  workers), so draws from the global generator would shift its masks. `own_worker_seed_generator` gives
  the Trainer's loaders their own generator for that draw instead;
- the augmentation draws nothing from a worker's generators: every sample's randomness comes from
  `(seed, epoch, row)` (`transforms.PaperAugmentation`), and persistent workers read the current epoch from
  shared memory. What the workers were seeded with therefore changes no sample.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import TrainingArguments

logger = logging.getLogger(__name__)

MAX_WORKERS = 16
"""Per training process: beyond this, more workers mostly add memory (each holds a copy of the dataset
state and its prefetched batches) while one GPU's steps are already fed."""

PREFETCH_FACTOR = 4
"""Batches queued per worker: enough to absorb slow samples (large images, crop retries) between steps."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and job schedulers restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity (macOS, Windows)
        return os.cpu_count() or 1


def data_loader_defaults(explicit: Mapping[str, Any], world_size: int) -> dict[str, Any]:
    """`TrainingArguments` values for the data-loader flags absent from `explicit` (the flags the user gave).

    `world_size` is the number of training processes; those on this machine (`LOCAL_WORLD_SIZE`, set by
    torchrun and accelerate, else `world_size`) share its cores. Settings that only make sense with workers
    follow the worker count in effect, the user's if they chose one.
    """
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    workers = int(explicit.get("dataloader_num_workers", min(MAX_WORKERS, available_cores() // local_processes - 1)))
    workers = max(workers, 0)
    on_cuda = torch.cuda.is_available() and not explicit.get("use_cpu", False)
    defaults = {
        "dataloader_num_workers": workers,
        "dataloader_persistent_workers": workers > 0,  # exact resume kept: see the module's docstring
        "dataloader_pin_memory": on_cuda,
        "dataloader_prefetch_factor": PREFETCH_FACTOR if workers > 0 else None,
    }
    return {key: value for key, value in defaults.items() if key not in explicit}


def log_data_loader_settings(args: TrainingArguments) -> None:
    """One line with the data-loader settings in effect, chosen here or given by the user."""
    logger.info(
        "Data loader: %d worker processes (%d cores available), persistent workers %s, prefetch factor %s, "
        "pinned memory %s",
        args.dataloader_num_workers,
        available_cores(),
        args.dataloader_persistent_workers,
        args.dataloader_prefetch_factor,
        args.dataloader_pin_memory,
    )


def own_worker_seed_generator(loader: DataLoader, seed: int) -> DataLoader:
    """`loader` (as the Trainer returns it) drawing its workers' base seed from a generator of its own, seeded
    with `seed`, instead of from the global torch generator (see the module's docstring)."""
    # accelerate's DataLoaderShard wraps the torch DataLoader; batch-skipping copies made on resume take the
    # generator from it.
    base = getattr(loader, "base_dataloader", loader)
    base.generator = torch.Generator().manual_seed(seed)
    return loader
