"""The batched METEOR process and the missing-Java message."""

import os
import subprocess

import pytest

from sca.evaluation import caption_metrics
from sca.evaluation.caption_metrics import evaluate_captions
from sca.evaluation.java import JavaNotFoundError, require_java
from sca.evaluation.meteor import MeteorScorer, clean_for_meteor, shared_meteor

PAIRS = [
    ("a man riding a horse", ["a man is riding a brown horse", "person on a horse"]),
    ("a red car", ["a red car parked on the street"]),
    ("the sky", ["green grass"]),
    ("", ["a dog"]),
    ("two dogs\nplaying  in\tthe snow", ["dogs playing in snow", "two dogs ||| in snow"]),
    ("white clouds in blue sky", ["clouds in the sky"]),
]


def densecap_bridge_score(meteor, candidate, references):
    """DenseCap's meteor_bridge.py protocol, one round trip per pair: SCORE, then EVAL of those
    stats, keeping the second answer. Runs on a pycocoevalcap Meteor process."""
    proc = meteor.meteor_p
    line = " ||| ".join(["SCORE", *references, candidate])
    proc.stdin.write((line + "\n").encode())
    proc.stdin.flush()
    stats = proc.stdout.readline().decode().strip()
    proc.stdin.write(f"EVAL ||| {stats}\n".encode())
    proc.stdin.flush()
    proc.stdout.readline()
    return float(proc.stdout.readline())


def test_clean_for_meteor():
    assert clean_for_meteor(" a\nred \r\n car ||| x\t") == "a red car x"


def test_batched_scores_equal_densecap_bridge():
    scores = shared_meteor().score(PAIRS)
    meteor = caption_metrics._coco_meteor()
    try:
        expected = [
            densecap_bridge_score(meteor, clean_for_meteor(c), [clean_for_meteor(r) for r in refs])
            for c, refs in PAIRS
        ]
    finally:
        caption_metrics._release_coco_meteor(meteor)
    assert scores == expected
    assert scores[3] == 0.0 and scores[2] == 0.0
    assert all(0.0 < s < 1.0 for i, s in enumerate(scores) if i not in (2, 3))


def test_large_batch_does_not_deadlock():
    pairs = [(f"a red car number {i}", [f"a red car {i}", "a car"]) for i in range(3000)]
    scores = shared_meteor().score(pairs)
    assert len(scores) == 3000 and all(s > 0 for s in scores)


def test_empty_reference_list_is_rejected():
    with pytest.raises(ValueError, match="non-empty list"):
        shared_meteor().score([("a car", [])])


def test_missing_java_gives_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match="`java` is not on PATH.*default-jre-headless"):
        require_java()
    with pytest.raises(JavaNotFoundError, match="METEOR 1.5 need a Java runtime"):
        MeteorScorer()
    with pytest.raises(JavaNotFoundError, match="PTB tokenizer"):
        evaluate_captions(["a car"], [["a car"]])


def test_dead_process_is_reported():
    scorer = MeteorScorer()
    scorer._proc.kill()
    scorer._proc.wait()
    with pytest.raises(RuntimeError, match="METEOR"):
        scorer.score([("a car", ["a car"])])
    scorer.close()


def test_java_on_path_runs():
    java = require_java()
    assert os.path.isfile(java)
    assert subprocess.run([java, "-version"], capture_output=True).returncode == 0
