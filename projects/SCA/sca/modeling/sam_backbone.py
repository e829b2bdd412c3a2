"""SAM's ViT image encoder as a Detectron2 backbone."""

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from .cuda_graph import CUDAGraphForward
from .sam_builder import build_sam_image_encoder


@BACKBONE_REGISTRY.register()
class SAMImageEncoder(Backbone):
    """Wraps ``segment_anything.modeling.ImageEncoderViT``; one output, ``"sam"``, of stride
    ``PATCH_SIZE`` and ``PROMPT_EMBED_DIM`` channels (SAM: 256 x 64 x 64 for a 1024 input)."""

    def __init__(self, cfg: CfgNode, input_shape: ShapeSpec | None = None):
        super().__init__()
        self.image_encoder = build_sam_image_encoder(cfg)
        self._out_features = ["sam"]
        self._out_feature_channels = {"sam": cfg.MODEL.SCA.SAM.PROMPT_EMBED_DIM}
        self._out_feature_strides = {"sam": cfg.MODEL.SCA.SAM.PATCH_SIZE}
        self.img_size = cfg.INPUT.IMAGE_SIZE
        self.cuda_graph = None
        if cfg.MODEL.SCA.SAM.ENCODER_CUDA_GRAPH:
            self.cuda_graph = CUDAGraphForward(self.image_encoder)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.cuda_graph is not None and images.is_cuda and not torch.is_grad_enabled():
            return {"sam": self.cuda_graph(images)}
        return {"sam": self.image_encoder(images)}

    @property
    def size_divisibility(self) -> int:
        return self.img_size
