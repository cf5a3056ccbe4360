"""`call_layer`: the decoding path's direct sublayer calls."""

import keras
import numpy as np

from keras_unilmv2.layers.direct_call import call_layer
from unilmv2_test_utils import to_numpy


def test_direct_call_equals_keras_call():
    layer = keras.layers.Dense(8, activation="gelu")
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    expected = to_numpy(layer(x))
    calls = []
    original = layer.__class__.__call__

    class Spy(keras.layers.Dense):
        def __call__(self, *args, **kwargs):
            calls.append(1)
            return original(self, *args, **kwargs)

    layer.__class__ = Spy
    np.testing.assert_allclose(to_numpy(call_layer(layer, x)), expected, atol=1e-6)
    assert not calls  # float32: `call` ran directly


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
