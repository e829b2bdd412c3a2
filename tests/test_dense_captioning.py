"""Dense captioning: the proposal head, the final ranking, and SAM's mask loss."""

import logging

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage
from pycocotools import mask as mask_utils
from tiny_models import tiny_cfg

from sca.data import SCADatasetMapper
from sca.evaluation.baselines import constant_caption, random_boxes
from sca.evaluation.mask_quality import RecoveryCounts, mask_iou
from sca.modeling.dense_ranking import rank_dense_regions
from sca.modeling.mask_loss import low_res_targets, points_in_masks, sam_mask_losses
from sca.modeling.sam_regions import RegionPrompts, decode_regions

H, W = 64, 48
RPN = {
    "MODEL.SCA.PROPOSALS.ENABLED": True,
    "MODEL.RPN.IN_FEATURES": ["sam"],
    "MODEL.ANCHOR_GENERATOR.SIZES": [[8, 16, 32]],
    "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": [[1.0]],
    "MODEL.RPN.PRE_NMS_TOPK_TEST": 50,
    "MODEL.RPN.POST_NMS_TOPK_TEST": 7,
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE": 32,
}
MASKS = {
    "MODEL.SCA.MASK_LOSS.ENABLED": True,
    "MODEL.SCA.SAM.TRAIN_PROMPT_ENCODER": True,
    "MODEL.SCA.SAM.TRAIN_MASK_DECODER": True,
}


def _cfg(lm_folder, **overrides):
    cfg = tiny_cfg(lm_folder)
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, value)
    return cfg


def _build(lm_folder, **overrides):
    torch.manual_seed(0)
    return build_model(_cfg(lm_folder, **overrides))


def _image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, H, W), dtype=torch.uint8, generator=g)


def _box_masks(boxes) -> torch.Tensor:
    masks = torch.zeros(len(boxes), H, W, dtype=torch.bool)
    for m, (x1, y1, x2, y2) in zip(masks, boxes):
        m[int(y1) : int(y2), int(x1) : int(x2)] = True
    return masks


def _train_input(boxes, captions, seed=0, with_masks=False) -> dict:
    inst = Instances((H, W))
    inst.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_captions = list(captions)
    if with_masks:
        inst.gt_masks = BitMasks(_box_masks(boxes))
    return {"image": _image(seed), "instances": inst}


def _given_boxes_input(boxes, seed=0) -> dict:
    proposals = Instances((H, W))
    proposals.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return {"image": _image(seed), "proposals": proposals, "height": H, "width": W}


@pytest.mark.parametrize("post_nms_topk", [3, 7])
def test_rpn_proposals_are_in_image_boxes_with_finite_scores(tiny_gpt2, post_nms_topk):
    model = _build(
        tiny_gpt2,
        **{
            **RPN,
            "MODEL.SCA.PROPOSAL_SOURCE": "rpn",
            "MODEL.RPN.POST_NMS_TOPK_TEST": post_nms_topk,
            "MODEL.SCA.DENSE.NMS_THRESH": 1.0,  # keep every proposal: count them
        },
    ).eval()
    # the given boxes are ignored: regions come from the proposal head
    batch = [_given_boxes_input([[1, 1, 5, 5]]), _given_boxes_input([[2, 2, 9, 9]], seed=1)]
    with torch.no_grad():
        outputs = model(batch)
    for out in outputs:
        inst = out["instances"]
        assert len(inst) == post_nms_topk
        boxes = inst.pred_boxes.tensor
        assert torch.isfinite(boxes).all() and torch.isfinite(inst.scores).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= W).all() and (boxes[:, 3] <= H).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert len(inst.pred_captions) == post_nms_topk
        assert ((inst.proposal_scores > 0) & (inst.proposal_scores < 1)).all()
        # final score = objectness probability x geometric-mean caption token probability
        expected = inst.proposal_scores * inst.caption_scores.exp()
        torch.testing.assert_close(inst.scores, expected)
        assert (inst.scores[:-1] >= inst.scores[1:]).all(), "ranked best first"


def test_pyramid_proposals_follow_max_detections(tiny_gpt2):
    model = _build(
        tiny_gpt2,
        **{
            **RPN,
            "MODEL.SCA.PROPOSAL_SOURCE": "rpn",
            "MODEL.SCA.PROPOSALS.PYRAMID_SCALES": [2.0, 1.0, 0.5],
            "MODEL.SCA.PROPOSALS.PYRAMID_CHANNELS": 16,
            "MODEL.RPN.IN_FEATURES": ["p3", "p4", "p5"],
            "MODEL.ANCHOR_GENERATOR.SIZES": [[8], [16], [32]],
            "MODEL.RPN.POST_NMS_TOPK_TEST": 9,
            "MODEL.SCA.DENSE.NMS_THRESH": 1.0,
            "MODEL.SCA.DENSE.MAX_DETECTIONS": 4,
        },
    ).eval()
    with torch.no_grad():
        (out,) = model([_given_boxes_input([[1, 1, 5, 5]])])
    assert len(out["instances"]) == 4


def test_rpn_in_features_must_exist(tiny_gpt2):
    with pytest.raises(ValueError, match=r"IN_FEATURES.*\['p9'\].*\['sam'\]"):
        _build(tiny_gpt2, **{**RPN, "MODEL.RPN.IN_FEATURES": ["p9"]})


def test_rpn_source_needs_the_proposal_head(tiny_gpt2):
    with pytest.raises(ValueError, match="PROPOSALS.ENABLED"):
        _build(tiny_gpt2, **{"MODEL.SCA.PROPOSAL_SOURCE": "rpn"})


def test_without_proposal_source_given_boxes_are_used_and_logged(tiny_gpt2, caplog):
    with caplog.at_level(logging.INFO, logger="sca.modeling.prompt_sources"):
        model = _build(tiny_gpt2, **RPN).eval()  # head built, but no proposal source chosen
    lines = [r.getMessage() for r in caplog.records if "proposal source" in r.getMessage()]
    assert len(lines) == 1 and "given boxes" in lines[0]
    boxes = [[1.0, 2.0, 30.0, 40.0], [10.0, 10.0, 20.0, 20.0]]
    with torch.no_grad():
        (out,) = model([_given_boxes_input(boxes)])
    assert out["instances"].pred_boxes.tensor.tolist() == boxes


def test_proposal_head_trains_with_the_captioner(tiny_gpt2):
    model = _build(tiny_gpt2, **RPN).train()
    with EventStorage():  # the RPN logs its anchor statistics, as in Detectron2's trainer
        losses = model([_train_input([[1, 2, 30, 40]], ["a red circle"])])
    assert {"loss_caption", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    sum(losses.values()).backward()
    grads = [p.grad for p in model.proposal_head.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def _sam_parameters(model) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().clone()
        for n, p in model.named_parameters()
        if n.startswith(("roi_heads.prompt_encoder.", "roi_heads.mask_decoder."))
    }


def _step(model, batch) -> dict:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = model(batch)
    sum(losses.values()).backward()
    optimizer.step()
    return losses


def test_mask_loss_off_leaves_sam_unchanged(tiny_gpt2):
    model = _build(tiny_gpt2).train()
    before = _sam_parameters(model)
    batch = [_train_input([[1, 2, 30, 40]], ["a red circle"], with_masks=True)]
    losses = _step(model, batch)
    assert set(losses) == {"loss_caption"}
    after = _sam_parameters(model)
    assert before and all(torch.equal(before[n], after[n]) for n in before)
    assert all(p.grad is None for p in model.roi_heads.mask_decoder.parameters())


def test_mask_loss_on_trains_sam(tiny_gpt2):
    model = _build(tiny_gpt2, **MASKS).train()
    before = _sam_parameters(model)
    boxes = [[1, 2, 30, 40], [32, 40, 46, 60]]
    batch = [_train_input(boxes, ["a red circle", "a cat"], with_masks=True)]
    losses = _step(model, batch)
    assert {"loss_caption", "loss_mask", "loss_mask_iou"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    after = _sam_parameters(model)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert any(n.startswith("roi_heads.mask_decoder.") for n in changed)


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("cpu_chunk_tokens", [1, 0])  # one prompt per pass / all images at once
def test_mask_loss_reads_the_caption_paths_decode(tiny_gpt2, cpu_chunk_tokens, checkpointing):
    """SAM's box-prompt decode is shared by the caption and mask losses: the mask loss and its
    gradients equal those of a decode of its own, and the caption loss is the one without masks."""
    overrides = {
        **MASKS,
        "MODEL.SCA.MASK_LOSS.POINT_PROMPTS": False,
        "MODEL.SCA.REGION_CHUNK_TOKENS.CPU": cpu_chunk_tokens,
        "MODEL.SCA.MIXER.ACTIVATION_CHECKPOINTING": checkpointing,
    }
    model = _build(tiny_gpt2, **overrides).train()
    head = model.roi_heads
    boxes = [[[1, 2, 30, 40], [32, 40, 46, 60]], [], [[4, 4, 20, 24]]]
    batch = [
        _train_input(b, ["a red circle"] * len(b), seed=i, with_masks=True)
        for i, b in enumerate(boxes)
    ]
    sam_params = [*head.prompt_encoder.parameters(), *head.mask_decoder.parameters()]

    calls = []
    hook = head.mask_decoder.register_forward_hook(lambda *_: calls.append(1))
    losses = model(batch)
    hook.remove()
    assert len(calls) == (3 if cpu_chunk_tokens else 2)  # one decode per pass, none for masks
    shared = torch.autograd.grad(losses["loss_mask"], sam_params, allow_unused=True)

    embeddings = model.image_embeddings(batch)
    prompts = [
        RegionPrompts(boxes=torch.tensor(b, dtype=torch.float32).reshape(-1, 4)) for b in boxes
    ]
    masks = [_box_masks(b) for b in boxes]
    alone = head.mask_loss(head.prompt_encoder, head.mask_decoder, embeddings, prompts, masks)
    separate = torch.autograd.grad(alone["loss_mask"], sam_params, allow_unused=True)
    torch.testing.assert_close(losses["loss_mask"], alone["loss_mask"])
    torch.testing.assert_close(losses["loss_mask_iou"], alone["loss_mask_iou"])
    assert sum(g is not None for g in shared) > 0
    for a, b in zip(shared, separate):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)

    head.mask_loss = None  # the caption path without masks
    torch.testing.assert_close(model(batch)["loss_caption"], losses["loss_caption"])


def test_mask_loss_needs_a_trained_sam_part(tiny_gpt2):
    with pytest.raises(ValueError, match="TRAIN_MASK_DECODER"):
        _build(tiny_gpt2, **{"MODEL.SCA.MASK_LOSS.ENABLED": True})


def test_mask_loss_learns_a_mask(tiny_gpt2):
    """A few dozen steps of SAM's loss alone make the decoder draw the box's square."""
    model = _build(tiny_gpt2, **MASKS)
    boxes = torch.tensor([[8.0, 12.0, 40.0, 44.0]])
    masks = _box_masks(boxes.tolist())
    head = model.roi_heads
    emb = model.image_embeddings([{"image": _image()}]).detach()
    params = [*head.prompt_encoder.parameters(), *head.mask_decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    prompts = [RegionPrompts(boxes=boxes)]
    for _ in range(60):
        losses = head.mask_loss(head.prompt_encoder, head.mask_decoder, emb, prompts, [masks])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    with torch.no_grad():
        sam = decode_regions(head.prompt_encoder, head.mask_decoder, emb, prompts[0])
    best = sam.iou_predictions.argmax(1)
    logits = sam.mask_logits[torch.arange(1), best]
    target = low_res_targets(masks, 64, tuple(logits.shape[-2:]))
    pred = logits > 0
    iou = (pred & (target > 0)).sum() / (pred | (target > 0)).sum()
    assert iou > 0.8


def test_sam_mask_losses_pick_the_best_mask_and_measure_iou():
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    good = target * 20 - 10  # logits: +10 inside, -10 outside
    logits = torch.stack([-good, good, torch.zeros(1, 8, 8) - 10], dim=1)
    iou_pred = torch.tensor([[0.0, 1.0, 0.0]])
    mask_loss, iou_loss = sam_mask_losses(logits, iou_pred, target)
    assert mask_loss < 0.01  # the second mask is right, the others do not count
    assert iou_loss < 1e-6  # actual IoUs are 0, 1, 0


def test_points_in_masks_fall_inside():
    masks = _box_masks([[3, 4, 9, 7], [40, 50, 41, 51]])
    torch.manual_seed(0)
    for _ in range(20):
        points = points_in_masks(masks)[:, 0].long()
        assert masks[torch.arange(2), points[:, 1], points[:, 0]].all()


def test_several_points_per_mask_come_mask_major_and_fall_inside():
    masks = _box_masks([[3, 4, 9, 7], [40, 50, 41, 51]])
    torch.manual_seed(0)
    points = points_in_masks(masks, 5)[:, 0].long()
    assert points.shape == (10, 2)
    owner = torch.arange(2).repeat(5)  # all masks' first points, then their second points, ...
    assert masks[owner, points[:, 1], points[:, 0]].all()
    assert len({tuple(p) for p in points[owner == 0].tolist()}) > 1  # drawn, not repeated


@pytest.mark.parametrize("per_region", [1, 3])
def test_points_per_region_decodes_every_point_against_its_mask(tiny_gpt2, per_region):
    model = _build(tiny_gpt2, **{**MASKS, "MODEL.SCA.MASK_LOSS.POINTS_PER_REGION": per_region})
    model.train()
    decoder = model.roi_heads.mask_decoder
    sizes = []
    hook = decoder.register_forward_hook(lambda m, args, out: sizes.append(len(out[0])))
    boxes = [[1, 2, 30, 40], [32, 40, 46, 60]]
    losses = _step(model, [_train_input(boxes, ["a", "b"], with_masks=True)])
    hook.remove()
    assert torch.isfinite(losses["loss_mask"])
    # the caption path's box decode (2 regions), then the loss's point prompts: 2 per point drawn
    assert sizes[-1] == 2 * per_region


def test_points_per_region_must_be_positive(tiny_gpt2):
    with pytest.raises(ValueError, match="POINTS_PER_REGION=0"):
        _build(tiny_gpt2, **{**MASKS, "MODEL.SCA.MASK_LOSS.POINTS_PER_REGION": 0})


def test_ranking_scores_nms_and_boxes_from_masks():
    inst = Instances((20, 20))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [12, 12, 19, 19]]))
    masks = torch.zeros(3, 20, 20, dtype=torch.bool)
    masks[0, 2:5, 3:7] = True
    masks[1, 1:10, 1:10] = True
    inst.pred_masks = masks
    inst.caption_scores = torch.log(torch.tensor([0.5, 0.9, 1.0]))
    inst.pred_captions = ["a", "b", "c"]
    out = rank_dense_regions(
        inst, torch.tensor([0.9, 0.8, 0.1]), nms_thresh=0.5, boxes_from_masks=True
    )
    # scores 0.45, 0.72, 0.1; box 0 became the tight box of its mask, so it no longer overlaps
    assert out.pred_captions == ["b", "a", "c"]
    torch.testing.assert_close(out.scores, torch.tensor([0.72, 0.45, 0.1]))
    assert out.pred_boxes.tensor[1].tolist() == [3.0, 2.0, 7.0, 5.0]
    plain = rank_dense_regions(
        inst,
        torch.tensor([0.9, 0.8, 0.1]),
        nms_thresh=0.5,
        caption_weight=0.0,
    )
    assert plain.pred_captions == ["a", "c"]  # 0.9 vs 0.8 on overlapping boxes, caption ignored


def test_shapes_masks_are_exact_and_reach_the_mapper(tiny_gpt2):
    dicts = DatasetCatalog.get("sca_shapes_train")
    cfg = _cfg(tiny_gpt2, **MASKS)
    cfg.INPUT.IMAGE_SIZE = 128
    cfg.INPUT.LSJ.ENABLED = False
    cfg.INPUT.FLIP_PROB = 1.0
    mapper = SCADatasetMapper(cfg, is_train=True)
    d = dicts[0]
    out = mapper(d)
    inst = out["instances"]
    masks = inst.gt_masks.tensor
    assert masks.shape == (len(inst), 128, 128)
    image = out["image"].permute(1, 2, 0).numpy()
    for mask, box in zip(masks.numpy(), inst.gt_boxes.tensor.numpy()):
        ys, xs = np.nonzero(mask)
        # the flipped mask lies in its flipped box and covers pixels of one shape colour
        assert xs.min() >= box[0] - 1 and xs.max() <= box[2] and ys.min() >= box[1]
        assert len(np.unique(image[ys, xs], axis=0)) == 1
    for ann in d["annotations"]:
        assert mask_utils.decode(ann["segmentation"]).shape == (128, 128)


@pytest.mark.parametrize("caption_prompt", ["point", "box"])
def test_anything_source_ranks_found_regions(tiny_gpt2, caption_prompt):
    model = _build(
        tiny_gpt2,
        **{
            "MODEL.SCA.PROPOSAL_SOURCE": "anything",
            "MODEL.SCA.ANYTHING.POINTS_PER_SIDE": 4,
            "MODEL.SCA.ANYTHING.PRED_IOU_THRESH": 0.0,  # a random decoder: keep what it finds
            "MODEL.SCA.ANYTHING.STABILITY_SCORE_THRESH": 0.0,
            "MODEL.SCA.ANYTHING.CAPTION_PROMPT": caption_prompt,
            "MODEL.SCA.DENSE.MAX_DETECTIONS": 5,
        },
    ).eval()
    with torch.no_grad():
        (out,) = model([_given_boxes_input([[1, 1, 5, 5]])])
    inst = out["instances"]
    assert 0 < len(inst) <= 5 and len(inst.pred_captions) == len(inst)
    assert inst.pred_masks.shape[1:] == (H, W)
    boxes = inst.pred_boxes.tensor
    assert torch.isfinite(boxes).all() and torch.isfinite(inst.scores).all()
    assert (boxes >= 0).all() and (boxes[:, 2] <= W).all() and (boxes[:, 3] <= H).all()
    expected = inst.proposal_scores * inst.caption_scores.exp()
    torch.testing.assert_close(inst.scores, expected)


def test_vg_dense_config_builds_a_pyramid_rpn_on_the_vit_h_embedding():
    from pathlib import Path

    from detectron2.layers import ShapeSpec

    from sca.config import get_sca_cfg
    from sca.modeling.proposals import SCAProposalHead

    cfg = get_sca_cfg(str(Path(__file__).parents[1] / "configs" / "sca_vg_dense.yaml"))
    torch.manual_seed(0)
    head = SCAProposalHead(cfg, ShapeSpec(channels=256, stride=16)).eval()
    with torch.no_grad():
        (proposals,), _ = head(torch.randn(1, 256, 64, 64), [(768, 1024)])
    assert sorted(head.pyramid.output_shape()) == ["p2", "p3", "p4", "p5"]
    assert len(proposals) == cfg.MODEL.RPN.POST_NMS_TOPK_TEST == 300
    boxes = proposals.proposal_boxes.tensor
    assert (boxes >= 0).all() and (boxes[:, 2] <= 1024).all() and (boxes[:, 3] <= 768).all()
    assert torch.isfinite(proposals.objectness_logits).all()


def test_dense_baselines_keep_captions_and_move_boxes_inside_the_image():
    predictions = [{"image_id": 7, "boxes": [[0, 0, 10, 10]] * 3, "captions": list("abc"),
                    "scores": [0.9, 0.5, 0.1]}]  # fmt: skip
    ground_truth = [{"image_id": 7, "boxes": [[0, 0, 12, 20], [5, 5, 30, 40]], "captions": []}]
    (moved,) = random_boxes(predictions, ground_truth, {7: (50, 60)}, seed=1)
    assert moved["captions"] == list("abc") and moved["scores"] == [0.9, 0.5, 0.1]
    for x1, y1, x2, y2 in moved["boxes"]:
        assert 0 <= x1 < x2 <= 60 and 0 <= y1 < y2 <= 50
        assert 12 <= x2 - x1 <= 35 and 12 <= y2 - y1 <= 35  # sides in the ground truth's range
    assert moved["boxes"] != predictions[0]["boxes"]
    (constant,) = constant_caption(predictions, "a cat")
    assert constant["captions"] == ["a cat"] * 3 and constant["boxes"] == predictions[0]["boxes"]


def test_mask_quality_mask_iou():
    a = np.zeros((2, 4, 4), dtype=bool)
    a[0, :2, :2] = True
    a[1, :, :] = True
    b = np.zeros((1, 4, 4), dtype=bool)
    b[0, :2, :] = True
    np.testing.assert_allclose(mask_iou(a, b), [[0.5], [0.5]])


def test_mask_quality_recovery_counts_matches_each_annotation_to_its_best_mask():
    def rle(mask):
        return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))

    top, left = np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    top[:2], left[:, :1] = True, True
    record = {"annotations": [{"segmentation": rle(top), "captions": ["A  Red bar"]},
                              {"segmentation": rle(left), "captions": ["a line"]}]}  # fmt: skip
    counts = RecoveryCounts(recovery_iou=0.75)
    counts.add(np.stack([top, top | left]), ["a red   BAR", "something"], record)
    counts.add(np.zeros((0, 4, 4), dtype=bool), [], record)
    assert counts.summary() == {
        "annotations": 4,
        "found_regions": 2,
        "recovered": 1,  # the left line's best mask (IoU 4/10) is too loose
        "recovered_fraction": 0.25,
        "right_captions": 1,
        "right_caption_fraction_of_recovered": 1.0,
    }


def test_caption_loss_waits_for_its_start_iteration(tiny_gpt2, monkeypatch):
    """Before LOSS.CAPTION_START_ITER only SAM's mask loss trains (the LM does not run); the
    caption loss joins at that iteration."""
    model = _build(tiny_gpt2, **MASKS, **{"MODEL.SCA.LOSS.CAPTION_START_ITER": 3}).train()
    lm_calls = []
    lm = model.roi_heads.captioner.lm
    original = lm.forward
    monkeypatch.setattr(lm, "forward", lambda *a, **k: lm_calls.append(1) or original(*a, **k))
    batch = [_train_input([[1, 2, 30, 40]], ["a red circle"], with_masks=True)]
    with EventStorage(2):
        early = model(batch)
        sum(early.values()).backward()
    assert early["loss_caption"].item() == 0.0 and early["loss_mask"].item() > 0 and not lm_calls
    # the zero still reaches every trainable caption-head parameter (one graph under DDP)
    assert all(p.grad is not None for p in model.roi_heads.mixer.parameters())
    with EventStorage(3):
        late = model(batch)
    assert late["loss_caption"].item() > 0 and lm_calls


@pytest.mark.parametrize("detach", [False, True])
def test_proposal_losses_reach_a_trained_encoder_unless_detached(tiny_gpt2, detach):
    overrides = {
        **RPN,
        "MODEL.SCA.SAM.TRAIN_IMAGE_ENCODER": True,
        "MODEL.SCA.PROPOSALS.DETACH_EMBEDDING": detach,
    }
    model = _build(tiny_gpt2, **overrides).train()
    with EventStorage():
        losses = model([_train_input([[1, 2, 30, 40]], ["a red circle"])])
    (losses["loss_rpn_cls"] + losses["loss_rpn_loc"]).backward()
    encoder_grad = sum(
        p.grad.abs().sum() for p in model.backbone.parameters() if p.grad is not None
    )
    head_grad = sum(p.grad.abs().sum() for p in model.proposal_head.parameters())
    assert head_grad > 0
    assert (encoder_grad == 0) if detach else (encoder_grad > 0)
