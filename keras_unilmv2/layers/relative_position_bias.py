"""The bucketed relative-position bias that all UniLMv2 layers share."""

import math

import keras
from keras import ops


def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
    """Map relative distances to bidirectional T5-style buckets.

    The distance is `key position - query position`. Half of the buckets
    (`num_buckets // 2`) serve keys at or before the query (distance <= 0),
    the other half keys after it (distance > 0). Within a half, the first
    `num_buckets // 4` buckets hold the exact distances `0, 1, 2, ...`; the
    rest cover the distances up to `max_distance` on a logarithmic scale, and
    every larger distance falls in the last bucket of its half. The logarithm
    is evaluated in float32 and truncated toward zero, as in the reference.

    Args:
        relative_position: int tensor of distances (any shape).
        num_buckets: int, total number of buckets (32 in UniLMv2).
        max_distance: int, the distance where the logarithmic range ends.

    Returns:
        An int32 tensor of bucket indices in `[0, num_buckets)`, the same
        shape as `relative_position`.

    Example:
    >>> relative_position_bucket(keras.ops.array([0, 1, -1, 8, 200]))
    # -> [0, 17, 1, 8, 31]
    """
    half = num_buckets // 2
    max_exact = half // 2
    relative_position = ops.cast(relative_position, "int32")
    offset = ops.where(relative_position > 0, half, 0)
    distance = ops.abs(relative_position)
    # `maximum(., 1)` keeps the (discarded) small-distance branch finite.
    scaled = ops.cast(ops.maximum(distance, 1), "float32") / max_exact
    log_ratio = ops.log(scaled) / math.log(max_distance / max_exact)
    large = max_exact + ops.cast(log_ratio * (half - max_exact), "int32")
    large = ops.minimum(large, half - 1)
    return offset + ops.where(distance < max_exact, distance, large)


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2RelativePositionBias(keras.layers.Layer):
    """Additive attention bias from bucketed relative positions.

    One table of shape `[num_buckets, num_heads]` serves every transformer
    layer of the model. Relative distances are taken from position ids, not
    from slot indices, so pseudo tokens that reuse a position see the same
    distances as the token they stand for.

    Args:
        num_heads: int, number of attention heads.
        num_buckets: int, number of relative-position buckets.
        max_distance: int, the distance where the logarithmic range ends.
        initializer: initializer for the bias table.

    Call arguments:
        query_positions: int tensor `[batch, query_length]`.
        key_positions: int tensor `[batch, key_length]`, defaults to
            `query_positions`.

    Returns:
        A float tensor `[batch, num_heads, query_length, key_length]`.

    Example:
    >>> layer = UniLMv2RelativePositionBias(num_heads=4)
    >>> layer(keras.ops.array([[0, 1, 2]])).shape
    (1, 4, 3, 3)
    """

    def __init__(
        self,
        num_heads,
        num_buckets=32,
        max_distance=128,
        initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_buckets < 4 or num_buckets % 4:
            raise ValueError(
                "`num_buckets` must be a positive multiple of 4. "
                f"Received: num_buckets={num_buckets}"
            )
        if max_distance <= num_buckets // 4:
            raise ValueError(
                "`max_distance` must exceed `num_buckets // 4` "
                f"({num_buckets // 4}). Received: max_distance={max_distance}"
            )
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.initializer = keras.initializers.get(initializer)

    def build(self, *args, **kwargs):
        self.bias_table = self.add_weight(
            name="bias_table",
            shape=(self.num_buckets, self.num_heads),
            initializer=self.initializer,
        )
        self.built = True

    def call(self, query_positions, key_positions=None):
        if key_positions is None:
            key_positions = query_positions
        # Every distance beyond `max_distance` falls in the last bucket of
        # its side, so the bias of the `2 * max_distance + 1` clipped
        # distances (bucketed once per call) is looked up per query-key
        # pair: two element-wise ops per pair instead of the bucketing's
        # dozen (eager torch and TensorFlow run each as a pass over the
        # `[batch, query, key]` grid). Same buckets, same table rows.
        limit = self.max_distance
        distances = ops.arange(-limit, limit + 1, dtype="int32")
        buckets = relative_position_bucket(distances, self.num_buckets, limit)
        table = ops.transpose(ops.cast(self.bias_table, self.compute_dtype))
        by_distance = ops.take(table, buckets, axis=1)  # [heads, 2 * limit + 1]
        relative = ops.cast(ops.expand_dims(key_positions, 1), "int32") - ops.cast(
            ops.expand_dims(query_positions, 2), "int32"
        )
        index = ops.clip(relative, -limit, limit) + limit
        # Gathered per head (`[heads, batch, query, key]`): on torch an
        # `index_select` whose gradient is about ten times cheaper on the
        # CPU than the embedding-style lookup of `[.., heads]` rows.
        bias = ops.take(by_distance, index, axis=1)
        return ops.transpose(bias, (1, 0, 2, 3))

    def compute_output_shape(
        self, query_positions_shape, key_positions_shape=None
    ):
        if key_positions_shape is None:
            key_positions_shape = query_positions_shape
        return (
            query_positions_shape[0],
            self.num_heads,
            query_positions_shape[1],
            key_positions_shape[1],
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "num_buckets": self.num_buckets,
                "max_distance": self.max_distance,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
