"""Where inference finds the regions it captions: the meta-arch's ``prompt_source``.

One module with one interface, held by the meta-arch as Detectron2's ``GeneralizedRCNN`` holds
its ``proposal_generator``, and chosen by MODEL.SCA.PROPOSAL_SOURCE (:func:`build_prompt_source`):

- "gt" (:class:`GivenPrompts`): each input's ``proposals`` (boxes and/or points), else its
  ground-truth ``instances``;
- "grid" (:class:`GridPrompts`): each input's ``proposals``, else a point grid;
- "rpn" (:class:`RPNPrompts`): the boxes of the meta-arch's proposal head, whatever the inputs
  hold, ranked as dense captions;
- "anything" (:class:`AnythingPrompts`): SAM's automatic mask generation, ranked likewise.

Sources hold no weights (the proposal head stays the meta-arch's ``proposal_head``, under its
checkpoint keys): each call gets the model and uses a few of its calls. Prompts that the inputs
hold are read before the image encoder runs, so that their boxes are checked, and copied to the
device, before any GPU work is queued (a copy from pageable memory waits for the queued work).
"""

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from detectron2.config import CfgNode
from detectron2.structures import Boxes, Instances
from segment_anything.utils.amg import build_point_grid
from torch import Tensor, nn

from .anything import AnythingGenerator, AnythingParams
from .caption_head import RegionPredictions
from .postprocess import input_size
from .prompt_fields import prompts_from_fields
from .sam_regions import RegionPrompts

logger = logging.getLogger(__name__)


@dataclass
class FoundRegions:
    """One input's captioned regions in its input frame (as :func:`sca_postprocess` reads
    them), and the scores that rank them as dense captions (None: kept as found)."""

    instances: Instances
    proposal_scores: Tensor | None = None


class PromptSource(nn.Module, ABC):
    """The interface: ``source(model, batched_inputs, image_embeddings=None)`` returns one
    :class:`FoundRegions` per input. ``model`` is the :class:`SegmentCaptionAnything` it serves;
    ``image_embeddings`` (B, C, h, w), when given, replace running the image encoder."""

    @abstractmethod
    def forward(
        self, model: nn.Module, batched_inputs: list[dict], image_embeddings: Tensor | None = None
    ) -> list[FoundRegions]: ...


class GivenPrompts(PromptSource):
    """Each input's ``proposals`` (``proposal_boxes`` and/or ``proposal_points`` and
    ``proposal_point_labels``), else its ``instances`` (``gt_boxes``, optional ``gt_points``)."""

    def forward(
        self, model: nn.Module, batched_inputs: list[dict], image_embeddings: Tensor | None = None
    ) -> list[FoundRegions]:
        prompts = [self.prompts(model, x) for x in batched_inputs]
        embeddings = _encoded(model, batched_inputs, image_embeddings)
        return [
            FoundRegions(r) for r in caption_prompts(model, embeddings, prompts, batched_inputs)
        ]

    def prompts(self, model: nn.Module, x: dict) -> RegionPrompts:
        if "proposals" in x:
            return _given(model, x["proposals"], "proposal", x)
        return self.default_prompts(model, x)

    def default_prompts(self, model: nn.Module, x: dict) -> RegionPrompts:
        """The prompts of an input without ``proposals``."""
        if "instances" not in x:
            raise KeyError(
                "MODEL.SCA.PROPOSAL_SOURCE='gt' needs 'proposals' or 'instances' in each input"
            )
        return _given(model, x["instances"], "gt", x)


class GridPrompts(GivenPrompts):
    """Each input's ``proposals``, else a ``points_per_side`` x ``points_per_side`` grid of
    foreground points over its image, one point per prompt."""

    def __init__(self, points_per_side: int):
        super().__init__()
        self.points_per_side = points_per_side

    def extra_repr(self) -> str:
        return f"points_per_side={self.points_per_side}"

    def default_prompts(self, model: nn.Module, x: dict) -> RegionPrompts:
        h, w = input_size(x)
        grid = torch.as_tensor(build_point_grid(self.points_per_side), dtype=torch.float32)
        points = (grid * torch.tensor([w, h])).to(model.device)[:, None, :]
        labels = torch.ones(points.shape[:2], dtype=torch.long, device=model.device)
        return RegionPrompts(points=points, point_labels=labels)


class RPNPrompts(PromptSource):
    """The boxes that the meta-arch's ``proposal_head`` finds on each image embedding, ranked
    by their objectness probability (dense captioning)."""

    def forward(
        self, model: nn.Module, batched_inputs: list[dict], image_embeddings: Tensor | None = None
    ) -> list[FoundRegions]:
        embeddings = _encoded(model, batched_inputs, image_embeddings)
        found, _ = model.proposal_head(embeddings, [input_size(x) for x in batched_inputs])
        prompts = [_given(model, f, "proposal", x) for f, x in zip(found, batched_inputs)]
        results = caption_prompts(model, embeddings, prompts, batched_inputs)
        return [FoundRegions(r, f.objectness_logits.sigmoid()) for r, f in zip(results, found)]


class AnythingPrompts(PromptSource):
    """The regions of SAM's automatic mask generation (:class:`AnythingGenerator`) on each
    input's image, ranked by SAM's predicted IoU."""

    def __init__(self, params: AnythingParams):
        super().__init__()
        self.params = params

    def extra_repr(self) -> str:
        return repr(self.params)

    def forward(
        self, model: nn.Module, batched_inputs: list[dict], image_embeddings: Tensor | None = None
    ) -> list[FoundRegions]:
        embeddings = _encoded(model, batched_inputs, image_embeddings)
        generator = AnythingGenerator(model, self.params)
        found = []
        for i, x in enumerate(batched_inputs):
            image = x["image"].permute(1, 2, 0).cpu().numpy()  # already resized: encoded as it is
            regions = generator.generate(image, image_embedding=embeddings[i : i + 1])
            instances = Instances(regions.image_size)
            instances.pred_boxes = regions.pred_boxes
            instances.pred_masks = regions.pred_masks
            instances.pred_captions = regions.pred_captions
            instances.caption_scores = regions.caption_scores
            instances.iou_predictions = regions.scores
            found.append(FoundRegions(instances, regions.scores))
        return found


def build_prompt_source(cfg: CfgNode, name: str | None = None) -> PromptSource:
    """The prompt source ``name`` (by default MODEL.SCA.PROPOSAL_SOURCE), with its settings from
    ``cfg``."""
    sca = cfg.MODEL.SCA
    name = name or sca.PROPOSAL_SOURCE
    if name == "gt":
        logger.info(
            "No proposal source (MODEL.SCA.PROPOSAL_SOURCE='gt'): regions are prompted with "
            "the given boxes (each input's proposals, else its ground-truth boxes)"
        )
        return GivenPrompts()
    if name == "grid":
        return GridPrompts(sca.ANYTHING.POINTS_PER_SIDE)
    if name == "rpn":
        if not sca.PROPOSALS.ENABLED:
            raise ValueError(
                "MODEL.SCA.PROPOSAL_SOURCE='rpn' needs the proposal head: "
                "MODEL.SCA.PROPOSALS.ENABLED True"
            )
        return RPNPrompts()
    if name == "anything":
        return AnythingPrompts(AnythingParams.from_config(cfg))
    raise ValueError(f"MODEL.SCA.PROPOSAL_SOURCE={name!r}: expected gt, grid, rpn or anything")


def caption_prompts(
    model: nn.Module, embeddings: Tensor, prompts: list[RegionPrompts], batched_inputs: list[dict]
) -> list[Instances]:
    """The caption head's regions for each input's prompts, in the input frame."""
    predictions = model.roi_heads.inference(embeddings, prompts)
    return [
        _region_instances(p, pred, input_size(x), model.device)
        for p, pred, x in zip(prompts, predictions, batched_inputs)
    ]


def _region_instances(
    prompts: RegionPrompts,
    pred: RegionPredictions,
    input_hw: tuple[int, int],
    device: torch.device,
) -> Instances:
    """SAM's three masks (``mask_logits``) and their ``iou_predictions``, the best one's IoU
    (``scores``), the caption and the prompt box (``pred_boxes``, for box prompts) per region."""
    out = Instances(input_hw)
    n = len(prompts)
    if n == 0:
        out.pred_boxes = Boxes(torch.zeros(0, 4, device=device))
        out.scores = torch.zeros(0, device=device)
        out.pred_masks = torch.zeros((0, *input_hw), dtype=torch.bool, device=device)
        out.pred_captions = []
        out.caption_scores = torch.zeros(0, device=device)
        return out
    iou = pred.sam.iou_predictions.float()
    if prompts.boxes is not None:
        out.pred_boxes = Boxes(prompts.boxes)
    out.scores = iou[torch.arange(n), iou.argmax(dim=1)]
    out.pred_captions = pred.captions
    out.caption_scores = pred.caption_scores.to(device)
    out.mask_logits = pred.sam.mask_logits.float()
    out.iou_predictions = iou
    return out


def _given(model: nn.Module, inst: Instances, prefix: str, x: dict) -> RegionPrompts:
    return prompts_from_fields(inst, prefix, x, model.device, model.out_of_image_boxes)


def _encoded(
    model: nn.Module, batched_inputs: list[dict], image_embeddings: Tensor | None
) -> Tensor:
    """The given image embeddings, else the image encoder's."""
    if image_embeddings is None:
        return model.image_embeddings(batched_inputs)
    return image_embeddings
