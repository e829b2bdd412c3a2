"""``tools/serve.py``: the HTTP API on uvicorn, one process, one model.

    python tools/serve.py --config-file output/sca_demo/config.yaml \\
        MODEL.WEIGHTS output/sca_demo/model_final.pth

Trailing ``KEY VALUE`` pairs override the config, as with ``tools/train_net.py``. The server
binds 127.0.0.1 unless ``--host`` says otherwise: put your own gateway (TLS, authentication)
in front of it.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time

import uvicorn
from detectron2.utils.logger import setup_logger
from PIL import Image

from ...model_zoo import resolve_config
from ..predictor import SCAPredictor
from .api import create_app
from .core import CaptionService
from .limits import ServiceLimits

logger = logging.getLogger("sca.serve")


def get_parser() -> argparse.ArgumentParser:
    d = ServiceLimits()
    parser = argparse.ArgumentParser(
        description="Serve SCA over HTTP: POST /v1/caption, POST /v1/anything, GET /healthz, "
        "GET /metrics, OpenAPI page at /docs."
    )
    parser.add_argument(
        "--config-file", required=True, metavar="FILE", help="config YAML or model-zoo name"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 2**20)
    parser.add_argument("--max-pixels", type=int, default=d.max_pixels, help="largest image (w*h)")
    parser.add_argument("--max-prompts", type=int, default=d.max_prompts, help="per request")
    parser.add_argument("--max-queue", type=int, default=d.max_queue, help="requests waiting")
    parser.add_argument("--timeout", type=float, default=d.request_timeout_s, help="seconds")
    parser.add_argument(
        "--max-batch-regions",
        type=int,
        default=0,
        help="regions per model call (default: MODEL.SCA.GENERATION.CHUNK_SIZE, else 64)",
    )
    parser.add_argument("--max-batch-requests", type=int, default=d.max_batch_requests)
    parser.add_argument(
        "--max-wait-ms", type=float, default=d.max_wait_ms, help="time a batch waits to fill"
    )
    parser.add_argument("--no-batching", action="store_true", help="one request per model call")
    parser.add_argument("--cache-images", type=int, default=d.cache_images, help="embeddings kept")
    parser.add_argument(
        "opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ..."
    )
    return parser


def limits_from_args(args: argparse.Namespace, chunk_size: int) -> ServiceLimits:
    return ServiceLimits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        max_prompts=args.max_prompts,
        max_queue=args.max_queue,
        request_timeout_s=args.timeout,
        max_batch_regions=args.max_batch_regions or chunk_size or 64,
        max_batch_requests=1 if args.no_batching else args.max_batch_requests,
        max_wait_ms=0.0 if args.no_batching else args.max_wait_ms,
        cache_images=args.cache_images,
    )


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, with command-line arguments ``argv`` (default ``sys.argv[1:]``)."""
    args = get_parser().parse_args(argv)
    setup_logger(name="sca")
    cfg = resolve_config(args.config_file, opts=args.opts)
    limits = limits_from_args(args, cfg.MODEL.SCA.GENERATION.CHUNK_SIZE)
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    predictor = SCAPredictor(cfg)
    service = CaptionService(predictor, limits)
    logger.info("Serving on http://%s:%d (OpenAPI page: /docs), %s", args.host, args.port, limits)
    uvicorn.run(
        create_app(service),
        host=args.host,
        port=args.port,
        log_level="warning",
        # bounds the request bodies held at once: beyond it uvicorn answers 503
        limit_concurrency=2 * limits.max_queue + 16,
    )


class BackgroundServer:
    """``app`` served by uvicorn in a thread on a free port of ``host`` (tests, notebooks)::

    with BackgroundServer(create_app(service)) as server:
        httpx.get(server.url + "/healthz")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()


if __name__ == "__main__":
    main()
