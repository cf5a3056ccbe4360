"""`keras_unilmv2.layers.direct_call`: the decoding path's direct layer calls
and tensor ops give exactly what the Keras calls give."""

import keras
import numpy as np
import pytest
from keras_hub.layers import ReversibleEmbedding

from keras_unilmv2.layers import direct_call as fast
from keras_unilmv2.layers.direct_call import call_layer
from unilmv2_test_utils import to_numpy

TORCH = keras.config.backend() == "torch"


def _floats(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _spy_on_call(layer):
    """Counts `layer.call` runs (the generic path)."""
    calls = []
    original = layer.call

    def call(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    layer.call = call
    return calls


def _dense():
    layer = keras.layers.Dense(8, activation="gelu")
    layer.build((None, 4))
    return layer, _floats(2, 3, 4)


def _layer_norm():
    layer = keras.layers.LayerNormalization(epsilon=1e-5)
    layer.build((None, 6))
    layer.gamma.assign(_floats(6, seed=1))
    layer.beta.assign(_floats(6, seed=2))
    return layer, _floats(2, 3, 6)


def _embedding():
    layer = keras.layers.Embedding(11, 4)
    layer.build((None,))
    return layer, np.array([[0, 3, 10], [7, 7, 1]], "int32")


def _reversible_embedding():
    layer = ReversibleEmbedding(11, 4)
    layer.build((None,))
    return layer, np.array([[0, 3, 10], [7, 7, 1]], "int32")


@pytest.mark.parametrize(
    "make", [_dense, _layer_norm, _embedding, _reversible_embedding]
)
def test_direct_call_equals_keras_call(make):
    layer, x = make()
    x = keras.ops.convert_to_tensor(x)
    expected = to_numpy(layer(x))
    calls = _spy_on_call(layer)
    np.testing.assert_allclose(to_numpy(call_layer(layer, x)), expected, atol=1e-6)
    # Never through `__call__`; on torch not even through `layer.call`:
    # the torch function it reaches runs directly.
    assert len(calls) == (0 if TORCH else 1)


def test_tied_projection_equals_keras_call():
    layer, _ = _reversible_embedding()
    x = keras.ops.convert_to_tensor(_floats(2, 3, 4))
    expected = to_numpy(layer(x, reverse=True))
    calls = _spy_on_call(layer)
    np.testing.assert_allclose(
        to_numpy(call_layer(layer, x, reverse=True)), expected, atol=1e-6
    )
    assert len(calls) == (0 if TORCH else 1)


def test_numpy_inputs_take_the_generic_path():
    layer, x = _dense()
    calls = _spy_on_call(layer)
    np.testing.assert_allclose(
        to_numpy(call_layer(layer, x)), to_numpy(layer.call(x)), atol=1e-6
    )
    assert len(calls) == 2  # the direct call converted NumPy via `call`


def test_lora_layer_goes_through_keras_call():
    layer, x = _dense()
    layer.enable_lora(2)
    layer.lora_kernel_b.assign(_floats(2, 8, seed=3))
    x = keras.ops.convert_to_tensor(x)
    expected = to_numpy(layer(x))
    plain = to_numpy(
        keras.activations.gelu(keras.ops.matmul(x, layer._kernel) + layer.bias)
    )
    assert np.abs(expected - plain).max() > 1e-3  # the LoRA term matters
    np.testing.assert_allclose(to_numpy(call_layer(layer, x)), expected, atol=1e-6)


def test_direct_call_falls_back_under_mixed_precision():
    layer = keras.layers.Dense(8, dtype="mixed_bfloat16")
    x = np.ones((2, 4), "float32")
    layer.build(x.shape)
    out = call_layer(layer, keras.ops.cast(x, "bfloat16"))
    # `__call__` autocasts the float32 kernel: the product is in bfloat16.
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(out, "float32")),
        to_numpy(keras.ops.cast(layer(x), "float32")),
        atol=1e-2,
    )


def test_unbuilt_layer_goes_through_keras_call():
    layer = keras.layers.Dense(3)
    out = call_layer(layer, np.ones((1, 2), "float32"))  # builds it
    assert layer.built and tuple(out.shape) == (1, 3)


def test_tensor_ops_equal_keras_ops():
    ops = keras.ops
    x = ops.convert_to_tensor(_floats(2, 3, 4))
    y = ops.convert_to_tensor(_floats(2, 4, 5, seed=1))
    np.testing.assert_allclose(
        to_numpy(fast.matmul(x, y)), to_numpy(ops.matmul(x, y)), atol=1e-6
    )
    np.testing.assert_array_equal(
        to_numpy(fast.reshape(x, (2, 12))), to_numpy(ops.reshape(x, (2, 12)))
    )
    np.testing.assert_array_equal(
        to_numpy(fast.transpose(x, (2, 0, 1))), to_numpy(ops.transpose(x, (2, 0, 1)))
    )
    np.testing.assert_array_equal(
        to_numpy(fast.concatenate([x, x * 2], axis=1)),
        to_numpy(ops.concatenate([x, x * 2], axis=1)),
    )
    assert fast.cast(x, "float32") is x
    assert keras.backend.standardize_dtype(fast.cast(x, "bfloat16").dtype) == "bfloat16"
    half = ops.cast(x * 30.0, "bfloat16")
    probs = fast.softmax_float32(half)
    assert keras.backend.standardize_dtype(probs.dtype) == "bfloat16"
    expected = ops.cast(ops.softmax(ops.cast(half, "float32")), "bfloat16")
    np.testing.assert_array_equal(
        to_numpy(ops.cast(probs, "float32")), to_numpy(ops.cast(expected, "float32"))
    )


@pytest.mark.parametrize("tensor_start", [False, True])
def test_slice_rows_and_slice_update(tensor_start):
    ops = keras.ops
    base = np.arange(2 * 3 * 6, dtype="float32").reshape(2, 3, 6)
    x = ops.convert_to_tensor(base)
    start = ops.convert_to_tensor(2, "int32") if tensor_start else 2
    np.testing.assert_array_equal(to_numpy(fast.slice_rows(x, 2, start, 3)), base[:, :, 2:5])
    update = -np.ones((2, 3, 2), "float32")
    out = fast.slice_update(x, 2, start, ops.convert_to_tensor(update))
    expected = base.copy()
    expected[:, :, 2:4] = -1
    np.testing.assert_array_equal(to_numpy(out), expected)
    np.testing.assert_array_equal(to_numpy(x), base)  # a copy by default


def test_in_place_slice_update():
    """Writes into `x` on torch outside autograd; a copy everywhere else."""
    ops = keras.ops
    x = ops.zeros((2, 5))
    update = ops.ones((2, 2))
    if TORCH:
        import torch

        with torch.no_grad():
            out = fast.slice_update(x, 1, 1, update, in_place=True)
        assert out is x
        np.testing.assert_array_equal(to_numpy(x)[:, 1:3], 1)
        # With autograd on, the same call copies (an in-place write could
        # corrupt tensors saved for the backward pass).
        x = ops.zeros((2, 5))
    out = fast.slice_update(x, 1, 1, update, in_place=True)
    np.testing.assert_array_equal(to_numpy(out)[:, 1:3], 1)
    np.testing.assert_array_equal(to_numpy(x), 0)  # JAX / TF: always a copy


def _projection():
    """A tied `ReversibleEmbedding` called with `reverse=True`."""
    layer, _ = _reversible_embedding()
    return layer, _floats(2, 3, 4)


@pytest.mark.parametrize(
    "make, reverse",
    [
        (_dense, False),
        (_layer_norm, False),
        (_embedding, False),
        (_reversible_embedding, False),
        (_projection, True),
    ],
)
def test_prepared_layer_equals_keras_call(make, reverse):
    layer, x = make()
    x = keras.ops.convert_to_tensor(x)
    expected = to_numpy(layer(x, reverse=True) if reverse else layer(x))
    prepared = fast.prepare(layer, reverse=reverse)
    calls = _spy_on_call(layer)
    for _ in range(2):
        np.testing.assert_allclose(to_numpy(prepared(x)), expected, atol=1e-6)
    # On torch the weights were read at preparation: the calls never enter
    # the layer; JAX and TensorFlow call `layer.call` (traced once there).
    assert len(calls) == (0 if TORCH else 2)


def test_prepared_projection_is_a_contiguous_transpose_on_a_torch_cpu():
    layer, x = _projection()
    prepared = fast.prepare(layer, reverse=True)
    if TORCH:
        import torch

        # The closures hold the `[hidden, vocabulary]` copy it multiplies by.
        def held_tensors(function):
            for cell in function.__closure__ or ():
                value = cell.cell_contents
                if isinstance(value, torch.Tensor):
                    yield value
                elif callable(value) and hasattr(value, "__closure__"):
                    yield from held_tensors(value)

        (kernel,) = held_tensors(prepared)
        assert tuple(kernel.shape) == (4, 11) and kernel.is_contiguous()
    x = keras.ops.convert_to_tensor(x)
    table = to_numpy(layer.embeddings)
    np.testing.assert_allclose(to_numpy(prepared(x)), to_numpy(x) @ table.T, atol=1e-5)


def test_prepared_layers_fall_back_where_not_covered():
    # LoRA: the prepared function is the Keras call (with the LoRA term).
    lora, x = _dense()
    lora.enable_lora(2)
    lora.lora_kernel_b.assign(_floats(2, 8, seed=3))
    x = keras.ops.convert_to_tensor(x)
    np.testing.assert_allclose(
        to_numpy(fast.prepare(lora)(x)), to_numpy(lora(x)), atol=1e-6
    )
    # Mixed precision: autocast through `__call__`, a bfloat16 product.
    mixed = keras.layers.Dense(8, dtype="mixed_bfloat16")
    mixed.build((None, 4))
    out = fast.prepare(mixed)(keras.ops.cast(x, "bfloat16"))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    # Float ids: the Keras call, which casts them.
    embedding, ids = _embedding()
    float_ids = keras.ops.convert_to_tensor(ids.astype("float32"))
    np.testing.assert_array_equal(
        to_numpy(fast.prepare(embedding)(float_ids)), to_numpy(embedding(ids))
    )
    # Not a layer kind `prepare` knows: the Keras call.
    other = keras.layers.Activation("relu")
    np.testing.assert_array_equal(
        to_numpy(fast.prepare(other)(x)), np.maximum(to_numpy(x), 0)
    )
