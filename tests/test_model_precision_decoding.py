"""Precision switches, fused attention, activation checkpointing and the decoding config."""

import copy
import gc
import weakref

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT, TwoWayTransformer
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.image_encoder import get_rel_pos
from test_model_captioning import _build, _random_boxes, _test_input, _train_input

from sca.modeling import rel_pos_attention
from sca.modeling.rel_pos_attention import relative_positions
from sca.modeling.specialise import (
    use_activation_checkpointing,
    use_reference_attention,
    use_sdpa_attention,
)
from sca.modeling.text_mixer import TextFeatureMixer
from sca.modeling.two_way_blocks import FastTwoWayAttentionBlock, FoldedTwoWayAttentionBlock

BF16 = torch.bfloat16


def _captions_of(model, n=5, seed=4):
    with torch.no_grad():
        return model([_test_input(_random_boxes(n, seed))])[0]["instances"]


@pytest.mark.parametrize("pooled", [False, True], ids=["plain", "box-pooled-queries"])
def test_whole_model_in_bfloat16_runs(tiny_gpt2, pooled):
    model = _build(tiny_gpt2, **{"MODEL.SCA.MIXER.BOX_POOLED_QUERIES": pooled}).eval().to(BF16)
    assert {p.dtype for p in model.parameters()} == {BF16}
    inst = _captions_of(model)
    assert len(inst.pred_captions) == 5 and all(isinstance(c, str) for c in inst.pred_captions)
    assert inst.pred_masks.dtype == torch.bool and inst.pred_masks.shape == (5, 64, 48)
    assert torch.isfinite(inst.caption_scores).all() and torch.isfinite(inst.scores).all()


def test_frozen_parts_stored_in_bfloat16_train_and_infer(tiny_gpt2):
    model = _build(
        tiny_gpt2,
        **{
            "MODEL.SCA.SAM.ENCODER_DTYPE": "bfloat16",
            "MODEL.SCA.SAM.DECODER_DTYPE": "bfloat16",
            "MODEL.SCA.LM.DTYPE": "bfloat16",
        },
    )
    heads = model.roi_heads
    assert {p.dtype for p in model.backbone.parameters()} == {BF16}
    assert {p.dtype for p in heads.mask_decoder.parameters()} == {BF16}
    assert {p.dtype for p in heads.captioner.lm.parameters()} == {BF16}
    assert {p.dtype for p in heads.mixer.parameters()} == {torch.float32}
    # SAM's positional encoding keeps its float32 frequencies
    assert heads.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.dtype == torch.float32
    model.train()
    loss = model([_train_input([[1, 2, 30, 40]], ["a red circle"])])["loss_caption"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in heads.mixer.parameters() if p.requires_grad)
    assert len(_captions_of(model.eval()).pred_captions) == 5


def test_trained_part_cannot_be_stored_in_bfloat16(tiny_gpt2):
    with pytest.raises(ValueError, match="MODEL.SCA.SAM.ENCODER_DTYPE.*trained"):
        _build(
            tiny_gpt2,
            **{
                "MODEL.SCA.SAM.TRAIN_IMAGE_ENCODER": True,
                "MODEL.SCA.SAM.ENCODER_DTYPE": "bfloat16",
            },
        )
    with pytest.raises(ValueError, match="MODEL.SCA.SAM.DECODER_DTYPE='half'"):
        _build(tiny_gpt2, **{"MODEL.SCA.SAM.DECODER_DTYPE": "half"})


def test_inference_autocast_runs_the_model_in_bfloat16(tiny_gpt2):
    model = _build(tiny_gpt2, **{"MODEL.SCA.INFERENCE_AUTOCAST": "bfloat16"}).eval()
    seen = []
    for linear in (
        model.backbone.image_encoder.blocks[0].attn.qkv,
        model.roi_heads.mask_decoder.transformer.layers[0].self_attn.q_proj,
        model.roi_heads.mixer.transformer.layers[0].self_attn.q_proj,
        model.roi_heads.captioner.language_project,
    ):
        linear.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    inst = _captions_of(model)
    assert seen == [BF16] * len(seen) and len(seen) >= 4
    assert len(inst.pred_captions) == 5 and inst.caption_scores.dtype == torch.float32
    with pytest.raises(ValueError, match="MODEL.SCA.INFERENCE_AUTOCAST='fp8'"):
        _captions_of(_build(tiny_gpt2, **{"MODEL.SCA.INFERENCE_AUTOCAST": "fp8"}).eval())


def _two_way_inputs(n=3, c=32, hw=8, tokens=7):
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(n, c, hw, hw, generator=g),
        torch.randn(1, c, hw, hw, generator=g),
        torch.randn(n, tokens, c, generator=g, requires_grad=True),
    )


@pytest.mark.parametrize("tokens", [7, 1])
@pytest.mark.parametrize("fold", [False, True], ids=["sam-decoder", "mixer-folded"])
def test_sdpa_attention_equals_segment_anything_attention(fold, tokens):
    """The fast two-way blocks (for the mixer with the prompt/image attention folded into the
    prompt side) give segment_anything's outputs and gradients for every input and parameter."""
    torch.manual_seed(0)
    eager = TwoWayTransformer(depth=3, embedding_dim=32, num_heads=4, mlp_dim=64)
    for p in eager.parameters():  # biases start at zero: make every folded term count
        torch.nn.init.normal_(p, std=0.3)
    fused = copy.deepcopy(eager)
    assert use_sdpa_attention(fused, fold) == 3 * 3 + 1 + 3 + 1  # attention, blocks, transformer
    block = FoldedTwoWayAttentionBlock if fold else FastTwoWayAttentionBlock
    assert all(type(b) is block for b in fused.layers)
    assert fused.state_dict().keys() == eager.state_dict().keys()
    image, pe, queries = _two_way_inputs(tokens=tokens)
    inputs = (image.requires_grad_(), pe.requires_grad_(), queries)
    weights = None  # random weights of the outputs in the loss, the same for both models
    results = []
    for model in (eager, fused):
        q, k = model(*inputs)
        weights = weights or (torch.randn_like(q), torch.randn_like(k))
        loss = (q * weights[0]).sum() + (k * weights[1]).sum()
        results.append((q, k, torch.autograd.grad(loss, [*inputs, *model.parameters()])))
    (q1, k1, grads_eager), (q2, k2, grads_fused) = results
    torch.testing.assert_close(q2, q1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k2, k1, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads_fused, grads_eager, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("heads_per_mask", [0, 3], ids=["one-mask", "mask-per-3-heads"])
@pytest.mark.parametrize("rel_pos", [True, False], ids=["rel_pos", "abs_pos_only"])
@pytest.mark.parametrize("window", [0, 3], ids=["global", "windowed"])
def test_sdpa_encoder_attention_equals_segment_anything(
    window, rel_pos, heads_per_mask, monkeypatch
):
    if heads_per_mask:  # the frozen encoder's position mask for 3 of 2 x 4 (image, head) pairs
        monkeypatch.setitem(rel_pos_attention.MASK_GROUP_ELEMENTS, "cpu", 64 * 64 * heads_per_mask)
    torch.manual_seed(0)
    eager = ImageEncoderViT(
        img_size=64,
        patch_size=8,
        embed_dim=32,
        depth=1,
        num_heads=4,
        out_chans=16,
        use_rel_pos=rel_pos,
        window_size=window,
    )
    if rel_pos:  # segment_anything starts the tables at zero
        for block in eager.blocks:
            torch.nn.init.normal_(block.attn.rel_pos_h, std=0.5)
            torch.nn.init.normal_(block.attn.rel_pos_w, std=0.5)
    fused = copy.deepcopy(eager)
    assert use_sdpa_attention(fused) == 1 + 2  # the block's attention, the neck's LayerNorm2d
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    out_eager = eager(x)
    grad_eager = torch.autograd.grad(out_eager.square().sum(), [x, *eager.parameters()])
    out_fused = fused(x)
    grad_fused = torch.autograd.grad(out_fused.square().sum(), [x, *fused.parameters()])
    torch.testing.assert_close(out_fused, out_eager, atol=1e-5, rtol=1e-5)
    for a, b in zip(grad_fused, grad_eager):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with torch.no_grad():  # the positions as SDPA's mask (with a gradient: inside the product)
        torch.testing.assert_close(fused(x), out_eager, atol=1e-5, rtol=1e-5)
    assert use_reference_attention(fused) == 1 + 2
    torch.testing.assert_close(fused(x), out_eager, atol=0, rtol=0)


def test_fused_layer_norm_2d_equals_segment_anything():
    torch.manual_seed(0)
    eager = LayerNorm2d(16)
    torch.nn.init.normal_(eager.weight)
    torch.nn.init.normal_(eager.bias)
    fused = copy.deepcopy(eager)
    assert use_sdpa_attention(fused) == 1
    x = torch.randn(3, 16, 9, 7, requires_grad=True) * 3 + 1
    grads = []
    outs = []
    for norm in (eager, fused):
        out = norm(x)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), [x, norm.weight, norm.bias]))
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("table", [27, 11], ids=["own-size", "interpolated"])
def test_relative_positions_equal_segment_anything(table):
    rel_pos = torch.randn(table, 8)
    torch.testing.assert_close(
        relative_positions(14, rel_pos), get_rel_pos(14, 14, rel_pos), atol=0, rtol=0
    )


def _mixer_outputs_and_grads(mixer):
    """A training forward and backward of ``mixer`` on the fixed two-way inputs: its output and
    every parameter's gradient."""
    image, pe, tokens = _two_way_inputs()
    mixer.train().zero_grad()
    out = mixer(tokens.detach(), image, pe)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in mixer.parameters()]


def test_activation_checkpointing_keeps_outputs_and_gradients():
    torch.manual_seed(0)
    plain = TextFeatureMixer(num_caption_tokens=2, depth=2, embed_dim=32, num_heads=4, mlp_dim=64)
    ckpt = copy.deepcopy(plain)
    assert use_activation_checkpointing(ckpt.transformer) == 2
    assert ckpt.state_dict().keys() == plain.state_dict().keys()
    (_, grads_plain), (_, grads_ckpt) = (_mixer_outputs_and_grads(m) for m in (plain, ckpt))
    for a, b in zip(grads_plain, grads_ckpt):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_compiled_mixer_keeps_outputs_gradients_and_keys():
    """MIXER.COMPILE: the same state-dict keys (checkpoints load either way), outputs and
    gradients as the eager mixer, after torch.compile's inductor code generation."""
    torch.manual_seed(0)
    kwargs = dict(num_caption_tokens=2, depth=1, embed_dim=32, num_heads=4, mlp_dim=64)
    plain = TextFeatureMixer(**kwargs, sdpa_attention=True)
    compiled = TextFeatureMixer(**kwargs, sdpa_attention=True, compile=True)
    compiled.load_state_dict(plain.state_dict())
    assert compiled.state_dict().keys() == plain.state_dict().keys()
    results = [_mixer_outputs_and_grads(m) for m in (plain, compiled)]
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert compiled.transformer._compiled_call_impl is not None


def _spy_generate(model):
    """Record what the captioner hands to ``lm.generate`` and what it returns."""
    lm = model.roi_heads.captioner.lm
    original = lm.generate
    calls = []

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((kwargs, out))
        return out

    lm.generate = spy
    return calls


def test_generation_settings_from_the_config_reach_generate(tiny_gpt2):
    settings = {
        "MODEL.SCA.GENERATION.MAX_NEW_TOKENS": 6,
        "MODEL.SCA.GENERATION.MIN_NEW_TOKENS": 6,
        "MODEL.SCA.GENERATION.NUM_BEAMS": 3,
        "MODEL.SCA.GENERATION.LENGTH_PENALTY": 0.5,
        "MODEL.SCA.GENERATION.REPETITION_PENALTY": 1.3,
    }
    model = _build(tiny_gpt2, **settings).eval()
    calls = _spy_generate(model)
    _captions_of(model, n=4)
    ((kwargs, out),) = calls
    config = kwargs["generation_config"]
    assert (config.max_new_tokens, config.min_new_tokens, config.num_beams) == (6, 6, 3)
    assert (config.length_penalty, config.repetition_penalty) == (0.5, 1.3)
    assert not config.do_sample
    eos = model.roi_heads.captioner.eos_token_id
    assert out.sequences.shape == (4, 6) and not (out.sequences == eos).any()
    with pytest.raises(ValueError, match="MIN_NEW_TOKENS=7"):
        _build(tiny_gpt2, **{**settings, "MODEL.SCA.GENERATION.MIN_NEW_TOKENS": 7})


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"MODEL.SCA.GENERATION.NUM_BEAMS": 3},
        {"MODEL.SCA.GENERATION.MIN_NEW_TOKENS": 5, "MODEL.SCA.GENERATION.REPETITION_PENALTY": 2.0},
    ],
    ids=["greedy", "beam3", "min-tokens-and-penalty"],
)
def test_caption_scores_are_teacher_forced_mean_log_probs(tiny_gpt2, settings):
    model = _build(tiny_gpt2, **settings).eval()
    captioner = model.roi_heads.captioner
    calls = _spy_generate(model)
    inst = _captions_of(model, n=6, seed=9)
    ((kwargs, out),) = calls
    eos = captioner.eos_token_id
    targets = torch.full_like(out.sequences, -1)
    for i, row in enumerate(out.sequences.tolist()):
        end = row.index(eos) + 1 if eos in row else len(row)
        targets[i, :end] = torch.tensor(row[:end])
    with torch.no_grad():
        logp = captioner.target_logits(kwargs["inputs_embeds"], targets).log_softmax(-1)
    valid = targets >= 0
    token = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    expected = (token * valid).sum(1) / valid.sum(1)
    torch.testing.assert_close(inst.caption_scores, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_lm_attention_implementation_comes_from_the_config(tiny_gpt2, attention):
    model = _build(tiny_gpt2, **{"MODEL.SCA.LM.ATTN_IMPLEMENTATION": attention})
    assert model.roi_heads.captioner.lm.config._attn_implementation == attention


def test_region_chunks_change_only_how_regions_are_batched(tiny_gpt2):
    """REGION_CHUNK_TOKENS sets how many prompts share a pass through SAM's decoder and the
    mixer (0: one pass for all, which in training spans the images of the batch). Losses,
    gradients, masks and captions are the same for any value."""
    batch = [
        _train_input(_random_boxes(3, 1), ["a red circle", "blue", "a small green square"], 0),
        _train_input(_random_boxes(2, 2), ["two", "a yellow triangle"], seed=1),
    ]
    results = []
    h, w = _build(tiny_gpt2).roi_heads.prompt_encoder.image_embedding_size
    tokens = h * w  # one prompt's image tokens
    for chunk, per_pass in ((0, 0), (tokens, 1), (2 * tokens + 1, 2)):
        model = _build(tiny_gpt2, **{"MODEL.SCA.REGION_CHUNK_TOKENS.CPU": chunk}).train()
        assert model.roi_heads.region_decoder.chunk_size(torch.device("cpu")) == per_pass
        loss = model(batch)["loss_caption"]
        loss.backward()
        grads = [p.grad for p in model.roi_heads.mixer.parameters()]
        inst = _captions_of(model.eval(), n=5)
        results.append((loss.detach(), grads, inst.pred_masks, inst.pred_captions))
    ref_loss, ref_grads, ref_masks, ref_captions = results[0]
    for loss, grads, masks, captions in results[1:]:
        torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-6)
        for a, b in zip(grads, ref_grads):  # summed in another order
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        assert torch.equal(masks, ref_masks) and captions == ref_captions


def _training_step_watching_mixer_blocks(model, batch, monkeypatch):
    """One training step: its loss, the mixer's gradients, how often each mixer block ran, and
    how many of the image-token tensors the blocks read in the forward pass were still held
    when backward began."""
    blocks = list(model.roi_heads.mixer.transformer.layers)
    original = FoldedTwoWayAttentionBlock.forward
    runs, inputs = [], []

    def watching(self, queries, keys, query_pe, key_pe):
        runs.extend(i for i, b in enumerate(blocks) if b is self)
        inputs.append(weakref.ref(keys))
        return original(self, queries, keys, query_pe, key_pe)

    monkeypatch.setattr(FoldedTwoWayAttentionBlock, "forward", watching)
    decodes = []
    hook = model.roi_heads.mask_decoder.transformer.register_forward_hook(
        lambda *_: decodes.append(1)
    )
    loss = model.train()(batch)["loss_caption"]
    gc.collect()
    held = sum(ref() is not None for ref in inputs)
    loss.backward()
    monkeypatch.undo()
    hook.remove()
    grads = [p.grad for p in model.roi_heads.mixer.parameters()]
    runs = [runs.count(i) for i in range(len(blocks))]
    return loss.detach(), grads, runs, held, len(decodes)


def test_checkpointed_region_passes_keep_gradients_and_recompute_once(tiny_gpt2, monkeypatch):
    """MIXER.ACTIVATION_CHECKPOINTING where the regions go through SAM's decoder and the mixer in
    several passes (CPU): each pass keeps only its inputs and is recomputed whole in backward.
    The same loss and gradients as without; no block's image tokens are held until backward
    (per-block checkpoints hold every block's input of every pass); and each mixer block
    runs twice per step (forward and one recomputation), not three times (a block checkpoint
    inside a pass checkpoint); SAM's frozen decoder runs once per pass."""
    batch = [
        _train_input(_random_boxes(3, 1), ["a red circle", "blue", "a small green square"], 0),
        _train_input(_random_boxes(2, 2), ["two", "a yellow triangle"], seed=1),
    ]
    h, w = _build(tiny_gpt2).roi_heads.prompt_encoder.image_embedding_size
    results = [
        _training_step_watching_mixer_blocks(
            _build(
                tiny_gpt2,
                **{
                    "MODEL.SCA.REGION_CHUNK_TOKENS.CPU": h * w,  # one region per pass: 5 passes
                    "MODEL.SCA.MIXER.ACTIVATION_CHECKPOINTING": ckpt,
                },
            ),
            batch,
            monkeypatch,
        )
        for ckpt in (False, True)
    ]
    (
        (loss, grads, runs, held, decodes),
        (ckpt_loss, ckpt_grads, ckpt_runs, ckpt_held, ckpt_decodes),
    ) = results
    assert decodes == ckpt_decodes == 5  # frozen SAM: decoded once per pass, not recomputed
    torch.testing.assert_close(ckpt_loss, loss, atol=1e-6, rtol=1e-6)
    for a, b in zip(ckpt_grads, grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert held >= 5 and ckpt_held == 0  # plain: at least one block input per pass
    assert runs == [5] * len(runs) and ckpt_runs == [10] * len(runs)
