"""segret-hf: SegRet semantic segmentation for the Hugging Face stack."""

from .configuration_segret import SEGRET_VARIANTS, SegRetConfig

__all__ = ["SEGRET_VARIANTS", "SegRetConfig"]
