"""Argument checks shared across the package.

Every check raises a `ValueError` naming the argument, the value received
and what is expected, and returns the value in its canonical type.
"""

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


def check_rate(name, value, low=0, high=1, open_low=False, open_high=False):
    """Returns `value` as a float in the interval `[low, high]`, or raises.

    `open_low` / `open_high` exclude the bound: `check_rate("mask_rate", x,
    open_low=True)` accepts `(0, 1]`. The message writes the interval as
    given, e.g. "`dropout` must be a number in [0, 1)".
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high
        )
    if not ok:
        interval = ("(" if open_low else "[") + f"{low}, {high}"
        interval += ")" if open_high else "]"
        raise ValueError(
            f"`{name}` must be a number in {interval}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_replacement_rates(rates):
    """`None` or a `(mask, random, keep)` triple of floats, or raises."""
    if rates is None:
        return None
    message = (
        "`mask_token_replacement_rates` must be None or three "
        "non-negative numbers (mask, random, keep) summing to 1. "
        f"Received: mask_token_replacement_rates={rates!r}"
    )
    if not isinstance(rates, (list, tuple)) or len(rates) != 3:
        raise ValueError(message)
    if not all(
        isinstance(r, numbers.Real) and not isinstance(r, bool) and r >= 0
        for r in rates
    ):
        raise ValueError(message)
    if abs(sum(rates) - 1.0) > 1e-6:
        raise ValueError(message)
    return tuple(float(r) for r in rates)


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, or raises."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_sampler(sampler, vocabulary_size=None):
    """Checks the settings of a keras-hub sampler instance, or raises.

    Looks at the attributes the built-in samplers have: `k` (top-k and
    contrastive: an integer in [1, vocabulary_size]), `p` (top-p: a number
    in (0, 1]), `num_beams` (an integer >= 1) and `temperature` (> 0).
    Raises a `ValueError` naming the sampler, the setting and its value.
    """
    name = type(sampler).__name__
    k = getattr(sampler, "k", None)
    if k is not None:
        top = "" if vocabulary_size is None else f" and <= {vocabulary_size}"
        if (
            isinstance(k, bool)
            or not isinstance(k, numbers.Integral)
            or k < 1
            or (vocabulary_size is not None and k > vocabulary_size)
        ):
            raise ValueError(
                f"`{name}.k` (the number of candidate tokens) must be an "
                f"integer >= 1{top} (the vocabulary size). Received: k={k!r}"
            )
    p = getattr(sampler, "p", None)
    if p is not None and (
        isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1
    ):
        raise ValueError(
            f"`{name}.p` (the nucleus probability) must be a number in "
            f"(0, 1]. Received: p={p!r}"
        )
    num_beams = getattr(sampler, "num_beams", None)
    if num_beams is not None:
        check_int(f"{name}.num_beams", num_beams, 1)
    temperature = getattr(sampler, "temperature", None)
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not temperature > 0
    ):
        raise ValueError(
            f"`{name}.temperature` must be a number > 0. "
            f"Received: temperature={temperature!r}"
        )
    return sampler


def check_stop_token_ids(stop_token_ids, vocabulary_size=None):
    """`None`, `"auto"` or a non-empty list/tuple of token ids, or raises."""
    if stop_token_ids is None or (
        isinstance(stop_token_ids, str) and stop_token_ids == "auto"
    ):
        return stop_token_ids
    expected = (
        '`stop_token_ids` must be "auto" (the end token), None (generate '
        "until `max_length`) or a non-empty list or tuple of token ids"
    )
    if vocabulary_size is not None:
        expected += f" in [0, {vocabulary_size})"
    if not isinstance(stop_token_ids, (list, tuple)) or not stop_token_ids:
        raise ValueError(f"{expected}. Received: stop_token_ids={stop_token_ids!r}")
    for token in stop_token_ids:
        if (
            isinstance(token, bool)
            or not isinstance(token, numbers.Integral)
            or token < 0
            or (vocabulary_size is not None and token >= vocabulary_size)
        ):
            raise ValueError(
                f"{expected}. Received: stop_token_ids={stop_token_ids!r} "
                f"(bad id: {token!r})"
            )
    return stop_token_ids


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
