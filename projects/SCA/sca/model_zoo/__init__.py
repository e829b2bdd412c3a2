"""SCA's model zoo, with the API of ``detectron2.model_zoo``: shipped configs, the official SCA
releases (downloaded, converted once and cached) and your own trained runs."""

from .catalog import LANGUAGE_MODELS, RELEASES, SAM_CHECKPOINTS
from .config_files import get_config_file, list_configs
from .convert import convert_release
from .model_zoo import get, get_checkpoint_url, get_config, resolve_config

__all__ = [
    "LANGUAGE_MODELS",
    "RELEASES",
    "SAM_CHECKPOINTS",
    "convert_release",
    "get",
    "get_checkpoint_url",
    "get_config",
    "get_config_file",
    "list_configs",
    "resolve_config",
]
