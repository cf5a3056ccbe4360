"""Argument checks shared by the preprocessors and `keras_unilmv2.masks`."""

import numbers

import numpy as np


def check_int(name, value, minimum, hint=""):
    """Returns `value` as an int, or raises a `ValueError` naming `name`.

    `hint` is appended to what the message says is expected.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}{hint}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def concrete_values(x):
    """`x` as a numpy array, or None while it has no values.

    Symbolic tensors (`keras.KerasTensor`, a `tf.function` graph, a JAX
    trace, torch's meta tensors or `torch.compile`) have no values to check:
    they return None, so the checks that use this cost nothing in compiled
    code.
    """
    import keras

    if x is None or isinstance(x, keras.KerasTensor):
        return None
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):
            return None
    elif backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return None
    elif backend == "torch":
        import torch

        if isinstance(x, torch.Tensor):
            if x.device.type == "meta" or torch.compiler.is_compiling():
                return None
            return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception:  # An object without values (e.g. another trace type).
        return None


def check_id_range(name, ids, upper, what):
    """Raises a `ValueError` if a concrete `ids` holds a value outside
    `[0, upper)`. `what` names the bound, e.g. `"vocabulary_size"`.

    Out-of-range ids do not fail on every backend (a JAX gather returns NaN
    rows or clamps), so they are refused where they enter the model. Symbolic
    or traced `ids` are not checked (see `concrete_values`).
    """
    values = concrete_values(ids)
    if values is None or values.size == 0:
        return
    low, high = values.min(), values.max()
    if low >= 0 and high < upper:
        return
    bad = low if low < 0 else high
    index = tuple(int(i) for i in np.argwhere(values == bad)[0])
    raise ValueError(
        f"`{name}` must be in [0, {upper}) (`{what}` = {upper}). Received: "
        f"{name} holding {int(bad)} at index {index}."
    )
