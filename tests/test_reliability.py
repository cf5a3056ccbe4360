"""Common mistakes get a `ValueError` naming the argument, the value and
what is expected (issue 13), and a failing JAX `fit` keeps the weights."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import tiny_backbone

from keras_unilmv2.models.unilmv2_pmlm_preprocessor import (
    UniLMv2PMLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier
from keras_unilmv2.models.unilmv2_text_classifier_preprocessor import (
    UniLMv2TextClassifierPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.pretraining import read_texts


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


@pytest.fixture(scope="module")
def seq2seq(tokenizer):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=12, decoder_sequence_length=6, seed=1
    )
    return UniLMv2Seq2SeqLM(
        tiny_backbone(dropout=0.0), preprocessor=preprocessor
    )


@pytest.fixture(scope="module")
def classifier(tokenizer):
    preprocessor = UniLMv2TextClassifierPreprocessor(tokenizer, sequence_length=12)
    return UniLMv2TextClassifier(
        tiny_backbone(), num_classes=2, preprocessor=preprocessor
    )


# --- tokenizer ----------------------------------------------------------------


@pytest.mark.parametrize("length", [0, -1, 2.5, True])
def test_tokenizer_sequence_length_must_be_positive(length):
    with pytest.raises(ValueError, match=r"`sequence_length` must be an integer >= 1"):
        UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"), sequence_length=length)


@pytest.mark.parametrize(
    "inputs",
    [
        [b"\xff\xfe the cat"],
        np.array([b"the \xc3"]),
        b"\x80",
    ],
)
def test_invalid_utf8_is_an_error_eagerly_and_in_tf_data(tokenizer, inputs):
    with pytest.raises(ValueError, match="valid UTF-8") as info:
        tokenizer(inputs)
    assert "position" in str(info.value)
    ds = tf.data.Dataset.from_tensors(tf.constant(inputs)).map(tokenizer)
    with pytest.raises(tf.errors.InvalidArgumentError, match="valid UTF-8"):
        list(ds)


def test_valid_utf8_with_a_replacement_character_is_accepted(tokenizer):
    text = "the \ufffd cat".encode("utf-8")
    ds = tf.data.Dataset.from_tensors(tf.constant([text])).map(tokenizer)
    assert list(ds)[0].to_list() == tokenizer([text])


# --- seq2seq ------------------------------------------------------------------


def test_seq2seq_batches_of_different_sizes(seq2seq):
    x = {"encoder_text": ["a cat", "the mat"], "decoder_text": ["a", "b", "c"]}
    with pytest.raises(ValueError, match="2 encoder texts and 3 decoder texts"):
        seq2seq.preprocessor(x)
    with pytest.raises(ValueError, match="same number of examples"):
        seq2seq.preprocessor({"encoder_text": "a cat", "decoder_text": ["a"]})
    ds = tf.data.Dataset.from_tensors(x).map(seq2seq.preprocessor)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same number"):
        list(ds)


def test_generate_on_an_empty_batch(seq2seq):
    with pytest.raises(ValueError, match=r"`encoder_text` is an empty batch"):
        seq2seq.generate([], max_length=3)


@pytest.mark.parametrize("stop", [[], (), [-1], [10**6], ["[SEP]"], 7])
def test_generate_stop_token_ids(seq2seq, stop):
    with pytest.raises(ValueError, match="`stop_token_ids` must be"):
        seq2seq.generate(["the cat"], max_length=3, stop_token_ids=stop)


@pytest.mark.parametrize(
    "sampler, setting",
    [
        (lambda: keras_hub.samplers.TopKSampler(k=0), "k"),
        (lambda: keras_hub.samplers.TopKSampler(k=10**6), "k"),
        (lambda: keras_hub.samplers.TopPSampler(p=0.0), "p"),
        (lambda: keras_hub.samplers.TopPSampler(p=1.5), "p"),
        (lambda: keras_hub.samplers.GreedySampler(temperature=0.0), "temperature"),
    ],
)
def test_sampler_settings_are_checked(tokenizer, sampler, setting):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=12, decoder_sequence_length=6
    )
    task = UniLMv2Seq2SeqLM(tiny_backbone(), preprocessor=preprocessor)
    with pytest.raises(ValueError, match=rf"\.{setting}`"):
        task.compile(sampler=sampler())
    # A sampler set after `compile` is checked when generating.
    task.sampler = sampler()
    task.generate_function = None
    with pytest.raises(ValueError, match=rf"\.{setting}`"):
        task.generate(["the cat"], max_length=2)


def test_uncompiled_seq2seq_generates_greedily(seq2seq, tokenizer):
    task = UniLMv2Seq2SeqLM(
        seq2seq.backbone, preprocessor=seq2seq.preprocessor, compile=False
    )
    assert getattr(task, "sampler", None) is None
    out = task.generate(["the cat sat", "on the mat"], max_length=4)
    seq2seq.compile(sampler="greedy")
    assert out == seq2seq.generate(["the cat sat", "on the mat"], max_length=4)
    assert isinstance(task.sampler, keras_hub.samplers.GreedySampler)


# --- PMLM, classifier -----------------------------------------------------------


def test_pmlm_preprocessor_on_empty_strings(tokenizer):
    layer = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=16, seed=2)
    x, y, w = layer([""])
    ids = keras.ops.convert_to_numpy(x["token_ids"])
    assert ids[0, :2].tolist() == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert not keras.ops.convert_to_numpy(w["ae"]).any()
    with pytest.raises(ValueError, match=r"`x` is an empty batch"):
        layer([])


def test_classifier_pairs_of_different_sizes(classifier):
    pair = (["the cat", "a mat"], ["on the mat"])
    with pytest.raises(ValueError, match=r"different numbers of texts: \[2, 1\]"):
        classifier.preprocessor(pair)
    with pytest.raises(ValueError, match=r"different numbers of texts"):
        classifier.predict(pair)
    with pytest.raises(ValueError, match="mixing one text and a batch"):
        classifier.preprocessor(("the cat", ["on the mat"]))


def test_classifier_empty_batches(classifier):
    with pytest.raises(ValueError, match="empty batch of texts"):
        classifier.predict([])
    with pytest.raises(ValueError, match="empty batch of texts"):
        classifier.fit([], np.zeros([0], "int32"))
    with pytest.raises(ValueError, match="empty batch of texts"):
        classifier.preprocessor(np.array([], dtype=str))


def test_failed_fit_keeps_the_weights(classifier):
    """A label check failing inside `tf.data` at the first step must not
    leave the variables empty (Keras' JAX trainer detaches them)."""
    texts = ["the cat", "a mat"]
    good = tf.data.Dataset.from_tensor_slices((texts, [0, 1])).batch(2)
    bad = tf.data.Dataset.from_tensor_slices((texts, [0, 5])).batch(2)
    classifier.fit(good, epochs=1, verbose=0)
    before = [keras.ops.convert_to_numpy(v) for v in classifier.weights]
    with pytest.raises(tf.errors.InvalidArgumentError, match="class ids"):
        classifier.fit(bad, epochs=1, verbose=0)
    after = [keras.ops.convert_to_numpy(v) for v in classifier.weights]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(tf.errors.InvalidArgumentError, match="class ids"):
        classifier.evaluate(bad, verbose=0)
    # Still usable: predicts and trains.
    assert classifier.predict(texts, verbose=0).shape == (2, 2)
    classifier.fit(good, epochs=1, verbose=0)


# --- pretraining corpus -----------------------------------------------------------


def test_read_texts_refuses_a_corpus_that_is_not_text(tmp_path):
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.txt"
    noise.write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the dog\n" * 20, "utf-8")
    with pytest.raises(ValueError, match="does not look like UTF-8 text") as info:
        read_texts([str(noise), str(text)])
    assert "noise.txt" in str(info.value)
    assert len(read_texts([str(text)])) == 20
    # A little noise in real text is tolerated.
    mixed = tmp_path / "mixed.txt"
    mixed.write_bytes(b"the quick brown fox jumps \xff over the dog\n" * 20)
    assert len(read_texts([str(mixed)])) == 20
