"""Class-agnostic region proposals on SAM's image embedding, from Detectron2's own parts.

SCA captions the regions it is given; dense captioning must find them too. The proposal head reads
the (single-scale) SAM image embedding, optionally through ViTDet's simple feature pyramid, and
runs Detectron2's ``PROPOSAL_GENERATOR`` (``RPN`` by default, configured by ``MODEL.RPN.*`` and
``MODEL.ANCHOR_GENERATOR.*``), trained on the region boxes of the training data.
"""

from __future__ import annotations

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone, SimpleFeaturePyramid, build_proposal_generator
from detectron2.structures import ImageList, Instances
from torch import nn


class _EmbeddingFeature(Backbone):
    """The image embedding, already computed, as a one-feature backbone: what ViTDet's
    :class:`SimpleFeaturePyramid` expects as its ``net``, without running the encoder again."""

    def __init__(self, name: str, shape: ShapeSpec):
        super().__init__()
        self._out_features = [name]
        self._out_feature_channels = {name: shape.channels}
        self._out_feature_strides = {name: shape.stride}

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self._out_features[0]: embedding}


class SCAProposalHead(nn.Module):
    """Scored, class-agnostic boxes (``proposal_boxes``, ``objectness_logits``) per image.

    ``MODEL.SCA.PROPOSALS.PYRAMID_SCALES`` empty: the generator reads the embedding itself as the
    feature ``"sam"``; otherwise it reads the pyramid levels ``"p<log2 stride>"``. The generator's
    ``IN_FEATURES`` must name features that exist (checked here, with the names that do).
    """

    def __init__(self, cfg: CfgNode, embedding_shape: ShapeSpec, feature_name: str = "sam"):
        super().__init__()
        prop = cfg.MODEL.SCA.PROPOSALS
        self.feature_name = feature_name
        shapes = {feature_name: embedding_shape}
        self.pyramid = None
        if prop.PYRAMID_SCALES:
            self.pyramid = SimpleFeaturePyramid(
                _EmbeddingFeature(feature_name, embedding_shape),
                in_feature=feature_name,
                out_channels=prop.PYRAMID_CHANNELS,
                scale_factors=tuple(prop.PYRAMID_SCALES),
                norm=prop.PYRAMID_NORM,
            )
            shapes = self.pyramid.output_shape()
        in_features = list(cfg.MODEL.RPN.IN_FEATURES)
        missing = [f for f in in_features if f not in shapes]
        if missing:
            raise ValueError(
                f"MODEL.RPN.IN_FEATURES={in_features}: {missing} do not exist; the proposal head "
                f"has the features {sorted(shapes)} (MODEL.SCA.PROPOSALS.PYRAMID_SCALES="
                f"{list(prop.PYRAMID_SCALES)})"
            )
        self.generator = build_proposal_generator(cfg, shapes)
        self.detach_embedding = prop.DETACH_EMBEDDING

    def forward(
        self,
        embeddings: torch.Tensor,
        image_sizes: list[tuple[int, int]],
        gt_instances: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """Proposals in the input frame of each image (its unpadded size ``image_sizes[i]``) and,
        in training, the generator's losses against ``gt_instances[i].gt_boxes``."""
        if self.detach_embedding:
            embeddings = embeddings.detach()
        if self.pyramid is not None:
            features = self.pyramid(embeddings)
        else:
            features = {self.feature_name: embeddings}
        return self.generator(ImageList(embeddings, image_sizes), features, gt_instances)
