"""The batched METEOR process and the missing-Java message."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from pycocoevalcap.meteor.meteor import Meteor

from sca.evaluation.caption_metrics import evaluate_captions
from sca.evaluation.java import JavaNotFoundError, require_java
from sca.evaluation.meteor import MeteorError, MeteorScorer, clean_for_meteor, shared_meteor

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


@pytest.fixture(scope="module")
def coco_meteor():
    """pycocoevalcap's own Meteor process (started beside the shared one)."""
    shared_meteor()
    meteor = Meteor()
    yield meteor
    meteor.meteor_p.kill()


def test_batched_scores_equal_densecap_bridge(coco_meteor):
    scores = shared_meteor().score(PAIRS)
    expected = [
        densecap_bridge_score(coco_meteor, clean_for_meteor(c), [clean_for_meteor(r) for r in refs])
        for c, refs in PAIRS
    ]
    assert scores == expected
    assert scores[3] == 0.0 and scores[2] == 0.0
    assert all(0.0 < s < 1.0 for i, s in enumerate(scores) if i not in (2, 3))


def test_large_batch_does_not_deadlock():
    pairs = [(f"a red car number {i}", [f"a red car {i}", "a car"]) for i in range(3000)]
    scores = shared_meteor().score(pairs)
    assert len(scores) == 3000 and all(s > 0 for s in scores)


def test_empty_reference_list_is_rejected():
    meteor = shared_meteor()
    with pytest.raises(ValueError, match="non-empty list"):
        meteor.score([("a car", [])])
    assert meteor.alive  # a caller's mistake does not cost the running process


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


def test_corpus_score_equals_pycocoevalcap(coco_meteor):
    gts = {i: refs for i, (_, refs) in enumerate(PAIRS[:4])}
    res = {i: [candidate] for i, (candidate, _) in enumerate(PAIRS[:4])}
    expected, expected_each = coco_meteor.compute_score(gts, res)
    score, each = shared_meteor().corpus_score([(res[i][0], gts[i]) for i in res])
    assert (score, each) == (expected, expected_each)


# Stand-ins for a broken METEOR, run through the same code path as the real one.
FAKE_METEOR = {
    "garbage": (
        "import sys\nfor line in sys.stdin:\n    print('Exception in thread main', flush=True)\n"
    ),
    "dies": "import sys\nsys.stdin.readline()\nsys.stderr.write('out of memory')\nsys.exit(3)\n",
    "hangs": "import sys, time\nsys.stdin.readline()\ntime.sleep(3600)\n",
    "bad_score": (
        "import sys\nfor line in sys.stdin:\n"
        "    n = line.count('|||') + 1\n"
        "    answer = '\\n'.join(['2.5'] * n) if line.startswith('EVAL') else '1 2 3'\n"
        "    print(answer, flush=True)\n"
    ),
}


def fake_meteor(tmp_path, kind: str, **kwargs) -> MeteorScorer:
    script = tmp_path / f"{kind}.py"
    script.write_text(FAKE_METEOR[kind])
    return MeteorScorer(command=[sys.executable, str(script)], **kwargs)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("garbage", "unexpected METEOR answer 'Exception in thread main', expected segment"),
        ("dies", "(?s)METEOR exited \\(code 3\\).*out of memory"),
        ("hangs", "no answer within 0.5 s"),
        ("bad_score", "expected a score in \\[0, 1\\]"),
    ],
)
def test_broken_meteor_fails_with_a_clear_error_and_is_killed(tmp_path, kind, message):
    scorer = fake_meteor(tmp_path, kind, answer_timeout=0.5)
    with pytest.raises(MeteorError, match=message):
        scorer.score(PAIRS)
    assert not scorer.alive
    with pytest.raises(MeteorError, match="not running"):
        scorer.score(PAIRS)
    scorer.close()


def test_hung_real_meteor_is_killed():
    scorer = MeteorScorer(answer_timeout=60)
    scorer.score(PAIRS[:1])  # started and answering
    scorer.answer_timeout = 1
    os.kill(scorer.pid, signal.SIGSTOP)
    with pytest.raises(MeteorError, match="no answer within 1 s"):
        scorer.score(PAIRS)
    assert not scorer.alive
    scorer.close()


def test_keyboard_interrupt_kills_meteor(tmp_path):
    scorer = fake_meteor(tmp_path, "hangs")
    started = threading.Event()

    def interrupt_once_scoring() -> None:
        # Ctrl-C only once score() is waiting: the signal may reach any thread of the process
        started.wait(60)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    # a runner started in the background (`cmd &`) inherits SIGINT ignored: restore Python's
    # own handler, which raises KeyboardInterrupt, for this test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_once_scoring, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            started.set()
            scorer.score(PAIRS)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not scorer.alive
    scorer.close()


def _is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_meteor_does_not_outlive_a_killed_evaluator():
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom sca.evaluation import shared_meteor\n"
            "m = shared_meteor()\nm.score([('a car', ['a red car'])])\n"
            "print(m.pid, flush=True)\ntime.sleep(3600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    java_pid = int(child.stdout.readline())
    assert _is_running(java_pid)
    child.send_signal(signal.SIGKILL)  # no atexit, no finally: only the closed pipe remains
    child.wait(timeout=120)
    for _ in range(600):  # METEOR exits at the end of its input; allow a loaded machine
        if not _is_running(java_pid):
            break
        time.sleep(0.1)
    assert not _is_running(java_pid)
