"""SCA's model: importing this module registers its meta-architecture, backbone and ROI head."""

from .build import build_sca_model
from .caption_head import SCACaptionHead
from .meta_arch import SegmentCaptionAnything
from .sam_backbone import SAMImageEncoder

__all__ = ["SAMImageEncoder", "SCACaptionHead", "SegmentCaptionAnything", "build_sca_model"]
