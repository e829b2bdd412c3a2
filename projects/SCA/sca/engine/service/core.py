"""The service core: one model, one worker thread, a dynamic batcher and an embedding cache.

Requests are queued as jobs. The worker takes the first waiting job, lets others join it for up
to ``max_wait_ms`` (up to ``max_batch_requests`` jobs and ``max_batch_regions`` regions), encodes
the images that the embedding cache does not hold in one encoder call, and then runs the model's
own inference once over the prompts of all jobs (``SegmentCaptionAnything.inference`` with the
embeddings given: SAM's decoder per image, then the LM's ``generate`` over all regions of the
batch together). Anything-mode jobs run alone, through :class:`AnythingGenerator`, on the cached
embedding. The HTTP API (:mod:`.api`) and the web page (:mod:`sca.engine.web_app`) both call
:meth:`CaptionService.submit`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
from detectron2.structures import Boxes, Instances

from ...data.inference_input import model_input
from ...modeling.anything import AnythingGenerator
from ..predictor import SCAPredictor
from .errors import ServiceError
from .inputs import DecodedImage, Prompts, decode_image
from .limits import ServiceLimits
from .metrics import ServiceMetrics

logger = logging.getLogger(__name__)


@dataclass
class Result:
    """One job's answer: regions in the image's pixel frame (``pred_boxes``, ``pred_masks``,
    ``pred_captions``, ``caption_scores``, ``scores``: SAM's predicted IoU), and where the time
    went (seconds)."""

    instances: Instances
    queue_s: float
    encode_s: float
    inference_s: float
    batch_requests: int
    batch_regions: int
    embedding_cached: bool


@dataclass(eq=False)
class _Job:
    image: DecodedImage
    prompts: Prompts | None  # None: anything mode
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def regions(self) -> int:
        return 0 if self.prompts is None else len(self.prompts)


@dataclass
class _Cached:
    inputs: dict
    transform: object
    embedding: torch.Tensor  # (1, C, h, w)


class CaptionService:
    """The model of ``predictor`` (built once, never copied) behind a request queue.

    ``submit(image, prompts)`` returns a ``concurrent.futures.Future`` of a :class:`Result`,
    answered by the worker thread; ``submit(image)`` without prompts is anything mode. Requests
    beyond ``limits.max_queue`` waiting are refused with a 429 :class:`ServiceError`; a job's
    failure (its prompts rejected by the model, say) fails that job alone, and the worker goes on.
    """

    def __init__(self, predictor: SCAPredictor, limits: ServiceLimits | None = None):
        self.predictor = predictor
        self.model = predictor.model
        self.limits = limits or ServiceLimits()
        self.metrics = ServiceMetrics()
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._decode_slots = threading.BoundedSemaphore(2)
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._stop = False
        self._busy_s = 0.0  # mean seconds per job, for Retry-After
        self._thread: threading.Thread | None = None
        self.start()

    # ---- client side ----

    def decode(self, data: bytes, field: str = "image") -> DecodedImage:
        """``data`` (an image file's bytes) decoded in the model's format, within the limits
        (at most two at once, which bounds the memory that large images take)."""
        with self._decode_slots:
            return decode_image(data, self.predictor.input_format, self.limits, field)

    def submit(self, image: DecodedImage, prompts: Prompts | None = None) -> Future:
        job = _Job(image, prompts)
        with self._cond:
            if self._stop:
                raise ServiceError(503, "service", "the service is shutting down")
            if len(self._queue) >= self.limits.max_queue:  # drop the timed-out ones first
                self._queue = deque(j for j in self._queue if not j.future.cancelled())
            if len(self._queue) >= self.limits.max_queue:
                retry = max(1, math.ceil(len(self._queue) * self._busy_s))
                raise ServiceError(
                    429,
                    "queue",
                    f"{len(self._queue)} requests are waiting, the limit is "
                    f"{self.limits.max_queue}: retry in {retry} s",
                    {"Retry-After": str(retry)},
                )
            self._queue.append(job)
            self._cond.notify()
        return job.future

    def caption(
        self, image: DecodedImage, prompts: Prompts, timeout: float | None = None
    ) -> Result:
        """:meth:`submit` and wait (the web page's call)."""
        return self.submit(image, prompts).result(timeout or self.limits.request_timeout_s)

    def anything(self, image: DecodedImage, timeout: float | None = None) -> Result:
        return self.submit(image).result(timeout or self.limits.request_timeout_s)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def health(self) -> dict:
        return {
            "status": "ok" if self.alive else "stopped",
            "model_loaded": self.model is not None,
            "device": str(self.model.device),
            "queue_depth": self.queue_depth,
            "embedding_cache": {"images": len(self._cache), "capacity": self.limits.cache_images},
            "image_encoder_runs": self.metrics.encoder_runs,
            "embedding_cache_hits": self.metrics.cache_hits,
        }

    def render_metrics(self) -> str:
        return self.metrics.render(
            {
                "sca_queue_depth": ("Requests waiting for the model.", self.queue_depth),
                "sca_model_loaded": ("1 when the model is loaded.", int(self.model is not None)),
                "sca_embedding_cache_images": ("Image embeddings cached.", len(self._cache)),
            }
        )

    def start(self) -> None:
        with self._cond:
            if self.alive:
                return
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="sca-service", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the worker; waiting jobs are answered with 503."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)
        while self._queue:
            job = self._queue.popleft()
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ServiceError(503, "service", "the service stopped"))

    # ---- worker side ----

    def _take_batch(self) -> list[_Job] | None:
        limits = self.limits
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait()
            if self._stop:
                return None
            batch = [self._queue.popleft()]
            if batch[0].prompts is None:
                return batch  # anything mode runs alone
            regions = batch[0].regions
            deadline = time.perf_counter() + limits.max_wait_ms / 1000
            while len(batch) < limits.max_batch_requests and regions < limits.max_batch_regions:
                if not self._queue:
                    left = deadline - time.perf_counter()
                    if left <= 0 or self._stop:
                        break
                    self._cond.wait(left)
                    continue
                job = self._queue[0]
                if job.prompts is None or regions + job.regions > limits.max_batch_regions:
                    break
                batch.append(self._queue.popleft())
                regions += job.regions
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]  # timed out
            if not batch:
                continue
            start = time.perf_counter()
            self._serve(batch)
            elapsed = (time.perf_counter() - start) / len(batch)
            self._busy_s = elapsed if self._busy_s == 0 else 0.8 * self._busy_s + 0.2 * elapsed

    @torch.no_grad()
    def _serve(self, batch: list[_Job]) -> None:
        """Answer every job of ``batch``; when the batch fails, each job alone, so that a job
        the model refuses fails alone. Never raises: the worker goes on."""
        try:
            if batch[0].prompts is None:
                self._anything(batch[0])
            else:
                self._caption_batch(batch)
            return
        except Exception as e:
            if len(batch) == 1:
                if not isinstance(e, ValueError):
                    logger.exception("a request failed")
                if not batch[0].future.done():
                    batch[0].future.set_exception(_as_service_error(e))
                return
        logger.warning("a batch of %d requests failed: serving them one by one", len(batch))
        for job in batch:
            if not job.future.done():
                self._serve([job])

    def _embeddings(self, images: list[DecodedImage]) -> tuple[list[_Cached], set[str], float]:
        """The cache entries of ``images``; the missing ones encoded in one encoder call."""
        start = time.perf_counter()
        missing: dict[str, DecodedImage] = {}
        for image in images:
            if image.key not in self._cache:
                missing.setdefault(image.key, image)
        if missing:
            prepared = [model_input(im.array, self.model.image_size) for im in missing.values()]
            embeddings = self.model.image_embeddings([inputs for inputs, _ in prepared])
            for key, (inputs, transform), emb in zip(missing, prepared, embeddings):
                self._cache[key] = _Cached(inputs, transform, emb[None].clone())
        entries = []
        for image in images:
            self._cache.move_to_end(image.key)
            entries.append(self._cache[image.key])
        keep = max(self.limits.cache_images, len(set(im.key for im in images)))
        while len(self._cache) > keep:
            self._cache.popitem(last=False)
        self.metrics.observe_images(len(missing), len(images) - len(missing))
        return entries, set(missing), time.perf_counter() - start

    def _caption_batch(self, batch: list[_Job]) -> None:
        entries, encoded, encode_s = self._embeddings([j.image for j in batch])
        inputs = [
            dict(e.inputs, proposals=_proposals(e, j.prompts)) for e, j in zip(entries, batch)
        ]
        embeddings = torch.cat([e.embedding for e in entries])
        start = time.perf_counter()
        outputs = self.model.inference(inputs, image_embeddings=embeddings)
        inference_s = time.perf_counter() - start
        regions = sum(j.regions for j in batch)
        self.metrics.observe_batch(len(batch), regions)
        for job, output in zip(batch, outputs):
            job.future.set_result(
                Result(
                    output["instances"].to("cpu"),
                    start - encode_s - job.enqueued,
                    encode_s if job.image.key in encoded else 0.0,
                    inference_s,
                    len(batch),
                    regions,
                    job.image.key not in encoded,
                )
            )

    def _anything(self, job: _Job) -> None:
        (entry,), encoded, encode_s = self._embeddings([job.image])
        start = time.perf_counter()
        generator = AnythingGenerator(self.model, self.predictor.anything_params)
        instances = generator.generate(job.image.array, entry.embedding)
        inference_s = time.perf_counter() - start
        self.metrics.observe_batch(1, len(instances))
        job.future.set_result(
            Result(
                instances.to("cpu"),
                start - encode_s - job.enqueued,
                encode_s if encoded else 0.0,
                inference_s,
                1,
                len(instances),
                not encoded,
            )
        )


def _proposals(entry: _Cached, prompts: Prompts) -> Instances:
    """The prompts in the model's input frame, as :meth:`SCAPredictor.predict` builds them."""
    proposals = Instances(tuple(entry.inputs["image"].shape[-2:]))
    if prompts.boxes is not None:
        boxes = entry.transform.apply_box(prompts.boxes.copy())
        proposals.proposal_boxes = Boxes(torch.as_tensor(boxes))
    if prompts.points is not None:
        points = prompts.points
        coords = entry.transform.apply_coords(points.reshape(-1, 2).copy())
        proposals.proposal_points = torch.as_tensor(coords).reshape(points.shape).float()
        proposals.proposal_point_labels = torch.as_tensor(prompts.point_labels).long()
    return proposals


def _as_service_error(e: Exception) -> ServiceError:
    if isinstance(e, ServiceError):
        return e
    if isinstance(e, ValueError):  # the model refused the prompts (MODEL.SCA.OUT_OF_IMAGE_BOXES)
        return ServiceError(422, "prompts", str(e))
    return ServiceError(500, "model", f"{type(e).__name__}: {e}")
