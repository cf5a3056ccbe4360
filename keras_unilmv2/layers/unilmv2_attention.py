"""Multi-head self-attention with an additive bias and a key/value cache."""

import math

import keras
from keras import ops



def _fused_attention_supported(dtype):
    """Whether `keras.ops.dot_product_attention` runs for this dtype here.

    JAX on the CPU: `jax.nn.dot_product_attention` asks XLA:CPU for a float16
    x float16 -> float32 dot, which it does not implement ("The precision
    'F16_F16_F32' is not supported by dot_general on CPU"); the explicit
    path computes the same attention there.
    """
    if keras.config.backend() != "jax" or keras.backend.standardize_dtype(dtype) != "float16":
        return True
    import jax

    return jax.default_backend() != "cpu"


def rows_output_shape(hidden_states_shape, output_positions_shape=None):
    """`[batch, length or rows, hidden_dim]`: the output shape of a layer
    called with optional `output_positions` `[batch, rows]`."""
    if output_positions_shape is None:
        return hidden_states_shape
    return (hidden_states_shape[0], output_positions_shape[1], hidden_states_shape[2])


def select_rows(x, positions):
    """The rows of `x` `[batch, length, ...]` at int `positions` `[batch,
    rows]`: `[batch, rows, ...]`."""
    return ops.take_along_axis(x, ops.cast(positions, "int32")[:, :, None], axis=1)


def _select_queries(hidden_states, bias, positions):
    """The query rows at `positions` `[batch, rows]`, and their bias rows."""
    positions = ops.cast(positions, "int32")
    queries = select_rows(hidden_states, positions)
    if bias is not None and bias.shape[2] != 1:  # else shared by all queries
        batch, rows = ops.shape(positions)
        length = ops.shape(hidden_states)[1]
        _, heads, _, keys = ops.shape(bias)
        # (A query dimension of 1 only known at run time broadcasts here.)
        bias = ops.broadcast_to(bias, (batch, heads, length, keys))
        index = ops.broadcast_to(positions[:, None, :, None], (batch, heads, rows, keys))
        bias = ops.take_along_axis(bias, index, axis=2)
    return queries, bias


class _ContextGroups:
    """Query rows grouped by the context row they read.

    Rows `i * g ... i * g + g - 1` of a `[batch, heads, new, n]` tensor
    (`g = batch // context_batch`, e.g. the `g` beams of example `i`) become
    row `i` of `[context_batch, heads, g * new, n]` (`join`), and back
    (`split`): a context shared by `g` rows is read once. With one query row
    per context row (static shapes) both are the identity.
    """

    def __init__(self, batch, context_batch, heads, length):
        self.batch, self.context_batch = batch, context_batch
        self.heads, self.length = heads, length
        self.grouped = not (
            isinstance(batch, int)
            and isinstance(context_batch, int)
            and batch == context_batch
        )

    def join(self, x):  # [b * g, h, new, n] -> [b, h, g * new, n]
        if not self.grouped:
            return x
        n = x.shape[-1]
        x = ops.reshape(x, (self.context_batch, -1, self.heads, self.length, n))
        x = ops.transpose(x, (0, 2, 1, 3, 4))
        return ops.reshape(x, (self.context_batch, self.heads, -1, n))

    def split(self, x):  # [b, h, g * new, n] -> [b * g, h, new, n]
        if not self.grouped:
            return x
        n = x.shape[-1]
        x = ops.reshape(x, (self.context_batch, self.heads, -1, self.length, n))
        x = ops.transpose(x, (0, 2, 1, 3, 4))
        return ops.reshape(x, (self.batch, self.heads, self.length, n))


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2Attention(keras.layers.Layer):
    """UniLMv2 self-attention: `softmax(QK^T / sqrt(d) + bias) V`.

    The one attention layer serves bidirectional encoding, the pseudo-mask
    layouts of pre-training and seq2seq fine-tuning, and cached incremental
    decoding. Everything that decides who sees whom (padding, 3-D masks, the
    shared relative-position bias) arrives as one additive `attention_bias`
    computed once per forward pass by the backbone.

    The key projection has no bias: a key bias adds the same amount to every
    score of a query row, which the softmax cancels exactly (the released
    checkpoints store none either).

    Args:
        num_heads: int, number of attention heads.
        key_dim: int, size of each head.
        dropout: float, dropout on the attention probabilities.
        kernel_initializer: initializer for the projection kernels.

    Call arguments:
        hidden_states: `[batch, length, hidden_dim]`.
        attention_bias: optional additive bias broadcastable to
            `[batch, num_heads, length, key_length]`; masked keys carry
            `-10000` (the reference value), so a fully masked row stays
            finite. With a `context` and/or a `cache` the keys are
            `[context slots | cache slots]`.
        cache: optional `(keys, values)`: this layer's keys
            `[batch, num_heads, key_dim, max_length]` and values `[batch,
            num_heads, max_length, key_dim]` (zeros for a new cache). The
            new keys/values are written at `cache_update_index` (into a
            copy: the given cache is left as it was) and the queries attend
            over every cache slot; the call returns `(outputs, cache)`, as
            keras-hub's `CachedMultiHeadAttention`.
        cache_update_index: int (or scalar tensor), the slot of the first new
            token in the cache.
        context: optional read-only `(keys, values)` in the cache layout,
            with `context_batch` rows and `context_length` slots, of slots
            encoded earlier (the source during generation). The queries
            attend over the context and the cache under one softmax.
            `context_batch` may divide `batch`: query rows
            `i * g ... i * g + g - 1` (`g = batch // context_batch`, e.g.
            the `g` beams of example `i`) share context row `i`, which is
            therefore never copied per beam.
        training: bool, dropout switch. The cached path (a `cache` or a
            `context`) is for inference: it applies no attention dropout.
        output_positions: optional int `[batch, rows]`: compute the
            output only at these slots (their queries attend over every
            slot); the result is `[batch, rows, hidden_dim]`. Not with a
            cache or context.

    Returns:
        The attention output `[batch, length, hidden_dim]`, and the updated
        cache when a cache was given.

    Example:
    >>> layer = UniLMv2Attention(num_heads=2, key_dim=4)
    >>> layer(keras.random.normal((1, 3, 8))).shape
    (1, 3, 8)
    >>> cache = (keras.ops.zeros((1, 2, 4, 5)), keras.ops.zeros((1, 2, 5, 4)))
    >>> out, cache = layer(keras.random.normal((1, 2, 8)), cache=cache,
    ...     cache_update_index=0)  # slots 0-1 written, 2-4 still zeros
    >>> out.shape
    (1, 2, 8)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _dense(self, units, name, use_bias=True):
        return keras.layers.Dense(
            units,
            use_bias=use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        inner_dim = self.num_heads * self.key_dim
        self.query_dense = self._dense(inner_dim, "query")
        self.query_dense.build(input_shape)
        self.key_dense = self._dense(inner_dim, "key", use_bias=False)
        self.key_dense.build(input_shape)
        self.value_dense = self._dense(inner_dim, "value")
        self.value_dense.build(input_shape)
        self.output_dense = self._dense(hidden_dim, "attention_output")
        self.output_dense.build(tuple(input_shape[:-1]) + (inner_dim,))
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="attention_dropout"
        )
        self.built = True

    def _split_heads(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.num_heads, self.key_dim))

    def call(
        self,
        hidden_states,
        attention_bias=None,
        cache=None,
        cache_update_index=None,
        context=None,
        training=None,
        output_positions=None,
    ):
        if cache is not None or context is not None:
            if output_positions is not None:
                raise ValueError(
                    "`output_positions` cannot be combined with a `cache` or "
                    f"`context`. Received: output_positions={output_positions!r}"
                )
            return self._cached_call(
                hidden_states, attention_bias, cache, cache_update_index, context
            )
        queries = hidden_states
        if attention_bias is not None:
            attention_bias = ops.cast(attention_bias, self.compute_dtype)
        if output_positions is not None:
            queries, attention_bias = _select_queries(
                hidden_states, attention_bias, output_positions
            )
        query = self._split_heads(self.query_dense(queries))
        key = self._split_heads(self.key_dense(hidden_states))
        value = self._split_heads(self.value_dense(hidden_states))
        attended = self._attend(query, key, value, attention_bias, training)
        shape = ops.shape(attended)
        attended = ops.reshape(
            attended, (shape[0], shape[1], self.num_heads * self.key_dim)
        )
        return self.output_dense(attended)

    def _cached_call(self, hidden_states, bias, cache, cache_update_index, context):
        """Attention of new queries over `[context | cache]` (inference).

        Cached keys are stored `[batch, heads, dim, slots]` and values
        `[batch, heads, slots, dim]`: both products are then plain batched
        matrix products, and a step writes only its new slots. The context
        and the cache are not concatenated: their scores share one softmax
        and each set's values are weighted separately. Queries are grouped
        by context row, so a context shared by `g` beams is read once per
        example.
        """
        if cache is not None and cache_update_index is None:
            raise ValueError(
                "`cache_update_index` is required when a `cache` is given. "
                "Received: cache_update_index=None"
            )
        batch, length = ops.shape(hidden_states)[:2]
        heads, dim = self.num_heads, self.key_dim

        def project(dense, axes):
            x = ops.reshape(dense(hidden_states), (batch, length, heads, dim))
            return ops.transpose(x, axes)

        query = project(self.query_dense, (0, 2, 1, 3))  # [batch, heads, new, dim]
        key = project(self.key_dense, (0, 2, 3, 1))  # [batch, heads, dim, new]
        value = project(self.value_dense, (0, 2, 1, 3))  # [batch, heads, new, dim]
        if cache is not None:
            # In place under XLA: the cache is a loop-carried buffer.
            index = cache_update_index
            key = ops.slice_update(cache[0], (0, 0, 0, index), ops.cast(key, cache[0].dtype))
            value = ops.slice_update(
                cache[1], (0, 0, index, 0), ops.cast(value, cache[1].dtype)
            )
            cache = (key, value)
        query = query * (1.0 / math.sqrt(dim))  # a weak scalar: keeps the dtype
        scores = ops.matmul(query, key)
        if context is not None:
            context_key, context_value = context
            groups = _ContextGroups(batch, ops.shape(context_key)[0], heads, length)
            context_scores = groups.split(ops.matmul(groups.join(query), context_key))
            scores = ops.concatenate([context_scores, scores], axis=-1)
        if bias is not None:
            scores = scores + ops.cast(bias, scores.dtype)
        probs = ops.cast(ops.softmax(ops.cast(scores, "float32"), axis=-1), scores.dtype)
        if context is None:
            output = ops.matmul(probs, value)
        else:
            context_length = ops.shape(context_key)[3]
            context_probs = groups.join(probs[..., :context_length])
            output = groups.split(ops.matmul(context_probs, context_value))
            output = output + ops.matmul(probs[..., context_length:], value)
        output = ops.reshape(
            ops.transpose(output, (0, 2, 1, 3)), (batch, length, heads * dim)
        )
        output = self.output_dense(output)
        if cache is not None:
            return output, cache
        return output

    def _attend(self, query, key, value, bias, training):
        scale = 1.0 / math.sqrt(self.key_dim)
        fused_ok = _fused_attention_supported(query.dtype)
        if fused_ok and (self.dropout == 0.0 or not training):
            # Fused kernels (cuDNN / flash / SDPA) where the backend has them.
            return ops.dot_product_attention(
                query, key, value, bias=bias, scale=scale
            )
        # Attention dropout needs the probabilities: the explicit path.
        scores = ops.einsum("bqhd,bkhd->bhqk", query, key) * ops.cast(
            scale, query.dtype
        )
        if bias is not None:
            scores = scores + bias
        probs = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        probs = self.dropout_layer(ops.cast(probs, query.dtype), training=training)
        return ops.einsum("bhqk,bkhd->bqhd", probs, value)

    def compute_output_shape(self, hidden_states_shape, output_positions_shape=None):
        return rows_output_shape(hidden_states_shape, output_positions_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
