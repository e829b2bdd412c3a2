"""Region captioning with ground-truth boxes as prompts (SCA's VG and RefCOCO protocol)."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict

from .caption_metrics import evaluate_captions
from .dataset_gt import (
    annotation_box,
    annotation_references,
    as_percent,
    write_json,
)
from .gathering import GatheringEvaluator
from .pos_recall import LEGACY_COLUMNS, RELEASE_COLUMNS, TEXTBLOB_COLUMNS

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "region_caption_predictions.json"
RESULTS_FILE = "region_caption_results.json"
REPORTED_METRICS = (
    "CIDEr",
    "METEOR",
    "SPICE",
    "BLEU-1",
    "BLEU-2",
    "BLEU-3",
    "BLEU-4",
    "ROUGE_L",
    "exact_match",
    *RELEASE_COLUMNS,
    *TEXTBLOB_COLUMNS,
    *LEGACY_COLUMNS,
)


class RegionCaptionEvaluator(GatheringEvaluator):
    """Caption metrics of outputs prompted with each image's ground-truth boxes.

    Output ``j`` of an image (``outputs[i]["instances"]``, field ``pred_captions``) is the caption
    of annotation ``j`` of that image's dataset dict; all the annotation's ``captions`` are its
    references. :meth:`evaluate` returns ``{"caption": {...}}`` on the main process (``{}`` on the
    others) with every score x 100, the scale of Detectron2's tables (CIDEr 148.8, METEOR 17.4,
    exact_match and noun/verb recall in %), see :func:`evaluate_captions`. Only numbers are returned
    (Detectron2's printing and EvalHook need floats); SPICE or noun/verb recall, when they cannot
    run, are logged with the reason and recorded in ``region_caption_results.json``, as is the
    tagger of the noun/verb recall (``pos_tagger``, also logged). ``pos_recall`` and
    ``spacy_model``: ``TEST.SCA.POS_RECALL`` and ``TEST.SCA.POS_RECALL_SPACY_MODEL``.

    Writes to ``output_dir``: ``region_caption_predictions.json`` (every region's prediction and
    references: re-score it with ``python -m sca.evaluation.rescore``) and the results.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str | None = None,
        distributed: bool = True,
        spice: bool = False,
        pos_recall: str = "release",
        spacy_model: str = "",
    ) -> None:
        super().__init__(dataset_name, output_dir, distributed)
        self._spice = spice
        self._pos_recall = pos_recall
        self._spacy_model = spacy_model

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            instances = out["instances"]
            if not instances.has("pred_captions"):
                raise KeyError(
                    f"image {inp['image_id']!r}: the model's Instances have no 'pred_captions' "
                    f"(fields: {list(instances.get_fields())})"
                )
            entry = {"image_id": inp["image_id"], "captions": list(instances.pred_captions)}
            if instances.has("caption_scores"):
                entry["caption_scores"] = instances.caption_scores.detach().cpu().tolist()
            self._predictions.append(entry)

    def evaluate(self) -> OrderedDict:
        gathered = self._gathered_with_index()
        if gathered is None:
            return OrderedDict()
        predictions, index = gathered
        regions = []
        for entry in predictions:
            image_id = entry["image_id"]
            annotations = index[image_id]["annotations"]
            if len(entry["captions"]) != len(annotations):
                raise ValueError(
                    f"image {image_id!r}: {len(entry['captions'])} predicted captions for "
                    f"{len(annotations)} ground-truth regions. The region-caption evaluation "
                    "needs one output per annotation, in order (the model prompted with the "
                    "ground-truth boxes: MODEL.SCA.PROPOSAL_SOURCE 'gt')"
                )
            scores = entry.get("caption_scores", [None] * len(annotations))
            for j, (annotation, caption, score) in enumerate(
                zip(annotations, entry["captions"], scores)
            ):
                regions.append(
                    {
                        "image_id": image_id,
                        "annotation_index": j,
                        "annotation_id": annotation.get("id"),
                        "box": annotation_box(annotation),
                        "prediction": caption,
                        "references": annotation_references(annotation, image_id),
                        "caption_score": score,
                    }
                )
        write_json(
            self._output_dir,
            PREDICTIONS_FILE,
            {
                "dataset": self._dataset_name,
                "spice": self._spice,
                "pos_recall": self._pos_recall,
                "spacy_model": self._spacy_model,
                "regions": regions,
            },
        )
        if not regions:
            logger.warning("%s: no region to evaluate", self._dataset_name)
            return OrderedDict()
        metrics = score_regions(regions, self._spice, self._pos_recall, self._spacy_model)
        write_json(self._output_dir, RESULTS_FILE, {"dataset": self._dataset_name, **metrics})
        return OrderedDict(caption=region_caption_summary(metrics))


def score_regions(
    regions: list[dict], spice: bool, pos_recall: str = "release", spacy_model: str = ""
) -> dict:
    """:func:`evaluate_captions` of region records (as written to the predictions file)."""
    return evaluate_captions(
        [r["prediction"] for r in regions],
        [r["references"] for r in regions],
        spice=spice,
        pos_recall=pos_recall,
        spacy_model=spacy_model,
    )


def region_caption_summary(metrics: dict) -> dict[str, float]:
    """Detectron2-style results (x 100); reasons for missing metrics are logged."""
    for key in ("SPICE_unavailable", "noun_verb_recall_unavailable", "fuzzy_recall_unavailable"):
        if key in metrics:
            disabled = metrics[key].startswith("disabled")
            logger.log(logging.INFO if disabled else logging.WARNING, "%s: %s", key, metrics[key])
    if "pos_tagger" in metrics:
        logger.info(
            "noun/verb recall (%s definitions) tagged by %s",
            metrics.get("pos_recall"),
            metrics["pos_tagger"],
        )
    summary = as_percent(metrics, REPORTED_METRICS)
    logger.info("region captioning on %d regions: %s", metrics["num_regions"], json.dumps(summary))
    return summary
