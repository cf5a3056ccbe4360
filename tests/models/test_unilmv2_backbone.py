"""UniLMv2Backbone: parity with Microsoft's reference, basics, saving, errors."""

import os

import keras
import numpy as np
import pytest

from keras_unilmv2.layers import relative_position_bucket
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import random_inputs
from unilmv2_test_utils import reference_backbone
from unilmv2_test_utils import reference_inputs
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import tiny_backbone_kwargs
from unilmv2_test_utils import to_numpy

ATOL = 1e-5


@pytest.fixture(scope="module")
def encoder_data():
    return np.load(fixture_path("encoder.npz"))


def _layer_outputs_model(backbone):
    outputs = [backbone.get_layer("embeddings_layer_norm").output]
    outputs += [layer.output for layer in backbone.transformer_layers]
    return keras.Model(backbone.input, outputs)


def _full_inputs(inputs):
    full = {"position_ids": None, "attention_mask": None}
    full.update(inputs)
    return full


# --- parity with the reference fixture ---------------------------------------


def test_bucket_function_matches_reference_table(encoder_data):
    relative = encoder_data["rel_pos_bucket_table/relative_position"]
    expected = encoder_data["rel_pos_bucket_table/bucket"]
    np.testing.assert_array_equal(to_numpy(relative_position_bucket(relative)), expected)


@pytest.mark.parametrize("batch", ["batch_a", "batch_b", "batch_c"])
def test_relative_bias_matches_reference(encoder_data, batch):
    backbone = reference_backbone()
    positions = encoder_data[f"{batch}/position_ids"]
    buckets = to_numpy(
        relative_position_bucket(positions[:, None, :] - positions[:, :, None])
    )
    np.testing.assert_array_equal(buckets, encoder_data[f"{batch}/rel_pos_bucket"])
    bias = to_numpy(backbone.relative_position_bias(positions))
    np.testing.assert_allclose(
        bias, encoder_data[f"{batch}/rel_pos_bias"], atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("buckets, max_distance", [(32, 128), (16, 20), (8, 3)])
def test_relative_bias_layer_equals_table_lookup_of_buckets(buckets, max_distance):
    """The layer looks distances up in a clipped per-distance table: the
    same rows as bucketing every query-key distance, far beyond
    `max_distance` too."""
    from keras_unilmv2.layers import UniLMv2RelativePositionBias

    layer = UniLMv2RelativePositionBias(
        num_heads=3, num_buckets=buckets, max_distance=max_distance
    )
    layer.build()
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 700, (2, 5)).astype("int32")
    keys = np.concatenate([rng.integers(0, 700, (2, 6)), [[0, 699], [350, 351]]], axis=1)
    keys = keys.astype("int32")
    relative = keys[:, None, :] - queries[:, :, None]
    assert np.abs(relative).max() > 5 * max_distance
    table = to_numpy(layer.bias_table)
    expected = table[to_numpy(relative_position_bucket(relative, buckets, max_distance))]
    np.testing.assert_array_equal(
        to_numpy(layer(queries, keys)), expected.transpose(0, 3, 1, 2)
    )


@pytest.mark.parametrize("batch", ["batch_a", "batch_b", "batch_c"])
def test_every_layer_matches_reference(encoder_data, batch):
    backbone = reference_backbone()
    inputs = reference_inputs(encoder_data, f"{batch}/")
    layer_outputs = _layer_outputs_model(backbone)(_full_inputs(inputs))
    expected = encoder_data[f"{batch}/hidden_states"]
    assert len(layer_outputs) == expected.shape[0]
    keep = np.ones(expected.shape[1:3], bool)
    if f"{batch}/dead_position" in encoder_data.files:
        example, position = encoder_data[f"{batch}/dead_position"]
        keep[example, position] = False
    for index, (actual, reference) in enumerate(zip(layer_outputs, expected)):
        np.testing.assert_allclose(
            to_numpy(actual)[keep],
            reference[keep],
            atol=ATOL,
            rtol=0,
            err_msg=f"{batch}: hidden state {index}",
        )
    outputs = backbone(inputs)
    np.testing.assert_allclose(
        to_numpy(outputs["sequence_output"])[keep],
        encoder_data[f"{batch}/sequence_output"][keep],
        atol=ATOL,
        rtol=0,
    )
    if not keep.all():
        # The dead query sees only -10000-shifted scores: the reference still
        # gives a finite softmax (no NaN, not a uniform average); its float32
        # rounding at 1e4 moves it by ~1e-4 (fixture README), hence 1e-3.
        dead = to_numpy(outputs["sequence_output"])[~keep]
        assert np.isfinite(dead).all()
        np.testing.assert_allclose(
            dead, encoder_data[f"{batch}/sequence_output"][~keep], atol=1e-3
        )


def test_pooled_output_matches_reference(encoder_data):
    outputs = reference_backbone()(reference_inputs(encoder_data, "batch_a/"))
    np.testing.assert_allclose(
        to_numpy(outputs["pooled_output"]),
        encoder_data["batch_a/pooled_output"],
        atol=ATOL,
        rtol=0,
    )


def test_lm_head_logits_match_reference():
    data = np.load(fixture_path("mlm.npz"))
    backbone = reference_backbone()
    sequence = backbone(reference_inputs(data))["sequence_output"]
    np.testing.assert_allclose(
        to_numpy(sequence), data["sequence_output"], atol=ATOL, rtol=0
    )
    logits = to_numpy(backbone.lm_head(sequence))
    np.testing.assert_allclose(logits, data["logits"], atol=ATOL, rtol=0)
    # Reading only the masked slots gives the same rows.
    rows, cols = np.nonzero(data["masked_positions"][:1])
    gathered = to_numpy(backbone.lm_head(sequence[:1], positions=cols[None, :]))
    np.testing.assert_allclose(gathered[0], data["logits"][0, cols], atol=ATOL, rtol=0)


# --- basics -------------------------------------------------------------------


def test_output_shapes_and_variable_lengths():
    backbone = tiny_backbone()
    for length in (1, 5, 17):
        outputs = backbone(random_inputs(length=length, pad=0))
        assert tuple(outputs["sequence_output"].shape) == (2, length, 32)
        assert tuple(outputs["pooled_output"].shape) == (2, 32)


def test_default_positions_equal_explicit_arange():
    backbone = tiny_backbone()
    inputs = random_inputs()
    explicit = dict(inputs, position_ids=np.tile(np.arange(9, dtype="int32"), (2, 1)))
    np.testing.assert_allclose(
        to_numpy(backbone(inputs)["sequence_output"]),
        to_numpy(backbone(explicit)["sequence_output"]),
        atol=1e-6,
    )


def test_relative_distances_come_from_position_ids():
    backbone = tiny_backbone()
    inputs = random_inputs(pad=0)
    shifted = dict(inputs, position_ids=np.tile(np.arange(9, dtype="int32") * 5, (2, 1)))
    a = to_numpy(backbone(inputs)["sequence_output"])
    b = to_numpy(backbone(shifted)["sequence_output"])
    assert np.abs(a - b).max() > 1e-3


def test_padded_keys_contribute_nothing():
    backbone = tiny_backbone()
    inputs = random_inputs(pad=3)
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["token_ids"][-1, -3:] = 77
    changed["segment_ids"][-1, -3:] = 1
    a = to_numpy(backbone(inputs)["sequence_output"])[-1, :-3]
    b = to_numpy(backbone(changed)["sequence_output"])[-1, :-3]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_attention_mask_is_combined_with_padding_mask():
    backbone = tiny_backbone()
    inputs = random_inputs(pad=3)
    # An all-ones 3-D mask must not make padded keys visible.
    with_mask = dict(inputs, attention_mask=np.ones((2, 9, 9), "int32"))
    np.testing.assert_allclose(
        to_numpy(backbone(inputs)["sequence_output"]),
        to_numpy(backbone(with_mask)["sequence_output"]),
        atol=1e-6,
    )
    # A causal mask: the first token's output ignores every later token.
    causal = dict(inputs, attention_mask=np.tril(np.ones((2, 9, 9), "int32")))
    changed = dict(causal, token_ids=inputs["token_ids"].copy())
    changed["token_ids"][:, 1:] = 42
    a = to_numpy(backbone(causal)["sequence_output"])[:, 0]
    b = to_numpy(backbone(changed)["sequence_output"])[:, 0]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_fully_masked_rows_give_no_nan():
    backbone = tiny_backbone()
    inputs = random_inputs(pad=0)
    inputs["padding_mask"][1, :] = 0
    mask = np.ones((2, 9, 9), "int32")
    mask[0, 4, :] = 0
    outputs = backbone(dict(inputs, attention_mask=mask))
    assert np.isfinite(to_numpy(outputs["sequence_output"])).all()
    assert np.isfinite(to_numpy(outputs["pooled_output"])).all()


def test_without_relative_bias_unilm1_2():
    backbone = tiny_backbone(relative_position_buckets=0)
    assert backbone.relative_position_bias is None
    assert not any("relative_position_bias" in w.path for w in backbone.weights)
    outputs = backbone(random_inputs())
    assert tuple(outputs["sequence_output"].shape) == (2, 9, 32)


def test_weights_have_stable_paths():
    paths = {w.path for w in tiny_backbone().weights}
    for expected in (
        "token_embedding/embeddings",
        "position_embedding/embeddings",
        "segment_embedding/embeddings",
        "relative_position_bias/bias_table",
        "transformer_layer_0/self_attention/query/kernel",
        "transformer_layer_0/self_attention/key/kernel",
        "transformer_layer_1/feedforward_output_dense/kernel",
        "pooled_dense/kernel",
        "lm_head/transform_dense/kernel",
        "lm_head/output_bias",
    ):
        assert expected in paths, expected
    # One relative-position table for the whole model.
    assert sum("bias_table" in p for p in paths) == 1


@pytest.mark.parametrize("buckets", [32, 0])
@pytest.mark.parametrize("with_layout", [True, False])
def test_encode_at_output_positions_equals_full_rows(buckets, with_layout):
    """`encode(..., output_positions)` returns the full pass's rows, with a
    3-D mask and per-example positions or the defaults (a bias shared by
    the batch), with and without the relative bias."""
    backbone = tiny_backbone(dropout=0.0, relative_position_buckets=buckets)
    inputs = random_inputs(batch=2, length=9, pad=2)
    if with_layout:
        rng = np.random.default_rng(1)
        inputs["attention_mask"] = (rng.random((2, 9, 9)) < 0.7).astype("int32")
        inputs["position_ids"] = rng.integers(0, 9, (2, 9)).astype("int32")
    full = to_numpy(backbone(inputs)["sequence_output"])
    rows = np.array([[0, 5, 5, 8], [3, 1, 6, 2]], "int32")
    assert to_numpy(backbone.encode(inputs)).shape == full.shape
    np.testing.assert_allclose(
        to_numpy(backbone.encode(inputs)), full, atol=1e-6
    )
    out = to_numpy(backbone.encode(inputs, output_positions=rows))
    np.testing.assert_allclose(out, np.take_along_axis(full, rows[:, :, None], axis=1), atol=1e-5)


def test_encode_rejects_bad_inputs():
    backbone = tiny_backbone()
    with pytest.raises(ValueError, match="segment_ids"):
        backbone.encode({"token_ids": np.ones((1, 3), "int32")})
    inputs = dict(random_inputs(batch=1, length=3), mask_positions=np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"unexpected: \['mask_positions'\]"):
        backbone.encode(inputs)


def _causal_case():
    """A tiny backbone, 2 x 8 random inputs under a causal mask, and the
    full forward pass's outputs."""
    backbone = tiny_backbone(dropout=0.0)
    inputs = random_inputs(batch=2, length=8, pad=0)
    causal = np.tril(np.ones((2, 8, 8), "int32"))
    positions = np.tile(np.arange(8, dtype="int32"), (2, 1))
    full = to_numpy(
        backbone(dict(inputs, attention_mask=causal, position_ids=positions))[
            "sequence_output"
        ]
    )
    return backbone, inputs, causal, positions, full


def _cached(backbone):
    """The cached path over the backbone's layers: the seq2seq task owns it
    (`_cached_forward`, `_attention_bias`, `_empty_cache`); it needs no
    preprocessor for these."""
    from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM

    return UniLMv2Seq2SeqLM(backbone)


def test_cached_encoding_equals_full_forward():
    backbone, inputs, causal, positions, full = _causal_case()
    task = _cached(backbone)
    cache = task._empty_cache(2, 8)
    outputs = []
    # A 3-token prefix, then one token at a time.
    for start, stop in ((0, 3), (3, 4), (4, 5), (5, 8)):
        out, cache = task._cached_forward(
            inputs["token_ids"][:, start:stop],
            inputs["segment_ids"][:, start:stop],
            positions[:, start:stop],
            task._attention_bias(
                positions[:, start:stop], positions, causal[:, start:stop, :]
            ),
            cache,
            start,
            None,
        )
        outputs.append(to_numpy(out))
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5)


def test_cached_layer_leaves_the_given_cache_as_it_was():
    backbone, inputs, causal, positions, _ = _causal_case()
    task = _cached(backbone)
    cache = task._empty_cache(2, 8)
    _, written = task._cached_forward(
        inputs["token_ids"][:, :3],
        inputs["segment_ids"][:, :3],
        positions[:, :3],
        task._attention_bias(positions[:, :3], positions, causal[:, :3, :]),
        cache,
        0,
        None,
    )
    for leaf in keras.tree.flatten(cache):
        np.testing.assert_array_equal(to_numpy(leaf), 0)
    for keys, values in written:  # slots 0-2 written, 3-7 still zeros
        keys, values = to_numpy(keys), to_numpy(values)
        assert np.abs(keys[..., :3]).min() > 0 and np.abs(values[:, :, :3]).min() > 0
        np.testing.assert_array_equal(keys[..., 3:], 0)
        np.testing.assert_array_equal(values[:, :, 3:], 0)


def test_cached_encoding_with_shared_context_equals_full_forward():
    """A prefix encoded once as a read-only context, shared by g rows each;
    the bias covers `[context | cache]` keys."""
    backbone, inputs, causal, positions, full = _causal_case()
    task = _cached(backbone)
    # The 3-token prefix: its own keys and values, batch 2.
    _, prefix = task._cached_forward(
        inputs["token_ids"][:, :3],
        inputs["segment_ids"][:, :3],
        positions[:, :3],
        task._attention_bias(positions[:, :3], positions[:, :3], causal[:, :3, :3]),
        task._empty_cache(2, 3),
        0,
        None,
    )
    group = 3  # e.g. three beams per example, rows 0-2 -> example 0
    rows = np.repeat(np.arange(2), group)

    def step(start, stop, cache, index, context_visible):
        visible = np.concatenate(
            [
                np.broadcast_to(context_visible[rows, None, :], (2 * group, stop - start, 3)),
                causal[rows, start:stop, 3:],
            ],
            axis=2,
        )
        return task._cached_forward(
            inputs["token_ids"][rows, start:stop],
            inputs["segment_ids"][rows, start:stop],
            positions[rows, start:stop],
            task._attention_bias(positions[rows, start:stop], positions[rows], visible),
            cache,
            index,
            prefix,
        )

    real = np.ones((2, 3), bool)
    cache = task._empty_cache(2 * group, 5)
    outputs = []
    for start, stop in ((3, 5), (5, 6), (6, 8)):
        out, cache = step(start, stop, cache, start - 3, real)
        outputs.append(to_numpy(out))
    np.testing.assert_allclose(
        np.concatenate(outputs, axis=1), full[rows, 3:], atol=1e-5
    )
    # The context is what the rows see: another prefix changes the outputs.
    other = np.array([[1, 0, 1], [1, 1, 1]], bool)
    changed, _ = step(3, 5, task._empty_cache(2 * group, 5), 0, other)
    changed = to_numpy(changed)
    assert np.abs(changed[:group] - outputs[0][:group]).max() > 1e-3
    np.testing.assert_allclose(changed[group:], outputs[0][group:], atol=1e-6)


def test_fit_updates_weights():
    backbone = tiny_backbone()
    inputs = random_inputs(batch=4)
    model = keras.Model(backbone.input, backbone.output["pooled_output"])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    full = dict(inputs, position_ids=None, attention_mask=None)
    before = to_numpy(backbone.relative_position_bias.bias_table).copy()
    history = model.fit(full, np.ones((4, 32), "float32"), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = to_numpy(backbone.relative_position_bias.bias_table)
    assert np.abs(after - before).max() > 0


# --- serialization ------------------------------------------------------------


def test_get_config_round_trip():
    backbone = tiny_backbone(relative_position_buckets=16, max_relative_position=64)
    config = backbone.get_config()
    for key, value in tiny_backbone_kwargs().items():
        assert config[key] == value
    assert config["relative_position_buckets"] == 16
    restored = UniLMv2Backbone.from_config(config)
    assert restored.get_config() == config


def test_keras_file_round_trip(tmp_path):
    backbone = reference_backbone()
    inputs = random_inputs()
    path = os.path.join(tmp_path, "backbone.keras")
    backbone.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, UniLMv2Backbone)
    np.testing.assert_allclose(
        to_numpy(backbone(inputs)["sequence_output"]),
        to_numpy(restored(inputs)["sequence_output"]),
        atol=1e-6,
    )
    np.testing.assert_array_equal(
        to_numpy(backbone.lm_head.output_bias), to_numpy(restored.lm_head.output_bias)
    )


def test_preset_round_trip_keeps_lm_head(tmp_path):
    backbone = reference_backbone()
    preset = os.path.join(tmp_path, "preset")
    backbone.save_to_preset(preset)
    for name in ("config.json", "metadata.json", "model.weights.h5"):
        assert os.path.exists(os.path.join(preset, name)), name
    restored = UniLMv2Backbone.from_preset(preset)
    inputs = random_inputs()
    a = backbone(inputs)["sequence_output"]
    b = restored(inputs)["sequence_output"]
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(backbone.lm_head(a)), to_numpy(restored.lm_head(b)), atol=1e-5
    )
    random_again = UniLMv2Backbone.from_preset(preset, load_weights=False)
    assert np.abs(
        to_numpy(random_again.lm_head.transform_dense.kernel)
        - to_numpy(backbone.lm_head.transform_dense.kernel)
    ).max() > 0


# --- mixed precision ----------------------------------------------------------


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(policy):
    reference = reference_backbone()
    backbone = UniLMv2Backbone.from_config(
        dict(reference.get_config(), dtype=policy)
    )
    backbone.set_weights(reference.get_weights())
    for weight in backbone.weights:
        assert weight.dtype == "float32", weight.path
    inputs = random_inputs(pad=3)
    outputs = backbone(inputs)
    compute = "bfloat16" if policy == "mixed_bfloat16" else "float16"
    assert keras.backend.standardize_dtype(outputs["sequence_output"].dtype) == compute
    half = to_numpy(keras.ops.cast(outputs["sequence_output"], "float32"))
    full = to_numpy(reference(inputs)["sequence_output"])
    # Half precision keeps 8 (bf16) or 11 (fp16) mantissa bits; the fixture's
    # weights are large (std up to 0.5), which amplifies the rounding.
    tolerance = 0.05 if compute == "bfloat16" else 0.01
    np.testing.assert_allclose(half, full, atol=tolerance)
    # A fully masked query row stays finite in half precision. (Its scores sit
    # at -10000, where a half-precision ulp is 8 to 64, so the relative bias
    # is lost on that degenerate row; it is not compared.)
    mask = np.ones((2, 9, 9), "int32")
    mask[0, 2, :] = 0
    dead = backbone(dict(inputs, attention_mask=mask))
    assert np.isfinite(to_numpy(keras.ops.cast(dead["sequence_output"], "float32"))).all()
    assert np.isfinite(to_numpy(keras.ops.cast(dead["pooled_output"], "float32"))).all()


# --- errors -------------------------------------------------------------------


def test_sequence_longer_than_position_table():
    backbone = tiny_backbone(max_sequence_length=8)
    with pytest.raises(ValueError, match="max_sequence_length"):
        backbone(random_inputs(length=9, pad=0))


def test_attention_mask_of_wrong_shape():
    backbone = tiny_backbone()
    inputs = random_inputs()
    with pytest.raises(ValueError, match="attention_mask"):
        backbone(dict(inputs, attention_mask=np.ones((2, 9, 8), "int32")))
    with pytest.raises(ValueError, match="attention_mask"):
        backbone(dict(inputs, attention_mask=np.ones((2, 8, 9), "int32")))
    with pytest.raises(ValueError, match="attention_mask"):
        backbone(dict(inputs, attention_mask=np.ones((2, 9), "int32")))


def test_missing_and_extra_input_keys():
    backbone = tiny_backbone()
    inputs = random_inputs()
    missing = {k: v for k, v in inputs.items() if k != "padding_mask"}
    with pytest.raises(ValueError, match=r"Missing: \['padding_mask'\]"):
        backbone(missing)
    with pytest.raises(ValueError, match=r"unexpected: \['mask_positions'\]"):
        backbone(dict(inputs, mask_positions=np.zeros((2, 1), "int32")))
    with pytest.raises(TypeError, match="dict"):
        backbone(inputs["token_ids"])


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"num_layers": 0}, "num_layers"),
        ({"hidden_dim": 30}, "divisible"),
        ({"vocabulary_size": 1.5}, "vocabulary_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"relative_position_buckets": -1}, "relative_position_buckets"),
    ],
)
def test_bad_constructor_arguments(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_backbone(**overrides)


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown preset 'unilmv2_huge'"):
        UniLMv2Backbone.from_preset("unilmv2_huge")


def test_released_preset_not_converted(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_UNILMV2_HOME", str(tmp_path))
    with pytest.raises(ValueError) as info:
        UniLMv2Backbone.from_preset("unilmv2_base_en_uncased")
    message = str(info.value)
    assert "https://unilm.blob.core.windows.net/ckpt/unilm2-base-uncased.bin" in message
    assert "python tools/convert_unilmv2_checkpoint.py" in message
    assert os.path.join(str(tmp_path), "unilmv2_base_en_uncased") in message
    cased = None
    with pytest.raises(ValueError) as info:
        UniLMv2Backbone.from_preset("unilmv2_large_en_cased")
    cased = str(info.value)
    assert "--cased" in cased


def test_released_preset_architecture_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_UNILMV2_HOME", str(tmp_path))
    backbone = UniLMv2Backbone.from_preset(
        "unilm1.2_base_en_uncased", load_weights=False, num_layers=1
    )
    assert backbone.relative_position_buckets == 0
    assert backbone.hidden_dim == 768 and backbone.num_layers == 1
    assert set(UniLMv2Backbone.presets) >= {
        "unilmv2_base_en_uncased",
        "unilmv2_large_en_uncased",
        "unilmv2_large_en_cased",
        "unilm1.2_base_en_uncased",
    }


def test_released_preset_resolves_to_converted_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_UNILMV2_HOME", str(tmp_path))
    reference_backbone().save_to_preset(
        os.path.join(tmp_path, "unilmv2_base_en_uncased")
    )
    restored = UniLMv2Backbone.from_preset("unilmv2_base_en_uncased")
    assert restored.hidden_dim == 32
