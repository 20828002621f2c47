"""Conversion of original SegRet (mmsegmentation) and RMT (ImageNet) checkpoints to this package's format.

A conversion is a few steps, each one call, that the `segret-convert` command (`segret_hf.cli.convert`) and
training's backbone initialisation compose:

1. :func:`load_original_checkpoint`: the file's tensors, its format (detected) and class names;
2. :func:`resolve_labels`: the classes, from every source that states them, refusing disagreement;
3. :func:`conversion_config` (a variant or the original constructor's arguments) and :func:`convert`: the
   model, every original tensor mapped or explicitly dropped, any mismatch an error naming the keys;
4. :func:`release_processor` and :func:`write_folder`: the Hub-ready folder, written all or nothing;
5. :func:`push`: the upload.

Which stages use decomposed retention is not in the weights: it comes from the variant or the architecture.
:func:`original_parameter_name` maps a parameter back to its original name (the released optimiser rules
match those).
"""

from .architecture import config_from_architecture, conversion_config
from .checkpoint import (
    MMSEG_FORMAT,
    RMT_IMAGENET_FORMAT,
    CheckpointConversionError,
    OriginalCheckpoint,
    file_sha256,
    load_original_checkpoint,
)
from .folder import push, release_processor, write_folder
from .keys import original_parameter_name
from .labels import LabelSpec, resolve_labels
from .weights import Conversion, convert

__all__ = [
    "MMSEG_FORMAT",
    "RMT_IMAGENET_FORMAT",
    "CheckpointConversionError",
    "Conversion",
    "LabelSpec",
    "OriginalCheckpoint",
    "config_from_architecture",
    "conversion_config",
    "convert",
    "file_sha256",
    "load_original_checkpoint",
    "original_parameter_name",
    "push",
    "release_processor",
    "resolve_labels",
    "write_folder",
]
