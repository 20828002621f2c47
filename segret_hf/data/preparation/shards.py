"""Rows -> the Hub's parquet shards (`data/<split>-00000-of-00003.parquet`), written as the rows arrive.

Rows are buffered only up to one row group (100 rows, the size the Hub uses for image datasets, so that the
dataset viewer and streaming read small pieces; fewer when they reach 64 MiB), then appended to the open shard; a shard is closed when the
next row would take it past `max_shard_size`. Memory therefore depends on the row-group size, not on the
number of rows. The `-of-N` total is known only at the end, so shards are renamed when the split is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DatasetPreparationError

ROW_GROUP_ROWS = 100
"""Rows per parquet row group."""

ROW_GROUP_MAX_BYTES = 64 * 2**20
"""A row group is written early once its rows hold this many bytes (large images, e.g. Cityscapes' 2 MB PNGs)."""

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """`"500MB"` -> 500_000_000 bytes; units B, KB, MB, GB (powers of 10) and KiB, MiB, GiB (powers of 2)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", str(text), flags=re.IGNORECASE)
    if match is None or float(match[1]) <= 0:
        raise DatasetPreparationError(
            f"--max_shard_size {text!r} is not a size; write a positive number with a unit, e.g. 500MB or 1GiB."
        )
    return int(float(match[1]) * _UNITS[(match[2] or "").upper()])


def shard_name(split: str, index: int, count: int) -> str:
    """The Hub's shard file name, e.g. `train-00000-of-00003.parquet`."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


@dataclass(frozen=True)
class SplitSummary:
    """What one written split holds: rows, payload bytes (images + annotations) and its shard files."""

    name: str
    num_rows: int
    num_bytes: int
    files: tuple[Path, ...]


class ShardWriter:
    """Writes one split's rows into size-limited parquet shards in `folder`; :meth:`close` names them."""

    def __init__(self, folder: Path, split: str, features: datasets.Features, max_shard_bytes: int) -> None:
        self.folder = folder
        self.split = split
        self.schema = features.arrow_schema  # carries the features (Image columns) in its metadata
        self.max_shard_bytes = max_shard_bytes
        self._buffer: list[dict[str, Any]] = []
        self._buffer_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._shard_bytes = 0
        self._paths: list[Path] = []
        self.num_rows = 0
        self.num_bytes = 0

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (image columns as `{"bytes", "path"}`), starting a new shard when this one is full."""
        size = _payload_bytes(row)
        if self._shard_bytes and self._shard_bytes + size > self.max_shard_bytes:
            self._close_shard()
        self._buffer.append(row)
        self._buffer_bytes += size
        self._shard_bytes += size
        self.num_rows += 1
        self.num_bytes += size
        if len(self._buffer) >= ROW_GROUP_ROWS or self._buffer_bytes >= ROW_GROUP_MAX_BYTES:
            self._flush()

    def close(self) -> SplitSummary:
        """Finish the last shard and give every shard its `-of-N` name."""
        self._close_shard()
        if not self._paths:
            raise DatasetPreparationError(f"Split {self.split!r} has no rows to write.")
        final = []
        for index, path in enumerate(self._paths):
            target = path.with_name(shard_name(self.split, index, len(self._paths)))
            path.rename(target)
            final.append(target)
        return SplitSummary(self.split, self.num_rows, self.num_bytes, tuple(final))

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            path = self.folder / f"{self.split}-partial-{len(self._paths):05d}.parquet"
            # JPEG and PNG bytes are compressed already and all distinct: compressing or dictionary-encoding
            # them again would only cost time. Identifier strings repeat (cities) and keep their dictionary.
            identifiers = [field.name for field in self.schema if not pa.types.is_struct(field.type)]
            self._writer = pq.ParquetWriter(path, self.schema, compression="none", use_dictionary=identifiers)
            self._paths.append(path)
        columns = {name: [row[name] for row in self._buffer] for name in self.schema.names}
        self._writer.write_table(pa.Table.from_pydict(columns, schema=self.schema), row_group_size=ROW_GROUP_ROWS)
        self._buffer.clear()
        self._buffer_bytes = 0

    def _close_shard(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._shard_bytes = 0


def _payload_bytes(row: dict[str, Any]) -> int:
    """Bytes a row adds to its shard: encoded files plus identifier strings (parquet adds little to them)."""
    return sum(
        len(value["bytes"]) if isinstance(value, dict) else len(str(value).encode("utf-8")) for value in row.values()
    )
