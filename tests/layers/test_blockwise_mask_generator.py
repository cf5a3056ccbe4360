"""`UniLMv2BlockwiseMaskGenerator`: the blockwise masking of PMLM pre-training
(paper Algorithm 1). The statistics over many examples (span fraction, span
lengths, mask rate) are tested through the preprocessor that uses it
(tests/models/test_unilmv2_pmlm_preprocessor.py::test_block_statistics)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_unilmv2.layers import UniLMv2BlockwiseMaskGenerator

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIAL = [PAD, CLS, SEP, MASK]


def to_np(structure):
    def convert(t):
        if isinstance(t, tf.Tensor):
            return np.asarray(t.numpy())
        return np.asarray(keras.ops.convert_to_numpy(t))

    return keras.tree.map_structure(convert, structure)


def packed_ids(batch, n, seed=0, min_length=None):
    """`[CLS] text [SEP]` then padding, with random text lengths."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((batch, n), "int32")
    for b in range(batch):
        length = rng.integers(min_length or 1, n - 1)
        ids[b, 0] = CLS
        ids[b, 1 : length + 1] = rng.integers(10, 500, size=length)
        ids[b, length + 1] = SEP
    return ids


def generator(**kwargs):
    settings = dict(
        mask_rate=0.15,
        max_predictions=12,
        mask_token_id=MASK,
        unselectable_token_ids=SPECIAL,
        seed=3,
    )
    settings.update(kwargs)
    return UniLMv2BlockwiseMaskGenerator(**settings)


def check_example(ids, out, b, layer):
    """Every rule of one example, from the outputs alone."""
    weights = out["mask_weights"][b]
    count = int(weights.sum())
    k = layer.max_predictions
    assert (weights[:count] == 1).all() and (weights[count:] == 0).all()
    positions = out["mask_positions"][b]
    steps = out["mask_steps"][b]
    for key in ("mask_positions", "mask_ids", "mask_steps"):
        assert (out[key][b][count:] == 0).all(), key
    real = positions[:count]
    assert len(set(real.tolist())) == count, "a position masked twice"
    # Only selectable tokens are masked; ids are the originals.
    assert not np.isin(ids[b][real], layer.unselectable_token_ids).any()
    np.testing.assert_array_equal(out["mask_ids"][b][:count], ids[b][real])
    # Corruption: masked slots hold [MASK], the rest is untouched.
    corrupted = out["token_ids"][b]
    assert (corrupted[real] == MASK).all()
    untouched = np.ones(len(ids[b]), bool)
    untouched[real] = False
    np.testing.assert_array_equal(corrupted[untouched], ids[b][untouched])
    # One contiguous block per step, steps 1, 2, ... listed in order.
    if count:
        num_steps = int(steps[:count].max())
        np.testing.assert_array_equal(
            np.unique(steps[:count]), np.arange(1, num_steps + 1)
        )
        assert (np.diff(steps[:count]) >= 0).all()
        for step in range(1, num_steps + 1):
            block = real[steps[:count] == step]
            np.testing.assert_array_equal(
                block, np.arange(block[0], block[0] + len(block))
            )
            assert len(block) <= layer.max_span_length
    # At least the target (unless the budget or the text runs out).
    selectable = int((~np.isin(ids[b], layer.unselectable_token_ids)).sum())
    target = min(math.ceil(layer.mask_rate * selectable - 1e-9), k)
    assert count <= k
    if count < target:
        assert count == k or count == selectable
    else:
        assert count <= target + layer.max_span_length - 1


def test_outputs_follow_the_rules():
    layer = generator(max_predictions=20)
    ids = packed_ids(16, 64, min_length=20)
    out = to_np(layer(ids))
    assert set(out) == {
        "token_ids",
        "mask_positions",
        "mask_ids",
        "mask_steps",
        "mask_weights",
    }
    assert out["token_ids"].shape == (16, 64)
    for key in ("mask_positions", "mask_ids", "mask_steps"):
        assert out[key].shape == (16, 20) and out[key].dtype == np.int32
    assert out["mask_weights"].dtype == np.float32
    for b in range(16):
        check_example(ids, out, b, layer)
    assert out["mask_weights"].sum() > 16 * 5
    # One example alone gives its row of the batch.
    single = to_np(layer(ids[5]))
    for key in out:
        np.testing.assert_array_equal(single[key], out[key][5], err_msg=key)


def test_compiled_tf_data_run_equals_eager_run():
    """Inside tf.data the sampling runs XLA-compiled, eagerly as a plain TF
    graph: identical masks, whatever the batching."""
    layer = generator(
        max_predictions=16,
        span_probability=0.6,
        mask_token_replacement_rates=(0.5, 0.3, 0.2),
        vocabulary_size=500,
    )
    ids = packed_ids(12, 48, seed=1, min_length=10)
    eager = to_np(layer(ids))
    ds = tf.data.Dataset.from_tensor_slices(ids).batch(6).map(layer)
    batches = [to_np(element) for element in ds]
    per_example = to_np(
        next(iter(tf.data.Dataset.from_tensor_slices(ids).map(layer).batch(12)))
    )
    for key in eager:
        np.testing.assert_array_equal(
            np.concatenate([batch[key] for batch in batches]), eager[key]
        )
        np.testing.assert_array_equal(per_example[key], eager[key])


def test_spans_shortened_to_fit_and_budget():
    # Every block wants 6 tokens; the text has 2 selectable tokens.
    layer = generator(
        span_probability=1.0, min_span_length=6, max_span_length=6,
        max_predictions=4,
    )
    out = to_np(layer(np.array([CLS, 20, 21, SEP, PAD, PAD], "int32")))
    np.testing.assert_array_equal(out["mask_positions"], [1, 2, 0, 0])
    np.testing.assert_array_equal(out["mask_steps"], [1, 1, 0, 0])
    # A budget of 2 cuts a block of 3 to 2 tokens.
    layer = generator(
        span_probability=1.0, min_span_length=3, max_span_length=3,
        max_predictions=2,
    )
    ids = np.concatenate([[CLS], np.arange(10, 48), [SEP]]).astype("int32")
    out = to_np(layer(ids))
    first, second = out["mask_positions"]
    assert second == first + 1 and out["mask_weights"].sum() == 2
    np.testing.assert_array_equal(out["mask_ids"], ids[[first, second]])


def test_no_selectable_token_gives_no_masks():
    layer = generator(max_predictions=2)
    out = to_np(layer(np.array([CLS, SEP, PAD, PAD], "int32")))
    assert out["mask_weights"].sum() == 0
    np.testing.assert_array_equal(out["token_ids"], [CLS, SEP, PAD, PAD])


def test_replacement_rates():
    layer = generator(
        mask_rate=0.3,
        max_predictions=40,
        mask_token_replacement_rates=(0.6, 0.3, 0.1),
        vocabulary_size=1000,
    )
    ids = packed_ids(64, 128, seed=2, min_length=100)
    out = to_np(layer(ids))
    kinds = []
    for b in range(64):
        count = int(out["mask_weights"][b].sum())
        positions = out["mask_positions"][b][:count]
        new = out["token_ids"][b][positions]
        kinds += [
            "mask" if t == MASK else "keep" if t == o else "random"
            for t, o in zip(new, ids[b][positions])
        ]
        assert (out["token_ids"][b] < 1000).all()
    kinds = np.array(kinds)
    total = len(kinds)
    assert total > 1500
    for kind, rate in (("mask", 0.6), ("random", 0.3), ("keep", 0.1)):
        sd = math.sqrt(rate * (1 - rate) / total)
        # Random ids equal to [MASK] or the original are rare (2/1000).
        assert abs(np.mean(kinds == kind) - rate) < 5 * sd + 0.01, kind


def test_seeds():
    ids = packed_ids(6, 40, seed=4, min_length=20)
    first, again = to_np(generator(seed=5)(ids)), to_np(generator(seed=5)(ids))
    other = to_np(generator(seed=6)(ids))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["mask_positions"], other["mask_positions"])
    # seed=None: fresh masks on every call.
    fresh = generator(seed=None)
    draws = [to_np(fresh(ids))["mask_positions"] for _ in range(3)]
    assert not all(np.array_equal(draws[0], d) for d in draws[1:])


def test_get_config_round_trip():
    layer = generator(
        mask_rate=0.2,
        max_predictions=9,
        span_probability=0.7,
        min_span_length=3,
        max_span_length=5,
        mask_token_replacement_rates=(0.8, 0.1, 0.1),
        vocabulary_size=600,
        seed=11,
    )
    config = layer.get_config()
    assert config["unselectable_token_ids"] == SPECIAL
    assert config["mask_token_replacement_rates"] == [0.8, 0.1, 0.1]
    restored = UniLMv2BlockwiseMaskGenerator.from_config(config)
    assert restored.get_config() == config
    ids = packed_ids(4, 32, seed=5, min_length=12)
    left, right = to_np(layer(ids)), to_np(restored(ids))
    for key in left:
        np.testing.assert_array_equal(left[key], right[key])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mask_rate": 0.0}, "mask_rate"),
        ({"mask_rate": 1.0}, "mask_rate"),
        ({"mask_rate": "0.1"}, "mask_rate"),
        ({"span_probability": 1.5}, "span_probability"),
        ({"min_span_length": 0}, "min_span_length"),
        ({"min_span_length": 3, "max_span_length": 2}, "max_span_length"),
        ({"max_predictions": 0}, "max_predictions"),
        ({"mask_token_id": -1}, "mask_token_id"),
        ({"unselectable_token_ids": 0}, "unselectable_token_ids"),
        ({"unselectable_token_ids": [0, -2]}, "unselectable_token_ids"),
        ({"mask_token_replacement_rates": (0.5, 0.5)}, "replacement_rates"),
        ({"mask_token_replacement_rates": (0.8, 0.1, 0.2)}, "replacement"),
        ({"mask_token_replacement_rates": (0.8, 0.1, 0.1)}, "vocabulary_size"),
        ({"vocabulary_size": 0}, "vocabulary_size"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 2**63}, "seed"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generator(**kwargs)


def test_bad_inputs():
    layer = generator(max_predictions=5)
    with pytest.raises(ValueError, match="integer"):
        layer(np.ones((2, 8), "float32"))
    with pytest.raises(ValueError, match="rank 1"):
        layer(np.ones((2, 2, 8), "int32"))
    with pytest.raises(ValueError, match="dense"):
        layer(tf.ragged.constant([[1, 20, 2], [1, 2]]))
    with pytest.raises(ValueError, match="max_predictions"):
        layer(np.array([CLS, 20, SEP, PAD], "int32"))
