"""segment_anything's channel LayerNorm as one fused call."""

import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import Tensor


class FusedLayerNorm2d(LayerNorm2d):
    """segment_anything's channel LayerNorm of (B, C, H, W) maps as one ``F.layer_norm`` over
    the channels of each pixel (same statistics, same eps), instead of six element-wise passes:
    the mask decoder's upscaling runs it on every region's 64 x 128 x 128 map."""

    def forward(self, x: Tensor) -> Tensor:
        channels_last = x.permute(0, 2, 3, 1)
        out = F.layer_norm(channels_last, (x.shape[1],), self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)
