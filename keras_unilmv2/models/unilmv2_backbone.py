"""The UniLMv2 encoder: a post-LN BERT stack with a shared relative bias."""

import keras
from keras_hub.layers import ReversibleEmbedding
from keras_hub.models import Backbone
from keras_hub.src.utils.python_utils import classproperty

from keras_unilmv2.layers.relative_position_bias import (
    UniLMv2RelativePositionBias,
)
from keras_unilmv2.layers.unilmv2_embedding_utils import UniLMv2AttentionBias
from keras_unilmv2.layers.unilmv2_embedding_utils import UniLMv2PositionIds
from keras_unilmv2.layers.unilmv2_lm_head import UniLMv2LMHead
from keras_unilmv2.layers.unilmv2_transformer_layer import (
    UniLMv2TransformerLayer,
)
from keras_unilmv2.models.unilmv2_presets import backbone_presets
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.preset_utils import PresetMixin
from keras_unilmv2.utils.preset_utils import local_preset_dir

REQUIRED_INPUTS = ("token_ids", "segment_ids", "padding_mask")

# Weight-path regexes and their sharding ("model" = the model-parallel mesh
# axis, None = replicated); see `UniLMv2Backbone.get_layout_map`. Keras
# matches a whole path (`re.fullmatch`), hence the `.*` prefixes: a task
# may nest the backbone's weights under its own names. The embedding tables
# are split by hidden columns, never by vocabulary rows: JAX only shards a
# dimension that the mesh axis divides, and the released vocabularies
# (30522 = 2 * 3 * 5087 ids) do not divide by 4 or 8.
LAYOUT_RULES = (
    (r".*(token|position|segment)_embedding/embeddings", (None, "model")),
    (r".*embeddings_layer_norm/(gamma|beta)", (None,)),
    (r".*relative_position_bias/bias_table", (None, None)),
    (r".*self_attention/(query|key|value)/kernel", (None, "model")),
    (r".*self_attention/(query|value)/bias", ("model",)),
    (r".*self_attention/attention_output/kernel", ("model", None)),
    (r".*self_attention/attention_output/bias", (None,)),
    (r".*feedforward_intermediate_dense/kernel", (None, "model")),
    (r".*feedforward_intermediate_dense/bias", ("model",)),
    (r".*feedforward_output_dense/kernel", ("model", None)),
    (r".*feedforward_output_dense/bias", (None,)),
    (r".*(self_attention|feedforward)_layer_norm/(gamma|beta)", (None,)),
    (r".*pooled_dense/kernel", (None, None)),
    (r".*pooled_dense/bias", (None,)),
    (r".*lm_head/transform_dense/kernel", (None, None)),
    (r".*lm_head/transform_dense/bias", (None,)),
    (r".*lm_head/transform_layer_norm/(gamma|beta)", (None,)),
    (r".*lm_head/output_bias", (None,)),
)
OPTIONAL_INPUTS = ("position_ids", "attention_mask")


def _initializer():
    # The reference initialises every Linear and Embedding with N(0, 0.02).
    return keras.initializers.RandomNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2Backbone(PresetMixin, Backbone):
    """The UniLMv2 Transformer encoder (Bao et al., 2020).

    A BERT-style post-LayerNorm encoder (word + absolute position + segment
    embeddings, exact-GELU feed-forward blocks) with a T5-style bucketed
    relative-position bias that is computed once from the position ids and
    shared by all layers. The same stack serves bidirectional understanding
    tasks, pseudo-masked LM pre-training and sequence-to-sequence generation:
    what differs between them is only the layout the preprocessor builds
    (token ids, position ids, 3-D attention mask) and where the head reads.

    The backbone also carries the pretrained masked-LM head as
    `backbone.lm_head` (dense, LayerNorm, output tied to the word
    embeddings, bias). It is not part of the backbone's outputs; the PMLM,
    masked-LM and seq2seq tasks call it, and it is saved with the backbone so
    that every preset carries it.

    Args:
        vocabulary_size: int, size of the token vocabulary.
        num_layers: int, number of transformer layers.
        num_heads: int, number of attention heads.
        hidden_dim: int, hidden size (a multiple of `num_heads`).
        intermediate_dim: int, width of the feed-forward blocks.
        max_sequence_length: int, rows of the absolute position table.
        num_segments: int, number of segment (token type) ids.
        relative_position_buckets: int, buckets of the relative-position
            bias (32 in UniLMv2). 0 turns the bias off (unilm1.2).
        max_relative_position: int, the distance where the logarithmic
            bucket range ends (128).
        layer_norm_epsilon: float, epsilon of every LayerNorm (1e-12).
        dropout: float, dropout on embeddings, attention probabilities and
            residual branches.
        dtype: string or `keras.DTypePolicy`, the model's dtype policy.

    Inputs (a dict):
        token_ids: int `[batch, length]`.
        segment_ids: int `[batch, length]`.
        padding_mask: `[batch, length]`, true (1) for real tokens.
        position_ids: optional int `[batch, length]`, default `0..length-1`.
            Pseudo tokens reuse the position of the token they stand for.
        attention_mask: optional `[batch, length, length]`; element
            `[b, i, j]` is true if query `i` may attend to key `j`. It is
            combined with `padding_mask` (padded keys are never visible).

    Outputs (a dict):
        sequence_output: `[batch, length, hidden_dim]`.
        pooled_output: `[batch, hidden_dim]`, `tanh(dense(first token))`.

    Example:
    ```python
    import numpy as np
    import keras_unilmv2

    backbone = keras_unilmv2.UniLMv2Backbone(
        vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=128, max_sequence_length=128,
    )
    outputs = backbone({
        "token_ids": np.ones((2, 12), "int32"),
        "segment_ids": np.zeros((2, 12), "int32"),
        "padding_mask": np.ones((2, 12), "int32"),
    })
    outputs["sequence_output"].shape  # (2, 12, 64)

    # A converted checkpoint or a shipped preset.
    backbone = keras_unilmv2.UniLMv2Backbone.from_preset(
        "unilmv2_tiny_en_uncased"
    )
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        max_sequence_length=512,
        num_segments=2,
        relative_position_buckets=32,
        max_relative_position=128,
        layer_norm_epsilon=1e-12,
        dropout=0.1,
        dtype=None,
        **kwargs,
    ):
        (
            vocabulary_size,
            num_layers,
            num_heads,
            hidden_dim,
            intermediate_dim,
            max_sequence_length,
            num_segments,
        ) = (
            check_int(name, value, 1)
            for name, value in (
                ("vocabulary_size", vocabulary_size),
                ("num_layers", num_layers),
                ("num_heads", num_heads),
                ("hidden_dim", hidden_dim),
                ("intermediate_dim", intermediate_dim),
                ("max_sequence_length", max_sequence_length),
                ("num_segments", num_segments),
            )
        )
        relative_position_buckets = check_int(
            "relative_position_buckets", relative_position_buckets, 0
        )
        if hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. Received: "
                f"hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"`dropout` must be in [0, 1). Received: dropout={dropout}"
            )

        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            input_dim=vocabulary_size,
            output_dim=hidden_dim,
            embeddings_initializer=_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        # It also refuses out-of-range ids in eager calls (see its docs).
        self.position_ids_layer = UniLMv2PositionIds(
            max_sequence_length,
            vocabulary_size=vocabulary_size,
            num_segments=num_segments,
            dtype=dtype,
            name="position_ids_resolver",
        )
        self.position_embedding = keras.layers.Embedding(
            input_dim=max_sequence_length,
            output_dim=hidden_dim,
            embeddings_initializer=_initializer(),
            dtype=dtype,
            name="position_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            input_dim=num_segments,
            output_dim=hidden_dim,
            embeddings_initializer=_initializer(),
            dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embeddings_dropout"
        )
        self.relative_position_bias = None
        if relative_position_buckets:
            self.relative_position_bias = UniLMv2RelativePositionBias(
                num_heads=num_heads,
                num_buckets=relative_position_buckets,
                max_distance=max_relative_position,
                initializer=_initializer(),
                dtype=dtype,
                name="relative_position_bias",
            )
        self.attention_bias = UniLMv2AttentionBias(
            dtype=dtype, name="attention_bias"
        )
        self.transformer_layers = []
        for i in range(num_layers):
            self.transformer_layers.append(
                UniLMv2TransformerLayer(
                    num_heads=num_heads,
                    intermediate_dim=intermediate_dim,
                    dropout=dropout,
                    layer_norm_epsilon=layer_norm_epsilon,
                    kernel_initializer=_initializer(),
                    dtype=dtype,
                    name=f"transformer_layer_{i}",
                )
            )
        self.pooled_dense = keras.layers.Dense(
            hidden_dim,
            activation="tanh",
            kernel_initializer=_initializer(),
            dtype=dtype,
            name="pooled_dense",
        )

        # === Functional Model ===
        token_id_input = keras.Input((None,), dtype="int32", name="token_ids")
        segment_id_input = keras.Input((None,), dtype="int32", name="segment_ids")
        padding_mask_input = keras.Input(
            (None,), dtype="int32", name="padding_mask"
        )
        position_id_input = keras.Input(
            (None,), dtype="int32", name="position_ids", optional=True
        )
        attention_mask_input = keras.Input(
            (None, None), dtype="int32", name="attention_mask", optional=True
        )
        sequence_output = self._encode(
            token_id_input,
            segment_id_input,
            padding_mask_input,
            position_id_input,
            attention_mask_input,
        )
        pooled_output = self.pooled_dense(sequence_output[:, 0, :])
        super().__init__(
            inputs={
                "token_ids": token_id_input,
                "segment_ids": segment_id_input,
                "padding_mask": padding_mask_input,
                "position_ids": position_id_input,
                "attention_mask": attention_mask_input,
            },
            outputs={
                "sequence_output": sequence_output,
                "pooled_output": pooled_output,
            },
            dtype=dtype,
            **kwargs,
        )

        # The pretrained LM head: saved with the backbone, used by tasks.
        self.lm_head = UniLMv2LMHead(
            token_embedding=self.token_embedding,
            layer_norm_epsilon=layer_norm_epsilon,
            kernel_initializer=_initializer(),
            dtype=dtype,
            name="lm_head",
        )
        self.lm_head.build((None, None, hidden_dim))

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.relative_position_buckets = relative_position_buckets
        self.max_relative_position = max_relative_position
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout

    def _encode(
        self,
        token_ids,
        segment_ids,
        padding_mask,
        position_ids=None,
        attention_mask=None,
        output_positions=None,
        training=None,
    ):
        position_ids = self.position_ids_layer(
            token_ids, position_ids, segment_ids=segment_ids
        )
        x = self.embeddings_add(
            (
                self.token_embedding(token_ids),
                self.position_embedding(position_ids),
                self.segment_embedding(segment_ids),
            )
        )
        x = self.embeddings_layer_norm(x)
        x = self.embeddings_dropout(x, training=training)
        relative_bias = None
        if self.relative_position_bias is not None:
            relative_bias = self.relative_position_bias(position_ids)
        bias = self.attention_bias(padding_mask, attention_mask, relative_bias)
        last = len(self.transformer_layers) - 1
        for i, layer in enumerate(self.transformer_layers):
            rows = output_positions if i == last else None
            x = layer(x, attention_bias=bias, output_positions=rows, training=training)
        return x

    def encode(self, inputs, output_positions=None, training=None):
        """The sequence output, optionally computed only at some slots.

        `backbone.encode(inputs)` is `backbone(inputs)["sequence_output"]`.
        With `output_positions` (int `[batch, rows]`) it returns the rows at
        those slots, `[batch, rows, hidden_dim]`, and the last layer computes
        queries, attention outputs and the feed-forward block only for them
        (its keys and values still come from every slot): a task whose heads
        read few slots skips the rest of the last layer's work. `UniLMv2PMLM`
        scores about 2K of its N + 2K slots this way. The result equals the
        full pass's rows (dropout aside: fewer rows draw fewer masks).

        Call it on symbolic inputs to build a functional model, or on
        tensors.

        Args:
            inputs: dict with the backbone's inputs: `"token_ids"`,
                `"segment_ids"`, `"padding_mask"` and, optionally,
                `"position_ids"` and `"attention_mask"`.
            output_positions: optional int `[batch, rows]`, slots to return.
            training: bool, dropout switch (when called on tensors).

        Returns:
            `[batch, length or rows, hidden_dim]`.

        Example:
        >>> backbone = UniLMv2Backbone(vocabulary_size=50, num_layers=2,
        ...     num_heads=2, hidden_dim=8, intermediate_dim=16)
        >>> inputs = {"token_ids": np.ones((1, 6), "int32"),
        ...     "segment_ids": np.zeros((1, 6), "int32"),
        ...     "padding_mask": np.ones((1, 6), "int32")}
        >>> backbone.encode(inputs, output_positions=np.array([[1, 4]])).shape
        (1, 2, 8)
        """
        inputs = self._standardize_inputs(inputs)
        return self._encode(
            inputs["token_ids"],
            inputs["segment_ids"],
            inputs["padding_mask"],
            inputs["position_ids"],
            inputs["attention_mask"],
            output_positions=output_positions,
            training=training,
        )

    @classproperty
    def presets(cls):
        """The registered UniLMv2 presets (name -> metadata and source)."""
        return dict(backbone_presets)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Builds a backbone from a preset name or directory.

        Args:
            preset: a registered name (`unilmv2_base_en_uncased`, ...;
                see `UniLMv2Backbone.presets`), a preset directory, or a
                `hf://`/`kaggle://` handle.
            load_weights: if False, only the architecture is built. For a
                released checkpoint not converted on this machine that needs
                no file at all.
            **kwargs: config overrides, e.g. `dtype="bfloat16"` or
                `layer_norm_epsilon=1e-5`.

        Example:
        ```python
        backbone = UniLMv2Backbone.from_preset(
            "unilmv2_base_en_uncased", load_weights=False
        )
        backbone = UniLMv2Backbone.from_preset("/path/to/converted/preset")
        ```
        """
        if (
            not load_weights
            and isinstance(preset, str)
            and preset in backbone_presets
            and local_preset_dir(preset) is None
        ):
            config = dict(backbone_presets[preset]["config"])
            config.update(kwargs)
            return cls(**config)
        return super().from_preset(preset, load_weights=load_weights, **kwargs)

    @staticmethod
    def get_layout_map(
        device_mesh,
        model_parallel_dim_name="model",
        data_parallel_dim_name="batch",
    ):
        """A `keras.distribution.LayoutMap` for model parallelism.

        Megatron-style sharding over the `model_parallel_dim_name` axis of
        `device_mesh`: the query/key/value and feed-forward input kernels
        by output columns, the attention-output and feed-forward output
        kernels by input rows. The word, position and segment tables are
        split by hidden columns (the tied LM output reads the word table
        the same way), not by vocabulary rows as in Megatron: JAX shards
        only dimensions the mesh axis divides, and vocabularies such as
        BERT's 30522 ids do not divide by 4 or 8, while `hidden_dim`
        usually does. The relative-position table, every LayerNorm, the
        pooler, the LM-head transform and its output bias are replicated,
        by explicit entries, so that every weight of the model matches
        exactly one rule (see `tests/distribution/test_layout_map.py`).
        Every sharded dimension (`hidden_dim`, `intermediate_dim`) must be
        divisible by the size of the model axis.

        Args:
            device_mesh: a `keras.distribution.DeviceMesh`.
            model_parallel_dim_name: the mesh axis that shards weights.
            data_parallel_dim_name: the mesh axis of the batch (unused for
                weights; kept for keras-hub's signature).

        Example:
        ```python
        mesh = keras.distribution.DeviceMesh(
            (2, 4), ["batch", "model"], keras.distribution.list_devices()
        )
        layout_map = UniLMv2Backbone.get_layout_map(mesh)
        keras.distribution.set_distribution(
            keras.distribution.ModelParallel(layout_map=layout_map)
        )
        ```
        """
        if model_parallel_dim_name not in device_mesh.axis_names:
            raise ValueError(
                f"`model_parallel_dim_name` {model_parallel_dim_name!r} is not an "
                f"axis of the device mesh {device_mesh.axis_names}."
            )
        m = model_parallel_dim_name
        layout_map = keras.distribution.LayoutMap(device_mesh)
        for pattern, layout in LAYOUT_RULES:
            layout_map[pattern] = tuple(m if axis == "model" else None for axis in layout)
        return layout_map

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(self._standardize_inputs(inputs), *args, **kwargs)

    def compute_output_spec(self, inputs, training=None, mask=None):
        # Keras' functional spec check cannot take `None` for the optional
        # inputs, so the symbolic output is stated directly.
        token_ids = inputs["token_ids"]
        batch, length = token_ids.shape[0], token_ids.shape[1]
        dtype = self.compute_dtype
        return {
            "sequence_output": keras.KerasTensor(
                (batch, length, self.hidden_dim), dtype=dtype
            ),
            "pooled_output": keras.KerasTensor((batch, self.hidden_dim), dtype=dtype),
        }

    @staticmethod
    def _standardize_inputs(inputs):
        """Checks the input keys and fills the optional ones with `None`."""
        if not isinstance(inputs, dict):
            raise TypeError(
                "`UniLMv2Backbone` takes a dict of tensors with keys "
                f"{list(REQUIRED_INPUTS)} and optionally "
                f"{list(OPTIONAL_INPUTS)}. Received: {type(inputs).__name__}"
            )
        missing = [key for key in REQUIRED_INPUTS if key not in inputs]
        extra = [
            key for key in inputs if key not in REQUIRED_INPUTS + OPTIONAL_INPUTS
        ]
        if missing or extra:
            raise ValueError(
                "`UniLMv2Backbone` inputs must have the keys "
                f"{list(REQUIRED_INPUTS)} and optionally "
                f"{list(OPTIONAL_INPUTS)}. Missing: {missing}; unexpected: "
                f"{extra}. Received keys: {sorted(inputs)}"
            )
        inputs = dict(inputs)
        for key in OPTIONAL_INPUTS:
            inputs.setdefault(key, None)
        return inputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "max_sequence_length": self.max_sequence_length,
                "num_segments": self.num_segments,
                "relative_position_buckets": self.relative_position_buckets,
                "max_relative_position": self.max_relative_position,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "dropout": self.dropout,
            }
        )
        return config
