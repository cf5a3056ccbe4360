"""Seeds for the random draws of the preprocessors (one derivation for all).

A seeded preprocessor must give the same output for an example eagerly and
inside `tf.data`, whatever batch the example is in. So every example draws
from its own Philox streams, keyed by `(seed, fingerprint of its token ids)`
and split into named streams with `stateless_fold_in`: the draws of one
stream never depend on another stream, on the other examples of the batch,
or on the order of calls. `seed=None` keys every example with fresh random
bits instead (new noise on every call).

The functions are TensorFlow ops: the preprocessors run on TensorFlow ops
(eagerly and in `tf.data`) on every Keras backend.
"""

import tensorflow as tf

from keras_unilmv2.utils.checks import check_int

_INT64_MIN = -(2**63)


def check_seed(seed):
    """`None` or an integer that fits in int64, or a `ValueError`."""
    if seed is None:
        return None
    seed = check_int("seed", seed, _INT64_MIN)
    if seed >= 2**63:
        raise ValueError(f"`seed` must fit in int64. Received: seed={seed}")
    return seed


def base_seeds(seed, token_ids):
    """One Philox key per example: `(seed, fingerprint of its token ids)`.

    Args:
        seed: an int (checked with `check_seed`) or `None` (fresh random
            keys at every call).
        token_ids: an integer tensor `[batch, length]`.

    Returns:
        An int64 tensor `[batch, 2]`, keys for
        `tf.random.stateless_*(..., alg="philox")`. An example's key depends
        only on `seed` and its own ids, never on the batch it is in.
    """
    batch_size = tf.shape(token_ids)[0]
    if seed is None:
        return tf.random.uniform([batch_size, 2], 0, 2**62, tf.int64)
    key = tf.bitcast(tf.fingerprint(token_ids), tf.int64)  # [batch]
    seeds = tf.fill([batch_size], tf.constant(seed, tf.int64))
    return tf.stack([seeds, key], axis=1)


def example_seeds(seed, token_ids, streams):
    """One Philox seed per named stream for one example.

    Args:
        seed: an int (checked with `check_seed`) or `None`.
        token_ids: a 1-D integer tensor, the example's (packed) token ids;
            its fingerprint keys the example.
        streams: a sequence of stream names.

    Returns:
        A dict `{name: int64 tensor [2]}`, seeds for
        `tf.random.stateless_*(..., alg="philox")`.

    Example:
    ```python
    def draw(ids):
        seeds = example_seeds(7, ids, ("keep", "replace"))
        return tf.random.stateless_uniform([8], seeds["keep"], alg="philox")

    noise = tf.map_fn(draw, packed_ids, fn_output_signature=tf.float32)
    ```
    """

    base = base_seeds(seed, token_ids[tf.newaxis])[0]
    return {
        name: tf.random.experimental.stateless_fold_in(base, i, alg="philox")
        for i, name in enumerate(streams)
    }
