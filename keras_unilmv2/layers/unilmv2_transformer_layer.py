"""The post-LayerNorm UniLMv2 (BERT-style) transformer layer."""

import keras

from keras_unilmv2.layers.unilmv2_attention import UniLMv2Attention
from keras_unilmv2.layers.unilmv2_attention import rows_output_shape
from keras_unilmv2.layers.unilmv2_attention import select_rows


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2TransformerLayer(keras.layers.Layer):
    """One post-LayerNorm transformer block, as in BERT and UniLMv2.

    `x = LayerNorm(x + Dropout(Attention(x, bias)))`, then
    `x = LayerNorm(x + Dropout(Dense(gelu(Dense(x)))))`, with the exact (erf)
    GELU.

    Args:
        num_heads: int, number of attention heads.
        intermediate_dim: int, width of the feed-forward block.
        dropout: float, dropout on the attention probabilities and on both
            residual branches.
        layer_norm_epsilon: float, epsilon of both LayerNorms.
        kernel_initializer: initializer for every dense kernel.

    Call arguments:
        hidden_states: `[batch, length, hidden_dim]`.
        attention_bias: additive attention bias, see `UniLMv2Attention`.
        cache, cache_update_index: the key/value cache of this layer, see
            `UniLMv2Attention`. With a cache, the call returns
            `(outputs, cache)`.
        context: read-only keys/values of earlier slots (the source during
            generation), see `UniLMv2Attention`.
        output_positions: optional int `[batch, rows]`: the block's output
            only at these slots, `[batch, rows, hidden_dim]` (queries,
            residuals and feed-forward for those rows; keys and values from
            every slot). Not with a cache or context.
        training: bool.

    Example:
    >>> layer = UniLMv2TransformerLayer(num_heads=2, intermediate_dim=16)
    >>> layer(keras.random.normal((1, 3, 8))).shape
    (1, 3, 8)
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.1,
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"The hidden size ({hidden_dim}) must be divisible by "
                f"`num_heads` ({self.num_heads})."
            )
        common = {"dtype": self.dtype_policy}
        dense = {"kernel_initializer": self.kernel_initializer, **common}
        self.self_attention = UniLMv2Attention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            name="self_attention",
            **common,
        )
        self.self_attention.build(input_shape)
        self.self_attention_dropout = keras.layers.Dropout(
            self.dropout, name="self_attention_dropout", **common
        )
        self.self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon,
            name="self_attention_layer_norm",
            **common,
        )
        self.self_attention_layer_norm.build(input_shape)
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation="gelu",  # Keras' gelu is the exact erf form.
            name="feedforward_intermediate_dense",
            **dense,
        )
        self.feedforward_intermediate_dense.build(input_shape)
        self.feedforward_output_dense = keras.layers.Dense(
            hidden_dim, name="feedforward_output_dense", **dense
        )
        self.feedforward_output_dense.build(
            tuple(input_shape[:-1]) + (self.intermediate_dim,)
        )
        self.feedforward_dropout = keras.layers.Dropout(
            self.dropout, name="feedforward_dropout", **common
        )
        self.feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon,
            name="feedforward_layer_norm",
            **common,
        )
        self.feedforward_layer_norm.build(input_shape)
        self.built = True

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
        attended = self.self_attention(
            hidden_states,
            attention_bias=attention_bias,
            cache=cache,
            cache_update_index=cache_update_index,
            context=context,
            training=training,
            output_positions=output_positions,
        )
        if cache is not None:
            attended, cache = attended
        if output_positions is not None:
            hidden_states = select_rows(hidden_states, output_positions)
        attended = self.self_attention_dropout(attended, training=training)
        x = self.self_attention_layer_norm(hidden_states + attended)
        ffn = self.feedforward_intermediate_dense(x)
        ffn = self.feedforward_output_dense(ffn)
        ffn = self.feedforward_dropout(ffn, training=training)
        outputs = self.feedforward_layer_norm(x + ffn)
        if cache is not None:
            return outputs, cache
        return outputs

    def compute_output_shape(self, hidden_states_shape, output_positions_shape=None):
        return rows_output_shape(hidden_states_shape, output_positions_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
