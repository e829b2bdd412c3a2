"""Segment and Caption Anything on Detectron2.

Importing ``sca`` registers everything the project adds to Detectron2's registries and catalogs,
so that spawned distributed workers that import it see them too.
"""

from ._env import require_detectron2

require_detectron2()

from . import data, modeling  # noqa: E402  (registers data sets and model parts)
from .config import add_sca_config, get_sca_cfg  # noqa: E402

__all__ = ["add_sca_config", "data", "get_sca_cfg", "modeling"]
