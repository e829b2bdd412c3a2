"""Dense captioning (DenseCap mAP) of a model's own region proposals."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict

from .dataset_gt import (
    annotation_box,
    annotation_references,
    write_json,
)
from .densecap_map import evaluate_densecap
from .gathering import GatheringEvaluator

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "densecap_predictions.json"
GROUND_TRUTH_FILE = "densecap_ground_truth.json"
RESULTS_FILE = "densecap_results.json"


class DenseCaptionEvaluator(GatheringEvaluator):
    """DenseCap mAP (see :func:`evaluate_densecap`) of ``outputs[i]["instances"]``: ``pred_boxes``
    (original image pixels), ``pred_captions`` and the ranking field ``score_field`` (``"scores"``,
    SAM's predicted IoU, or e.g. ``"caption_scores"``, the mean token log-probability).

    :meth:`evaluate` returns ``{"densecap": {"mAP", "det_mAP"}}`` x 100 (GRiT's 15.5 is 0.155 of
    the Lua code) on the main process, ``{}`` on the others. Writes to ``output_dir``:
    ``densecap_predictions.json`` and ``densecap_ground_truth.json`` in the input format of
    :func:`evaluate_densecap` (re-score with ``python -m sca.evaluation.rescore``) and
    ``densecap_results.json`` with the full AP table.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str | None = None,
        distributed: bool = True,
        last_target_quirk: bool = True,
        score_field: str = "scores",
    ) -> None:
        super().__init__(dataset_name, output_dir, distributed)
        self._last_target_quirk = last_target_quirk
        self._score_field = score_field

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            instances = out["instances"].to("cpu")
            fields = list(instances.get_fields())
            for field in ("pred_boxes", "pred_captions", self._score_field):
                if not instances.has(field):
                    raise KeyError(
                        f"image {inp['image_id']!r}: the model's Instances have no {field!r} "
                        f"(fields: {fields}); the ranking field is TEST.SCA.DENSECAP_SCORE_FIELD"
                    )
            self._predictions.append(
                {
                    "image_id": inp["image_id"],
                    "boxes": instances.pred_boxes.tensor.float().tolist(),
                    "captions": list(instances.pred_captions),
                    "scores": instances.get(self._score_field).float().reshape(-1).tolist(),
                }
            )

    def evaluate(self) -> OrderedDict:
        gathered = self._gathered_with_index()
        if gathered is None:
            return OrderedDict()
        predictions, index = gathered
        ground_truth = []
        for entry in predictions:
            annotations = index[entry["image_id"]]["annotations"]
            ground_truth.append(
                {
                    "image_id": entry["image_id"],
                    "boxes": [annotation_box(a) for a in annotations],
                    "captions": [annotation_references(a, entry["image_id"]) for a in annotations],
                }
            )
        write_json(
            self._output_dir,
            PREDICTIONS_FILE,
            {
                "dataset": self._dataset_name,
                "score_field": self._score_field,
                "last_target_quirk": self._last_target_quirk,
                "predictions": predictions,
            },
        )
        write_json(self._output_dir, GROUND_TRUTH_FILE, ground_truth)
        if not predictions:
            logger.warning("%s: no image to evaluate", self._dataset_name)
            return OrderedDict()
        result = evaluate_densecap(
            predictions, ground_truth, last_target_quirk=self._last_target_quirk
        )
        write_json(
            self._output_dir,
            RESULTS_FILE,
            {"dataset": self._dataset_name, "score_field": self._score_field, **result},
        )
        return OrderedDict(densecap=densecap_summary(result))


def densecap_summary(result: dict) -> dict[str, float]:
    """Detectron2-style results: mAP and detection mAP x 100."""
    summary = {"mAP": 100.0 * result["map"], "det_mAP": 100.0 * result["det_map"]}
    logger.info(
        "DenseCap mAP on %d images, %d detections, %d merged targets: %s",
        result["num_images"],
        result["num_detections"],
        result["num_targets"],
        json.dumps(summary),
    )
    return summary
