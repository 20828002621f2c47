"""The official downloads, zipped or extracted, seen as one list of files that can be read one at a time.

A zip archive is never extracted: its members are listed from the central directory and each is read on its
own when its row is written, so preparing a 20 GB archive needs neither 20 GB of disk nor of memory. Paths
are kept relative to the archive or folder given (POSIX separators), which is where the official layouts are
recognised, with or without the archive's top folder.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetPreparationError


@dataclass(frozen=True, order=True)
class FileRef:
    """One file of one source: the source's position in the list given, and its relative POSIX path."""

    source: int
    name: str


def _is_junk(name: str) -> bool:
    """macOS archive metadata (`__MACOSX/`, `._name`), which mirrors real file names but holds no data."""
    return name.startswith("__MACOSX/") or "/__MACOSX/" in name or name.rsplit("/", 1)[-1].startswith("._")


class SourceFiles:
    """Zip archives and folders given as `--source`, listed once and read member by member.

    Open zip handles are kept for the object's lifetime (one per archive); a process that reads in parallel
    builds its own :class:`SourceFiles` from the same paths, since a zip handle must not be shared.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        if not paths:
            raise DatasetPreparationError("No --source given: pass the official archives (zip files or folders).")
        self.paths = [Path(path) for path in paths]
        self._archives: dict[int, zipfile.ZipFile] = {}
        for index, path in enumerate(self.paths):
            if path.is_dir():
                continue
            if not path.is_file():
                raise DatasetPreparationError(f"--source {str(path)!r} does not exist.")
            try:
                self._archives[index] = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as error:
                self.close()
                raise DatasetPreparationError(
                    f"--source {str(path)!r} is not a readable zip archive ({error}); pass the official .zip "
                    "download or the folder it extracts to."
                ) from error

    def __enter__(self) -> SourceFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the zip handles."""
        for archive in self._archives.values():
            archive.close()
        self._archives.clear()

    def files(self, source: int) -> Iterator[FileRef]:
        """Every regular file of one source, junk metadata skipped."""
        archive = self._archives.get(source)
        if archive is not None:
            names = (info.filename for info in archive.infolist() if not info.is_dir())
        else:
            root = self.paths[source]
            names = (
                (Path(folder) / file).relative_to(root).as_posix()
                for folder, _, files in os.walk(root)
                for file in files
            )
        return (FileRef(source, name) for name in names if not _is_junk(name))

    def describe(self, ref: FileRef) -> str:
        """`archive.zip:member/path` or `folder/member/path`, for messages."""
        path = self.paths[ref.source]
        return f"{path}:{ref.name}" if ref.source in self._archives else str(path / ref.name)

    def read(self, ref: FileRef) -> bytes:
        """The file's bytes (a zip member is decompressed on its own, nothing is extracted to disk)."""
        try:
            archive = self._archives.get(ref.source)
            if archive is not None:
                with archive.open(ref.name) as member:
                    return member.read()
            return (self.paths[ref.source] / ref.name).read_bytes()
        except (OSError, zipfile.BadZipFile, EOFError) as error:
            raise DatasetPreparationError(f"Cannot read {self.describe(ref)}: {error}.") from error
