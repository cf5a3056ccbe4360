"""`keras_unilmv2.utils.seeding` and the shared argument checks."""

import numpy as np
import pytest
import tensorflow as tf

from keras_unilmv2.utils.checks import check_choice
from keras_unilmv2.utils.checks import check_rate
from keras_unilmv2.utils.seeding import check_seed
from keras_unilmv2.utils.seeding import example_seeds

STREAMS = ("a", "b", "c")


def _seeds(seed, ids):
    seeds = example_seeds(seed, tf.constant(ids, tf.int32), STREAMS)
    return {name: tuple(value.numpy().tolist()) for name, value in seeds.items()}


def test_example_seeds_are_keyed_by_seed_and_content():
    first = _seeds(7, [1, 2, 3])
    assert first == _seeds(7, [1, 2, 3])
    # Every stream has its own key.
    assert len(set(first.values())) == len(STREAMS)
    # Another seed or other content: other keys, on every stream.
    for other in (_seeds(8, [1, 2, 3]), _seeds(7, [1, 2, 4]), _seeds(7, [3, 2, 1])):
        assert not set(first.values()) & set(other.values())
    # No aliasing across seeds: stream k of seed s is not stream k-1 of s+1.
    assert first["b"] != _seeds(8, [1, 2, 3])["a"]


def test_example_seeds_without_seed_are_fresh():
    assert _seeds(None, [1, 2, 3]) != _seeds(None, [1, 2, 3])


def test_example_seeds_match_inside_tf_function():
    ids = tf.constant([[5, 6, 7], [8, 9, 10]], tf.int32)

    def draw(row):
        seeds = example_seeds(3, row, STREAMS)
        return tf.random.stateless_uniform([4], seeds["b"], alg="philox")

    eager = tf.map_fn(draw, ids, fn_output_signature=tf.float32).numpy()
    graph = tf.function(
        lambda x: tf.map_fn(draw, x, fn_output_signature=tf.float32)
    )(ids).numpy()
    np.testing.assert_array_equal(eager, graph)
    assert not np.array_equal(eager[0], eager[1])


def test_check_seed():
    assert check_seed(None) is None
    assert check_seed(np.int64(5)) == 5
    assert check_seed(-(2**63)) == -(2**63)
    with pytest.raises(ValueError, match="`seed` must fit in int64"):
        check_seed(2**63)
    for bad in (1.5, "1", True):
        with pytest.raises(ValueError, match="`seed` must be an integer"):
            check_seed(bad)


def test_check_rate():
    assert check_rate("r", 0) == 0.0 and isinstance(check_rate("r", 1), float)
    assert check_rate("r", np.float32(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"`r` must be a number in \[0, 1\]\. "):
        check_rate("r", 1.5)
    for bad in (True, "0.5", None):
        with pytest.raises(ValueError, match=r"Received: r="):
            check_rate("r", bad)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        check_rate("r", 0, open_low=True, open_high=True)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        check_rate("r", 1, open_low=True, open_high=True)
    assert check_rate("r", 0.25, 0, 0.5, open_low=True) == 0.25


def test_check_choice():
    assert check_choice("mode", "b", ("a", "b")) == "b"
    with pytest.raises(
        ValueError, match=r"`mode` must be one of \['a', 'b'\]\. Received: mode='c'"
    ):
        check_choice("mode", "c", ("a", "b"))
