"""Re-score the prediction files written by SCA's evaluators, without the model.

    python -m sca.evaluation.rescore OUTPUT_DIR [--no-quirk] [--spice]
        [--pos-recall {release,legacy}] [--spacy-model NAME_OR_FOLDER]

reads ``region_caption_predictions.json`` and/or ``densecap_predictions.json`` +
``densecap_ground_truth.json`` from OUTPUT_DIR and prints the results (Detectron2 scale, x 100)
as JSON, with ``caption_pos_tagger``: the tagger of the noun/verb recall columns (``Noun``,
``Verb``, ``Noun (F)``, ``Verb (F)`` under the release's definitions). Settings not given are the
ones the file was written with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .densecap_evaluator import GROUND_TRUTH_FILE, densecap_summary
from .densecap_evaluator import PREDICTIONS_FILE as DENSECAP_FILE
from .densecap_map import evaluate_densecap
from .pos_recall import POS_RECALL_DEFINITIONS
from .region_caption_evaluator import PREDICTIONS_FILE as REGION_FILE
from .region_caption_evaluator import region_caption_summary, score_regions


def _load(path: str) -> object:
    with open(path) as f:
        return json.load(f)


def rescore_region_captions(
    path: str,
    spice: bool | None = None,
    pos_recall: str | None = None,
    spacy_model: str | None = None,
    details: dict | None = None,
) -> dict[str, float]:
    """Caption metrics (x 100) of a ``region_caption_predictions.json``; ``details``, when given,
    receives the full results (fractions, ``pos_tagger``, reasons for missing metrics)."""
    blob = _load(path)
    use_spice = blob.get("spice", False) if spice is None else spice
    definitions = blob.get("pos_recall", "release") if pos_recall is None else pos_recall
    model = blob.get("spacy_model", "") if spacy_model is None else spacy_model
    metrics = score_regions(blob["regions"], use_spice, definitions, model)
    if details is not None:
        details.update(metrics)
    return region_caption_summary(metrics)


def rescore_densecap(
    predictions_path: str, ground_truth_path: str, last_target_quirk: bool | None = None
) -> dict[str, float]:
    """DenseCap mAP and detection mAP (x 100) of a ``densecap_predictions.json`` and its ground
    truth; ``last_target_quirk`` defaults to the setting the file was written with."""
    blob = _load(predictions_path)
    quirk = blob.get("last_target_quirk", True) if last_target_quirk is None else last_target_quirk
    result = evaluate_densecap(
        blob["predictions"], _load(ground_truth_path), last_target_quirk=quirk
    )
    return densecap_summary(result)


def rescore(
    output_dir: str,
    last_target_quirk: bool | None = None,
    spice: bool | None = None,
    pos_recall: str | None = None,
    spacy_model: str | None = None,
    details: dict | None = None,
) -> dict:
    """All results that the files in ``output_dir`` allow, as the evaluators return them."""
    results = {}
    region_path = os.path.join(output_dir, REGION_FILE)
    if os.path.isfile(region_path):
        results["caption"] = rescore_region_captions(
            region_path, spice, pos_recall, spacy_model, details
        )
    densecap_path = os.path.join(output_dir, DENSECAP_FILE)
    if os.path.isfile(densecap_path):
        gt_path = os.path.join(output_dir, GROUND_TRUTH_FILE)
        results["densecap"] = rescore_densecap(densecap_path, gt_path, last_target_quirk)
    if not results:
        raise FileNotFoundError(f"{output_dir} has neither {REGION_FILE} nor {DENSECAP_FILE}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output_dir", help="an evaluator's output folder")
    parser.add_argument(
        "--no-quirk", action="store_true", help="turn DenseCap's last-target quirk off"
    )
    parser.add_argument("--spice", action="store_true", help="run SPICE (needs Stanford CoreNLP)")
    parser.add_argument(
        "--pos-recall",
        choices=POS_RECALL_DEFINITIONS,
        help="noun/verb recall definitions (default: as the file was written)",
    )
    parser.add_argument(
        "--spacy-model", help="spaCy pipeline (package name or folder) for the noun/verb recall"
    )
    args = parser.parse_args(argv)
    details: dict = {}
    results = rescore(
        args.output_dir,
        last_target_quirk=False if args.no_quirk else None,
        spice=True if args.spice else None,
        pos_recall=args.pos_recall,
        spacy_model=args.spacy_model,
        details=details,
    )
    for key in ("pos_tagger", "fuzzy_recall_unavailable", "noun_verb_recall_unavailable"):
        if key in details:
            results[f"caption_{key}"] = details[key]
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
