"""The converted official checkpoint reproduces what the official SCA code computed on it
(../shared/data/sca_official_tiny: written by ScaMultitaskV2Model.save_pretrained)."""

import pytest
import torch
from conftest import SHARED_DATA
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from sca.checkpoint import SCACheckpointer
from sca.config import get_sca_cfg
from sca.model_zoo import convert_release

OFFICIAL = SHARED_DATA / "sca_official_tiny"
pytestmark = pytest.mark.skipif(
    not (OFFICIAL / "reference_outputs.pt").is_file(), reason="../shared/data is absent"
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert_release(OFFICIAL, tmp_path_factory.mktemp("converted"))


@pytest.fixture(scope="module")
def reference():
    return torch.load(OFFICIAL / "reference_outputs.pt", weights_only=True)


def model_cfg(config_path, **overrides):
    cfg = get_sca_cfg(str(config_path))
    cfg.MODEL.DEVICE = "cpu"
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    return cfg


def load_model(config_path, **overrides):
    cfg = model_cfg(config_path, **overrides)
    model = build_model(cfg)
    SCACheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model.eval()


@pytest.fixture(scope="module")
def model(converted):
    return load_model(converted)


def image_input(reference, **extra):
    image = reference["image_uint8_hwc"].permute(2, 0, 1).contiguous()
    return {"image": image, "height": image.shape[1], "width": image.shape[2], **extra}


def head_outputs(model, reference):
    """The head's intermediate tensors on the reference image and boxes."""
    from sca.modeling.sam_regions import RegionPrompts

    with torch.no_grad():
        embedding = model.image_embeddings([image_input(reference)])
        queries = model.roi_heads.region_decoder.regions(
            embedding, RegionPrompts(boxes=reference["boxes_xyxy_original"])
        ).queries
        captioner = model.roi_heads.captioner
        prefix = captioner.prefix(queries)
        logits = captioner.target_logits(prefix, reference["input_ids"][0])
    return queries, prefix, logits


def test_masks_iou_and_captions_through_inference(model, reference):
    proposals = Instances((768, 1024), proposal_boxes=Boxes(reference["boxes_xyxy_original"]))
    with torch.no_grad():
        out = model([image_input(reference, proposals=proposals)])[0]["instances"]
    torch.testing.assert_close(out.iou_predictions, reference["iou_scores"][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out.mask_logits, reference["pred_masks_lowres"][0], atol=1e-5, rtol=0
    )
    tokenizer = model.roi_heads.captioner.tokenizer
    # position 0 is the placeholder transformers 4.36 puts before embeddings-only generation
    expected = [
        tokenizer.decode(seq[0, 1:], skip_special_tokens=True).strip()
        for seq in reference["greedy_sequences"][0]
    ]
    assert out.pred_captions == expected
    assert len(set(expected)) == 3  # the three regions get different captions


def test_queries_prefix_and_teacher_forced_logits(model, reference):
    queries, prefix, logits = head_outputs(model, reference)
    torch.testing.assert_close(queries, reference["caption_query_outputs"], atol=1e-4, rtol=0)
    torch.testing.assert_close(prefix, reference["lm_prefix_embeds"], atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, reference["caption_token_logits"], atol=1e-4, rtol=0)


def test_training_loss(model, reference):
    inst = Instances((768, 1024))
    inst.gt_boxes = Boxes(reference["boxes_xyxy_original"])
    inst.gt_captions = [reference["caption"]] * 3
    model.train()
    try:
        with torch.no_grad():
            loss = model([image_input(reference, instances=inst)])["loss_caption"]
    finally:
        model.eval()
    torch.testing.assert_close(loss, reference["loss"], rtol=1e-5, atol=0)


def test_the_checks_are_sharp(converted, reference):
    """What the release's own reload gets wrong (a random, untied output layer) and
    segment_anything's LayerNorm eps in the transformers both move outputs past the tolerances."""
    untied = load_model(converted)
    lm = untied.roi_heads.captioner.lm
    lm.lm_head.weight = torch.nn.Parameter(torch.randn_like(lm.lm_head.weight) * 0.02)
    _, _, logits = head_outputs(untied, reference)
    assert (logits - reference["caption_token_logits"]).abs().max() > 1e-2

    sam_eps = load_model(
        converted,
        **{"MODEL.SCA.MIXER.BLOCK_NORM_EPS": 1e-5, "MODEL.SCA.SAM.DECODER_BLOCK_NORM_EPS": 1e-5},
    )
    queries, _, _ = head_outputs(sam_eps, reference)
    assert (queries - reference["caption_query_outputs"]).abs().max() > 1e-4


def test_converted_output_layer_is_tied(model):
    lm = model.roi_heads.captioner.lm
    assert lm.lm_head.weight.data_ptr() == lm.transformer.wte.weight.data_ptr()


def test_recognition_task_tokens_are_kept(converted, model):
    checkpoint = torch.load(converted.parent / "model_final.pth", weights_only=True)["model"]
    assert checkpoint["roi_heads.captioner.task_tokens.weight"].shape == (12, 32)
    recognition = load_model(converted, **{"MODEL.SCA.LM.TASK": "recognition"})
    queries = torch.zeros(1, 8, 256)
    with torch.no_grad():
        a = model.roi_heads.captioner.prefix(queries)[0, :6]
        b = recognition.roi_heads.captioner.prefix(queries)[0, :6]
    torch.testing.assert_close(a, checkpoint["roi_heads.captioner.task_tokens.weight"][6:].float())
    torch.testing.assert_close(b, checkpoint["roi_heads.captioner.task_tokens.weight"][:6].float())


def test_convert_tool_and_eval_only_config(tmp_path):
    """tools/convert_sca_release.py writes a config that train_net.py and the zoo accept."""
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run(
        [sys.executable, str(REPO / "tools/convert_sca_release.py"), str(OFFICIAL), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("config.yaml")
    from sca.model_zoo import get

    zoo_model = get(str(tmp_path / "config.yaml"), trained=True, device="cpu")
    assert not zoo_model.training
    assert zoo_model.roi_heads.captioner.task_index == 1


def test_train_net_eval_only_runs_the_converted_release(converted, model, tmp_path, monkeypatch):
    """`tools/train_net.py --eval-only` on the converted config (a GRiT-style test set of one
    real COCO image) writes the same captions as the model built in this process."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO
    from PIL import Image

    coco = SHARED_DATA / "coco_39769"
    instances = json.loads((coco / "instances.json").read_text())
    image_file = next(p for p in coco.iterdir() if p.suffix in (".png", ".jpg"))
    (tmp_path / "vg" / "images").mkdir(parents=True)
    (tmp_path / "vg" / "images" / image_file.name).symlink_to(image_file)
    width, height = Image.open(image_file).size
    anns = [
        {"id": i, "image_id": 1, "bbox": a["bbox"], "caption": "a cat", "category_id": 1}
        for i, a in enumerate(instances["annotations"][:3], start=1)
    ]
    test_json = {
        "images": [{"id": 1, "file_name": image_file.name, "width": width, "height": height}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "object"}],
    }
    (tmp_path / "vg" / "annotations").mkdir()
    (tmp_path / "vg" / "annotations" / "test.json").write_text(json.dumps(test_json))
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools/train_net.py"),
            "--config-file",
            str(converted),
            "--eval-only",
            "MODEL.DEVICE",
            "cpu",
            "DATASETS.TEST",
            "('vg_grit_test',)",
            "OUTPUT_DIR",
            str(tmp_path / "out"),
            "TEST.SCA.IMS_PER_BATCH",
            "1",
        ],
        env={**os.environ, "DETECTRON2_DATASETS": str(tmp_path), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    folder = tmp_path / "out" / "inference" / "vg_grit_test"
    written = json.loads((folder / "region_caption_predictions.json").read_text())["regions"]
    captions = [r["prediction"] for r in written]
    from detectron2.data import DatasetCatalog

    from sca.data import SCADatasetMapper

    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    record = DatasetCatalog.get("vg_grit_test")[0]
    with torch.no_grad():
        mapped = SCADatasetMapper(model_cfg(converted), False)(dict(record))
        expected = model([mapped])[0]["instances"].pred_captions
    assert sorted(captions) == sorted(expected)
