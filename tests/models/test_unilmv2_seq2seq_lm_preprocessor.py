"""UniLMv2Seq2SeqLMPreprocessor: the s2s-ft layout of the reference fixture,
noise statistics, determinism, tf.data, truncation, generation helpers and
bad input."""

import numpy as np
import pytest
import tensorflow as tf

from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from unilmv2_test_utils import fixture_path

PAD, CLS, SEP, MASK = 0, 6, 7, 8
V = 120
# The three pairs of seq2seq.npz, S = 16, T = 10.
PAIRS = [
    ("the cat sat on the mat and the dog ran to the park . the sun was big", "the cat sat ."),
    ("two birds flew over the old house at night", "birds flew over the house"),
    ("he reads a book", "he is reading"),
]
DATA = {"encoder_text": [a for a, _ in PAIRS], "decoder_text": [b for _, b in PAIRS]}
NO_NOISE = dict(pseudo_keep_rate=0.0, pseudo_random_rate=0.0, target_mask_rate=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


@pytest.fixture(scope="module")
def s2s_data():
    return np.load(fixture_path("seq2seq.npz"))


def _np(structure):
    return tf.nest.map_structure(lambda t: np.asarray(t), structure)


def _random_token_batch(batch, source_length, target_length, seed):
    """Distinct random word-piece ids (10..119, no specials), as ragged ids."""
    rng = np.random.default_rng(seed)
    sources = [rng.integers(10, V, rng.integers(3, source_length)).tolist() for _ in range(batch)]
    targets = [rng.integers(10, V, target_length).tolist() for _ in range(batch)]
    return {
        "encoder_text": tf.ragged.constant(sources, dtype="int32"),
        "decoder_text": tf.ragged.constant(targets, dtype="int32"),
    }


def _token_ids(tokenizer, text):
    """Word-piece ids of one text (the tokenizer returns a ragged tensor on
    TensorFlow and lists on the other backends)."""
    ids = tokenizer([text])
    if hasattr(ids, "to_list"):
        return ids.to_list()[0]
    return np.asarray(ids[0]).tolist()


def _within(count, n, p, sigmas=5.0):
    """`count` is within `sigmas` binomial standard deviations of n * p."""
    sd = np.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= sigmas * sd + 1


# --- layout: seq2seq.npz case1 --------------------------------------------------


def test_layout_matches_reference_case1(tokenizer, s2s_data):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=10, **NO_NOISE
    )
    x, y, sample_weight = _np(preprocessor(DATA))
    p = "case1_clean/"
    np.testing.assert_array_equal(x["token_ids"], s2s_data[p + "input_ids"])
    np.testing.assert_array_equal(x["segment_ids"], s2s_data[p + "token_type_ids"])
    np.testing.assert_array_equal(x["position_ids"], s2s_data[p + "position_ids"])
    np.testing.assert_array_equal(
        x["attention_mask"].astype("int32"), s2s_data[p + "attention_mask"]
    )
    np.testing.assert_array_equal(y, s2s_data[p + "label_ids"])
    np.testing.assert_array_equal(sample_weight, (s2s_data[p + "label_ids"] != 0).astype("float32"))
    np.testing.assert_array_equal(x["pseudo_positions"], np.tile(np.arange(26, 36), (3, 1)))
    # The blocks and the real lengths.
    np.testing.assert_array_equal(x["token_ids"][:, :16], s2s_data[p + "source_ids"])
    np.testing.assert_array_equal(x["token_ids"][:, 16:26], s2s_data[p + "target_ids"])
    np.testing.assert_array_equal(x["token_ids"][:, 26:], s2s_data[p + "pseudo_ids"])
    n_s, n_t = s2s_data[p + "num_source_tokens"], s2s_data[p + "num_target_tokens"]
    expected_padding = np.concatenate(
        [np.arange(16) < n_s[:, None], np.arange(10) < n_t[:, None], np.arange(10) < n_t[:, None]],
        axis=1,
    )
    np.testing.assert_array_equal(x["padding_mask"].astype(bool), expected_padding)
    for key in ("token_ids", "segment_ids", "position_ids", "pseudo_positions"):
        assert x[key].dtype == np.int32, key


def test_single_example_is_unbatched(tokenizer):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=10, **NO_NOISE
    )
    x, y, w = _np(preprocessor({"encoder_text": PAIRS[2][0], "decoder_text": PAIRS[2][1]}))
    batched_x, batched_y, _ = _np(preprocessor(DATA))
    assert x["token_ids"].shape == (36,) and x["attention_mask"].shape == (36, 36)
    np.testing.assert_array_equal(x["token_ids"], batched_x["token_ids"][2])
    np.testing.assert_array_equal(y, batched_y[2])


# --- noise ------------------------------------------------------------------------


def test_pseudo_noise_statistics(tokenizer):
    """keep / random / [MASK] = 0.1 / 0.1 / 0.8 of the real pseudo slots."""
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer,
        encoder_sequence_length=16,
        decoder_sequence_length=32,
        target_mask_rate=0.0,
        seed=11,
    )
    x, y, w = _np(preprocessor(_random_token_batch(400, 14, 31, seed=0)))
    pseudo = x["token_ids"][:, 16 + 32 :]
    real = w > 0
    n = int(real.sum())
    assert n == 400 * 32
    gold = y[real]
    values = pseudo[real]
    # A random id equals the gold id or [MASK] with probability 1/V each.
    p_mask = 0.8 + 0.1 / V
    p_gold = 0.1 + 0.1 / V
    p_other = 0.1 * (V - 2) / V
    assert _within((values == MASK).sum(), n, p_mask)
    assert _within((values == gold).sum(), n, p_gold)
    assert _within(((values != MASK) & (values != gold)).sum(), n, p_other)
    # Random ids cover the whole vocabulary, specials included.
    others = values[(values != MASK) & (values != gold)]
    assert others.min() >= 0 and others.max() < V
    assert (others < 10).any()
    # Padding slots stay padding, and the visible target is untouched.
    assert (pseudo[~real] == PAD).all()
    np.testing.assert_array_equal(x["token_ids"][:, 16:48], y)


@pytest.mark.parametrize("rate", [0.5, 0.8])
def test_target_word_drop_statistics(tokenizer, rate):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer,
        encoder_sequence_length=16,
        decoder_sequence_length=32,
        target_mask_rate=rate,
        seed=12,
    )
    data = _random_token_batch(300, 14, 31, seed=1)
    x, y, w = _np(preprocessor(data))
    target = x["token_ids"][:, 16:48]
    pseudo = x["token_ids"][:, 48:]
    real = w > 0
    n = int(real.sum())
    replaced = (target != y) & real
    # A dropped word becomes its own (noised) pseudo token ...
    np.testing.assert_array_equal(target[replaced], pseudo[replaced])
    # ... which differs from the gold word unless it was kept (p = 0.1 + 0.1/V).
    p_changed = rate * (1.0 - (0.1 + 0.1 / V))
    assert _within(replaced.sum(), n, p_changed)
    # Dropped with the pseudo token == gold is invisible; count the draws
    # through the [MASK] slots instead: P(target == [MASK]) = rate * p_mask.
    assert _within((target[real] == MASK).sum(), n, rate * (0.8 + 0.1 / V))
    # Labels are always the originals; padding is untouched.
    originals = data["decoder_text"].to_tensor().numpy()
    np.testing.assert_array_equal(y[:, :31], originals)
    assert (y[:, 31] == SEP).all()
    assert (target[~real] == PAD).all()


def test_source_masking(tokenizer):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer,
        encoder_sequence_length=24,
        decoder_sequence_length=8,
        source_mask_rate=0.3,
        seed=3,
        **NO_NOISE,
    )
    data = _random_token_batch(300, 22, 7, seed=2)
    x, _, _ = _np(preprocessor(data))
    source = x["token_ids"][:, :24]
    lengths = data["encoder_text"].row_lengths().numpy() + 2
    inner = (np.arange(24) > 0) & (np.arange(24) < lengths[:, None] - 1)
    n = int(inner.sum())
    assert _within((source[inner] == MASK).sum(), n, 0.3)
    # [CLS], [SEP] and padding are never masked.
    assert (source[:, 0] == CLS).all()
    assert (source[np.arange(300), lengths - 1] == SEP).all()
    assert (source[np.arange(24) >= lengths[:, None]] == PAD).all()
    # Unmasked inner tokens are the originals.
    originals = data["encoder_text"].to_tensor(shape=[300, 22]).numpy()
    kept = inner & (source != MASK)
    np.testing.assert_array_equal(source[:, 1:23][kept[:, 1:23]], originals[kept[:, 1:23]])

    # Rate 1: every inner token, still never [CLS]/[SEP].
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=10,
        source_mask_rate=1.0, seed=3, **NO_NOISE,
    )
    x, _, _ = _np(preprocessor(DATA))
    source = x["token_ids"][:, :16]
    n_s = (source != PAD).sum(axis=1)
    for row, n in enumerate(n_s):
        assert source[row, 0] == CLS and source[row, n - 1] == SEP
        assert (source[row, 1 : n - 1] == MASK).all()


# --- determinism and tf.data -----------------------------------------------------


def test_seed_makes_noise_reproducible(tokenizer):
    kwargs = dict(encoder_sequence_length=16, decoder_sequence_length=12, source_mask_rate=0.2)
    data = _random_token_batch(40, 14, 11, seed=3)
    first = _np(UniLMv2Seq2SeqLMPreprocessor(tokenizer, seed=7, **kwargs)(data))
    again = _np(UniLMv2Seq2SeqLMPreprocessor(tokenizer, seed=7, **kwargs)(data))
    other = _np(UniLMv2Seq2SeqLMPreprocessor(tokenizer, seed=8, **kwargs)(data))
    np.testing.assert_array_equal(first[0]["token_ids"], again[0]["token_ids"])
    assert (first[0]["token_ids"] != other[0]["token_ids"]).any()
    # Labels and layout do not depend on the noise.
    np.testing.assert_array_equal(first[1], other[1])
    np.testing.assert_array_equal(first[0]["attention_mask"], other[0]["attention_mask"])
    # Without a seed every call draws new noise.
    unseeded = UniLMv2Seq2SeqLMPreprocessor(tokenizer, seed=None, **kwargs)
    a, b = _np(unseeded(data)), _np(unseeded(data))
    assert (a[0]["token_ids"] != b[0]["token_ids"]).any()


def test_tf_data_equals_eager(tokenizer):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=10,
        source_mask_rate=0.2, seed=5,
    )
    texts = {
        "encoder_text": DATA["encoder_text"] + ["she walks in the park", "a b c"],
        "decoder_text": DATA["decoder_text"] + ["she walks", "c"],
    }
    eager = _np(preprocessor(texts))
    batched = tf.data.Dataset.from_tensor_slices(texts).batch(5).map(preprocessor)
    unbatched = tf.data.Dataset.from_tensor_slices(texts).map(preprocessor).batch(5)
    for dataset in (batched, unbatched):
        (x, y, w), = list(dataset.as_numpy_iterator())
        for key in eager[0]:
            np.testing.assert_array_equal(x[key], eager[0][key], err_msg=key)
        np.testing.assert_array_equal(y, eager[1])
        np.testing.assert_array_equal(w, eager[2])
    # The noise is per example, not per batch position.
    x_single, _, _ = _np(preprocessor({k: v[3] for k, v in texts.items()}))
    np.testing.assert_array_equal(x_single["token_ids"], eager[0]["token_ids"][3])


# --- truncation ------------------------------------------------------------------


def test_long_source_and_target_are_truncated(tokenizer):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=8, decoder_sequence_length=5, **NO_NOISE
    )
    source = "the dog ran to the park and saw a big red ball ."
    target = "she walks in the park and he reads a book"
    x, y, w = _np(preprocessor({"encoder_text": [source], "decoder_text": [target]}))
    source_ids = _token_ids(tokenizer, source)
    target_ids = _token_ids(tokenizer, target)
    assert len(source_ids) > 6 and len(target_ids) > 4
    assert x["token_ids"][0, :8].tolist() == [CLS] + list(source_ids[:6]) + [SEP]
    assert y[0].tolist() == list(target_ids[:4]) + [SEP]
    assert w[0].tolist() == [1.0] * 5
    # Positions: 0..7 on the source, 8..12 on the target and pseudo blocks.
    assert x["position_ids"][0].tolist() == list(range(8)) + list(range(8, 13)) * 2


# --- generation helpers ------------------------------------------------------------


def test_generate_preprocess_and_postprocess(tokenizer):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=10
    )
    x = _np(preprocessor.generate_preprocess(["he reads a book", "she walks"], sequence_length=4))
    assert x["encoder_token_ids"].shape == (2, 16)
    she_walks = [CLS] + _token_ids(tokenizer, "she walks") + [SEP]
    assert x["encoder_token_ids"][1, : len(she_walks)].tolist() == she_walks
    np.testing.assert_array_equal(x["encoder_padding_mask"], x["encoder_token_ids"] != PAD)
    # T + 1 decoder slots: slot 0 is the never-attended dummy.
    assert x["decoder_token_ids"].shape == (2, 5) and not x["decoder_token_ids"].any()
    assert x["decoder_padding_mask"].tolist() == [[True, False, False, False, False]] * 2
    # Default length: decoder_sequence_length.
    assert _np(preprocessor.generate_preprocess("he"))["decoder_token_ids"].shape == (11,)

    birds = _token_ids(tokenizer, "birds")  # bird ##s
    assert len(birds) == 2
    ids = np.array([[0] + birds + [84, SEP, 84, 84], [0, 84, 9, PAD, 84, 84, 84]], "int32")
    texts = preprocessor.generate_postprocess({"decoder_token_ids": ids})
    assert texts == ["birds happy", "happy ."]
    assert preprocessor.generate_postprocess({"decoder_token_ids": ids[0]}) == "birds happy"


def test_config_round_trip(tokenizer):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=20, decoder_sequence_length=6,
        pseudo_keep_rate=0.2, pseudo_random_rate=0.05, target_mask_rate=0.7,
        source_mask_rate=0.1, seed=3,
    )
    config = preprocessor.get_config()
    restored = UniLMv2Seq2SeqLMPreprocessor.from_config(config)
    restored_config = restored.get_config()
    assert {k: v for k, v in restored_config.items() if k != "tokenizer"} == {
        k: v for k, v in config.items() if k != "tokenizer"
    }
    for key, value in dict(
        encoder_sequence_length=20, decoder_sequence_length=6, pseudo_keep_rate=0.2,
        pseudo_random_rate=0.05, target_mask_rate=0.7, source_mask_rate=0.1, seed=3,
        source_type_id=0, target_type_id=1,
    ).items():
        assert config[key] == value, key


# --- bad input ------------------------------------------------------------------


def test_bad_input(tokenizer):
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=10
    )
    with pytest.raises(ValueError, match="encoder_text"):
        preprocessor({"encoder_text": ["a", ""], "decoder_text": ["b", "c"]})
    with pytest.raises(ValueError, match="decoder_text"):
        preprocessor({"encoder_text": ["a"], "decoder_text": ["   "]})
    with pytest.raises(ValueError, match="encoder_text"):
        preprocessor.generate_preprocess([""])
    # Inside tf.data the same check fails at run time.
    dataset = tf.data.Dataset.from_tensor_slices(
        {"encoder_text": ["a", ""], "decoder_text": ["b", "c"]}
    ).batch(2).map(preprocessor)
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty string"):
        list(dataset)
    with pytest.raises(ValueError, match="encoder_text' and 'decoder_text"):
        preprocessor({"encoder_text": ["a"]})
    with pytest.raises(ValueError, match="own labels"):
        preprocessor({"encoder_text": ["a"], "decoder_text": ["b"]}, y=np.zeros((1, 10)))
    for length in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_length"):
            preprocessor.generate_preprocess(["a"], sequence_length=length)
    with pytest.raises(ValueError, match="encoder_sequence_length"):
        UniLMv2Seq2SeqLMPreprocessor(tokenizer, encoder_sequence_length=2)
    with pytest.raises(ValueError, match="decoder_sequence_length"):
        UniLMv2Seq2SeqLMPreprocessor(tokenizer, decoder_sequence_length=1)
    with pytest.raises(ValueError, match="target_mask_rate"):
        UniLMv2Seq2SeqLMPreprocessor(tokenizer, target_mask_rate=1.5)
    with pytest.raises(ValueError, match="pseudo_keep_rate \\+ pseudo_random_rate"):
        UniLMv2Seq2SeqLMPreprocessor(tokenizer, pseudo_keep_rate=0.6, pseudo_random_rate=0.6)
