"""The shipped presets (`unilmv2_tiny_en_uncased`, `unilmv2_small_en_uncased`):
they load by name offline, their metadata records how they were made, and
they learned.

"Learned" is measured on text they were not trained on: the bodies of
standard library docstrings in `guides/data/docstrings_test.tsv` (the
presets saw the prose of the Python documentation, not its docstrings) and
the GNU info prose of `tests/data/heldout_prose.txt` (in no training
corpus), masked by the PMLM preprocessor with a fixed seed, against the
same architecture with random weights.
"""

import csv
import json
import os
import sys

import keras
import pytest

from keras_unilmv2 import UniLMv2Backbone

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import evaluate_pmlm  # noqa: E402

NAMES = ("unilmv2_tiny_en_uncased", "unilmv2_small_en_uncased")
# Held-out prose AE/PAR each preset measured (`tools/evaluate_pmlm.py`, the
# first 96 paragraphs): the floor below which a change of the presets or of
# the PMLM code would be a regression.
PROSE_FLOOR = {"unilmv2_tiny_en_uncased": 0.05, "unilmv2_small_en_uncased": 0.24}
# The goal of a default English preset (issue 12): not reached yet.
PROSE_GOAL = 0.30


def _texts(count=96):
    path = os.path.join(REPO, "guides", "data", "docstrings_test.tsv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [row["body"] for row in rows[:count]]


def _prose(count=96):
    """Held-out ordinary English prose: paragraphs of the GNU info manuals
    (`tools/build_heldout_prose.py`), never in a training corpus."""
    path = os.path.join(REPO, "tests", "data", "heldout_prose.txt")
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()[:count]


def _accuracies(name, backbone, texts=None):
    texts = _texts() if texts is None else texts
    return evaluate_pmlm.pmlm_figures(name, texts, backbone, sequence_length=64, seed=0)


@pytest.fixture(scope="module", params=NAMES)
def name(request):
    return request.param


def _metadata(name):
    with open(os.path.join(REPO, "presets", name, "metadata.json")) as f:
        return json.load(f)


def test_metadata_records_how_it_was_made(name):
    metadata = _metadata(name)
    assert metadata["command"].startswith("python tools/pretrain_pmlm.py")
    assert metadata["corpus"]["heldout_documents"] > 0
    stages = metadata.get("previous_stages", [])
    steps = metadata["training"]["steps"] + sum(s["training"]["steps"] for s in stages)
    assert steps >= 1000
    heldout = metadata["heldout"]
    # The recorded held-out accuracies: far above the untrained model's.
    for key in ("ae_accuracy", "par_accuracy"):
        assert heldout["trained"][key] >= 0.05
        assert heldout["trained"][key] > 10 * heldout["untrained"][key]


def test_it_learned_on_unseen_text(name):
    trained = _accuracies(name, UniLMv2Backbone.from_preset(name))
    keras.utils.set_random_seed(0)
    untrained = _accuracies(name, UniLMv2Backbone.from_preset(name, load_weights=False))
    print(trained, untrained)
    for key in ("ae_accuracy", "par_accuracy"):
        assert trained[key] >= 0.05, (key, trained)
        assert trained[key] >= 3 * untrained[key] + 0.03, (key, trained, untrained)
        assert trained[key.replace("accuracy", "loss")] < untrained[key.replace("accuracy", "loss")]


def test_accuracy_on_heldout_english_prose(name):
    # tiny: 6.5% AE / 7.0% PAR on the 400 paragraphs; small: 25.0% / 25.1%.
    trained = _accuracies(name, UniLMv2Backbone.from_preset(name), _prose())
    for key in ("ae_accuracy", "par_accuracy"):
        assert trained[key] >= PROSE_FLOOR[name], (key, trained)


@pytest.fixture(scope="module")
def small_prose_figures():
    """The small preset measured as its metadata says it was measured."""
    recorded = _metadata("unilmv2_small_en_uncased")["heldout_prose"]
    measured = evaluate_pmlm.evaluate(
        "unilmv2_small_en_uncased",
        os.path.join(REPO, recorded["texts"]),
        count=recorded["paragraphs"],
        sequence_length=recorded["sequence_length"],
        seed=recorded["seed"],
    )
    return recorded, measured


def test_small_preset_metadata_records_its_heldout_prose_accuracy(small_prose_figures):
    recorded, measured = small_prose_figures
    assert recorded["texts"] == "tests/data/heldout_prose.txt"
    assert recorded["paragraphs"] == measured["paragraphs"] == 400
    for key in ("ae_accuracy", "par_accuracy", "ae_loss", "par_loss"):
        # Same masks on every backend (tf.data, fixed seed); the backends'
        # float32 kernels differ by far less than 0.5 point.
        assert abs(measured[key] - recorded[key]) <= 0.005 * max(1.0, recorded[key]), (
            key, measured, recorded)
    metadata = _metadata("unilmv2_small_en_uncased")
    assert metadata["weights_storage"]["dtype"] == "float16"
    assert metadata["initialized_from"]["license"] == "Apache-2.0"


@pytest.mark.xfail(
    strict=True,
    reason="issue 12: the small preset predicts 25.0% of the masked tokens of held-out "
    "prose, the goal is 30% (more PMLM pre-training needed); strict, so reaching it "
    "fails here until this mark is removed",
)
def test_small_preset_reaches_the_heldout_prose_goal(small_prose_figures):
    _, measured = small_prose_figures
    assert measured["ae_accuracy"] >= PROSE_GOAL, measured


def test_small_preset_fills_in_the_readme_example():
    from keras_unilmv2.__main__ import fill_in

    top = fill_in("unilmv2_small_en_uncased", "The list type is a mutable sequence of [MASK] in Python.")
    assert len(top) == 1 and len(top[0]) == 5
    assert {"objects", "items", "elements", "values"} & set(top[0]), top
