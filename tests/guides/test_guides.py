"""Every guide runs (quick mode) on the current backend, and the main job."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args, timeout=900, **env):
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", **env),
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_main_job():
    out = _run(["-m", "keras_unilmv2"])
    assert "sequence_output: shape (1, " in out
    assert "pooled_output: shape (1, 384)" in out
    # The shipped English preset gets the README's example right.
    line = next(line for line in out.splitlines() if line.startswith("[MASK] at 10: "))
    assert {"'objects'", "'items'", "'elements'"} & set(line[len("[MASK] at 10: ["):-1].split(", ")), line


def test_pretraining_guide(tmp_path):
    out = _run([os.path.join("guides", "pretraining_pmlm.py"), "--quick", "--output-dir", str(tmp_path)])
    assert os.path.exists(os.path.join(tmp_path, "pmlm_attention_mask.png"))
    assert "after 4 steps: loss" in out
    assert "rebuild command: python tools/pretrain_pmlm.py" in out


def test_seq2seq_guide():
    out = _run([os.path.join("guides", "seq2seq_docstrings.py"), "--quick"])
    assert "baseline (first " in out
    for line in ("before fine-tuning (greedy)", "after fine-tuning (greedy)", "after fine-tuning (beam 4)"):
        assert f"ROUGE {line}: {{'rouge1'" in out, line
    assert "ROUGE-L beam 4 / lead-" in out


def test_text_classification_guide():
    out = _run([os.path.join("guides", "text_classification.py"), "--quick"])
    assert "majority-class baseline" in out
    assert "test accuracy before fine-tuning:" in out
    assert "test accuracy after fine-tuning:" in out


def test_fill_mask_guide():
    out = _run([os.path.join("guides", "fill_mask.py"), "--quick"])
    assert "'Return the [MASK] of the list.': [" in out
    assert "held-out top-5 hit rate: unigram 0." in out


def test_question_answering_guide():
    out = _run([os.path.join("guides", "question_answering.py"), "--quick"])
    assert "first-sentence baseline exact match:" in out
    assert "exact match after fine-tuning:" in out
    assert "answer: " in out
