"""tools/pretrain_pmlm.py: preset output, metadata, curves, exact resume."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_unilmv2.utils.pretraining import pretrain
from keras_unilmv2.utils.pretraining import read_texts
from keras_unilmv2.utils.pretraining import split_heldout
from unilmv2_test_utils import fixture_path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENTENCES = [
    "the quick fox ran over the lazy dog .",
    "she saw two birds in the park",
    "the cat sat on the mat and the dog ran to the park .",
    "two birds flew over the old house at night",
    "he reads a book in the park every day .",
    "they swim in the river every day .",
]
TINY = dict(
    num_layers=1,
    num_heads=2,
    hidden_dim=16,
    intermediate_dim=32,
    max_sequence_length=64,
    sequence_length=16,
    batch_size=4,
    warmup_steps=1,
    learning_rate=1e-2,
    heldout_every=5,
    seed=3,
)


@pytest.fixture
def corpus(tmp_path):
    folder = os.path.join(tmp_path, "corpus")
    os.makedirs(os.path.join(folder, "sub"))
    with open(os.path.join(folder, "a.txt"), "w") as f:
        f.write("\n".join(SENTENCES * 3))
    with open(os.path.join(folder, "sub", "b.rst.txt"), "w") as f:
        f.write("Title\n=====\n\nThe cat sat on the mat and\nthe dog ran to the park.\n\n.. note::\n\n   skipped directive body text here\n")
    return folder


def test_read_texts_and_heldout_split(corpus):
    texts = read_texts([corpus])
    assert "The cat sat on the mat and the dog ran to the park." in texts
    assert not any("skipped" in t for t in texts)
    assert not any(t == "Title" for t in texts)
    train, heldout = split_heldout(texts, every=5)
    assert len(train) + len(heldout) == len(texts)
    assert heldout == texts[::5]
    with pytest.raises(ValueError, match="does not exist"):
        read_texts([os.path.join(corpus, "missing")])


def _weights(preset):
    from keras_unilmv2 import UniLMv2Backbone

    return [np.asarray(w) for w in UniLMv2Backbone.from_preset(preset).get_weights()]


def test_tool_writes_a_preset_with_metadata_and_curves(corpus, tmp_path):
    output = os.path.join(tmp_path, "preset")
    metadata = pretrain(
        [corpus], output, vocabulary=fixture_path("vocab.txt"), steps=4, checkpoint_every=2,
        command="test", **TINY,
    )
    for name in ("config.json", "model.weights.h5", "tokenizer.json", "metadata.json"):
        assert os.path.exists(os.path.join(output, name)), name
    assert os.path.exists(os.path.join(output, "training", "curves.png"))
    saved = json.load(open(os.path.join(output, "metadata.json")))
    assert saved["training"]["steps"] == 4
    assert saved["heldout"] == metadata["heldout"]
    assert set(saved["heldout"]["trained"]) >= {"ae_accuracy", "par_accuracy", "loss"}
    with pytest.raises(ValueError, match="refusing to overwrite"):
        pretrain([corpus], output, vocabulary=fixture_path("vocab.txt"), steps=4, checkpoint_every=2, **TINY)


@pytest.mark.slow
def test_interrupted_run_resumes_exactly(corpus, tmp_path):
    straight = os.path.join(tmp_path, "straight")
    pretrain([corpus], straight, vocabulary=fixture_path("vocab.txt"), steps=6, checkpoint_every=2, **TINY)
    resumed = os.path.join(tmp_path, "resumed")
    interrupted = pretrain(
        [corpus], resumed, vocabulary=fixture_path("vocab.txt"), steps=6, checkpoint_every=2,
        stop_after_checkpoints=1, **TINY,
    )
    assert interrupted is None
    assert not os.path.exists(os.path.join(resumed, "model.weights.h5"))
    pretrain([corpus], resumed, vocabulary=fixture_path("vocab.txt"), steps=6, checkpoint_every=2, **TINY)
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    rows = open(os.path.join(resumed, "training", "history.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4", "6"]


def test_continued_run_starts_from_the_preset_and_keeps_its_history(corpus, tmp_path):
    first = os.path.join(tmp_path, "first")
    second = os.path.join(tmp_path, "second")
    stage1 = pretrain(
        [corpus], first, vocabulary=fixture_path("vocab.txt"), steps=4,
        checkpoint_every=2, command="stage one", **TINY,
    )
    stage2 = pretrain(
        [corpus], second, vocabulary=fixture_path("vocab.txt"), steps=2,
        checkpoint_every=2, command="stage two", init_from=first, **TINY,
    )
    # Same held-out masks (same seed): the start is where stage one ended.
    assert stage2["heldout"]["start"] == stage1["heldout"]["trained"]
    assert stage2["heldout"]["untrained"] == stage1["heldout"]["untrained"]
    assert stage2["training"]["init_from"] == first
    assert [s["command"] for s in stage2["previous_stages"]] == ["stage one"]
    assert stage2["previous_stages"][0]["heldout_trained"] == stage1["heldout"]["trained"]
    saved = json.load(open(os.path.join(second, "metadata.json")))
    assert saved["previous_stages"] == stage2["previous_stages"]
    # It trained on: the weights moved away from the starting preset's.
    moved = [np.abs(a - b).max() for a, b in zip(_weights(first), _weights(second))]
    assert max(moved) > 0


def test_command_line_errors(tmp_path):
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "pretrain_pmlm.py"), "--output", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert done.returncode == 2
    assert "--input" in done.stderr


# === Reliability: refused settings, crash-safe checkpoints ===


def test_sequence_length_beyond_the_position_table_is_refused(tmp_path, capsys):
    sys.path.insert(0, os.path.join(REPO, "tools"))
    try:
        import pretrain_pmlm
    finally:
        sys.path.pop(0)
    output = os.path.join(tmp_path, "out")
    code = pretrain_pmlm.main(
        ["--input", fixture_path("vocab.txt"), "--output", output,
         "--sequence-length", "80", "--max-sequence-length", "64"]
    )
    assert code == 1
    error = capsys.readouterr().err
    assert "--sequence-length 80" in error and "--max-sequence-length 64" in error
    assert not os.path.exists(os.path.join(output, "training", "checkpoints"))


def _tiny_model():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
    return model


def test_checkpoints_are_atomic_keep_the_previous_one_and_skip_broken_ones(tmp_path):
    from keras_unilmv2.utils.pretraining import latest_valid_checkpoint
    from keras_unilmv2.utils.pretraining import list_checkpoints
    from keras_unilmv2.utils.pretraining import save_checkpoint

    folder = os.path.join(tmp_path, "checkpoints")
    model = _tiny_model()
    assert latest_valid_checkpoint(folder) == (0, None)
    for epoch in (1, 2, 3):
        save_checkpoint(model, folder, epoch)
    assert [c[0] for c in list_checkpoints(folder)] == [3, 2]  # the previous one kept
    assert not any(n.startswith("tmp-") for n in os.listdir(folder))
    assert latest_valid_checkpoint(folder)[0] == 3
    # A run killed while writing checkpoint 4 leaves only a temporary file.
    open(os.path.join(folder, "tmp-ckpt-000004.weights.h5"), "wb").close()
    assert latest_valid_checkpoint(folder)[0] == 3
    # A checkpoint file emptied (e.g. by a full disk) falls back to the previous.
    messages = []
    open(list_checkpoints(folder)[0][1], "wb").close()
    epoch, path = latest_valid_checkpoint(folder, log=messages.append)
    assert (epoch, path) == (2, list_checkpoints(folder)[1][1])
    assert "ckpt-000003.weights.h5 (corrupted)" in messages[0]
    # The fallback restores: the weights load back into the model.
    before = [np.array(w) for w in model.get_weights()]
    model.layers[0].kernel.assign(np.zeros((3, 2)))
    model.load_weights(path)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_run_settings_are_stored_and_a_different_run_is_refused(tmp_path):
    from keras_unilmv2.utils.pretraining import check_run_settings

    folder = os.path.join(tmp_path, "training", "checkpoints")
    settings = {"hidden_dim": 256, "seed": 0, "steps": 10}
    check_run_settings(folder, settings)
    assert json.load(open(os.path.join(folder, "run.json"))) == settings
    check_run_settings(folder, dict(settings))  # the same run resumes
    with pytest.raises(ValueError) as info:
        check_run_settings(folder, dict(settings, hidden_dim=128, seed=1))
    message = str(info.value)
    assert "hidden_dim: 256 in the checkpoints, 128 now" in message
    assert "seed: 0 in the checkpoints, 1 now" in message
    assert "steps" not in message


@pytest.mark.slow
def test_killed_checkpoint_write_resumes_from_the_previous_one_exactly(corpus, tmp_path):
    from keras_unilmv2.utils.pretraining import list_checkpoints

    kwargs = dict(vocabulary=fixture_path("vocab.txt"), steps=6, checkpoint_every=2, **TINY)
    straight = os.path.join(tmp_path, "straight")
    pretrain([corpus], straight, **kwargs)
    resumed = os.path.join(tmp_path, "resumed")
    assert pretrain([corpus], resumed, stop_after_checkpoints=2, **kwargs) is None
    folder = os.path.join(resumed, "training", "checkpoints")
    newest = list_checkpoints(folder)[0]
    assert newest[0] == 2
    open(newest[1], "wb").close()  # killed mid-write: a 0-byte file
    # Another seed or model size is refused, naming what differs.
    with pytest.raises(ValueError, match="seed: 3 in the checkpoints, 4 now"):
        pretrain([corpus], resumed, **dict(kwargs, seed=4))
    with pytest.raises(ValueError, match="hidden_dim: 16 in the checkpoints, 32 now"):
        pretrain([corpus], resumed, **dict(kwargs, hidden_dim=32))
    messages = []
    pretrain([corpus], resumed, log=messages.append, **kwargs)
    assert any("resuming after step 2" in m for m in messages)
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    rows = open(os.path.join(resumed, "training", "history.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4", "6"]
