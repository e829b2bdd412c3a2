"""Anything mode against annotations that carry masks: how many annotated regions a model finds
by itself, how many of those it captions exactly, and the DenseCap mAP of what it finds.

A model in anything mode (MODEL.SCA.PROPOSAL_SOURCE "anything") returns, per image, regions with
``pred_masks`` (original frame), ``pred_boxes``, ``pred_captions`` and a ranking score. Each
image's regions are matched one-to-one to its annotations, as COCO matches detections: regions
in decreasing score, each takes the free annotation of highest mask IoU, provided that IoU is at
least ``recovery_iou``. An annotation so taken is *recovered*; its caption is *exact* when the
region's caption equals one of the annotation's captions (case and runs of spaces aside). A
region left without an annotation although it reaches ``recovery_iou`` with one (taken by a
higher-scored region) is a *duplicate*; a region that reaches no annotation is *unmatched*.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict

import numpy as np

from .dataset_gt import annotation_box, annotation_references, dataset_index, write_json
from .densecap_evaluator import densecap_summary
from .densecap_map import evaluate_densecap
from .gathering import GatheringEvaluator
from .mask_quality import gt_masks, mask_iou
from .meteor import MeteorScorer

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "anything_predictions.json"
RESULTS_FILE = "anything_results.json"


def match_regions(iou: np.ndarray, scores: np.ndarray, recovery_iou: float) -> np.ndarray:
    """One-to-one matching of N regions to M annotations from their (N, M) mask IoU.

    Regions in decreasing score (ties in input order) each take the free annotation of highest
    IoU, if that IoU is at least ``recovery_iou``. Returns (M,) the matched region of each
    annotation, -1 where none."""
    n, m = iou.shape
    matched = np.full(m, -1, dtype=np.int64)
    if n == 0 or m == 0:
        return matched
    for r in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        free = np.where(matched < 0, iou[r], -1.0)
        a = int(np.argmax(free))
        if free[a] >= recovery_iou:
            matched[a] = r
    return matched


def normalize_exact(caption: str) -> str:
    """A caption for exact comparison: lower case, runs of white space collapsed."""
    return " ".join(caption.lower().split())


class AnythingEvaluator(GatheringEvaluator):
    """Shapes recovered, exact captions among them and the DenseCap mAP of a model's own regions
    (anything mode), on a data set whose annotations have masks (``segmentation``, COCO RLE or
    polygons as pycocotools decodes them) and ``captions``.

    ``outputs[i]["instances"]`` needs ``pred_masks`` (original image size), ``pred_boxes``,
    ``pred_captions`` and the ranking field ``score_field`` (``scores``: SAM's predicted IoU times
    the caption's mean token probability, see ``rank_dense_regions``). :meth:`evaluate` returns
    ``{"anything": {...}}`` on the main process (``{}`` on the others):

    * ``recovered``: % of annotations recovered (mask IoU >= ``recovery_iou``, one-to-one);
    * ``exact_of_recovered``: % of the recovered whose caption is exact;
    * ``mAP`` / ``det_mAP``: the DenseCap mAP of the regions' boxes, captions and scores (with
      ``densecap`` False, not computed: it needs METEOR, hence Java);
    * ``regions_per_image``, ``duplicates`` and ``unmatched`` (per image, mean).

    Writes ``anything_predictions.json`` (per image: boxes, captions, scores, and per annotation
    the matched region and its IoU) and ``anything_results.json`` into ``output_dir``.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str | None = None,
        distributed: bool = True,
        recovery_iou: float = 0.75,
        score_field: str = "scores",
        densecap: bool = True,
        last_target_quirk: bool = True,
        meteor: MeteorScorer | None = None,
    ) -> None:
        super().__init__(dataset_name, output_dir, distributed)
        self._recovery_iou = recovery_iou
        self._score_field = score_field
        self._densecap = densecap
        self._last_target_quirk = last_target_quirk
        self._meteor = meteor
        self._index: dict | None = None

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        if self._index is None:
            self._index = dataset_index(self._dataset_name)
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            instances = out["instances"].to("cpu")
            for field in ("pred_masks", "pred_boxes", "pred_captions", self._score_field):
                if not instances.has(field):
                    raise KeyError(
                        f"image {image_id!r}: the model's Instances have no {field!r} (fields: "
                        f"{list(instances.get_fields())}); anything mode gives them"
                    )
            record = self._index[image_id]
            self._predictions.append(
                self.image_entry(
                    image_id,
                    instances.pred_masks.numpy().astype(bool),
                    list(instances.pred_captions),
                    instances.get(self._score_field).float().reshape(-1).numpy(),
                    instances.pred_boxes.tensor.float().tolist(),
                    record,
                )
            )

    def image_entry(
        self,
        image_id: object,
        masks: np.ndarray,
        captions: list[str],
        scores: np.ndarray,
        boxes: list[list[float]],
        record: dict,
    ) -> dict:
        """One image's regions matched to its annotations (the entry :meth:`evaluate` reads)."""
        annotations = record["annotations"]
        gt = gt_masks(record) if annotations else np.zeros((0, *masks.shape[1:]), dtype=bool)
        if len(masks) and len(gt) and masks.shape[1:] != gt.shape[1:]:
            raise ValueError(
                f"image {image_id!r}: predicted masks are {masks.shape[1:]}, the annotations' "
                f"{gt.shape[1:]}: the outputs must be in the original frame"
            )
        iou = mask_iou(masks, gt) if len(masks) and len(gt) else np.zeros((len(masks), len(gt)))
        matched = match_regions(iou, scores, self._recovery_iou)
        exact = []
        for a, r in enumerate(matched):
            refs = {normalize_exact(c) for c in annotation_references(annotations[a], image_id)}
            exact.append(bool(r >= 0 and normalize_exact(captions[r]) in refs))
        reaches = iou.max(axis=1) >= self._recovery_iou if len(gt) else np.zeros(len(masks), bool)
        taken = np.zeros(len(masks), dtype=bool)
        taken[matched[matched >= 0]] = True
        return {
            "image_id": image_id,
            "boxes": boxes,
            "captions": captions,
            "scores": [float(s) for s in scores],
            "matched_region": matched.tolist(),
            "matched_iou": [float(iou[r, a]) if r >= 0 else 0.0 for a, r in enumerate(matched)],
            "exact": exact,
            "duplicates": int((reaches & ~taken).sum()),
            "unmatched": int((~reaches).sum()),
        }

    def evaluate(self) -> OrderedDict:
        gathered = self._gathered_with_index()
        if gathered is None:
            return OrderedDict()
        predictions, index = gathered
        write_json(
            self._output_dir,
            PREDICTIONS_FILE,
            {
                "dataset": self._dataset_name,
                "recovery_iou": self._recovery_iou,
                "score_field": self._score_field,
                "images": predictions,
            },
        )
        if not predictions:
            logger.warning("%s: no image to evaluate", self._dataset_name)
            return OrderedDict()
        counts = recovery_counts(predictions)
        summary = {
            "recovered": 100.0 * counts["recovered"] / max(counts["annotations"], 1),
            "exact_of_recovered": 100.0 * counts["exact"] / max(counts["recovered"], 1),
            "regions_per_image": counts["regions"] / len(predictions),
            "duplicates": counts["duplicates"] / len(predictions),
            "unmatched": counts["unmatched"] / len(predictions),
        }
        results = {"dataset": self._dataset_name, "recovery_iou": self._recovery_iou, **counts}
        if self._densecap and counts["annotations"]:
            ground_truth = [
                {
                    "image_id": p["image_id"],
                    "boxes": [annotation_box(a) for a in index[p["image_id"]]["annotations"]],
                    "captions": [
                        annotation_references(a, p["image_id"])
                        for a in index[p["image_id"]]["annotations"]
                    ],
                }
                for p in predictions
                if index[p["image_id"]]["annotations"]
            ]
            dense = evaluate_densecap(
                [{k: p[k] for k in ("image_id", "boxes", "captions", "scores")}
                 for p in predictions if index[p["image_id"]]["annotations"]],
                ground_truth,
                last_target_quirk=self._last_target_quirk,
                meteor=self._meteor,
            )  # fmt: skip
            summary.update(densecap_summary(dense))
            results["densecap"] = dense
        results["summary"] = summary
        write_json(self._output_dir, RESULTS_FILE, results)
        logger.info(
            "anything mode on %d images: %d of %d annotations recovered (mask IoU >= %.2f), %d "
            "exact captions among them: %s",
            len(predictions),
            counts["recovered"],
            counts["annotations"],
            self._recovery_iou,
            counts["exact"],
            json.dumps(summary),
        )
        return OrderedDict(anything=summary)


def recovery_counts(entries: list[dict]) -> dict[str, int]:
    """Totals over image entries (:meth:`AnythingEvaluator.image_entry`)."""
    return {
        "images": len(entries),
        "annotations": sum(len(e["matched_region"]) for e in entries),
        "regions": sum(len(e["captions"]) for e in entries),
        "recovered": sum(r >= 0 for e in entries for r in e["matched_region"]),
        "exact": sum(sum(e["exact"]) for e in entries),
        "duplicates": sum(e["duplicates"] for e in entries),
        "unmatched": sum(e["unmatched"] for e in entries),
    }
