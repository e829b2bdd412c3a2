"""The HTTP service (sca.engine.service) against real uvicorn servers on free loopback ports:
every endpoint, captions equal to SCAPredictor's, batching on and off alike, each bad input
class answered with its 4xx (and the next good request still served), the embedding cache, the
queue limit (429) and the request timeout (504), and the web page on the same service core."""

import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from tiny_models import tiny_sam_cfg

from sca.engine import SCAPredictor
from sca.engine.service import BackgroundServer, CaptionService, ServiceLimits, create_app
from sca.engine.web_app import SCAApp

BOXES = [[4.0, 6.0, 50.0, 40.0], [30.0, 20.0, 90.0, 70.0]]
POINTS = [[20.0, 20.0], [60.0, 45.0]]


def _png(seed: int, size=(96, 72)) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
        w, h = rng.integers(8, 20, 2)
        draw.ellipse([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def predictor(tiny_gpt2, tmp_path_factory):
    cfg = tiny_sam_cfg(tiny_gpt2, tmp_path_factory.mktemp("serve_sam"))
    anything = cfg.MODEL.SCA.ANYTHING  # a few regions survive (see test_anything.py)
    anything.POINTS_PER_SIDE, anything.PRED_IOU_THRESH, anything.STABILITY_SCORE_THRESH = (
        6,
        0.4,
        0.0,
    )
    anything.BOX_NMS_THRESH = 1.0
    return SCAPredictor(cfg)


LIMITS = dict(max_upload_bytes=60_000, max_pixels=200 * 200, max_prompts=8, cache_images=4)


@pytest.fixture(scope="module")
def batched(predictor):
    service = CaptionService(predictor, ServiceLimits(max_wait_ms=500, **LIMITS))
    with BackgroundServer(create_app(service)) as server:
        yield server.url, service


@pytest.fixture(scope="module")
def single(predictor):
    service = CaptionService(predictor, ServiceLimits(max_batch_requests=1, **LIMITS))
    with BackgroundServer(create_app(service)) as server:
        yield server.url, service


def _multipart(url, image: bytes, **fields):
    data = {k: json.dumps(v) for k, v in fields.items()}
    return httpx.post(url, files={"image": ("x.png", image, "image/png")}, data=data, timeout=60)


def _json(url, image: bytes, **fields):
    body = dict(fields, image=base64.b64encode(image).decode())
    return httpx.post(url, json=body, timeout=60)


def _reference(predictor, image: bytes, **prompts):
    predictor.set_image(Image.open(io.BytesIO(image)))
    return predictor.predict(**prompts)


def _assert_same(regions: list[dict], ref, atol=1e-4):
    assert [r["caption"] for r in regions] == ref.pred_captions
    assert all(c for c in ref.pred_captions)
    np.testing.assert_allclose([r["box"] for r in regions], ref.pred_boxes.tensor, atol=atol)
    np.testing.assert_allclose([r["predicted_iou"] for r in regions], ref.scores, atol=atol)
    np.testing.assert_allclose(
        [r["caption_score"] for r in regions], ref.caption_scores.float(), atol=atol
    )
    masks = np.stack([mask_utils.decode(r["segmentation"]) for r in regions]).astype(bool)
    assert (masks != ref.pred_masks.numpy()).mean() < 1e-3


def _wait_until(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("encoding", ["multipart", "json"])
def test_caption_equals_predictor(batched, predictor, encoding):
    url, _ = batched
    post = _multipart if encoding == "multipart" else _json
    image = _png(1)
    labels = [[1, 0], [1, 1]]
    points = [[POINTS[0], POINTS[1]], [POINTS[1], POINTS[0]]]
    for fields, prompts in (
        ({"boxes": BOXES}, {"boxes": BOXES}),
        ({"points": POINTS}, {"points": POINTS}),
        (
            {"boxes": BOXES, "points": points, "point_labels": labels},
            {"boxes": BOXES, "points": points, "point_labels": labels},
        ),
    ):
        r = post(f"{url}/v1/caption", image, **fields)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["image"]["width"] == 96 and body["image"]["height"] == 72
        assert [x["prompt"] for x in body["regions"]] == [0, 1]
        assert set(body["timings_ms"]) == {"decode", "queue", "encode", "inference", "total"}
        _assert_same(body["regions"], _reference(predictor, image, **prompts))


def test_batching_on_and_off_give_the_same_answers(batched, single):
    images = [_png(10 + i, (64 + 8 * i, 80)) for i in range(4)]
    prompts = [{"boxes": BOXES[: 1 + i % 2]} for i in range(4)]

    def run(url, service):
        """The four requests at once; the worker held on its first batch until all are in."""
        first_batch, gate = [], threading.Event()
        run_batch = service._caption_batch

        def held_at_the_gate(batch):
            if not first_batch:
                first_batch.append(len(batch))
                gate.wait(60)
            return run_batch(batch)

        service._caption_batch = held_at_the_gate
        try:
            with ThreadPoolExecutor(4) as pool:
                jobs = [
                    pool.submit(_json, f"{url}/v1/caption", im, **p)
                    for im, p in zip(images, prompts)
                ]
                _wait_until(
                    lambda: first_batch and first_batch[0] + service.queue_depth == 4,
                    "all four requests are in",
                )
                gate.set()
                return [j.result().json() for j in jobs]
        finally:
            del service._caption_batch

    on, off = run(*batched), run(*single)
    assert max(b["batch"]["requests"] for b in on) > 1  # served together
    assert all(b["batch"]["requests"] == 1 for b in off)
    for a, b in zip(on, off):
        assert [r["caption"] for r in a["regions"]] == [r["caption"] for r in b["regions"]]
        for ra, rb in zip(a["regions"], b["regions"]):
            np.testing.assert_allclose(ra["box"], rb["box"], atol=1e-4)
            assert ra["predicted_iou"] == pytest.approx(rb["predicted_iou"], abs=1e-4)
            assert ra["caption_score"] == pytest.approx(rb["caption_score"], abs=1e-4)
            assert ra["segmentation"]["counts"] == rb["segmentation"]["counts"]
    metrics = httpx.get(f"{batched[0]}/metrics").text
    assert 'sca_batch_requests_bucket{le="1"}' in metrics


def test_repeated_image_skips_the_encoder(batched):
    url, service = batched
    image = _png(99)
    before = service.metrics.encoder_runs
    first = _multipart(f"{url}/v1/caption", image, boxes=BOXES).json()
    second = _multipart(f"{url}/v1/caption", image, points=POINTS).json()
    assert service.metrics.encoder_runs == before + 1
    assert (first["embedding_cached"], second["embedding_cached"]) == (False, True)
    assert second["timings_ms"]["encode"] == 0.0
    health = httpx.get(f"{url}/healthz").json()
    assert health["image_encoder_runs"] == before + 1 and health["embedding_cache_hits"] >= 1
    text = httpx.get(f"{url}/metrics").text
    assert f"sca_image_encoder_runs_total {before + 1}" in text


def _truncated() -> bytes:
    data = _png(5)
    return data[: len(data) // 2]


def _big_png() -> bytes:  # 250x250 pixels: over the 40,000-pixel limit, a small file
    out = io.BytesIO()
    Image.new("RGB", (250, 250)).save(out, "PNG")
    return out.getvalue()


GOOD = _png(3)
BAD_INPUTS = {
    "malformed JSON body": (
        lambda u: httpx.post(
            u, content=b'{"image": "x", ', headers={"content-type": "application/json"}
        ),
        400,
        "body",
    ),
    "malformed JSON field": (
        lambda u: httpx.post(u, files={"image": ("a.png", GOOD)}, data={"boxes": "[[1, 2,"}),
        400,
        "boxes",
    ),
    "NaN box": (
        lambda u: _multipart(u, GOOD, boxes=[[1, float("nan"), 20, 20]]),
        422,
        "boxes[0][1]",
    ),
    "inverted box": (
        lambda u: _json(u, GOOD, boxes=[[1, 2, 20, 20], [30, 30, 10, 40]]),
        422,
        "boxes[1]",
    ),
    "box outside": (lambda u: _json(u, GOOD, boxes=[[200, 200, 300, 300]]), 422, "boxes[0]"),
    "string box": (lambda u: _json(u, GOOD, boxes=[["1", 2, 3, 4]]), 422, "boxes[0][0]"),
    "ragged points": (lambda u: _json(u, GOOD, points=[[1, 2], [3]]), 422, "points"),
    "point outside": (lambda u: _json(u, GOOD, points=[[1, 2], [-5, 3]]), 422, "points[1]"),
    "bad labels": (
        lambda u: _json(u, GOOD, points=[[1, 2]], point_labels=[7]),
        422,
        "point_labels",
    ),
    "boxes and points differ": (
        lambda u: _json(u, GOOD, boxes=BOXES, points=[[1, 2]]),
        422,
        "points",
    ),
    "no prompts": (lambda u: _json(u, GOOD), 422, "boxes"),
    "too many prompts": (lambda u: _json(u, GOOD, boxes=[BOXES[0]] * 9), 413, "boxes"),
    "unknown field": (lambda u: _json(u, GOOD, boxes=BOXES, boxs=BOXES), 422, "boxs"),
    "not an image": (lambda u: _multipart(u, b"plain text, no image", boxes=BOXES), 422, "image"),
    "truncated image": (lambda u: _multipart(u, _truncated(), boxes=BOXES), 422, "image"),
    "too many pixels": (lambda u: _json(u, _big_png(), boxes=BOXES), 413, "image"),
    "image file too large": (lambda u: _multipart(u, b"\0" * 70_000, boxes=BOXES), 413, "image"),
    "body too large": (lambda u: _multipart(u, b"\0" * 1_200_000, boxes=BOXES), 413, "body"),
    "chunked body too large": (
        lambda u: httpx.post(
            u,
            content=iter([b"x" * 100_000] * 12),
            headers={"content-type": "application/json"},
        ),
        413,
        "body",
    ),
    "bad base64": (
        lambda u: httpx.post(u, json={"image": "not base64!", "boxes": BOXES}),
        422,
        "image",
    ),
    "missing image": (lambda u: httpx.post(u, json={"boxes": BOXES}), 422, "image"),
    "wrong content type": (lambda u: httpx.post(u, content=b"hello"), 415, "content-type"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_its_4xx_and_the_next_request_works(batched, case):
    url, service = batched
    send, status, field = BAD_INPUTS[case]
    r = send(f"{url}/v1/caption")
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status and error["field"] == field and error["message"]
    good = _multipart(f"{url}/v1/caption", GOOD, boxes=BOXES)
    assert good.status_code == 200 and len(good.json()["regions"]) == 2
    assert service.alive


def test_queue_full_is_429_and_slow_answer_is_504(predictor):
    limits = ServiceLimits(max_queue=1, request_timeout_s=4.0, max_batch_requests=1)
    service = CaptionService(predictor, limits)
    held, gate = threading.Event(), threading.Event()
    run_batch = service._caption_batch

    def held_at_the_gate(batch):
        held.set()
        gate.wait(60)
        return run_batch(batch)

    service._caption_batch = held_at_the_gate
    with BackgroundServer(create_app(service)) as server, ThreadPoolExecutor(2) as pool:
        url = f"{server.url}/v1/caption"
        first = pool.submit(_json, url, GOOD, boxes=BOXES)  # taken by the worker, held
        assert held.wait(60), "the worker never took the first request"
        second = pool.submit(_json, url, _png(4), boxes=BOXES)  # waits in the queue
        _wait_until(lambda: service.queue_depth >= 1 or second.done(), "the second is queued")
        assert not second.done(), second.result().text
        third = _json(url, GOOD, boxes=BOXES)
        assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
        assert third.json()["error"]["field"] == "queue"
        assert first.result().status_code == 504 and second.result().status_code == 504
        gate.set()
        after = _json(url, GOOD, boxes=BOXES)
        assert after.status_code == 200, after.text
        text = httpx.get(f"{server.url}/metrics").text
        assert 'sca_http_errors_total{code="504"} 2' in text
        assert 'sca_http_errors_total{code="429"} 1' in text
    assert not service.alive  # stopped with the app


def test_a_request_the_model_fails_on_fails_alone(predictor):
    service = CaptionService(predictor, ServiceLimits(max_wait_ms=1000))
    inference = predictor.model.inference
    held, gate = threading.Event(), threading.Event()
    calls = []

    def fragile(inputs, **kwargs):  # the model fails on any input with 3 prompts
        calls.append(len(inputs))
        if len(calls) == 1:  # the first request holds the worker until the next two are queued
            held.set()
            gate.wait(60)
        if any(len(x["proposals"]) == 3 for x in inputs):
            raise RuntimeError("boom")
        return inference(inputs, **kwargs)

    predictor.model.inference = fragile
    try:
        with BackgroundServer(create_app(service)) as server, ThreadPoolExecutor(3) as pool:
            url = f"{server.url}/v1/caption"
            holder = pool.submit(_json, url, _png(9), boxes=BOXES)
            assert held.wait(60), "the worker never took the first request"
            good = pool.submit(_json, url, GOOD, boxes=BOXES)
            bad = pool.submit(_json, url, _png(8), boxes=BOXES + BOXES[:1])
            _wait_until(lambda: service.queue_depth == 2, "both requests are queued")
            gate.set()
            assert holder.result().status_code == 200 and good.result().status_code == 200
            assert bad.result().status_code == 500
            assert calls == [1, 2, 1, 1]  # held alone; then together, then each alone
            assert bad.result().json()["error"]["message"] == "RuntimeError: boom"
            assert _json(url, GOOD, boxes=BOXES).status_code == 200
    finally:
        del predictor.model.inference


def test_anything_health_metrics_and_openapi(batched, predictor):
    url, _ = batched
    image = _png(7, (64, 64))
    r = _multipart(f"{url}/v1/anything", image)
    assert r.status_code == 200, r.text
    regions = r.json()["regions"]
    predictor.set_image(Image.open(io.BytesIO(image)))
    ref = predictor.anything()
    assert len(ref) > 0
    assert [x["caption"] for x in regions] == ref.pred_captions
    np.testing.assert_allclose([x["box"] for x in regions], ref.pred_boxes.tensor, atol=1e-4)
    assert _json(f"{url}/v1/anything", image, boxes=BOXES).status_code == 422  # no prompts here

    health = httpx.get(f"{url}/healthz")
    assert health.status_code == 200
    assert health.json()["model_loaded"] is True and health.json()["queue_depth"] == 0
    text = httpx.get(f"{url}/metrics").text
    for line in (
        'sca_http_requests_total{endpoint="/v1/anything",code="200"}',
        'sca_http_errors_total{code="422"}',
        'sca_http_request_duration_seconds_bucket{endpoint="/v1/caption",le="+Inf"}',
        'sca_batch_regions_bucket{le="+Inf"}',
        "sca_queue_depth 0",
        "sca_model_loaded 1",
    ):
        assert line in text
    spec = httpx.get(f"{url}/openapi.json").json()
    assert {"/v1/caption", "/v1/anything", "/healthz", "/metrics"} <= set(spec["paths"])
    body = spec["paths"]["/v1/caption"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert httpx.get(f"{url}/docs").status_code == 200


def test_web_page_uses_the_service_core(batched, predictor, tmp_path):
    _, service = batched
    app = SCAApp(service)
    path = tmp_path / "page.png"
    path.write_bytes(_png(21))
    image, status, _, state = app.upload(str(path))
    assert "Loaded page.png (96x72)" in status and image.shape == (72, 96, 3)
    before = service.metrics.encoder_runs
    _, status, table, state = app.box_from_text(state, " ".join(map(str, BOXES[0])))
    assert "1 box and 0 point prompts" in status
    ref = _reference(predictor, path.read_bytes(), boxes=BOXES[:1])
    assert f"| 0 | {ref.pred_captions[0]} |" in table
    _, status, _, _ = app.box_from_text(state, "30 30 10 40")  # inverted: a message
    assert "Error" in status and "inverted" in status
    assert service.metrics.encoder_runs == before + 1
    (path.parent / "fake.jpg").write_text("not an image")
    assert "not an image" in app.upload(str(path.parent / "fake.jpg"))[1]
