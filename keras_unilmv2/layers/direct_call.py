"""The cached decoding path's layer calls and tensor ops, without overhead.

A decoding step of a small model does little arithmetic: on the eager torch
backend its time goes to Keras' per-call bookkeeping. `Layer.__call__`
binds arguments, flattens structures and opens name and autocast scopes
(0.1-0.3 ms a call), and every `keras.ops` function converts and checks its
arguments (about 5-30 us, against 1-8 us for the torch function it ends up
calling). This module runs the decoding path's layers and ops directly:

- `call_layer(layer, ...)` runs `layer.call` instead of `layer(...)`, and on
  torch the plain `Dense`, `LayerNormalization`, `Embedding` and tied
  `ReversibleEmbedding` layers as the very torch functions their `call`
  reaches (`matmul` + bias, `layer_norm`, indexing, the tied projection);
- `prepare(layer)` goes one step further for a loop: it reads the layer's
  weights once and returns the torch function of them, so that a decoding
  step does not even look up the layer's properties (`kernel`, the
  variable's `value`, the policy) every time;
- `matmul`, `reshape`, `transpose`, `concatenate`, `softmax_float32`,
  `slice_update`, `slice_rows`, `cast`, `shape` and `full_like` are
  `keras.ops` on TensorFlow and JAX (traced once per compiled function, so
  the checks cost nothing per step) and the same torch functions on torch.

The results are identical to the Keras calls (tested); only the per-call
checks are skipped, so the functions are for inputs the decoding path builds
itself, and for inference: no training flag is propagated (callers pass
`training=False` or call no dropout at all). Layers under a mixed-precision
policy (compute dtype != variable dtype), quantized or LoRA layers go
through `layer(...)`, which does the autocasting and the rest.
"""

import keras
from keras import ops
from keras_hub.layers import ReversibleEmbedding


def _torch():
    return keras.config.backend() == "torch"


def _plain(layer):
    policy = layer.dtype_policy
    return (
        layer.built
        and policy.compute_dtype == policy.variable_dtype
        and getattr(layer, "quantization_mode", None) is None
        and not getattr(layer, "lora_enabled", False)
    )


# The torch functions each layer's `call` reaches, from its weight tensors.


def _dense(x, kernel, bias, activation):
    outputs = x @ kernel
    if bias is not None:
        outputs = outputs + bias
    return outputs if activation is None else activation(outputs)


def _dense_weights(layer):
    import torch

    bias = layer.bias.value if layer.bias is not None else None
    activation = layer.activation
    if activation is keras.activations.linear:
        activation = None
    elif activation is keras.activations.gelu:
        # What Keras' gelu (exact by default) runs on torch, without its
        # argument conversion.
        activation = torch.nn.functional.gelu
    return layer.kernel.value, bias, activation


def _layer_norm(x, gamma, beta, epsilon):
    import torch

    return torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, beta, epsilon)


def _layer_norm_covered(layer, dtype, rank=None):
    """Whether `layer` on a `dtype` input (of `rank` dimensions, where known)
    is `torch.layer_norm` over the last axis."""
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    last_axis = axes == [-1] or (rank is not None and axes == [rank - 1])
    # Keras normalizes half precision in float32.
    float32 = keras.backend.standardize_dtype(dtype) == "float32"
    return last_axis and float32 and not layer.rms_scaling


def _layer_norm_weights(layer):
    gamma = layer.gamma.value if layer.gamma is not None else None
    beta = layer.beta.value if layer.beta is not None else None
    return gamma, beta, layer.epsilon


def _is_int(ids):
    import torch

    return ids.dtype in (torch.int32, torch.int64)


def _projection_covered(layer):
    """Whether a tied `ReversibleEmbedding(reverse=True)` is `x @ table^T`."""
    return (
        layer.tie_weights
        and layer.reverse_dtype is None
        and layer.logit_soft_cap is None
    )


def _torch_dense(layer, x):
    return _dense(x, *_dense_weights(layer))


def _torch_layer_norm(layer, x):
    if not _layer_norm_covered(layer, x.dtype, x.ndim):
        return None
    return _layer_norm(x, *_layer_norm_weights(layer))


def _torch_embedding(layer, ids):
    return layer.embeddings.value[ids] if _is_int(ids) else None


def _torch_reversible_embedding(layer, x, reverse=False):
    if not reverse:
        return None if layer.mask_zero else _torch_embedding(layer, x)
    if not _projection_covered(layer):
        return None
    return x @ layer.embeddings.value.T


def _torch_call(layer, args, kwargs):
    """The torch function `layer.call` reaches, or None where not covered."""
    import torch

    if not args or not isinstance(args[0], torch.Tensor):
        return None  # e.g. NumPy input: `layer.call` converts it
    kind = type(layer)
    if kind is ReversibleEmbedding and len(args) == 1 and set(kwargs) <= {"reverse"}:
        return _torch_reversible_embedding(layer, args[0], **kwargs)
    if kwargs or len(args) != 1:
        return None
    if kind is keras.layers.Dense:
        return _torch_dense(layer, args[0])
    if kind is keras.layers.LayerNormalization:
        return _torch_layer_norm(layer, args[0])
    if kind is keras.layers.Embedding:
        return _torch_embedding(layer, args[0])
    return None


def call_layer(layer, *args, **kwargs):
    """`layer(*args, **kwargs)` for the cached decoding path, run directly.

    For a built layer whose variables need no autocasting (compute dtype ==
    variable dtype), not quantized and without LoRA, `layer.call` (or, on
    torch, the torch function it reaches) computes exactly what `layer(...)`
    does; otherwise this falls back to `__call__`.

    Only for inference paths: the training flag is not propagated, so
    callers pass `training=False` (or call no dropout at all).
    """
    if not _plain(layer):
        return layer(*args, **kwargs)
    if _torch():
        outputs = _torch_call(layer, args, kwargs)
        if outputs is not None:
            return outputs
    return layer.call(*args, **kwargs)


def prepare(layer, reverse=False):
    """`layer`'s inference call as a function, its weights read once.

    Returns `f` with `f(x) == layer(x)` (`layer(x, reverse=True)` with
    `reverse`). A decoding loop prepares its sublayers once per generation
    and calls them every step. On torch, a plain (see `call_layer`) `Dense`,
    `LayerNormalization` over the last axis in float32, `Embedding` or
    `ReversibleEmbedding` becomes the torch function its `call` reaches,
    applied to weight tensors read here: the step then skips every per-call
    property lookup and check too (the layer's `kernel`, the variable's
    `value`, the policy), about 10-30 us per sublayer call. For the tied
    output projection of a CPU model, the `[hidden, vocabulary]` transpose is
    also copied here once: MKL multiplies a few rows against it about 1.7x
    faster than against the transposed view of the `[vocabulary, hidden]`
    table, at the cost of one table-sized buffer held by `f`.

    Everything else, and every layer on JAX and TensorFlow (whose traced
    functions pay the checks once), is `call_layer(layer, x)`.

    The weights are those of the moment of preparation: prepare again after
    they change (training, `assign`, quantizing, LoRA).
    """
    if not (_torch() and _plain(layer)):
        return _generic(layer, reverse)
    kind = type(layer)
    if reverse:
        if kind is ReversibleEmbedding and _projection_covered(layer):
            kernel = layer.embeddings.value.T
            if kernel.device.type == "cpu":
                kernel = kernel.contiguous()
            return lambda x: x @ kernel
        return _generic(layer, reverse)
    if kind is keras.layers.Dense:
        kernel, bias, activation = _dense_weights(layer)
        return lambda x: _dense(x, kernel, bias, activation)
    if kind is keras.layers.LayerNormalization and _layer_norm_covered(
        layer, layer.compute_dtype
    ):
        gamma, beta, epsilon = _layer_norm_weights(layer)
        return lambda x: _layer_norm(x, gamma, beta, epsilon)
    if kind in (keras.layers.Embedding, ReversibleEmbedding) and not layer.mask_zero:
        table = layer.embeddings.value
        generic = _generic(layer, reverse)
        return lambda ids: table[ids] if _is_int(ids) else generic(ids)
    return _generic(layer, reverse)


def _generic(layer, reverse):
    if reverse:
        return lambda x: call_layer(layer, x, reverse=True)
    return lambda x: call_layer(layer, x)


def matmul(x, y):
    return x @ y if _torch() else ops.matmul(x, y)


def reshape(x, shape):
    return x.reshape(shape) if _torch() else ops.reshape(x, shape)


def transpose(x, axes):
    return x.permute(axes) if _torch() else ops.transpose(x, axes)


def concatenate(xs, axis):
    if _torch():
        import torch

        return torch.cat(xs, dim=axis)
    return ops.concatenate(xs, axis=axis)


def cast(x, dtype):
    """`ops.cast`, and `x` itself when it already has that dtype."""
    if x.dtype == dtype:  # e.g. another tensor's dtype: no conversion
        return x
    if keras.backend.standardize_dtype(x.dtype) == keras.backend.standardize_dtype(
        dtype
    ):
        return x
    return ops.cast(x, dtype)


def shape(x):
    """`ops.shape(x)`: on torch the tensor's own (static) shape."""
    return tuple(x.shape) if _torch() else ops.shape(x)


def full_like(x, value):
    """`ops.full_like(x, value)`, on torch without the conversions."""
    if _torch():
        import torch

        return torch.full_like(x, value)
    return ops.full_like(x, value)


def host_index(index):
    """`index` as a Python int where reading it costs no device sync (an
    int, or a CPU scalar tensor on torch), else `index` itself.

    A decoding step converts its slot index once and passes the int on:
    every slice and cache write then uses it directly.
    """
    if _torch():
        start = _host_start(index)
        if start is not None:
            return start
    return index


def softmax_float32(x, axis=-1):
    """Softmax computed in float32, returned in the dtype of `x`."""
    if _torch():
        import torch

        return torch.softmax(x, dim=axis, dtype=torch.float32).to(x.dtype)
    return ops.cast(ops.softmax(ops.cast(x, "float32"), axis=axis), x.dtype)


def _host_start(start):
    """`start` as a Python int where reading it needs no device sync (an int
    or a CPU scalar tensor), else None (torch)."""
    import torch

    if isinstance(start, int):
        return start
    if isinstance(start, torch.Tensor) and start.device.type == "cpu":
        return int(start)
    return None


def _index(start, size, device):
    """The indices `start .. start + size - 1` for a device scalar `start`."""
    import torch

    return start + torch.arange(size, device=device)


def _starts(x, axis, start):
    starts = [0] * len(x.shape)
    starts[axis] = start
    return starts


def slice_update(x, axis, start, update, in_place=False):
    """`x` with `update` written from `start` along `axis`.

    `start` may be a Python int or a scalar tensor; `update` has the shape
    of `x` except along `axis`. The result is a copy, except on torch with
    `in_place=True` outside autograd (`torch.no_grad()`, as generation
    runs): there `x` itself is written and returned, which saves copying a
    whole decoding cache per layer and step. XLA (JAX, TensorFlow) updates
    loop-carried buffers in place by itself.
    """
    if _torch():
        import torch

        update = update.to(x.dtype)
        if not (in_place and not torch.is_grad_enabled()):
            x = x.clone()
        first, size = _host_start(start), update.shape[axis]
        if first is not None:
            x.narrow(axis, first, size).copy_(update)
        else:
            x.index_copy_(axis, _index(start, size, x.device), update)
        return x
    return ops.slice_update(x, _starts(x, axis, start), cast(update, x.dtype))


def slice_rows(x, axis, start, size):
    """`size` entries of `x` along `axis` from `start` (int or scalar tensor)."""
    if _torch():
        first = _host_start(start)
        if first is not None:
            return x.narrow(axis, first, size)
        return x.index_select(axis, _index(start, size, x.device))
    sizes = list(ops.shape(x))
    sizes[axis] = size
    return ops.slice(x, _starts(x, axis, start), sizes)
