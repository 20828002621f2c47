"""Rows whose image or label map cannot be decoded, met while training: named, or skipped and counted.

Only a sample of rows is checked before training (`--rows_to_check`), so a corrupt file further on is met
mid-run, in a data-loader worker, where `datasets` raises `cannot identify image file <_io.BytesIO ...>`
naming neither dataset, split, row nor column. :class:`ReadableRows` wraps a prepared map-style split: a row
that fails to decode raises a :class:`SegmentationDataError` that names all four, or, with
`--skip_unreadable_samples`, is replaced by the next readable row (so every batch keeps its size and a
resumed run sees the same samples), logged, and counted for the model card.

Only decoding failures count as unreadable; a readable row whose label values or sizes are wrong still stops
the run (it is the dataset's description, not one file, that is wrong).
"""

from __future__ import annotations

import logging
from typing import Any

import datasets
import torch

from .data import SegmentationDataError, SplitSource

logger = logging.getLogger(__name__)

SKIP_FLAG = "--skip_unreadable_samples"


def _is_unreadable(error: BaseException) -> bool:
    """A decoder's failure (PIL and torchvision raise OSError subclasses), bare or wrapped by the transform."""
    return isinstance(error, OSError) or isinstance(error.__cause__, OSError)


class ReadableRows(torch.utils.data.Dataset):
    """A prepared split (`with_transform` applied) whose undecodable rows are reported or skipped.

    Args:
        split: the prepared split, as the Trainer would read it.
        encoded: the same rows before decoding (image columns left as stored), to tell which column fails.
        source: dataset, split and column names for messages.
        skip: replace unreadable rows by the next readable one instead of raising.
    """

    def __init__(self, split: datasets.Dataset, encoded: datasets.Dataset, source: SplitSource, skip: bool) -> None:
        self.split = split
        self.encoded = encoded
        self.source = source
        self.skip = skip
        # One flag per row in shared memory, so skips seen by data-loader workers are counted here too.
        self._unreadable = torch.zeros(len(split), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        try:
            return self.split.__getitems__(indices)
        except Exception as error:
            if not _is_unreadable(error):
                raise
        return [self._readable_row(index) for index in indices]

    @property
    def skipped_rows(self) -> list[int]:
        """Rows found unreadable and skipped so far (in this process and its data-loader workers)."""
        return torch.nonzero(self._unreadable).flatten().tolist()

    def _readable_row(self, index: int) -> dict[str, Any]:
        for offset in range(len(self.split)):
            row = (index + offset) % len(self.split)
            try:
                return self.split.__getitems__([row])[0]
            except Exception as error:
                if not _is_unreadable(error):
                    raise
                problem = self._describe(row, error)
                if not self.skip:
                    raise SegmentationDataError(
                        f"{problem}. Replace or remove that row, or pass {SKIP_FLAG} to train on without it."
                    ) from error
                if not self._unreadable[row]:
                    self._unreadable[row] = True
                    logger.warning("Skipping an unreadable row (%s): %s", SKIP_FLAG, problem)
        raise SegmentationDataError(f"{self.source.where()}: no row can be decoded; check the dataset's files.")

    def _describe(self, row: int, error: BaseException) -> str:
        """`dataset ..., split ..., column ..., row N: <decoder message>` for the column that fails to decode."""
        if isinstance(error, SegmentationDataError):
            return str(error)  # the transform already named the row and column
        for column in (self.source.image_column, self.source.label_column):
            if not isinstance(self.encoded.features.get(column), datasets.Image):
                continue
            try:
                stored = self.encoded.select_columns([column]).cast_column(column, datasets.Image(decode=False))
                value = stored[row][column]
                datasets.Image().decode_example(value).load()
            except (OSError, ValueError) as decode_error:
                return f"{self.source.where(row, column)}: {decode_error}"
        return f"{self.source.where(row)}: {error}"
