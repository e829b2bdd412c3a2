"""The service's limits and batching settings, in one place (``tools/serve.py`` flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServiceLimits:
    """What one request may hold and how requests are batched.

    Attributes:
        max_upload_bytes: largest image file (the encoded bytes); a bigger request body is refused
            with 413 before it is read in full.
        max_pixels: largest image, width x height (413), checked before the pixels are decoded.
        max_prompts: most prompts (boxes or point sets) in one request (413).
        max_points_per_prompt: most points in one point prompt (413).
        max_queue: most requests waiting for the model; one more gets 429 with ``Retry-After``.
        request_timeout_s: a request not answered within this many seconds gets 504.
        max_batch_regions: most regions the LM's ``generate`` runs over at once.
        max_batch_requests: most requests served by one model call; 1 serves one at a time.
        max_wait_ms: how long the first request of a batch waits for others to join it.
        cache_images: image embeddings kept (LRU, keyed by the SHA-256 of the image's bytes).
    """

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_prompts: int = 64
    max_points_per_prompt: int = 16
    max_queue: int = 64
    request_timeout_s: float = 60.0
    max_batch_regions: int = 64
    max_batch_requests: int = 32
    max_wait_ms: float = 10.0
    cache_images: int = 32

    def __post_init__(self):
        for name in (
            "max_upload_bytes",
            "max_pixels",
            "max_prompts",
            "max_points_per_prompt",
            "max_queue",
            "max_batch_regions",
            "max_batch_requests",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ServiceLimits.{name}={getattr(self, name)}: must be >= 1")
        if self.request_timeout_s <= 0 or self.max_wait_ms < 0 or self.cache_images < 0:
            raise ValueError(
                f"ServiceLimits: request_timeout_s={self.request_timeout_s} must be > 0, "
                f"max_wait_ms={self.max_wait_ms} and cache_images={self.cache_images} >= 0"
            )

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: the image as base64 (4/3 of its bytes) plus 1 MiB of
        prompts and form fields."""
        return self.max_upload_bytes * 4 // 3 + 4 + (1 << 20)
