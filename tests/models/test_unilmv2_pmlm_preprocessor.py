"""Tests of `UniLMv2PMLMPreprocessor` (PMLM pre-training inputs).

The preprocessor runs TensorFlow internally on every backend; eager calls
return backend tensors. Expected layouts and masks are rebuilt here with
plain Python loops from the rule table of the paper (spec §2.3-2.4).
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from unilmv2_test_utils import fixture_path

from keras_unilmv2 import masks
from keras_unilmv2.models.unilmv2_pmlm_preprocessor import (
    UniLMv2PMLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

CLS, SEP, PAD, MASK, UNK = 6, 7, 0, 8, 5
SPECIAL = {PAD, UNK, CLS, SEP, MASK}
TEXTS = [
    "the cat sat on the mat and the dog ran to the park .",
    "two birds flew over the old house at night",
    "he ran",
    "",
    "the quick fox saw a big red ball in the green park and the lazy dog "
    "sat under the tree all day .",
]


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


def to_np(structure):
    def convert(t):
        if isinstance(t, tf.Tensor):
            return np.asarray(t.numpy())
        return np.asarray(keras.ops.convert_to_numpy(t))

    return keras.tree.map_structure(convert, structure)


def with_dense(x):
    """`x` plus the dense backbone inputs the model builds from it.

    The preprocessor ships per-slot descriptors only; the segment ids,
    padding mask and 3-D attention mask come from the one rule,
    `masks.pmlm_backbone_inputs` (what `UniLMv2PMLM` runs in its graph).
    """
    dense = masks.pmlm_backbone_inputs(x, ops="tf")
    out = dict(x)
    for key in ("segment_ids", "padding_mask", "attention_mask"):
        out[key] = np.asarray(dense[key].numpy())
    return out


def run_tf_data(preprocessor, inputs, batch_size=64):
    """Map over a dataset (graph mode) and stack every output."""
    ds = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    ds = ds.map(preprocessor)
    parts = [to_np(element) for element in ds]
    return keras.tree.map_structure(
        lambda *xs: np.concatenate(xs, axis=0), *parts
    )


def packed_ids(tokenizer, text, sequence_length):
    ids = list(np.asarray(tokenizer(text)))[: sequence_length - 2]
    ids = [CLS] + [int(i) for i in ids] + [SEP]
    return np.array(ids + [PAD] * (sequence_length - len(ids))), len(ids)


def decode_blocks(x, sample_weight, b):
    """Blocks in factorization order from the outputs of example b.

    Tokens are listed in factorization order; tokens of one step have
    consecutive `[P]` slots, so a gap in the pseudo slots starts a new block.
    """
    count = int(sample_weight["ae"][b].sum())
    mask_positions = x["mask_positions"][b][:count]
    pseudo_positions = x["pseudo_positions"][b][:count]
    blocks = []
    for i in range(count):
        if i == 0 or pseudo_positions[i] != pseudo_positions[i - 1] + 1:
            blocks.append([])
        blocks[-1].append(int(mask_positions[i]))
    return blocks


def layout_by_loops(original, num_real, blocks, sequence_length,
                    max_predictions, drop_last=False):
    """The expected PMLM example, written from the rule table."""
    n, length = sequence_length, sequence_length + 2 * max_predictions
    masked = {p for block in blocks for p in block}
    kinds, steps, tokens, positions = [], [], [], []
    for i in range(n):
        real = i < num_real
        kinds.append("C" if real else "pad")
        steps.append(0)
        tokens.append(MASK if i in masked else int(original[i]))
        positions.append(i if real else 0)
    pseudo_slots, labels, mask_positions = [], [], []
    for k, block in enumerate(blocks, start=1):
        for p in block:
            pseudo_slots.append(len(tokens))
            mask_positions.append(p)
            labels.append(int(original[p]))
            kinds.append("P")
            steps.append(k)
            tokens.append(MASK)
            positions.append(p)
        for p in block:
            dropped = drop_last and k == len(blocks)
            kinds.append("pad" if dropped else "O")
            steps.append(k)
            tokens.append(PAD if dropped else int(original[p]))
            positions.append(0 if dropped else p)
    while len(tokens) < length:
        kinds.append("pad")
        steps.append(0)
        tokens.append(PAD)
        positions.append(0)
    attention = np.zeros((length, length), bool)
    for i in range(length):
        for j in range(length):
            q, key = kinds[i], kinds[j]
            if q in ("C", "pad"):
                attention[i, j] = key == "C"
            elif q == "P":
                attention[i, j] = (
                    key == "C"
                    or (key == "O" and steps[j] < steps[i])
                    or (key == "P" and steps[j] == steps[i])
                )
            else:
                attention[i, j] = key == "C" or (
                    key == "O" and steps[j] <= steps[i]
                )
    pad = max_predictions - len(labels)
    return {
        "token_ids": np.array(tokens),
        "segment_ids": np.zeros(length, int),
        "padding_mask": np.array([kind != "pad" for kind in kinds]),
        "position_ids": np.array(positions),
        "attention_mask": attention,
        "mask_positions": np.array(mask_positions + [0] * pad),
        "pseudo_positions": np.array(pseudo_slots + [0] * pad),
        "labels": np.array(labels + [0] * pad),
        "weights": np.array([1.0] * len(labels) + [0.0] * pad),
        "kinds": kinds,
        "steps": np.array(
            [st if kd in ("P", "O") else 0 for st, kd in zip(steps, kinds)]
        ),
    }


def check_example_against_loops(x, y, sample_weight, b, original, num_real,
                                preprocessor, drop_last=False):
    blocks = decode_blocks(x, sample_weight, b)
    x = with_dense(x)
    expected = layout_by_loops(
        original,
        num_real,
        blocks,
        preprocessor.sequence_length,
        preprocessor.max_predictions,
        drop_last=drop_last,
    )
    for key in (
        "token_ids",
        "segment_ids",
        "padding_mask",
        "position_ids",
        "attention_mask",
        "mask_positions",
        "pseudo_positions",
    ):
        np.testing.assert_array_equal(x[key][b], expected[key], err_msg=key)
    # The descriptors themselves: kind per slot, step on [P] and originals.
    kind_codes = {
        "C": masks.CONTEXT_SLOT,
        "P": masks.PSEUDO_SLOT,
        "O": masks.ORIGINAL_SLOT,
        "pad": masks.PADDING_SLOT,
    }
    np.testing.assert_array_equal(
        x["slot_kind"][b], [kind_codes[k] for k in expected["kinds"]]
    )
    np.testing.assert_array_equal(x["slot_step"][b], expected["steps"])
    np.testing.assert_array_equal(y["ae"][b], expected["labels"])
    np.testing.assert_array_equal(y["par"][b], expected["labels"])
    np.testing.assert_array_equal(sample_weight["ae"][b], expected["weights"])
    np.testing.assert_array_equal(sample_weight["par"][b], expected["weights"])
    return blocks


# -- Output format ------------------------------------------------------------


def test_output_structure_shapes_and_dtypes(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=16, seed=1
    )
    k = preprocessor.max_predictions
    # ceil(0.15 * 14) = 3 plus at most max_span_length - 1 = 5 extra.
    assert k == 8
    length = 16 + 2 * k
    assert preprocessor.layout_length == length
    x, y, sample_weight = preprocessor(TEXTS)
    batch = len(TEXTS)
    expected = {
        "token_ids": ((batch, length), "int32"),
        "position_ids": ((batch, length), "int32"),
        "slot_kind": ((batch, length), "int32"),
        "slot_step": ((batch, length), "int32"),
        "mask_positions": ((batch, k), "int32"),
        "pseudo_positions": ((batch, k), "int32"),
    }
    assert set(x) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert keras.ops.is_tensor(x[key]), key
        assert tuple(x[key].shape) == shape, key
        assert keras.backend.standardize_dtype(x[key].dtype) == dtype, key
    for structure in (y, sample_weight):
        assert set(structure) == {"ae", "par"}
    assert keras.backend.standardize_dtype(y["ae"].dtype) == "int32"
    assert keras.backend.standardize_dtype(sample_weight["ae"].dtype) == (
        "float32"
    )
    assert tuple(y["par"].shape) == (batch, k)

    # Unbatched input: the same without the batch axis.
    x1, y1, w1 = preprocessor(TEXTS[0])
    x, y, sample_weight, x1, y1, w1 = to_np((x, y, sample_weight, x1, y1, w1))
    for key in x:
        np.testing.assert_array_equal(x1[key], x[key][0], err_msg=key)
    np.testing.assert_array_equal(y1["ae"], y["ae"][0])
    np.testing.assert_array_equal(w1["par"], sample_weight["par"][0])


def test_default_max_predictions_for_512():
    preprocessor = UniLMv2PMLMPreprocessor(
        UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt")),
        sequence_length=512,
    )
    # ceil(0.15 * 510) = 77, plus max_span_length - 1 = 5.
    assert preprocessor.max_predictions == 82
    assert preprocessor.layout_length == 512 + 2 * 82


def test_every_slot_against_loop_construction(tokenizer):
    n = 20
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=n, seed=7, span_probability=0.5
    )
    x, y, sample_weight = to_np(preprocessor(TEXTS))
    for b, text in enumerate(TEXTS):
        original, num_real = packed_ids(tokenizer, text, n)
        blocks = check_example_against_loops(
            x, y, sample_weight, b, original, num_real, preprocessor
        )
        masked = [p for block in blocks for p in block]
        # Blocks are contiguous spans of real, non-special, distinct tokens.
        assert len(set(masked)) == len(masked)
        for block in blocks:
            assert block == list(range(block[0], block[0] + len(block)))
        for p in masked:
            assert 0 < p < num_real - 1
            assert int(original[p]) not in SPECIAL
        num_candidates = sum(
            int(original[i]) not in SPECIAL for i in range(num_real)
        )
        target = math.ceil(0.15 * num_candidates - 1e-9)
        assert target <= len(masked) <= target + 5 or (
            len(masked) == num_candidates
        )
        # Pseudo slots hold [MASK]; no row of the mask is empty.
        pseudo = x["pseudo_positions"][b][: len(masked)]
        assert (x["token_ids"][b][pseudo] == MASK).all()
        assert with_dense(x)["attention_mask"][b].any(axis=1).all()


@pytest.mark.parametrize("drop_last", [False, True])
def test_token_id_input_and_drop_last_step_originals(tokenizer, drop_last):
    rng = np.random.default_rng(3)
    n = 24
    ids = rng.integers(9, 120, size=(6, n - 2)).astype("int32")
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer,
        sequence_length=n,
        seed=11,
        span_probability=0.6,
        drop_last_step_originals=drop_last,
    )
    x, y, sample_weight = to_np(preprocessor(ids))
    for b in range(len(ids)):
        original = np.concatenate([[CLS], ids[b], [SEP]])
        check_example_against_loops(
            x, y, sample_weight, b, original, n, preprocessor, drop_last
        )
    if drop_last:
        # Dropping changes only the last step's original slots.
        kept = to_np(
            UniLMv2PMLMPreprocessor(
                tokenizer, sequence_length=n, seed=11, span_probability=0.6
            )(ids)
        )[0]
        for key in ("mask_positions", "pseudo_positions"):
            np.testing.assert_array_equal(x[key], kept[key])
        differs = x["token_ids"] != kept["token_ids"]
        assert differs.any()
        assert (x["token_ids"][differs] == PAD).all()


# -- Blockwise masking statistics ---------------------------------------------


def test_block_statistics(tokenizer):
    """Span fraction, span lengths and masked fraction over many draws."""
    n, num_examples = 128, 260
    rng = np.random.default_rng(0)
    ids = rng.integers(9, 120, size=(num_examples, n - 2)).astype("int32")
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=n, seed=123
    )
    x, y, sample_weight = run_tf_data(preprocessor, ids)
    lengths, counts = [], []
    for b in range(num_examples):
        blocks = decode_blocks(x, sample_weight, b)
        lengths.extend(len(block) for block in blocks)
        counts.append(sum(len(block) for block in blocks))
        masked = [p for block in blocks for p in block]
        assert len(set(masked)) == len(masked), "overlapping blocks"
        assert all(1 <= p <= n - 2 for p in masked), "special token masked"
        for block in blocks:
            assert block == list(range(block[0], block[0] + len(block)))
        # Labels line up with the original tokens.
        original = np.concatenate([[CLS], ids[b], [SEP]])
        count = len(masked)
        np.testing.assert_array_equal(y["ae"][b][:count], original[masked])
        assert (y["ae"][b][count:] == 0).all()
    lengths = np.array(lengths)
    num_blocks = len(lengths)
    assert num_blocks >= 2000

    # Span (length >= 2) vs single token: Binomial(num_blocks, 0.4); allow
    # 4.5 standard deviations.
    span_fraction = np.mean(lengths >= 2)
    sd = math.sqrt(0.4 * 0.6 / num_blocks)
    assert abs(span_fraction - 0.4) < 4.5 * sd, span_fraction

    # Span lengths uniform over 2..6: chi-square with 4 degrees of freedom,
    # 18.47 is its 0.999 quantile.
    spans = lengths[lengths >= 2]
    assert spans.max() <= 6
    observed = np.bincount(spans, minlength=7)[2:7]
    expected = len(spans) / 5
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 < 18.47, (observed, chi2)

    # Masked tokens: at least ceil(15%) of the 126 text tokens (= 19), and
    # the last block overshoots by at most max_span_length - 1.
    counts = np.array(counts)
    assert counts.min() >= 19 and counts.max() <= 19 + 5
    assert abs(counts.mean() / (n - 2) - 0.15) < 0.02
    np.testing.assert_array_equal(sample_weight["ae"].sum(axis=1), counts)


def test_mask_token_replacement_rates(tokenizer):
    n, num_examples = 128, 60
    rng = np.random.default_rng(5)
    ids = rng.integers(9, 120, size=(num_examples, n - 2)).astype("int32")
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer,
        sequence_length=n,
        seed=9,
        mask_token_replacement_rates=(0.8, 0.1, 0.1),
    )
    x, y, sample_weight = run_tf_data(preprocessor, ids)
    kinds = []
    for b in range(num_examples):
        count = int(sample_weight["ae"][b].sum())
        positions = x["mask_positions"][b][:count]
        context = x["token_ids"][b][:n]
        original = np.concatenate([[CLS], ids[b], [SEP]])
        # Unmasked context slots are untouched; labels are the originals.
        untouched = np.ones(n, bool)
        untouched[positions] = False
        np.testing.assert_array_equal(context[untouched], original[untouched])
        np.testing.assert_array_equal(y["ae"][b][:count], original[positions])
        # [P] slots always hold the pseudo token.
        pseudo = x["pseudo_positions"][b][:count]
        assert (x["token_ids"][b][pseudo] == MASK).all()
        for p in positions:
            if context[p] == MASK:
                kinds.append("mask")
            elif context[p] == original[p]:
                kinds.append("keep")
            else:
                kinds.append("random")
    kinds = np.array(kinds)
    total = len(kinds)
    assert total > 1000
    sd = math.sqrt(0.1 * 0.9 / total)
    # Random ids equal to the original (1/120) or [MASK] (1/120) are rare.
    assert abs(np.mean(kinds == "mask") - 0.8) < 5 * sd + 0.01
    assert abs(np.mean(kinds == "keep") - 0.1) < 5 * sd + 0.01
    assert abs(np.mean(kinds == "random") - 0.1) < 5 * sd + 0.01


# -- Seeds, tf.data and eager -------------------------------------------------


def test_same_seed_same_output_and_other_seed_differs(tokenizer):
    def run(seed):
        preprocessor = UniLMv2PMLMPreprocessor(
            tokenizer, sequence_length=24, seed=seed
        )
        return to_np(preprocessor(TEXTS))

    first, again, other = run(5), run(5), run(6)
    for a, b in zip(keras.tree.flatten(first), keras.tree.flatten(again)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        first[0]["mask_positions"], other[0]["mask_positions"]
    )


def test_seed_none_gives_fresh_masks(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=64)
    text = " ".join(["the big red ball and the small blue house"] * 6)
    draws = [
        to_np(preprocessor(text))[0]["mask_positions"] for _ in range(3)
    ]
    assert not all(np.array_equal(draws[0], d) for d in draws[1:])


def test_tf_data_equals_eager_and_is_batch_independent(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=20, seed=42, span_probability=0.5
    )
    eager = to_np(preprocessor(TEXTS))
    # Map per example, then batch.
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).map(preprocessor)
    per_example = to_np(next(iter(ds.batch(len(TEXTS)))))
    # Batch in twos, then map.
    batched = run_tf_data(preprocessor, TEXTS, batch_size=2)
    for other in (per_example, batched):
        for a, b in zip(keras.tree.flatten(eager), keras.tree.flatten(other)):
            np.testing.assert_array_equal(a, b)
    # One example alone gives its row of the batch.
    alone = to_np(preprocessor([TEXTS[4]]))
    np.testing.assert_array_equal(
        with_dense(alone[0])["attention_mask"][0],
        with_dense(eager[0])["attention_mask"][4],
    )


def test_works_with_a_keras_hub_tokenizer():
    import keras_hub

    bert = keras_hub.models.BertTokenizer(
        vocabulary=fixture_path("vocab.txt"), lowercase=True
    )
    ours = UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))
    # Texts without [UNK]: keras-hub's BertTokenizer does not list [UNK]
    # among its special tokens, so it would be maskable there.
    texts = [TEXTS[1], TEXTS[4]]
    assert all(UNK not in list(ours(text)) for text in texts)
    a = to_np(UniLMv2PMLMPreprocessor(bert, sequence_length=20, seed=3)(texts))
    b = to_np(UniLMv2PMLMPreprocessor(ours, sequence_length=20, seed=3)(texts))
    for left, right in zip(keras.tree.flatten(a), keras.tree.flatten(b)):
        np.testing.assert_array_equal(left, right)


# -- Short, special and degenerate inputs -------------------------------------


def test_text_without_maskable_tokens_gives_no_predictions(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=12, seed=0
    )
    for inputs in ("", np.array([CLS, SEP, MASK, UNK], "int32")):
        x, y, sample_weight = to_np(preprocessor(inputs))
        x = with_dense(x)
        assert (sample_weight["ae"] == 0).all()
        assert (sample_weight["par"] == 0).all()
        assert (x["mask_positions"] == 0).all()
        assert (x["pseudo_positions"] == 0).all()
        assert (y["ae"] == 0).all()
        # Only the context is real; every row still sees it.
        assert not x["padding_mask"][12:].any()
        assert x["attention_mask"].any(axis=1).all()
    # Special ids in id input are kept but never masked.
    np.testing.assert_array_equal(
        x["token_ids"][:6], [CLS, CLS, SEP, MASK, UNK, SEP]
    )


def test_spans_are_shortened_to_fit(tokenizer):
    # Every block wants 6 tokens; "he ran" has 2 maskable tokens.
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer,
        sequence_length=10,
        span_probability=1.0,
        min_span_length=6,
        max_span_length=6,
        seed=0,
    )
    x, y, sample_weight = to_np(preprocessor("he ran"))
    np.testing.assert_array_equal(x["mask_positions"][:2], [1, 2])
    assert sample_weight["ae"].sum() == 2
    assert decode_blocks(
        {k: v[None] for k, v in x.items()},
        {k: v[None] for k, v in sample_weight.items()},
        0,
    ) == [[1, 2]]


def test_sequence_shorter_than_the_longest_span(tokenizer):
    # N = 4 < max_span_length = 6 (this used to fail inside the sampler).
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=4, span_probability=1.0, seed=0
    )
    x, y, sample_weight = to_np(preprocessor("he ran"))
    count = int(sample_weight["ae"].sum())
    assert 1 <= count <= 2
    assert set(x["mask_positions"][:count].tolist()) <= {1, 2}
    assert (x["token_ids"][x["mask_positions"][:count]] == MASK).all()


def test_max_predictions_budget_truncates_blocks(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer,
        sequence_length=40,
        span_probability=1.0,
        min_span_length=3,
        max_span_length=3,
        max_predictions=2,
        seed=0,
    )
    assert preprocessor.layout_length == 44
    ids = np.arange(10, 48, dtype="int32")
    x, y, sample_weight = to_np(preprocessor(ids))
    assert sample_weight["ae"].sum() == 2
    first, second = x["mask_positions"]
    assert second == first + 1  # one block, cut to the budget of 2
    np.testing.assert_array_equal(y["ae"], [first + 9, second + 9])


def test_changing_sequence_length_after_a_call(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=12, seed=0
    )
    x, _, _ = preprocessor(TEXTS[0])
    k = preprocessor.max_predictions
    assert tuple(x["token_ids"].shape) == (12 + 2 * k,)
    preprocessor.sequence_length = 20
    x, _, _ = preprocessor(TEXTS[0])
    assert preprocessor.max_predictions == 8
    assert tuple(x["token_ids"].shape) == (20 + 16,)
    with pytest.raises(ValueError, match="sequence_length"):
        preprocessor.sequence_length = 1


def test_long_text_is_truncated(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=8, seed=0)
    x, _, sample_weight = to_np(preprocessor(TEXTS[4]))
    x = with_dense(x)
    original, num_real = packed_ids(tokenizer, TEXTS[4], 8)
    assert num_real == 8 and original[-1] == SEP
    assert x["padding_mask"][:8].all()
    assert (x["mask_positions"][sample_weight["ae"] > 0] < 7).all()


# -- Arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mask_rate": 0.0}, "mask_rate"),
        ({"mask_rate": 1.0}, "mask_rate"),
        ({"mask_rate": -0.1}, "mask_rate"),
        ({"mask_rate": "0.15"}, "mask_rate"),
        ({"span_probability": 1.5}, "span_probability"),
        ({"sequence_length": 2}, "sequence_length"),
        ({"min_span_length": 0}, "min_span_length"),
        ({"min_span_length": 4, "max_span_length": 3}, "max_span_length"),
        ({"max_predictions": 0}, "max_predictions"),
        ({"sequence_length": 10, "max_predictions": 9}, "max_predictions"),
        ({"mask_token_replacement_rates": (0.8, 0.1)}, "replacement"),
        ({"mask_token_replacement_rates": (0.8, 0.3, -0.1)}, "replacement"),
        ({"mask_token_replacement_rates": (0.5, 0.1, 0.1)}, "replacement"),
        ({"seed": 1.5}, "seed"),
        ({"pseudo_token": 8}, "pseudo_token"),
        ({"drop_last_step_originals": "yes"}, "drop_last_step_originals"),
    ],
)
def test_bad_constructor_arguments(tokenizer, kwargs, name):
    with pytest.raises(ValueError, match=name):
        UniLMv2PMLMPreprocessor(tokenizer, **kwargs)


def test_bad_call_arguments(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(tokenizer, sequence_length=12)
    with pytest.raises(ValueError, match="makes its own labels"):
        preprocessor("the cat", y=np.array([1]))
    # A pair is read as (x, y) by keras-hub preprocessing layers.
    with pytest.raises(ValueError, match="makes its own labels"):
        preprocessor((["the cat"], ["the dog"]))
    with pytest.raises(ValueError, match="one text segment"):
        preprocessor((["the cat"], ["the dog"], ["a"], ["b"]))
    with pytest.raises(ValueError, match="integer token ids"):
        preprocessor(np.array([1.5, 2.5]))
    with pytest.raises(ValueError, match="rank"):
        preprocessor(np.ones((2, 2, 2), "int32"))
    with pytest.raises(ValueError, match="pseudo_token"):
        UniLMv2PMLMPreprocessor(tokenizer, pseudo_token="[P]")("the cat")


def test_tokenizer_without_special_token_ids():
    import keras_hub

    plain = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=fixture_path("vocab.txt"), lowercase=True
    )
    with pytest.raises(ValueError, match="cls_token_id"):
        UniLMv2PMLMPreprocessor(plain, sequence_length=12)("the cat")
    # Setting the id attributes is enough.
    plain.cls_token_id, plain.sep_token_id = CLS, SEP
    plain.pad_token_id, plain.mask_token_id = PAD, MASK
    x, _, _ = to_np(
        UniLMv2PMLMPreprocessor(plain, sequence_length=12, seed=1)("the cat")
    )
    assert x["token_ids"][0] == CLS


def test_get_config_round_trip(tokenizer):
    preprocessor = UniLMv2PMLMPreprocessor(
        tokenizer,
        sequence_length=20,
        mask_rate=0.2,
        span_probability=0.3,
        min_span_length=2,
        max_span_length=4,
        max_predictions=7,
        mask_token_replacement_rates=(0.8, 0.1, 0.1),
        drop_last_step_originals=True,
        seed=17,
    )
    config = preprocessor.get_config()
    for key, value in {
        "sequence_length": 20,
        "mask_rate": 0.2,
        "span_probability": 0.3,
        "max_span_length": 4,
        "max_predictions": 7,
        "mask_token_replacement_rates": [0.8, 0.1, 0.1],
        "drop_last_step_originals": True,
        "seed": 17,
        "pseudo_token": "[MASK]",
    }.items():
        assert config[key] == value, key
    config["tokenizer"] = tokenizer
    restored = UniLMv2PMLMPreprocessor.from_config(config)
    a, b = to_np(preprocessor(TEXTS)), to_np(restored(TEXTS))
    for left, right in zip(keras.tree.flatten(a), keras.tree.flatten(b)):
        np.testing.assert_array_equal(left, right)
