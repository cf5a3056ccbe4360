"""tools/evaluate_pmlm.py: held-out PMLM figures, and `--output` never overwrites."""

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import evaluate_pmlm  # noqa: E402


def test_writes_the_figures_it_prints_to_a_new_file(tmp_path, capsys):
    output = tmp_path / "figures.json"
    evaluate_pmlm.main(["unilmv2_tiny_en_uncased", "--count", "32", "--output", str(output)])
    written = json.loads(output.read_text())
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):]) == written
    assert written["texts"] == "tests/data/heldout_prose.txt"
    assert written["paragraphs"] == 32 and written["sequence_length"] == 64
    assert 0.0 < written["ae_accuracy"] < 1.0 and written["ae_loss"] > 0


def test_refuses_an_existing_output_and_a_bad_count(tmp_path):
    output = tmp_path / "figures.json"
    output.write_text("kept")
    with pytest.raises(ValueError, match="exists"):
        evaluate_pmlm.main(["unilmv2_tiny_en_uncased", "--output", str(output)])
    assert output.read_text() == "kept"
    with pytest.raises(ValueError, match="count"):
        evaluate_pmlm.evaluate("unilmv2_tiny_en_uncased", count=0)
