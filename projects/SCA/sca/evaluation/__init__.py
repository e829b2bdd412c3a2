"""SCA's evaluation: region-caption metrics (pycocoevalcap) and the DenseCap mAP, as pure functions
and as Detectron2 ``DatasetEvaluator``s.

Scales: the pure functions :func:`evaluate_captions` and :func:`evaluate_densecap` return fractions
(as pycocoevalcap and DenseCap's Lua code do); the evaluators return the Detectron2-table scale,
x 100 (CIDEr 148.8, METEOR 17.4, mAP 15.5).
"""

from .anything_evaluator import AnythingEvaluator
from .build import build_anything_evaluator, build_sca_evaluator
from .caption_metrics import evaluate_captions, normalize_caption
from .densecap_evaluator import DenseCaptionEvaluator
from .densecap_map import evaluate_densecap
from .java import JavaNotFoundError, require_java
from .meteor import MeteorError, MeteorScorer, shared_meteor
from .region_caption_evaluator import RegionCaptionEvaluator
from .rescore import rescore, rescore_densecap, rescore_region_captions

__all__ = [
    "AnythingEvaluator",
    "DenseCaptionEvaluator",
    "JavaNotFoundError",
    "MeteorError",
    "MeteorScorer",
    "RegionCaptionEvaluator",
    "build_anything_evaluator",
    "build_sca_evaluator",
    "evaluate_captions",
    "evaluate_densecap",
    "normalize_caption",
    "require_java",
    "rescore",
    "rescore_densecap",
    "rescore_region_captions",
    "shared_meteor",
]
