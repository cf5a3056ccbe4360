"""tools/pretrain_pmlm.py: preset output, metadata, curves, exact resume."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_unilmv2.pretraining import pretrain
from keras_unilmv2.pretraining import read_texts
from keras_unilmv2.pretraining import split_heldout
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
    from keras_unilmv2.pretraining import latest_valid_checkpoint
    from keras_unilmv2.pretraining import list_checkpoints
    from keras_unilmv2.pretraining import save_checkpoint

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
    from keras_unilmv2.pretraining import check_run_settings

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
    from keras_unilmv2.pretraining import list_checkpoints

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


# === Training options: precision, accumulation, case, masking, streaming ===


def _tool():
    sys.path.insert(0, os.path.join(REPO, "tools"))
    try:
        import pretrain_pmlm
    finally:
        sys.path.pop(0)
    return pretrain_pmlm


def test_command_line_flags_reach_pretrain(monkeypatch, tmp_path):
    import keras_unilmv2.pretraining as pretraining

    seen = {}
    monkeypatch.setattr(pretraining, "pretrain", lambda **kwargs: seen.update(kwargs))
    code = _tool().main(
        ["--input", "corpus", "--output", str(tmp_path), "--mixed-precision", "bfloat16",
         "--gradient-accumulation-steps", "4", "--cased", "--mask-rate", "0.2",
         "--span-probability", "0.5", "--min-span-length", "3", "--max-span-length", "5",
         "--mask-token-replacement-rates", "0.8,0.1,0.1", "--streaming",
         "--vocab-sample-lines", "500", "--heldout-file", "h.txt", "--heldout-lines", "7",
         "--shuffle-buffer", "99", "--dropout", "0"]
    )
    assert code == 0
    expected = dict(dropout=0.0, 
        mixed_precision="bfloat16", gradient_accumulation_steps=4, cased=True, mask_rate=0.2,
        span_probability=0.5, min_span_length=3, max_span_length=5,
        mask_token_replacement_rates=(0.8, 0.1, 0.1), streaming=True, vocab_sample_lines=500,
        heldout_file="h.txt", heldout_lines=7, shuffle_buffer=99,
    )
    assert {k: seen[k] for k in expected} == expected
    # The defaults: float32, no accumulation, uncased, in memory.
    seen.clear()
    assert _tool().main(["--input", "corpus", "--output", str(tmp_path)]) == 0
    assert (seen["mixed_precision"], seen["gradient_accumulation_steps"], seen["cased"]) == (
        None, 1, False,
    )
    assert seen["streaming"] is False and seen["mask_token_replacement_rates"] is None
    assert seen["dropout"] == 0.1


@pytest.mark.parametrize("value", ["0.8,0.2", "a,b,c"])
def test_malformed_replacement_rates_are_refused(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _tool().main(["--input", "c", "--output", str(tmp_path),
                      "--mask-token-replacement-rates", value])
    assert info.value.code == 2
    assert "--mask-token-replacement-rates must be three" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mixed_precision": "int8"}, "mixed_precision"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"),
        ({"cased": "yes"}, "cased"),
        ({"mask_rate": 1.5}, "mask_rate"),
        ({"span_probability": -0.1}, "span_probability"),
        ({"min_span_length": 0}, "min_span_length"),
        ({"min_span_length": 4, "max_span_length": 3}, "max_span_length"),
        ({"mask_token_replacement_rates": (0.5, 0.1, 0.1)}, "mask_token_replacement_rates"),
        ({"streaming": True, "vocab_sample_lines": 0}, "vocab_sample_lines"),
        ({"streaming": True, "heldout_lines": 0}, "heldout_lines"),
        ({"streaming": True, "heldout_file": "/nonexistent.txt"}, "heldout_file"),
        ({"heldout_file": __file__}, "heldout_file"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": "0.1"}, "dropout"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(kwargs, name, corpus, tmp_path):
    output = os.path.join(tmp_path, "out")
    with pytest.raises(ValueError, match=name):
        pretrain([corpus], output, vocabulary=fixture_path("vocab.txt"), steps=2,
                 checkpoint_every=2, **dict(TINY, **kwargs))
    assert not os.path.exists(output)


def test_pretraining_model_gets_precision_and_accumulation():
    import keras

    from keras_unilmv2.pretraining import build_pretraining_model
    from keras_unilmv2.utils.schedules import WarmupLinearDecay

    dims = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                max_sequence_length=32, steps=10, warmup_steps=4, learning_rate=1e-3)
    backbone, pmlm = build_pretraining_model(50, **dims)
    assert backbone.dtype_policy.name == "float32"
    assert pmlm.optimizer.gradient_accumulation_steps is None
    assert backbone.dropout == 0.1
    assert build_pretraining_model(50, dropout=0.0, **dims)[0].dropout == 0.0
    backbone, pmlm = build_pretraining_model(
        50, gradient_accumulation_steps=3, mixed_precision="bfloat16", **dims
    )
    assert backbone.dtype_policy.name == "mixed_bfloat16"
    assert pmlm.dtype_policy.name == "mixed_bfloat16"
    assert backbone.get_layer("token_embedding").variable_dtype == "float32"
    optimizer = pmlm.optimizer
    assert optimizer.gradient_accumulation_steps == 3
    # Keras counts batches; the schedule sees updates (batches // 3).
    reference = WarmupLinearDecay(1e-3, 4, 10)
    rates = [float(optimizer._learning_rate(i)) for i in range(12)]
    expected = [float(reference(i // 3)) for i in range(12)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    assert rates[2] == rates[0] and rates[3] > rates[2]
    _, pmlm = build_pretraining_model(50, mixed_precision="float16", **dims)
    assert pmlm.dtype_policy.name == "mixed_float16"
    assert isinstance(pmlm.optimizer, keras.optimizers.LossScaleOptimizer)


def test_masking_settings_reach_the_preprocessor():
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
    from keras_unilmv2.pretraining import pretraining_preprocessor

    tokenizer = UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))
    preprocessor = pretraining_preprocessor(
        tokenizer, 16, seed=1, mask_rate=0.3, span_probability=0.0, min_span_length=1,
        max_span_length=1, mask_token_replacement_rates=(0.0, 0.0, 1.0),
    )
    assert (preprocessor.mask_rate, preprocessor.span_probability) == (0.3, 0.0)
    assert (preprocessor.min_span_length, preprocessor.max_span_length) == (1, 1)
    x, y, w = preprocessor(["the cat sat on the mat and the dog ran to the park ."])
    x, y, w = (keras_tree_numpy(v) for v in (x, y, w))
    # 30% of the 13 tokens, single tokens only, all kept unchanged ("keep").
    count = int(w["ae"][0].sum())
    assert count == 4
    positions = x["mask_positions"][0][:count]
    np.testing.assert_array_equal(x["token_ids"][0][positions], y["ae"][0][:count])


def keras_tree_numpy(structure):
    import keras

    return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), structure)


def test_old_run_settings_resume_with_new_options_at_their_defaults(tmp_path):
    from keras_unilmv2.pretraining import check_run_settings

    folder = os.path.join(tmp_path, "checkpoints")
    check_run_settings(folder, {"seed": 0})  # written before the new options
    defaults = {"gradient_accumulation_steps": 1, "lowercase": True}
    check_run_settings(folder, {"seed": 0, "gradient_accumulation_steps": 1, "lowercase": True},
                       defaults=defaults)
    with pytest.raises(ValueError, match="gradient_accumulation_steps: 1 in the checkpoints, 2"):
        check_run_settings(folder, {"seed": 0, "gradient_accumulation_steps": 2,
                                    "lowercase": True}, defaults=defaults)


CASED = [
    "The Quick Fox ran over the Lazy Dog in Paris .",
    "She saw Two Birds in the Park near London",
    "The Cat sat on the Mat and the Dog ran to the Park .",
    "Two Birds flew over the Old House at Night in Paris",
    "He reads a Book in the Park every Day in London .",
    "They swim in the River every Day near Paris .",
]


@pytest.fixture
def lines_corpus(tmp_path):
    import gzip

    folder = os.path.join(tmp_path, "lines")
    os.makedirs(folder)
    with open(os.path.join(folder, "a.txt"), "w") as f:
        f.write("\n".join(CASED * 3) + "\n")
    with gzip.open(os.path.join(folder, "b.txt.gz"), "wt") as f:
        f.write("\n".join(reversed(CASED * 3)) + "\n")
    return folder


STREAM = dict(TINY, vocabulary_size=80, streaming=True, heldout_lines=2, shuffle_buffer=8,
              steps=4, checkpoint_every=2)


def test_streaming_run_trains_resumes_and_refuses_other_settings(lines_corpus, tmp_path):
    output = os.path.join(tmp_path, "out")
    options = dict(STREAM, cased=True, gradient_accumulation_steps=2, mask_rate=0.2,
                   mask_token_replacement_rates=(0.8, 0.1, 0.1))
    messages = []
    assert pretrain([lines_corpus], output, stop_after_checkpoints=1, log=messages.append,
                    **options) is None
    assert any("step 2/4:" in m and "tokens/s" in m and "loss" in m for m in messages)
    settings = json.load(open(os.path.join(output, "training", "checkpoints", "run.json")))
    assert settings["streaming"] is True and settings["lowercase"] is False
    assert settings["gradient_accumulation_steps"] == 2 and settings["mask_rate"] == 0.2
    assert settings["mask_token_replacement_rates"] == [0.8, 0.1, 0.1]
    assert settings["heldout_documents"] == 2
    assert [os.path.basename(f) for f, _ in settings["corpus_files"]] == ["a.txt", "b.txt.gz"]
    # The cased vocabulary was built from the sample (capitals kept).
    vocabulary = open(os.path.join(output, "training", "vocabulary.txt")).read().split()
    assert "Paris" in vocabulary and "Park" in vocabulary
    assert "paris" not in vocabulary  # only "Paris" is in the corpus
    # Any other setting is refused before training, naming it.
    for change, key in [
        (dict(cased=False), "lowercase: False in the checkpoints, True now"),
        (dict(gradient_accumulation_steps=1), "gradient_accumulation_steps: 2"),
        (dict(mask_rate=0.15), "mask_rate: 0.2"),
        (dict(mixed_precision="bfloat16"), "mixed_precision: None in the checkpoints"),
        (dict(span_probability=0.5), "span_probability"),
        (dict(mask_token_replacement_rates=None), "mask_token_replacement_rates"),
        (dict(heldout_lines=3), "heldout_documents: 2"),
        (dict(streaming=False, heldout_lines=1000), "streaming: True in the checkpoints"),
    ]:
        with pytest.raises(ValueError, match=key):
            pretrain([lines_corpus], output, **dict(options, **change))
    messages = []
    metadata = pretrain([lines_corpus], output, log=messages.append, **options)
    assert any("resuming after step 2" in m for m in messages)
    training = metadata["training"]
    assert (training["gradient_accumulation_steps"], training["effective_batch_size"]) == (2, 8)
    assert training["lowercase"] is False and training["masking"]["mask_rate"] == 0.2
    assert training["tokens_per_second"] > 0
    assert metadata["corpus"]["streaming"] is True
    assert metadata["corpus"]["heldout_rule"].startswith("the first 2 lines")
    rows = open(os.path.join(output, "training", "history.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    from keras_unilmv2 import UniLMv2Tokenizer

    assert UniLMv2Tokenizer.from_preset(output).lowercase is False


def test_streaming_refuses_rst_files(corpus, tmp_path):
    with pytest.raises(ValueError, match="reStructuredText"):
        pretrain([corpus], os.path.join(tmp_path, "out"), **STREAM)


@pytest.mark.slow
def test_streaming_run_with_accumulation_resumes_exactly(lines_corpus, tmp_path):
    heldout = os.path.join(tmp_path, "heldout.txt")
    with open(heldout, "w") as f:
        f.write(CASED[0] + "\n" + CASED[1] + "\n")
    options = dict(STREAM, steps=6, gradient_accumulation_steps=2, heldout_file=heldout,
                   vocabulary=fixture_path("vocab.txt"), mixed_precision="bfloat16")
    straight = os.path.join(tmp_path, "straight")
    metadata = pretrain([lines_corpus], straight, **options)
    assert metadata["corpus"]["heldout_documents"] == 2
    assert metadata["training"]["mixed_precision"] == "mixed_bfloat16"
    resumed = os.path.join(tmp_path, "resumed")
    assert pretrain([lines_corpus], resumed, stop_after_checkpoints=2, **options) is None
    pretrain([lines_corpus], resumed, **options)
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # The preset is float32 (the policy was a training choice).
    config = json.load(open(os.path.join(resumed, "config.json")))["config"]
    assert config["dtype"]["config"]["name"] == "float32"


def test_run_settings_compare_init_from_as_absolute_paths(tmp_path, monkeypatch):
    from keras_unilmv2.pretraining import PretrainSettings
    from keras_unilmv2.pretraining import check_run_settings

    monkeypatch.chdir(tmp_path)
    os.makedirs("base")
    folder = os.path.join(tmp_path, "checkpoints")
    # An older run stored the path as typed; the same preset spelled
    # absolutely (or relatively again) resumes.
    check_run_settings(folder, {"seed": 0, "init_from": "base"}, paths=("init_from",))
    absolute = os.path.join(tmp_path, "base")
    check_run_settings(folder, {"seed": 0, "init_from": absolute}, paths=("init_from",))
    check_run_settings(folder, {"seed": 0, "init_from": "./base/"}, paths=("init_from",))
    with pytest.raises(ValueError, match="init_from: .*base.* in the checkpoints, .*other"):
        check_run_settings(folder, {"seed": 0, "init_from": "other"}, paths=("init_from",))
    # `pretrain()` keeps it absolute.
    assert PretrainSettings(["corpus"], "out", init_from="base").init_from == absolute


def test_pretrain_refuses_unknown_options(tmp_path):
    with pytest.raises(TypeError, match="unknown options.*'stepz'"):
        pretrain(["corpus"], os.path.join(tmp_path, "out"), stepz=3)
    assert not os.path.exists(os.path.join(tmp_path, "out"))
