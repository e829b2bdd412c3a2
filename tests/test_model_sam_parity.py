"""SCA's masks and IoU predictions are exactly segment_anything's own ``Sam``'s."""

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from tiny_models import reference_sam, tiny_cfg

IMAGE_SIZE = 64


@pytest.fixture(scope="module")
def sam_and_sca(tmp_path_factory, tiny_gpt2):
    sam = reference_sam()
    ckpt = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), ckpt)
    cfg = tiny_cfg(tiny_gpt2, image_size=IMAGE_SIZE)
    cfg.MODEL.SCA.SAM.CHECKPOINT = str(ckpt)
    model = build_model(cfg).eval()
    return sam, model


def _run_both(sam, model, prompts_sam: dict, proposals: Instances):
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, IMAGE_SIZE, 40), dtype=torch.uint8)
    original = (96, 60)
    with torch.no_grad():
        ref = sam([{"image": image.float(), "original_size": original, **prompts_sam}], True)[0]
        out = model([{"image": image, "proposals": proposals, "height": 96, "width": 60}])
    return ref, out[0]["instances"]


@pytest.mark.parametrize("prompt", ["box", "point"])
def test_masks_and_iou_equal_segment_anything(sam_and_sca, prompt):
    sam, model = sam_and_sca
    proposals = Instances((IMAGE_SIZE, 40))
    if prompt == "box":
        boxes = torch.tensor([[2.0, 3.0, 30.0, 50.0], [10.0, 10.0, 20.0, 25.0]])
        proposals.proposal_boxes = Boxes(boxes)
        prompts_sam = {"boxes": boxes}
    else:
        points = torch.tensor([[[12.0, 20.0]], [[30.0, 50.0]], [[5.0, 5.0]]])
        labels = torch.ones(3, 1, dtype=torch.long)
        proposals.proposal_points = points
        proposals.proposal_point_labels = labels
        prompts_sam = {"point_coords": points, "point_labels": labels}
    ref, inst = _run_both(sam, model, prompts_sam, proposals)

    assert (inst.iou_predictions - ref["iou_predictions"]).abs().max() <= 1e-5
    assert (inst.mask_logits - ref["low_res_logits"]).abs().max() <= 1e-5
    best = ref["iou_predictions"].argmax(1)
    ref_best = ref["masks"][torch.arange(len(best)), best]
    assert inst.pred_masks.shape == ref_best.shape == (len(best), 96, 60)
    assert torch.equal(inst.pred_masks, ref_best)
    assert torch.allclose(inst.scores, ref["iou_predictions"].max(1).values, atol=1e-6)


def test_wrong_sam_checkpoint_keys_are_named(tmp_path, tiny_gpt2):
    state = reference_sam().state_dict()
    state.pop("mask_decoder.iou_token.weight")
    state["mask_decoder.extra.weight"] = torch.zeros(1)
    ckpt = tmp_path / "broken.pth"
    torch.save(state, ckpt)
    cfg = tiny_cfg(tiny_gpt2, image_size=IMAGE_SIZE)
    cfg.MODEL.SCA.SAM.CHECKPOINT = str(ckpt)
    with pytest.raises(KeyError) as err:
        build_model(cfg)
    assert "mask_decoder.iou_token.weight" in str(err.value)
    assert "mask_decoder.extra.weight" in str(err.value)


def test_sam_checkpoint_of_another_size_names_shapes(tmp_path, tiny_gpt2):
    ckpt = tmp_path / "sam_tiny.pth"
    torch.save(reference_sam().state_dict(), ckpt)
    cfg = tiny_cfg(tiny_gpt2, image_size=IMAGE_SIZE)
    cfg.MODEL.SCA.SAM.EMBED_DIM = 48
    cfg.MODEL.SCA.SAM.CHECKPOINT = str(ckpt)
    with pytest.raises(KeyError, match="shape mismatch: image_encoder"):
        build_model(cfg)


def test_missing_sam_checkpoint_names_file(tmp_path, tiny_gpt2):
    cfg = tiny_cfg(tiny_gpt2, image_size=IMAGE_SIZE)
    cfg.MODEL.SCA.SAM.CHECKPOINT = str(tmp_path / "sam_vit_b_01ec64.pth")
    with pytest.raises(FileNotFoundError, match="sam_vit_b_01ec64.pth"):
        build_model(cfg)


def test_encoder_without_relative_positions_rejects_a_sam_checkpoint_with_them(
    tmp_path, tiny_gpt2
):
    cfg = tiny_cfg(tiny_gpt2, image_size=IMAGE_SIZE)
    cfg.MODEL.SCA.SAM.USE_REL_POS = False
    encoder = build_model(cfg).backbone.image_encoder
    assert not any(block.attn.use_rel_pos for block in encoder.blocks)
    assert not [k for k in encoder.state_dict() if "rel_pos" in k]
    ckpt = tmp_path / "sam_tiny.pth"
    torch.save(reference_sam().state_dict(), ckpt)  # every official SAM has them
    cfg.MODEL.SCA.SAM.CHECKPOINT = str(ckpt)
    with pytest.raises(KeyError, match="image_encoder.blocks.0.attn.rel_pos_h"):
        build_model(cfg)
