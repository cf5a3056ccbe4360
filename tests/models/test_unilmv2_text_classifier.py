"""UniLMv2TextClassifier and its preprocessor: packing, heads, training,
saving and errors. Runs unchanged on every Keras backend."""

import copy
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import to_numpy

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier
from keras_unilmv2.models.unilmv2_text_classifier_preprocessor import (
    UniLMv2TextClassifierPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

CLS, SEP, PAD = 6, 7, 0
SEQUENCE_LENGTH = 12
# Fixture vocabulary ids: the 15, a 16, cat 18, dog 19, sun 26, sat 41,
# is 52, on 65, big 75, red 77.


def np_tree(structure):
    return keras.tree.map_structure(
        lambda t: np.asarray(t.numpy() if isinstance(t, tf.Tensor) else to_numpy(t)),
        structure,
    )


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


@pytest.fixture(scope="module")
def preprocessor(tokenizer):
    return UniLMv2TextClassifierPreprocessor(tokenizer, sequence_length=SEQUENCE_LENGTH)


def separable_data(n=32, seed=0):
    """Texts with `cat` (class 0) or `dog` (class 1) among filler words."""
    rng = np.random.default_rng(seed)
    fillers = ["the", "a", "big", "red", "sat", "ran", "on", "park", "ball", "sun"]
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(fillers, size=5))
        label = i % 2
        words.insert(int(rng.integers(0, 6)), "dog" if label else "cat")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels, "int32")


TEXTS = ["the cat sat", "", "a big dog ran", "the sun is big"]


@pytest.fixture(scope="module")
def trained(preprocessor):
    """A 2-class classifier fitted on `separable_data()` from raw strings.

    Shared by the tests of this module (it is compiled once per backend).
    Tests that train it further restore its weights afterwards, so
    `expected` (its predictions on `TEXTS`) stays valid.
    """
    keras.utils.set_random_seed(0)
    texts, labels = separable_data()
    model = UniLMv2TextClassifier(
        tiny_backbone(dropout=0.0), num_classes=2, preprocessor=preprocessor
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3, clipnorm=1.0))
    before = model.evaluate(texts, labels, batch_size=8, verbose=0, return_dict=True)
    # The data order these thresholds were set with (`fit` reshuffles
    # array inputs every epoch by default; tests/models/test_fine_tuning.py).
    history = model.fit(texts, labels, batch_size=8, epochs=8, verbose=0, shuffle=False)
    after = model.evaluate(texts, labels, batch_size=8, verbose=0, return_dict=True)
    expected = model.predict(TEXTS, batch_size=4, verbose=0)
    return model, history.history, before, after, expected


# --- preprocessor -------------------------------------------------------------


def test_single_texts_are_packed(preprocessor):
    x = np_tree(preprocessor(["the cat sat", ""]))
    np.testing.assert_array_equal(
        x["token_ids"][0], [CLS, 15, 18, 41, SEP] + [PAD] * 7
    )
    np.testing.assert_array_equal(x["token_ids"][1], [CLS, SEP] + [PAD] * 10)
    np.testing.assert_array_equal(x["segment_ids"], np.zeros((2, 12)))
    np.testing.assert_array_equal(
        x["padding_mask"].astype(int), [[1] * 5 + [0] * 7, [1] * 2 + [0] * 10]
    )


def test_pairs_are_packed_with_segment_ids(preprocessor):
    x = np_tree(preprocessor((["is the sun big"], ["the sun is big"])))
    np.testing.assert_array_equal(
        x["token_ids"][0],
        [CLS, 52, 15, 26, 75, SEP, 15, 26, 52, 75, SEP, PAD],
    )
    np.testing.assert_array_equal(
        x["segment_ids"][0], [0] * 6 + [1] * 5 + [0]
    )


def test_round_robin_truncation_keeps_both_sides(preprocessor):
    long_a = "the cat sat on the big red ball in the park"  # 11 tokens
    x = np_tree(preprocessor(([long_a], ["a dog"])))
    # 12 slots - 3 specials = 9 tokens: the short side keeps both of its
    # tokens, the long side gets the other 7.
    np.testing.assert_array_equal(
        x["token_ids"][0],
        [CLS, 15, 18, 41, 65, 15, 75, 77, SEP, 16, 19, SEP],
    )
    x = np_tree(preprocessor(([long_a], [long_a])))
    first = x["token_ids"][0][1:6]
    second = x["token_ids"][0][7:11]
    np.testing.assert_array_equal(first, [15, 18, 41, 65, 15])
    np.testing.assert_array_equal(second, [15, 18, 41, 65])


def test_eager_and_tf_data_agree(preprocessor):
    first = ["the cat sat on the big red ball", "", "a dog"]
    second = ["the sun is big", "a cat", ""]
    labels = np.array([0, 1, 2])
    eager_x, eager_y = np_tree(preprocessor((first, second), labels))
    ds = tf.data.Dataset.from_tensor_slices(((first, second), labels)).batch(3)
    graph_x, graph_y = np_tree(next(iter(ds.map(preprocessor))))
    for key in eager_x:
        np.testing.assert_array_equal(eager_x[key], graph_x[key], err_msg=key)
    np.testing.assert_array_equal(eager_y, graph_y)


def test_direct_call_with_a_pair_tuple_keeps_both_segments(preprocessor):
    x = np_tree(preprocessor(("a cat", "a dog")))
    np.testing.assert_array_equal(
        x["token_ids"], [CLS, 16, 18, SEP, 16, 19, SEP] + [PAD] * 5
    )


def test_three_segments_are_refused(preprocessor):
    with pytest.raises(ValueError, match="pair.*3 segments"):
        preprocessor((["a"], ["b"], ["c"]))
    with pytest.raises(ValueError, match="3 segments"):
        preprocessor(("a", "b", "c"))
    ds = tf.data.Dataset.from_tensor_slices((["a"], ["b"], ["c"])).batch(1)
    with pytest.raises(ValueError, match="3 segments"):
        ds.map(lambda a, b, c: preprocessor((a, b, c)))


def test_bad_preprocessor_arguments(tokenizer):
    with pytest.raises(ValueError, match="sequence_length"):
        UniLMv2TextClassifierPreprocessor(tokenizer, sequence_length=2)
    with pytest.raises(ValueError, match="truncate.*'middle'"):
        UniLMv2TextClassifierPreprocessor(tokenizer, truncate="middle")


# --- task basics --------------------------------------------------------------


def test_output_shapes_on_every_input_form(trained, preprocessor):
    model, expected = trained[0], trained[-1]
    assert expected.shape == (4, 2) and np.all(np.isfinite(expected))
    pairs = model.predict((TEXTS, ["a", "b", "", "c"]), batch_size=4, verbose=0)
    assert pairs.shape == (4, 2) and np.all(np.isfinite(pairs))
    assert np.abs(pairs - expected).max() > 1e-6
    # A tf.data.Dataset of strings and preprocessed arrays give the same.
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).batch(4)
    np.testing.assert_allclose(model.predict(ds, verbose=0), expected, atol=1e-5)
    x = np_tree(preprocessor(TEXTS))
    model.preprocessor = None
    try:
        np.testing.assert_allclose(
            model.predict(x, batch_size=4, verbose=0), expected, atol=1e-5
        )
    finally:
        model.preprocessor = preprocessor


def test_default_compile_is_keras_hub_text_classifier():
    model = UniLMv2TextClassifier(tiny_backbone(), num_classes=3)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True
    assert model.output_dense.kernel.shape == (32, 3)
    softmax = UniLMv2TextClassifier(
        tiny_backbone(), num_classes=2, activation="softmax"
    )
    assert softmax.loss.get_config()["from_logits"] is False
    assert softmax.output_dense.activation is keras.activations.softmax


@pytest.mark.parametrize("num_classes", [0, -2, 2.5, True, "3", None])
def test_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match=f"num_classes={num_classes!r}"):
        UniLMv2TextClassifier(tiny_backbone(), num_classes=num_classes)


def test_bad_dropout_and_softmax_regression():
    with pytest.raises(ValueError, match="dropout=1.5"):
        UniLMv2TextClassifier(tiny_backbone(), num_classes=2, dropout=1.5)
    with pytest.raises(ValueError, match="num_classes=1"):
        UniLMv2TextClassifier(tiny_backbone(), num_classes=1, activation="softmax")


# --- training -------------------------------------------------------------------


def test_learns_a_separable_task_from_raw_strings(trained):
    model, history, before, after, _ = trained
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert after["loss"] < 0.2 * before["loss"]
    assert before["sparse_categorical_accuracy"] < 0.8
    assert after["sparse_categorical_accuracy"] == 1.0
    # Held-out sentences with the same rule.
    test_texts, test_labels = separable_data(8, seed=1)
    predictions = model.predict(test_texts, batch_size=8, verbose=0)
    assert np.mean(np.argmax(predictions, axis=-1) == test_labels) >= 0.75


def test_fit_and_evaluate_on_tf_data_and_on_preprocessed_arrays(
    trained, preprocessor
):
    model = trained[0]
    weights = [np.array(w) for w in model.get_weights()]
    texts, labels = separable_data(16, seed=3)
    ds = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(8)
    arrays = np_tree(preprocessor(texts))
    try:
        from_ds = model.evaluate(ds, verbose=0, return_dict=True)
        from_raw = model.evaluate(
            texts, labels, batch_size=8, verbose=0, return_dict=True
        )
        np.testing.assert_allclose(from_ds["loss"], from_raw["loss"], rtol=1e-5)
        history = model.fit(ds, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        # Preprocessed arrays, without a preprocessor.
        model.preprocessor = None
        history = model.fit(arrays, labels, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        with pytest.raises(ValueError, match="string input"):
            model(["a cat"])
    finally:
        model.preprocessor = preprocessor
        model.set_weights(weights)


def test_regression_with_one_output(preprocessor):
    keras.utils.set_random_seed(2)
    texts, labels = separable_data(16)
    scores = labels.astype("float32") * 2.0 - 1.0
    x = np_tree(preprocessor(texts))
    model = UniLMv2TextClassifier(
        tiny_backbone(dropout=0.0), num_classes=1, preprocessor=None
    )
    assert isinstance(model.loss, keras.losses.MeanSquaredError)
    assert model.output_dense.kernel.shape == (32, 1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2, clipnorm=1.0))
    # The data order the threshold was set with (see `trained`).
    history = model.fit(x, scores, batch_size=8, epochs=6, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert "mean_absolute_error" in history.history
    # Regression targets are not class ids: no range check.
    model.fit(x, scores * 5.5, batch_size=8, epochs=1, verbose=0)


# --- label checks ----------------------------------------------------------------


def test_labels_out_of_range_fail_before_training(trained):
    model = trained[0]
    texts = ["a cat", "a dog"]
    for bad, shown in (([0, 2], "2"), ([-1, 0], "-1"), (np.array([0.0, 0.5]), "0.5")):
        with pytest.raises(ValueError, match=f"num_classes=2.*{shown}") as info:
            model.fit(texts, bad, verbose=0)
        assert "`y`" in str(info.value)
    with pytest.raises(ValueError, match="num_classes=2"):
        model.evaluate(texts, [7, 1], verbose=0)
    with pytest.raises(ValueError, match="num_classes=2"):
        model.fit(texts, [0, 1], validation_data=(texts, [0, 9]), verbose=0)


def test_labels_out_of_range_in_a_dataset_stop_the_pipeline(trained):
    # `fit`/`evaluate`/`predict` map `preprocess_samples` over a dataset; a
    # bad label fails that map, so training stops at the bad batch. (Checked
    # on the map itself: on JAX, Keras leaves a model's variables detached
    # when its input pipeline fails in the first steps of `fit`.)
    model = trained[0]
    texts, labels = separable_data(8, seed=4)
    labels[5] = 3
    ds = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"num_classes=2.*range"):
        list(ds.map(model.preprocess_samples))
    labels[5] = 1
    ds = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(8)
    x, y = next(iter(ds.map(model.preprocess_samples)))
    np.testing.assert_array_equal(y.numpy(), labels)


# --- serialization and presets ---------------------------------------------------


def test_get_config_round_trip(trained):
    config = trained[0].get_config()
    assert config["num_classes"] == 2 and config["dropout"] == 0.1
    restored = UniLMv2TextClassifier.from_config(copy.deepcopy(config))
    assert restored.get_config() == config
    assert isinstance(restored.preprocessor, UniLMv2TextClassifierPreprocessor)
    assert restored.preprocessor.sequence_length == SEQUENCE_LENGTH


def test_keras_file_round_trip(trained, tmp_path):
    model, expected = trained[0], trained[-1]
    path = os.path.join(tmp_path, "classifier.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, UniLMv2TextClassifier)
    np.testing.assert_allclose(
        restored.predict(TEXTS, batch_size=4, verbose=0), expected, atol=1e-6
    )


def test_preset_round_trips(trained, tokenizer, tmp_path):
    model, expected = trained[0], trained[-1]
    task_preset = os.path.join(tmp_path, "task")
    model.save_to_preset(task_preset)
    for name in ("task.json", "task.weights.h5", "preprocessor.json", "config.json"):
        assert os.path.exists(os.path.join(task_preset, name)), name
    restored = UniLMv2TextClassifier.from_preset(task_preset)
    np.testing.assert_allclose(
        restored.predict(TEXTS, batch_size=4, verbose=0), expected, atol=1e-6
    )
    # keras-hub's base class finds this subclass through `backbone_cls`.
    import keras_hub

    generic = keras_hub.models.TextClassifier.from_preset(task_preset)
    assert isinstance(generic, UniLMv2TextClassifier)
    for a, b in zip(generic.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)

    # A new `num_classes`: the backbone is loaded, the head is new.
    fresh = UniLMv2TextClassifier.from_preset(task_preset, num_classes=5)
    assert fresh.num_classes == 5
    assert fresh.output_dense.kernel.shape == (32, 5)
    for a, b in zip(fresh.backbone.get_weights(), model.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)

    # A backbone-only preset (backbone + tokenizer, as converted checkpoints).
    backbone_preset = os.path.join(tmp_path, "backbone")
    model.backbone.save_to_preset(backbone_preset)
    tokenizer.save_to_preset(backbone_preset)
    from_backbone = UniLMv2TextClassifier.from_preset(backbone_preset, num_classes=4)
    assert isinstance(from_backbone.backbone, UniLMv2Backbone)
    assert isinstance(from_backbone.preprocessor, UniLMv2TextClassifierPreprocessor)
    assert from_backbone.output_dense.kernel.shape == (32, 4)
    for a, b in zip(
        from_backbone.backbone.get_weights(), model.backbone.get_weights()
    ):
        np.testing.assert_array_equal(a, b)
    preprocessor = UniLMv2TextClassifierPreprocessor.from_preset(
        backbone_preset, sequence_length=20
    )
    assert preprocessor.sequence_length == 20
    assert preprocessor.tokenizer.vocabulary_size() == 120
