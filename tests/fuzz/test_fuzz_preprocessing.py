"""Property-based fuzz tests (hypothesis) of the tokenizer and the task
preprocessors over random Unicode, empty, blank, huge and invalid UTF-8
inputs: no error other than the documented ones, and the eager output equals
the `tf.data` (`dataset.map`) output.

To stay fast, every test draws a few batches of two texts, runs them
eagerly one by one, then maps all of them through one `tf.data` pipeline
(traced once) and compares.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from unilmv2_test_utils import fixture_path

from keras_unilmv2.models.unilmv2_masked_lm_preprocessor import (
    UniLMv2MaskedLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_pmlm_preprocessor import (
    UniLMv2PMLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_question_answerer_preprocessor import (
    UniLMv2QuestionAnswererPreprocessor,
)
from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_text_classifier_preprocessor import (
    UniLMv2TextClassifierPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

FUZZ = settings(
    max_examples=8,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run and backend
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BATCH = 2

# Any Unicode text but lone surrogates (which cannot be UTF-8 encoded),
# words of the fixture vocabulary, special tokens, and huge texts.
WORDS = ["the", "cat", "sat", "on", "mat", "[MASK]", "[SEP]", "[CLS]", ".", "é"]
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
word_text = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
huge_text = st.builds(
    lambda piece, n: piece * n,
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6),
    st.integers(200, 3000),
)
blank_text = st.sampled_from(["", " ", "\t\n", "\u3000", "\x00", "\u200b"])
any_text = st.one_of(unicode_text, word_text, huge_text, blank_text)
batches = st.lists(any_text, min_size=BATCH, max_size=BATCH)


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


def _numpy(structure):
    return keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t)), structure
    )


def _assert_same(eager, graph, example):
    eager, graph = _numpy(eager), _numpy(graph)
    keras.tree.assert_same_structure(eager, graph)
    for a, b in zip(keras.tree.flatten(eager), keras.tree.flatten(graph)):
        np.testing.assert_array_equal(a, b, err_msg=f"input: {example!r}")


def _collect(strategy):
    """Runs hypothesis over `strategy`; returns the drawn examples."""
    drawn = []

    @FUZZ
    @given(strategy)
    def draw(example):
        drawn.append(example)

    draw()
    assert drawn
    return drawn


def _check_eager_equals_tf_data(layer, examples, run=None):
    """Each batch eagerly vs all batches through one `tf.data` map."""
    run = run or layer
    eager = [run(batch) for batch in examples]
    flat = [text for batch in examples for text in batch]
    ds = tf.data.Dataset.from_tensor_slices(flat).batch(BATCH).map(run)
    graph = list(ds)
    assert len(graph) == len(eager)
    for batch, e, g in zip(examples, eager, graph):
        _assert_same(e, g, batch)


def test_tokenizer_fuzz(tokenizer):
    examples = _collect(batches)
    dense = UniLMv2Tokenizer(
        vocabulary=fixture_path("vocab.txt"), sequence_length=16
    )
    eager = [tokenizer(batch) for batch in examples]
    for batch, ids in zip(examples, eager):
        assert len(ids) == BATCH
        for row in ids:
            assert all(0 <= i < tokenizer.vocabulary_size() for i in row)
    flat = [text for batch in examples for text in batch]
    ds = tf.data.Dataset.from_tensor_slices(flat).batch(BATCH).map(tokenizer)
    for batch, e, g in zip(examples, eager, ds):
        assert g.to_list() == [list(row) for row in e], batch
    _check_eager_equals_tf_data(dense, examples)


def test_tokenizer_invalid_utf8_fails_eagerly_and_in_tf_data(tokenizer):
    examples = _collect(st.binary(min_size=1, max_size=30))
    valid = [data for data in examples if not _invalid_utf8(data)]
    invalid = [data for data in examples if _invalid_utf8(data)]
    # At least one drawn byte string is invalid, so the error path runs.
    assert invalid
    for data in invalid:
        with pytest.raises(ValueError, match="valid UTF-8"):
            tokenizer([data])
    # One pipeline for all: a failed element does not end the iteration.
    ds = tf.data.Dataset.from_tensor_slices(valid + invalid).batch(1)
    iterator = iter(ds.map(tokenizer))
    for data in valid:
        assert next(iterator).to_list() == tokenizer([data])
    for data in invalid:
        with pytest.raises(tf.errors.InvalidArgumentError, match="valid UTF-8"):
            next(iterator)
    with pytest.raises(StopIteration):
        next(iterator)


def _invalid_utf8(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_classifier_preprocessor_fuzz(tokenizer):
    layer = UniLMv2TextClassifierPreprocessor(tokenizer, sequence_length=12)
    examples = _collect(batches)
    _check_eager_equals_tf_data(layer, examples)
    # Pairs: the batch's first text with its second.
    pairs = [(batch[:1], batch[1:]) for batch in examples]
    eager = [layer(pair) for pair in pairs]
    ds = tf.data.Dataset.from_tensor_slices(
        ([p[0][0] for p in pairs], [p[1][0] for p in pairs])
    ).batch(1).map(lambda a, b: layer((a, b)))
    for pair, e, g in zip(pairs, eager, ds):
        _assert_same(e, g, pair)


def test_masked_lm_preprocessor_fuzz(tokenizer):
    # No masking, so that both ways are deterministic and comparable.
    layer = UniLMv2MaskedLMPreprocessor(
        tokenizer, sequence_length=12, mask_selection_rate=0.0,
        mask_selection_length=4,
    )
    _check_eager_equals_tf_data(layer, _collect(batches))


def test_pmlm_preprocessor_fuzz(tokenizer):
    layer = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=16, seed=3)
    _check_eager_equals_tf_data(layer, _collect(batches))


def test_seq2seq_preprocessor_fuzz(tokenizer):
    layer = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=10, decoder_sequence_length=6, seed=4
    )

    def run(batch):
        return layer({"encoder_text": batch, "decoder_text": batch[::-1]})

    examples = _collect(batches)
    usable = []
    for batch in examples:
        if any(not text.strip() for text in batch):
            # Documented: every example needs (non-blank) text.
            with pytest.raises(ValueError, match="empty"):
                run(batch)
        else:
            usable.append(batch)
    if usable:
        _check_eager_equals_tf_data(layer, usable, run=run)


def test_question_answerer_preprocessor_fuzz(tokenizer):
    """Eager only (one example may become several windows)."""
    layer = UniLMv2QuestionAnswererPreprocessor(
        tokenizer, sequence_length=16, doc_stride=4, max_question_length=4
    )
    for question, context in _collect(batches):
        features = layer.encode([question], [context])
        ids = np.asarray(features["token_ids"])
        assert ids.ndim == 2 and ids.shape[1] == 16 and ids.shape[0] >= 1
        assert ids.min() >= 0 and ids.max() < tokenizer.vocabulary_size()
