"""Original SegRet (mmsegmentation) and RMT (ImageNet) checkpoint files: loading, format detection, identity.

Nothing here knows this package's parameter names; :mod:`.weights` maps the tensors loaded here.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..checkpoint_files import REFETCH, check_torch_file

MMSEG_FORMAT = "mmseg"
"""A whole SegRet (backbone and decoder) saved by mmsegmentation: `{"state_dict": ..., "meta": ...}`."""
RMT_IMAGENET_FORMAT = "rmt_imagenet"
"""A backbone-only RMT classification checkpoint: `{"model": ...}`; the decoder of its conversion starts fresh."""


class CheckpointConversionError(ValueError):
    """An original checkpoint does not match the architecture it is being converted to."""


@dataclass(frozen=True)
class OriginalCheckpoint:
    """Tensors of an original checkpoint and what the file says about itself."""

    format: str
    backbone: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor]
    class_names: list[str] | None = None

    @property
    def decoder_trained(self) -> bool:
        """Whether the checkpoint brings a trained decoder (mmseg), not only a backbone."""
        return self.format == MMSEG_FORMAT

    @property
    def description(self) -> str:
        """What kind of checkpoint this is, in words, for model cards."""
        if self.decoder_trained:
            return "SegRet mmsegmentation checkpoint"
        return "RMT ImageNet-1k classification checkpoint"

    def backbone_only(self) -> OriginalCheckpoint:
        """This checkpoint without its decoder and classes, converted as a backbone-only one (decoder fresh)."""
        return replace(self, format=RMT_IMAGENET_FORMAT, head={}, class_names=None)


def load_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """Load a SegRet mmsegmentation or RMT ImageNet checkpoint (`weights_only=True`) and detect which it is.

    An empty, truncated or damaged file, or one that is not a PyTorch file, is reported as such (naming it)
    before `torch.load` would fail with an internal message.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    check_torch_file(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointConversionError(
            f"{path} holds objects other than tensors and plain containers, which are not loaded for safety "
            f"(torch.load(weights_only=True)): {error}"
        ) from None
    except (RuntimeError, EOFError, IndexError, KeyError) as error:  # the file's structure is damaged
        raise CheckpointConversionError(f"{path} cannot be read as a PyTorch checkpoint ({error}). {REFETCH}") from None
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        state = raw["state_dict"]
        unknown = sorted(k for k in state if not k.startswith(("backbone.", "decode_head.")))
        if unknown:
            raise CheckpointConversionError(
                f"{path} looks like an mmsegmentation checkpoint but has keys outside backbone./decode_head.: "
                f"{unknown[:10]}"
            )
        backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        head = {k: v for k, v in state.items() if k.startswith("decode_head.")}
        meta = raw.get("meta") or {}
        classes = meta.get("CLASSES") if isinstance(meta, dict) else None
        return OriginalCheckpoint(MMSEG_FORMAT, backbone, head, class_names=list(classes) if classes else None)
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        return OriginalCheckpoint(RMT_IMAGENET_FORMAT, dict(raw["model"]), {})
    keys = sorted(raw)[:10] if isinstance(raw, dict) else type(raw).__name__
    raise CheckpointConversionError(
        f"{path} is neither a SegRet mmsegmentation checkpoint (a dict with 'state_dict') nor an RMT ImageNet "
        f"checkpoint (a dict with 'model'); found {keys}."
    )



def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints can be GBs): the model card identifies its source by it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
