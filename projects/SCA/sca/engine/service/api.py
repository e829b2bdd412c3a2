"""The HTTP API over :class:`CaptionService` (FastAPI on Starlette; OpenAPI page at ``/docs``).

``POST /v1/caption``: an image and box and/or point prompts -> per prompt the XYXY box, RLE
mask, caption, caption score and predicted IoU, with timings. ``POST /v1/anything``: an image ->
every region SAM finds, captioned. ``GET /healthz``, ``GET /metrics`` (Prometheus text).

Requests are ``multipart/form-data`` (``image`` a file; ``boxes``, ``points``, ``point_labels``
JSON strings) or ``application/json`` (``image`` as base64). Errors answer
``{"error": {"code", "field", "message"}}`` with a 4xx status naming the field at fault, 429
(with ``Retry-After``) when the queue is full, 504 when the answer takes longer than the
request timeout.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from .core import CaptionService
from .errors import ServiceError
from .inputs import parse_prompts
from .responses import result_json

logger = logging.getLogger(__name__)

ENDPOINTS = ("/v1/caption", "/v1/anything", "/healthz", "/metrics", "/docs", "/openapi.json")
CAPTION_FIELDS = ("image", "boxes", "points", "point_labels")
ANYTHING_FIELDS = ("image",)


class BodyTooLarge(ServiceError):
    def __init__(self, limit: int):
        super().__init__(413, "body", f"the request body is larger than {limit:,} bytes")


class LimitsAndMetrics:
    """ASGI middleware: refuses bodies over the limit (413) before reading them in full, and
    counts every answer by endpoint and status with its latency."""

    def __init__(self, app, service: CaptionService):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status = [500]
        limit = self.service.limits.max_body_bytes

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        received = [0]

        async def receive_counted():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                error = BodyTooLarge(limit)
                response = JSONResponse(error.to_json(), error.status, {"Connection": "close"})
                return await response(scope, receive, send_counted)
            await self.app(scope, receive_counted, send_counted)
        finally:
            self.service.metrics.observe_request(endpoint, status[0], time.perf_counter() - start)


async def _read_request(request: Request, allowed: tuple[str, ...]) -> tuple[bytes, dict]:
    """The image's bytes and the other fields (parsed JSON) of a multipart or JSON request."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict = {}
    image = None
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=len(allowed))
        except ServiceError:
            raise
        except Exception as e:  # Starlette's MultiPartException and friends
            raise ServiceError(400, "body", f"is not a valid multipart form: {e}") from e
        try:
            for key, value in form.multi_items():
                if key not in allowed:
                    raise ServiceError(422, key, f"unknown field: expected {', '.join(allowed)}")
                if key == "image":
                    if isinstance(value, str):
                        raise ServiceError(422, "image", "expected a file upload, got text")
                    image = await value.read()
                    continue
                try:
                    fields[key] = json.loads(value)
                except ValueError as e:
                    raise ServiceError(400, key, f"is not valid JSON: {e}") from e
        finally:
            await form.close()
    elif ctype == "application/json" or ctype.endswith("+json"):
        body = await request.body()
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ServiceError(400, "body", f"is not valid JSON: {e}") from e
        if not isinstance(payload, dict):
            raise ServiceError(422, "body", f"expected a JSON object with {', '.join(allowed)}")
        for key in payload:
            if key not in allowed:
                raise ServiceError(422, str(key), f"unknown field: expected {', '.join(allowed)}")
        encoded = payload.pop("image", None)
        if encoded is not None:
            if not isinstance(encoded, str):
                raise ServiceError(422, "image", "expected the image file as a base64 string")
            if encoded.startswith("data:") and "," in encoded:
                encoded = encoded.split(",", 1)[1]
            try:
                image = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ServiceError(422, "image", f"is not valid base64: {e}") from e
        fields = payload
    else:
        raise ServiceError(
            415,
            "content-type",
            f"is {ctype or 'missing'!r}: send multipart/form-data or application/json",
        )
    if image is None:
        raise ServiceError(422, "image", "is missing: send the image file")
    return image, fields


def _body_doc(fields: dict) -> dict:
    """The request body of the OpenAPI page: both encodings."""
    multipart = {k: {"type": "string", "description": v} for k, v in fields.items()}
    multipart["image"] = {"type": "string", "format": "binary", "description": "the image file"}
    as_json = {k: {"description": v} for k, v in fields.items()}
    as_json["image"] = {"type": "string", "description": "the image file, base64"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": multipart, "required": ["image"]}
                },
                "application/json": {
                    "schema": {"type": "object", "properties": as_json, "required": ["image"]}
                },
            },
        }
    }


PROMPT_DOCS = {
    "boxes": "JSON: [[x1, y1, x2, y2], ...] in the image's pixels",
    "points": "JSON: [[x, y], ...] one point per prompt, or [[[x, y], ...], ...]",
    "point_labels": "JSON: 1 (foreground) or 0 (background) per point; all 1 by default",
}


def create_app(service: CaptionService, close_service: bool = True) -> FastAPI:
    """The API over ``service``; the worker stops with the app when ``close_service``."""

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        yield
        if close_service:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="Segment and Caption Anything",
        summary="Masks and captions for regions of an image: box and point prompts, or anything.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(LimitsAndMetrics, service=service)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, e: ServiceError):
        return JSONResponse(e.to_json(), e.status, e.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        logger.exception("unexpected error on %s", request.url.path)
        error = ServiceError(500, "server", f"{type(e).__name__}: {e}")
        return JSONResponse(error.to_json(), 500)

    async def answer(request: Request, allowed: tuple[str, ...], prompted: bool) -> dict:
        start = time.perf_counter()
        data, fields = await _read_request(request, allowed)

        def parse():
            image = service.decode(data)
            if not prompted:
                return image, None
            prompts = parse_prompts(
                fields.get("boxes"),
                fields.get("points"),
                fields.get("point_labels"),
                image,
                service.limits,
            )
            return image, prompts

        image, prompts = await run_in_threadpool(parse)
        future = service.submit(image, prompts)
        left = service.limits.request_timeout_s - (time.perf_counter() - start)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), max(left, 0.001))
        except TimeoutError as e:
            future.cancel()
            raise ServiceError(
                504, "request", f"not answered within {service.limits.request_timeout_s:g} s"
            ) from e
        return result_json(image, result, time.perf_counter() - start, prompted)

    @app.post("/v1/caption", openapi_extra=_body_doc(PROMPT_DOCS))
    async def caption(request: Request) -> dict:
        """Masks and captions for box and/or point prompts on one image: per prompt (in order)
        the XYXY box, the mask as COCO RLE, the caption, its score (mean token log-probability)
        and SAM's predicted IoU. With boxes and points, prompt i is box i with point set i."""
        return await answer(request, CAPTION_FIELDS, True)

    @app.post("/v1/anything", openapi_extra=_body_doc({}))
    async def anything(request: Request) -> dict:
        """Every region SAM's automatic mask generation finds in the image, captioned."""
        return await answer(request, ANYTHING_FIELDS, False)

    @app.get("/healthz")
    async def healthz():
        """Whether the model is loaded and the worker runs, and how many requests wait."""
        health = service.health()
        return JSONResponse(health, 200 if health["status"] == "ok" else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        """Prometheus text: requests and errors by code, latency histogram, batch sizes."""
        return PlainTextResponse(
            service.render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return app
