"""segret-hf: SegRet semantic segmentation for the Hugging Face stack.

Importing the package registers SegRet with transformers' Auto classes (`AutoConfig`, `AutoModel`,
`AutoModelForSemanticSegmentation`, `AutoImageProcessor`) and marks the classes for remote code, so that
`save_pretrained` writes an `auto_map` plus the modelling files and the saved folder (or Hub repo) also
loads with `trust_remote_code=True` where segret_hf is not installed.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForSemanticSegmentation
from transformers.pipelines.image_segmentation import ImageSegmentationPipeline

from .configuration_segret import SEGRET_VARIANTS, SegRetConfig
from .image_processing_segret import SegRetImageProcessor
from .modeling_segret import SegRetForSemanticSegmentation, SegRetModel, SegRetPreTrainedModel

AutoConfig.register(SegRetConfig.model_type, SegRetConfig, exist_ok=True)
AutoModel.register(SegRetConfig, SegRetModel, exist_ok=True)
AutoModelForSemanticSegmentation.register(SegRetConfig, SegRetForSemanticSegmentation, exist_ok=True)
AutoImageProcessor.register(SegRetConfig, fast_image_processor_class=SegRetImageProcessor, exist_ok=True)

SegRetConfig.register_for_auto_class("AutoConfig")
SegRetModel.register_for_auto_class("AutoModel")
SegRetForSemanticSegmentation.register_for_auto_class("AutoModelForSemanticSegmentation")
SegRetImageProcessor.register_for_auto_class("AutoImageProcessor")

# The image-segmentation pipeline declares which processors it loads but leaves the video processor
# undecided, so it probes `AutoVideoProcessor`, which derives a (non-existent) remote video processor from
# our image processor's `auto_map` and asks interactively whether to trust it. It never uses a video
# processor: say so, and `pipeline("image-segmentation", model=folder)` loads without a prompt.
ImageSegmentationPipeline._load_video_processor = False

__all__ = [
    "SEGRET_VARIANTS",
    "SegRetConfig",
    "SegRetForSemanticSegmentation",
    "SegRetImageProcessor",
    "SegRetModel",
    "SegRetPreTrainedModel",
]
