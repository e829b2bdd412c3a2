"""The frozen image encoder replayed as a CUDA graph (``MODEL.SCA.SAM.ENCODER_CUDA_GRAPH``)."""

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from tiny_models import tiny_cfg

from sca.modeling.cuda_graph import CUDAGraphForward
from sca.modeling.sam_backbone import SAMImageEncoder
from sca.modeling.specialise import use_sdpa_attention

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")


def tiny_encoder() -> ImageEncoderViT:
    torch.manual_seed(0)
    encoder = ImageEncoderViT(
        img_size=64,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=4,
        out_chans=16,
        use_rel_pos=True,
        window_size=3,
        global_attn_indexes=(1,),
    )
    for block in encoder.blocks:  # segment_anything starts the tables at zero
        torch.nn.init.normal_(block.attn.rel_pos_h, std=0.5)
        torch.nn.init.normal_(block.attn.rel_pos_w, std=0.5)
    use_sdpa_attention(encoder)
    return encoder.eval()


def test_a_graph_is_refused_with_a_gradient():
    graphed = CUDAGraphForward(tiny_encoder())
    with pytest.raises(RuntimeError, match="without a gradient"):
        graphed(torch.randn(1, 3, 64, 64))


def test_the_backbone_runs_eagerly_off_cuda(tiny_gpt2):
    cfg = tiny_cfg(tiny_gpt2)
    cfg.MODEL.SCA.SAM.ENCODER_CUDA_GRAPH = True
    backbone = SAMImageEncoder(cfg).eval()
    x = torch.randn(1, 3, cfg.INPUT.IMAGE_SIZE, cfg.INPUT.IMAGE_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x)["sam"], backbone.image_encoder(x), rtol=0, atol=0)
    assert backbone.cuda_graph is not None and not backbone.cuda_graph._graphs


@cuda
def test_replays_equal_eager_and_follow_the_weights():
    encoder = tiny_encoder().cuda()
    graphed = CUDAGraphForward(encoder)
    images = [torch.randn(2, 3, 64, 64, device="cuda") for _ in range(3)]
    with torch.no_grad():
        for x in images:  # one capture, new inputs replayed
            torch.testing.assert_close(graphed(x), encoder(x), rtol=0, atol=0)
        assert len(graphed._graphs) == 1
        first = graphed(images[0])
        graphed(images[1])  # the returned tensor is a copy, not the graph's output buffer
        torch.testing.assert_close(first, encoder(images[0]), rtol=0, atol=0)

        encoder.neck[0].weight.mul_(2)  # a weight changed in place: read by the same graph
        torch.testing.assert_close(graphed(images[0]), encoder(images[0]), rtol=0, atol=0)
        assert len(graphed._graphs) == 1

        with torch.autocast("cuda", dtype=torch.bfloat16):  # another precision: another graph
            torch.testing.assert_close(graphed(images[0]), encoder(images[0]))
        assert len(graphed._graphs) == 2

        encoder.to(torch.bfloat16)  # new weight tensors: the old graphs dropped, captured anew
        x = images[0].bfloat16()
        torch.testing.assert_close(graphed(x), encoder(x), rtol=0, atol=0)
        assert len(graphed._graphs) == 1
