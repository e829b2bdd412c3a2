"""SCA's data: data set registration, image reading, the dataset mapper and the loaders.

Importing this package registers every built-in data set name (no file is read until one is
loaded); docs/DATASETS.md lists the names, datasets/README.md their files and layout.
"""

from .build import build_sca_test_loader, build_sca_train_loader
from .builtin import register_all_sca_datasets
from .coco_json import load_sca_coco_json, register_sca_coco_json
from .config_datasets import register_config_datasets
from .dataset_mapper import SCADatasetMapper
from .errors import (
    AnnotationError,
    DatasetConfigError,
    DatasetNotFoundError,
    ImageReadError,
    TrainingSampleError,
)
from .image_io import read_image
from .shapes import register_sca_shapes

register_all_sca_datasets()
register_sca_shapes()

__all__ = [
    "AnnotationError",
    "DatasetConfigError",
    "DatasetNotFoundError",
    "ImageReadError",
    "SCADatasetMapper",
    "TrainingSampleError",
    "build_sca_test_loader",
    "build_sca_train_loader",
    "load_sca_coco_json",
    "read_image",
    "register_config_datasets",
    "register_sca_coco_json",
]
