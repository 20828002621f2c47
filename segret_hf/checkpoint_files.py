"""Checks of checkpoint files before they are loaded, with errors that name the file and what is wrong.

A truncated download, an interrupted copy or a file of the wrong kind otherwise surfaces as a loader's
internal message (`PytorchStreamReader failed reading zip archive`, `SafetensorError: incomplete metadata`,
`EOFError`, `Expecting value: line 1 column 1`) that names neither the file nor the remedy. Every check here
reads only what the format lets it verify cheaply and completely: a PyTorch file's zip directory and
checksums, a safetensors header against the file size, a JSON document.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

REFETCH = "Copy or download it again, or use another checkpoint."
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_2_PLUS = b"\x80"  # PyTorch's legacy (non-zip) format is a pickle stream


class CheckpointFileError(ValueError):
    """A checkpoint file is empty, truncated, corrupt or not of the expected format; the message names it."""


def _check_not_empty(path: Path) -> None:
    if not path.is_file():
        raise CheckpointFileError(f"{path} does not exist or is not a file.")
    if path.stat().st_size == 0:
        raise CheckpointFileError(f"{path} is empty (0 bytes): it was not completely written. {REFETCH}")


def check_torch_file(path: str | Path) -> None:
    """Raise CheckpointFileError unless `path` is a complete PyTorch file (`torch.save` output).

    Zip-format files (every PyTorch since 1.6) are checked member by member against their CRC-32, so a
    truncated or damaged file is reported before `torch.load` fails half-way with an internal message.
    """
    path = Path(path)
    _check_not_empty(path)
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, EOFError, OSError) as error:
            raise CheckpointFileError(f"{path} is truncated or corrupt ({error}). {REFETCH}") from None
        if damaged is not None:
            raise CheckpointFileError(f"{path} is corrupt: its part {damaged!r} fails its checksum. {REFETCH}")
    elif not head.startswith(_PICKLE_PROTOCOL_2_PLUS):
        raise CheckpointFileError(
            f"{path} is not a PyTorch checkpoint (a torch.save file starts with a zip or pickle header; this one "
            f"starts with {head!r}). {REFETCH}"
        )


def check_safetensors_file(path: str | Path) -> None:
    """Raise CheckpointFileError unless `path` is a complete safetensors file (header and every byte it lists)."""
    path = Path(path)
    _check_not_empty(path)
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except SafetensorError as error:
        raise CheckpointFileError(f"{path} is truncated or corrupt ({error}). {REFETCH}") from None


def read_json_file(path: str | Path, what: str) -> Any:
    """The parsed JSON document at `path`; a CheckpointFileError naming `what`, the file and the position."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointFileError(f"{what} {path} is not valid JSON ({error}). Fix or replace the file.") from None


def check_weight_files(folder: str | Path) -> None:
    """Check every weight and JSON file of a saved model or checkpoint folder (those present)."""
    folder = Path(folder)
    for path in sorted(folder.glob("*.json")):
        read_json_file(path, "The file")
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors_file(path)
    for pattern in ("*.bin", "*.pt", "*.pth"):
        for path in sorted(folder.glob(pattern)):
            check_torch_file(path)
