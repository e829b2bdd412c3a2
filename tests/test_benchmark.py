"""tools/benchmark.py --smoke: every section is reported, with numbers from real runs; the random
LMs it (and the tests) build."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sca.utils.random_lm import LM_SHAPES, random_lm

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_reports_every_section(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) == {
        "environment",
        "settings",
        "inference",
        "anything",
        "training",
        "densecap_eval",
        "captions",
    }
    assert not report["captions"]["available"]  # needs a trained model and a test set
    assert report["environment"]["device"] == "cpu"
    variants = report["inference"]
    assert list(variants) == ["fp32-eager", "fp32", "bf16-autocast", "bf16-frozen", "bf16-model"]
    for res in variants.values():
        assert res["encoder"]["ms"] > 0 and res["encoder"]["peak_rss_gb"] > 0
        rows = res["end_to_end"]
        for key in ("1_regions_greedy", "1_regions_beam3", "4_regions_greedy", "4_regions_beam3"):
            assert rows[key]["ms"] > 0 and rows[key]["tokens_per_s"] > 0
        assert len(rows["4_regions_greedy"]["captions"]) == 4
        # exactly --tokens (4) words per caption: MIN_NEW_TOKENS = MAX_NEW_TOKENS reached generate
        assert all(len(c.split()) == 4 for c in rows["4_regions_greedy"]["captions"])
        assert "ms_per_extra_region" in rows
    # the fused-attention fast path leaves fp32 captions unchanged
    assert variants["fp32"]["captions_equal_to_first"] == 1.0
    anything = report["anything"]
    assert anything["available"] and anything["ms"] > 0 and anything["regions"] >= 0
    for name in ("fp32", "fp32-ckpt"):
        step = report["training"][name]
        assert step["ms"] > 0 and step["peak_rss_gb"] > 0 and step["regions_per_step"] == 6
    dense = report["densecap_eval"]
    assert dense["available"] or dense["reason"]
    if dense["available"]:
        assert dense["images"] == 20 and dense["meteor_pairs"] > 0
    assert "encoder / image" in proc.stdout and "training step" in proc.stdout


@pytest.mark.parametrize("shape", ["tiny-gpt2", "tiny-llama"])
def test_random_lm_decodes_every_id_to_one_word(shape):
    lm, tokenizer = random_lm(shape)
    vocab_size = LM_SHAPES[shape][1]["vocab_size"]
    assert lm.config.vocab_size == len(tokenizer) == vocab_size and not lm.training
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == lm.config.eos_token_id
    assert tokenizer.decode([0, 7, vocab_size - 2]) == f"w0 w7 w{vocab_size - 2}"
    assert tokenizer("w3 w4").input_ids == [3, 4]
