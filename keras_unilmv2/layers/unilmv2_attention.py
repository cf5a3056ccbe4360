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
            `-10000` (the reference value), so a fully masked row stays finite.
        cache: optional `[batch, 2, max_length, num_heads, key_dim]` keys and
            values of earlier slots. With a cache, the new keys/values are
            written at `cache_update_index` and the queries attend over the
            whole cache (`attention_bias` must then cover `max_length` keys).
        cache_update_index: int (or scalar tensor), the slot of the first new
            token in the cache.
        training: bool, dropout switch.

    Returns:
        The attention output `[batch, length, hidden_dim]`, and the updated
        cache when a cache was given.

    Example:
    >>> layer = UniLMv2Attention(num_heads=2, key_dim=4)
    >>> layer(keras.random.normal((1, 3, 8))).shape
    (1, 3, 8)
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
        training=None,
    ):
        query = self._split_heads(self.query_dense(hidden_states))
        key = self._split_heads(self.key_dense(hidden_states))
        value = self._split_heads(self.value_dense(hidden_states))
        if cache is not None:
            if cache_update_index is None:
                raise ValueError(
                    "`cache_update_index` is required when a `cache` is given."
                )
            start = [0, cache_update_index, 0, 0]
            key = ops.slice_update(cache[:, 0, ...], start, key)
            value = ops.slice_update(cache[:, 1, ...], start, value)
            cache = ops.stack((key, value), axis=1)
        if attention_bias is not None:
            attention_bias = ops.cast(attention_bias, self.compute_dtype)
        context = self._attend(query, key, value, attention_bias, training)
        shape = ops.shape(context)
        context = ops.reshape(
            context, (shape[0], shape[1], self.num_heads * self.key_dim)
        )
        output = self.output_dense(context)
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

    def compute_output_shape(self, input_shape):
        return input_shape

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
