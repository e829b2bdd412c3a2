"""The one error type of the service: an HTTP status, the request field at fault and a message."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service answers with ``status`` (4xx: the client's fault, 5xx: ours).

    ``field`` names the part of the request at fault (``image``, ``boxes[2]``, ``body``, ...),
    ``headers`` are added to the HTTP answer (``Retry-After`` with 429)."""

    def __init__(
        self, status: int, field: str, message: str, headers: dict[str, str] | None = None
    ):
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message
        self.headers = headers or {}

    def to_json(self) -> dict:
        return {"error": {"code": self.status, "field": self.field, "message": self.message}}
