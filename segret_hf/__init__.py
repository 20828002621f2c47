"""segret-hf: SegRet semantic segmentation for the Hugging Face stack.

Importing the package registers SegRet with transformers' Auto classes (`AutoConfig`, `AutoModel`,
`AutoModelForSemanticSegmentation`, `AutoBackbone`, `AutoImageProcessor`) and marks the classes for remote
code, so that `save_pretrained` writes an `auto_map` plus the modelling files and the saved folder (or Hub
repo) also loads with `trust_remote_code=True` where segret_hf is not installed.
"""

from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForSemanticSegmentation,
    AutoVideoProcessor,
)

from .configuration_segret import SEGRET_VARIANTS, SegRetConfig
from .image_processing_segret import SegRetImageProcessor
from .modeling_segret import SegRetBackbone, SegRetForSemanticSegmentation, SegRetModel, SegRetPreTrainedModel

AutoConfig.register(SegRetConfig.model_type, SegRetConfig, exist_ok=True)
AutoModel.register(SegRetConfig, SegRetModel, exist_ok=True)
AutoModelForSemanticSegmentation.register(SegRetConfig, SegRetForSemanticSegmentation, exist_ok=True)
AutoBackbone.register(SegRetConfig, SegRetBackbone, exist_ok=True)
AutoImageProcessor.register(SegRetConfig, fast_image_processor_class=SegRetImageProcessor, exist_ok=True)
# SegRet has no video processor, and says so. Pipelines probe `AutoVideoProcessor` on every model folder; for
# an image processor saved with an `auto_map` that probe derives a remote `SegRetVideoProcessor`, which does not
# exist, and asks interactively whether to trust it. Registered as "none", the probe ends without a question.
AutoVideoProcessor.register(SegRetConfig, None, exist_ok=True)

SegRetConfig.register_for_auto_class("AutoConfig")
SegRetModel.register_for_auto_class("AutoModel")
SegRetForSemanticSegmentation.register_for_auto_class("AutoModelForSemanticSegmentation")
SegRetBackbone.register_for_auto_class("AutoBackbone")
SegRetImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "SEGRET_VARIANTS",
    "SegRetBackbone",
    "SegRetConfig",
    "SegRetForSemanticSegmentation",
    "SegRetImageProcessor",
    "SegRetModel",
    "SegRetPreTrainedModel",
]
