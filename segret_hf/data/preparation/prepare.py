"""Build a Hub-layout parquet dataset from a dataset's official archives: the `segret-prepare-dataset` command.

The run is all or nothing: everything is written into a hidden temporary folder next to `--output_dir`
and renamed into place once every split, `id2label.json` and the card are complete, so an interrupted or
failed run never leaves a half dataset where training would find it. Rows are written in identifier order
whatever `--num_proc` is: worker processes decode and check pairs, the main process writes them in order,
so the shards are identical for any number of processes.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import HfApi
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from ...cli.errors import report_error
from ...output_folders import OutputFolderError, check_output_dir, staged_output_dir
from ..label_maps import write_id2label_file
from .card import card_text, training_flags
from .errors import DatasetPreparationError
from .layouts import LAYOUTS, DatasetLayout, Pair
from .rows import RowReader
from .shards import ShardWriter, SplitSummary, parse_size
from .sources import SourceFiles

logger = logging.getLogger(__name__)

BATCH_ROWS = 8
"""Pairs per task sent to a worker process: large enough to amortise the hand-over, small for smooth progress."""

BATCHES_IN_FLIGHT_PER_PROCESS = 2
"""Tasks queued per worker; bounds the decoded rows held in memory whatever the split size."""


@dataclass
class PrepareArguments:
    """Options of `scripts/prepare_dataset.py` / `segret-prepare-dataset`."""

    dataset: str = field(metadata={"help": "Which dataset the sources are.", "choices": list(LAYOUTS)})
    source: list[str] = field(
        metadata={
            "metavar": "PATH",
            "help": "The official downloads as they come, in any order: zip files or the folders they extract to "
            "(ADE20K: ADEChallengeData2016.zip; Cityscapes: leftImg8bit_trainvaltest.zip gtFine_trainvaltest.zip; "
            "COCO-Stuff: train2017.zip val2017.zip stuffthingmaps_trainval2017.zip; COCO-Stuff 10k: "
            "cocostuff-10k-v1.1.zip)."
        }
    )
    output_dir: str = field(
        metadata={"metavar": "DIR", "help": "Folder to write the dataset to (Hub layout: data/*.parquet)."}
    )
    push_to_hub: str | None = field(
        default=None,
        metadata={"metavar": "REPO_ID", "help": "Also upload the finished folder to this Hub dataset repo id."},
    )
    private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    max_shard_size: str = field(
        default="500MB", metadata={"metavar": "SIZE", "help": "Largest parquet shard, e.g. 500MB or 1GiB."}
    )
    num_proc: int = field(
        default=1, metadata={"metavar": "N", "help": "Processes that decode and check image/annotation pairs."}
    )
    train_ids: bool = field(
        default=False,
        metadata={
            "help": "Store train ids (255 = ignored) instead of the official raw annotation values; train with "
            "--labels_are_train_ids then."
        },
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace a non-empty --output_dir (refused otherwise)."}
    )


# One reader per worker process, built by the pool's initializer: a zip handle cannot be shared or pickled.
_worker_reader: RowReader | None = None


def _init_worker(paths: list[str], dataset: str, train_ids: bool) -> None:
    global _worker_reader
    _worker_reader = RowReader(SourceFiles(paths), LAYOUTS[dataset], train_ids)


def _read_batch(pairs: list[Pair]) -> list[dict[str, Any]]:
    return [_worker_reader.read(pair) for pair in pairs]


def _ordered_rows(
    pairs: Sequence[Pair], reader: RowReader, pool: ProcessPoolExecutor | None, num_proc: int
) -> Iterator[dict[str, Any]]:
    """Rows of `pairs` in order; read in `pool` with a bounded number of batches in flight when given."""
    if pool is None:
        yield from (reader.read(pair) for pair in pairs)
        return
    batches = (list(pairs[start : start + BATCH_ROWS]) for start in range(0, len(pairs), BATCH_ROWS))
    pending: deque[Future] = deque()
    try:
        for batch in batches:
            pending.append(pool.submit(_read_batch, batch))
            if len(pending) >= num_proc * BATCHES_IN_FLIGHT_PER_PROCESS:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _process_pool(args: PrepareArguments) -> ProcessPoolExecutor | None:
    if args.num_proc == 1:
        return None
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)  # fork: no re-import per worker
    return ProcessPoolExecutor(
        args.num_proc, mp_context=context, initializer=_init_worker,
        initargs=([str(path) for path in args.source], args.dataset, args.train_ids),
    )  # fmt: skip


def _features(layout: DatasetLayout) -> datasets.Features:
    columns = {"image": datasets.Image(), "annotation": datasets.Image()}
    return datasets.Features({**columns, **{column: datasets.Value("string") for column in layout.id_columns}})


def _warn_on_counts(layout: DatasetLayout, pairs: dict[str, list[Pair]]) -> None:
    for split, official in layout.official_counts.items():
        found = len(pairs.get(split, ()))
        if split in pairs and found != official:
            logger.warning(
                "%s split %r: %d image/annotation pairs, the official release has %d. Fine for a subset; otherwise "
                "check that every archive was passed and is complete.",
                layout.name, split, found, official,
            )


def prepare_dataset(args: PrepareArguments) -> Path:
    """Build the dataset `args` describe; returns the output folder (and pushes it when asked)."""
    if args.dataset not in LAYOUTS:
        raise DatasetPreparationError(f"--dataset {args.dataset!r} is not one of {list(LAYOUTS)}.")
    if args.num_proc < 1:
        raise DatasetPreparationError(f"--num_proc must be at least 1, got {args.num_proc}.")
    layout = LAYOUTS[args.dataset]
    max_shard_bytes = parse_size(args.max_shard_size)
    output = Path(args.output_dir).resolve()
    check_output_dir(output, args.overwrite_output_dir, "--overwrite_output_dir")
    with SourceFiles(args.source) as files:
        reader = RowReader(files, layout, args.train_ids)
        pairs = layout.find_pairs(files)
        _warn_on_counts(layout, pairs)
        with staged_output_dir(output) as staging:
            (staging / "data").mkdir()
            pool = _process_pool(args)
            try:
                summaries = [
                    _write_split(staging / "data", split, split_pairs, reader, max_shard_bytes, pool, args.num_proc)
                    for split, split_pairs in pairs.items()
                ]
            finally:
                if pool is not None:
                    pool.shutdown(cancel_futures=True)
            write_id2label_file(staging, layout.label_set.id2label)
            card = card_text(layout, summaries, args.train_ids, args.push_to_hub or str(output))
            (staging / "README.md").write_text(card, encoding="utf-8")
    logger.info(
        "Wrote %s (%s). Train with: --dataset_name %s %s",
        output, ", ".join(f"{s.name}: {s.num_rows} rows in {len(s.files)} shard(s)" for s in summaries), output,
        training_flags(layout, args.train_ids),
    )
    if args.push_to_hub:
        push_to_hub(output, args.push_to_hub, args.private, layout)
    return output


def _write_split(
    folder: Path,
    split: str,
    pairs: Sequence[Pair],
    reader: RowReader,
    max_shard_bytes: int,
    pool: ProcessPoolExecutor | None,
    num_proc: int,
) -> SplitSummary:
    """Decode, check and write one split's pairs, in order, into its shards."""
    writer = ShardWriter(folder, split, _features(reader.layout), max_shard_bytes)
    with tqdm(total=len(pairs), desc=f"{reader.layout.name} {split}", unit="img") as bar:
        for row in _ordered_rows(pairs, reader, pool, num_proc):
            writer.write(row)
            bar.update()
    return writer.close()


def push_to_hub(folder: Path, repo_id: str, private: bool, layout: DatasetLayout) -> None:
    """Upload a prepared folder as a Hub dataset repo (created if needed)."""
    if layout.name == "cityscapes" and not private:
        logger.warning("The Cityscapes licence forbids redistribution: push with --private to keep the copy private.")
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), repo_type="dataset", commit_message=f"Add {layout.name} dataset"
    )
    logger.info("Pushed %s to https://huggingface.co/datasets/%s", folder, repo_id)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 with a one-line message on bad input)."""
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.INFO)
    parser = HfArgumentParser(PrepareArguments)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    try:
        prepare_dataset(args)
    except (DatasetPreparationError, OutputFolderError) as error:
        return report_error(error, 2)
    return 0
