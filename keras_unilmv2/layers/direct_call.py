"""Calling a built layer without Keras' per-call bookkeeping (decoding)."""


def call_layer(layer, *args, **kwargs):
    """`layer(*args, **kwargs)` for the cached decoding path, run directly.

    Keras' `Layer.__call__` binds arguments, flattens structures, opens name
    and autocast scopes and resolves the training flag: on the eager torch
    backend that costs about 0.1-0.3 ms per call, more than the arithmetic
    of a whole decoding step at small sizes (about 60 layer calls per step).
    For a built layer whose variables need no autocasting (compute dtype ==
    variable dtype), `layer.call` computes exactly the same thing; under a
    mixed-precision policy this falls back to `__call__`.

    Only for inference paths: the training flag is not propagated, so
    callers pass `training=False` (or call no dropout at all).
    """
    policy = layer.dtype_policy
    if layer.built and policy.compute_dtype == policy.variable_dtype:
        return layer.call(*args, **kwargs)
    return layer(*args, **kwargs)
