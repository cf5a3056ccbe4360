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


def _dense(x, kernel, bias, activation):
    outputs = x @ kernel
    if bias is not None:
        outputs = outputs + bias
    return outputs if activation is None else activation(outputs)


def _torch_function(layer, reverse=False, copy_projection=False):
    """The torch function `layer.call` reaches, applied to weight tensors
    read now; None for a layer kind (or configuration) it does not cover.

    The function returns the layer's output for a torch tensor, or None for
    an input it does not cover (half-precision normalization, non-integer
    ids): the caller then runs the Keras call. With `copy_projection`, a
    tied projection on the CPU multiplies by a contiguous copy of the
    transposed table (see `prepare`).
    """
    import torch

    kind = type(layer)
    if reverse:
        if kind is not ReversibleEmbedding or not (
            layer.tie_weights
            and layer.reverse_dtype is None
            and layer.logit_soft_cap is None
        ):
            return None
        kernel = layer.embeddings.value.T
        if copy_projection and kernel.device.type == "cpu":
            kernel = kernel.contiguous()
        return lambda x: x @ kernel
    if kind is keras.layers.Dense:
        kernel = layer.kernel.value
        bias = layer.bias.value if layer.bias is not None else None
        activation = layer.activation
        if activation is keras.activations.linear:
            activation = None
        elif activation is keras.activations.gelu:
            # What Keras' gelu (exact by default) runs on torch, without its
            # argument conversion.
            activation = torch.nn.functional.gelu
        return lambda x: _dense(x, kernel, bias, activation)
    if kind is keras.layers.LayerNormalization and not layer.rms_scaling:
        axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
        gamma = layer.gamma.value if layer.gamma is not None else None
        beta = layer.beta.value if layer.beta is not None else None

        def normalize(x):
            # Keras normalizes half precision in float32.
            if x.dtype != torch.float32 or axes not in ([-1], [x.ndim - 1]):
                return None
            return torch.nn.functional.layer_norm(
                x, x.shape[-1:], gamma, beta, layer.epsilon
            )

        return normalize
    if kind in (keras.layers.Embedding, ReversibleEmbedding) and not layer.mask_zero:
        table = layer.embeddings.value
        integers = (torch.int32, torch.int64)
        return lambda ids: table[ids] if ids.dtype in integers else None
    return None


def _torch_call(layer, args, kwargs):
    """`layer.call`'s result through the torch function it reaches, or None
    where not covered."""
    import torch

    if len(args) != 1 or not isinstance(args[0], torch.Tensor):
        return None  # e.g. NumPy input: `layer.call` converts it
    if set(kwargs) - {"reverse"} or (kwargs and type(layer) is not ReversibleEmbedding):
        return None
    function = _torch_function(layer, **kwargs)
    return None if function is None else function(args[0])


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
    generic = _generic(layer, reverse)
    if not (_torch() and _plain(layer)):
        return generic
    function = _torch_function(layer, reverse, copy_projection=True)
    if function is None:
        return generic
    import torch

    def prepared(x):
        outputs = function(x) if isinstance(x, torch.Tensor) else None
        return generic(x) if outputs is None else outputs

    return prepared


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
        import torch

        if isinstance(index, torch.Tensor) and index.device.type == "cpu":
            return int(index)
    return index


def softmax_float32(x, axis=-1):
    """Softmax computed in float32, returned in the dtype of `x`."""
    if _torch():
        import torch

        return torch.softmax(x, dim=axis, dtype=torch.float32).to(x.dtype)
    return ops.cast(ops.softmax(ops.cast(x, "float32"), axis=axis), x.dtype)


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
        first, size = host_index(start), update.shape[axis]
        if isinstance(first, int):
            x.narrow(axis, first, size).copy_(update)
        else:
            x.index_copy_(axis, _index(start, size, x.device), update)
        return x
    return ops.slice_update(x, _starts(x, axis, start), cast(update, x.dtype))


def slice_rows(x, axis, start, size):
    """`size` entries of `x` along `axis` from `start` (int or scalar tensor)."""
    if _torch():
        first = host_index(start)
        if isinstance(first, int):
            return x.narrow(axis, first, size)
        return x.index_select(axis, _index(start, size, x.device))
    sizes = list(ops.shape(x))
    sizes[axis] = size
    return ops.slice(x, _starts(x, axis, start), sizes)
