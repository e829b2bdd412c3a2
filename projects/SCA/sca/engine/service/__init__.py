"""The region-captioning service: one model behind a dynamic batcher and an embedding cache
(:class:`CaptionService`), its HTTP API (:func:`create_app`, ``tools/serve.py``) and the web
page's calls (:mod:`sca.engine.web_app`)."""

from .api import create_app
from .core import CaptionService, Result
from .errors import ServiceError
from .inputs import DecodedImage, Prompts, decode_image, parse_prompts
from .limits import ServiceLimits
from .server import BackgroundServer

__all__ = [
    "BackgroundServer",
    "CaptionService",
    "DecodedImage",
    "Prompts",
    "Result",
    "ServiceError",
    "ServiceLimits",
    "create_app",
    "decode_image",
    "parse_prompts",
]
