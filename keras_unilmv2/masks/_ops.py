"""The array functions the mask rules run on, and their shared helpers.

Every rule is written once, against the `keras.ops` API, and runs on one of
two implementations of it:

- `ops="tf"`: Keras' TensorFlow backend, whatever the current backend is
  (what Keras' own preprocessing layers do inside `tf.data`). Preprocessors
  use this; it works eagerly and inside `tf.data` / `tf.function` graphs.
- `ops="keras"`: `keras.ops` of the current backend, for use inside a model.
"""

import keras

from keras_unilmv2.utils.checks import check_int


class ArrayOps:
    """`keras.ops` names on one backend, plus helpers shared by the rules."""

    def __init__(self, modules):
        self._modules = modules

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        for module in self._modules:
            fn = getattr(module, name, None)
            if fn is not None:
                self.__dict__[name] = fn  # look it up once
                return fn
        raise AttributeError(f"No array function {name!r}.")

    def int32(self, x):
        return self.cast(self.convert_to_tensor(x), "int32")

    def bool(self, x):
        return self.cast(self.convert_to_tensor(x), "bool")

    def all_of(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = self.logical_and(out, x)
        return out

    def any_of(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = self.logical_or(out, x)
        return out

    def broadcast_batch(self, xs):
        """Broadcast the leading (batch) dims of tensors; keep the last.

        Done by adding zeros of shape `[..., 1]`, so it needs no static
        shapes (works on symbolic batch dimensions too).
        """
        zeros = None
        for x in xs:
            z = self.zeros_like(self.int32(x[..., :1]))
            zeros = z if zeros is None else zeros + z
        out = []
        for x in xs:
            if keras.backend.standardize_dtype(x.dtype) == "bool":
                out.append(self.logical_or(x, self.bool(zeros)))
            else:
                out.append(x + zeros)
        return out


_OPS_CACHE = {}


def array_ops(ops):
    """The `ArrayOps` of `ops="tf"` or `ops="keras"`."""
    if ops not in ("tf", "keras"):
        raise ValueError(
            "`ops` must be 'tf' (TensorFlow ops, for tf.data) or 'keras' "
            f"(keras.ops, for use inside a model). Received: ops={ops!r}"
        )
    if ops not in _OPS_CACHE:
        if ops == "keras":
            modules = (keras.ops,)
        else:
            from keras.src.utils.backend_utils import DynamicBackend

            tf_backend = DynamicBackend("tensorflow")
            modules = (tf_backend.numpy, tf_backend.core)
        _OPS_CACHE[ops] = ArrayOps(modules)
    return _OPS_CACHE[ops]


def check_length(name, value, minimum=1):
    check_int(
        name, value, minimum, hint=" (a Python int: a static block length)"
    )


def static_length(name, tensor):
    length = tensor.shape[-1]
    if length is None:
        raise ValueError(
            f"The last dimension of `{name}` must be static (fixed, padded "
            f"length). Received a tensor of shape {tensor.shape}."
        )
    return int(length)


def block_positions(xp, num_tokens, length, offset=None):
    """`offset + i` on the first `num_tokens` slots of a block, 0 on pads.

    Returns the positions and the real-slot flags, both `[..., length]`.
    """
    index = xp.arange(length, dtype="int32")
    real = xp.less(index, xp.expand_dims(num_tokens, -1))
    if offset is not None:
        index = index + xp.expand_dims(offset, -1)
    return xp.where(real, index, 0), real
