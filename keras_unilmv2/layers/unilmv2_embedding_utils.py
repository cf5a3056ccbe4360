"""Small weightless layers that resolve position ids and attention masks."""

import keras
from keras import ops

from keras_unilmv2.utils.checks import check_id_range

# The additive value of a masked attention score in the reference code. A
# finite constant (not -inf) keeps fully masked rows free of NaN and stays
# representable in float16 and bfloat16.
MASK_BIAS = -10000.0


def visibility_to_bias(visible, dtype):
    """`[batch, query, key]` visibility -> `[batch, 1, query, key]` bias.

    Visible keys get 0, hidden keys `MASK_BIAS`.
    """
    bias = ops.where(ops.cast(visible, "bool"), 0.0, MASK_BIAS)
    return ops.cast(bias[:, None, :, :], dtype)


def _static_dim(tensor, axis):
    dim = tensor.shape[axis]
    return dim if isinstance(dim, int) else None


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2PositionIds(keras.layers.Layer):
    """Returns the given position ids, or `[[0..length-1]]` when none are given.

    It also refuses sequences longer than the position table and, on
    tensors with values (eager calls, not compiled code), ids outside their
    tables: token ids outside `[0, vocabulary_size)`, segment ids outside
    `[0, num_segments)` and position ids outside `[0, max_sequence_length)`
    raise a `ValueError` instead of reading garbage rows (a JAX gather gives
    NaN or clamps where TensorFlow and torch fail).

    Args:
        max_sequence_length: int, the number of rows of the position table.
        vocabulary_size: optional int, checked against `token_ids`.
        num_segments: optional int, checked against `segment_ids`.

    Call arguments:
        token_ids: int tensor `[batch, length]`.
        position_ids: optional int tensor `[batch, length]`.
        segment_ids: optional int tensor, only checked.
    """

    def __init__(
        self, max_sequence_length, vocabulary_size=None, num_segments=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.max_sequence_length = max_sequence_length
        self.vocabulary_size = vocabulary_size
        self.num_segments = num_segments

    def call(self, token_ids, position_ids=None, segment_ids=None):
        if self.vocabulary_size is not None:
            check_id_range("token_ids", token_ids, self.vocabulary_size, "vocabulary_size")
        if self.num_segments is not None and segment_ids is not None:
            check_id_range("segment_ids", segment_ids, self.num_segments, "num_segments")
        if position_ids is not None:
            check_id_range(
                "position_ids", position_ids, self.max_sequence_length, "max_sequence_length"
            )
        length = _static_dim(token_ids, 1)
        if position_ids is None:
            if length is not None and length > self.max_sequence_length:
                raise ValueError(
                    f"The input sequence length ({length}) exceeds "
                    f"`max_sequence_length` ({self.max_sequence_length}). "
                    "Truncate the input (the preprocessors do this) or pass "
                    "explicit `position_ids`."
                )
            # `[1, length]`: the same row serves every example, so the
            # relative bias (and its gradient) is computed once, not per
            # example; it broadcasts over the batch downstream.
            positions = ops.arange(ops.shape(token_ids)[1], dtype="int32")
            return ops.expand_dims(positions, 0)
        if len(position_ids.shape) != 2 or (
            length is not None
            and _static_dim(position_ids, 1) not in (None, length)
        ):
            raise ValueError(
                "`position_ids` must have shape [batch, sequence_length] "
                f"matching `token_ids` {tuple(token_ids.shape)}. Received: "
                f"position_ids with shape {tuple(position_ids.shape)}"
            )
        return ops.cast(position_ids, "int32")

    def compute_output_spec(self, token_ids, position_ids=None, segment_ids=None):
        batch = token_ids.shape[0] if position_ids is not None else 1
        return keras.KerasTensor((batch, token_ids.shape[1]), dtype="int32")

    def get_config(self):
        config = super().get_config()
        config["max_sequence_length"] = self.max_sequence_length
        config["vocabulary_size"] = self.vocabulary_size
        config["num_segments"] = self.num_segments
        return config


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2AttentionBias(keras.layers.Layer):
    """Turns visibility masks (and the relative bias) into one additive bias.

    A key `j` is visible to query `i` of example `b` when
    `padding_mask[b, j]` is true and, if an `attention_mask` is given,
    `attention_mask[b, i, j]` is true. Hidden keys get `-10000` (the
    reference's value): they contribute nothing, and a query that sees no
    key at all still gets a finite softmax.

    Call arguments:
        padding_mask: `[batch, key_length]`, true for real tokens.
        attention_mask: optional `[batch, query_length, key_length]`.
        relative_bias: optional `[batch, num_heads, query_length, key_length]`.

    Returns:
        `[batch, num_heads or 1, query_length, key_length]` in the compute
        dtype.
    """

    def call(self, padding_mask, attention_mask=None, relative_bias=None):
        visible = ops.cast(padding_mask, "bool")[:, None, :]
        if attention_mask is not None:
            q_len = _static_dim(attention_mask, 1)
            k_len = _static_dim(attention_mask, 2) if len(attention_mask.shape) == 3 else None
            length = _static_dim(padding_mask, 1)
            if len(attention_mask.shape) != 3 or (
                length is not None and k_len not in (None, length)
            ):
                raise ValueError(
                    "`attention_mask` must have shape [batch, query_length, "
                    f"key_length] with key_length = {length} (the length of "
                    "`padding_mask`). Received: attention_mask with shape "
                    f"{tuple(attention_mask.shape)}"
                )
            if q_len is not None and length is not None and q_len != length:
                raise ValueError(
                    "`attention_mask` must be square over the sequence: "
                    f"expected [batch, {length}, {length}], received "
                    f"{tuple(attention_mask.shape)}"
                )
            visible = ops.logical_and(visible, ops.cast(attention_mask, "bool"))
        bias = visibility_to_bias(visible, self.compute_dtype)
        if relative_bias is not None:
            bias = bias + ops.cast(relative_bias, self.compute_dtype)
        return bias

    def compute_output_shape(
        self,
        padding_mask_shape,
        attention_mask_shape=None,
        relative_bias_shape=None,
    ):
        heads = 1 if relative_bias_shape is None else relative_bias_shape[1]
        length = padding_mask_shape[1]
        return (padding_mask_shape[0], heads, length, length)
