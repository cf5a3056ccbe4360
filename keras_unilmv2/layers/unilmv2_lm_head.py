"""The pretrained masked-LM head, tied to the word embeddings."""

import keras
from keras import ops

from keras_unilmv2.layers.unilmv2_attention import select_rows


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2LMHead(keras.layers.Layer):
    """`Dense -> gelu -> LayerNorm -> x @ word_embeddings^T + bias`.

    The head of pre-training. The PMLM, masked-LM and seq2seq tasks all
    predict through it. It lives in `UniLMv2Backbone` (as `backbone.lm_head`)
    so that every preset, converted or pre-trained here, carries it; its
    output projection is the backbone's token embedding matrix (tied).

    Args:
        token_embedding: the backbone's `keras_hub.layers.ReversibleEmbedding`.
        layer_norm_epsilon: float.
        kernel_initializer: initializer for the transform kernel.

    Call arguments:
        hidden_states: `[batch, length, hidden_dim]`.
        positions: optional int `[batch, num_positions]`; when given, the
            head reads only those slots (the masked or pseudo tokens).

    Returns:
        Logits `[batch, num_positions or length, vocabulary_size]`.
    """

    def __init__(
        self,
        token_embedding,
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        self.transform_dense = keras.layers.Dense(
            hidden_dim,
            activation="gelu",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="transform_dense",
        )
        self.transform_dense.build(input_shape)
        self.transform_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="transform_layer_norm",
        )
        self.transform_layer_norm.build(input_shape)
        self.output_bias = self.add_weight(
            name="output_bias",
            shape=(self.token_embedding.input_dim,),
            initializer="zeros",
        )
        self.built = True

    def call(self, hidden_states, positions=None):
        if positions is not None:
            hidden_states = select_rows(hidden_states, positions)
        x = self.transform_layer_norm(self.transform_dense(hidden_states))
        logits = self.token_embedding(x, reverse=True)
        # Keras' Embedding layers do not autocast their table, so under a
        # mixed policy the tied projection comes back in float32 here;
        # return the compute dtype, as every other layer does (losses cast
        # to float32 themselves).
        logits = ops.cast(logits, self.compute_dtype)
        return logits + ops.cast(self.output_bias, self.compute_dtype)

    def compute_output_shape(self, hidden_states_shape, positions_shape=None):
        length = hidden_states_shape[1]
        if positions_shape is not None:
            length = positions_shape[1]
        vocabulary_size = self.token_embedding.input_dim
        return (hidden_states_shape[0], length, vocabulary_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
