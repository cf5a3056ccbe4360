"""Helpers shared by the task preprocessors: text inputs and segments."""

import keras
import numpy as np
import tensorflow as tf

from keras_unilmv2.utils.text import map_strings

TRUNCATE_MODES = ("round_robin", "waterfall")


def in_tf_graph():
    """True while tracing a `tf.function` or a `tf.data` map function."""
    return not tf.executing_eagerly()


def is_text(value):
    """Whether `value` is a string or a batch of strings (any container)."""
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, (tf.Tensor, tf.RaggedTensor)):
        return value.dtype == tf.string
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return True
        return value.dtype.kind == "O" and value.size > 0 and all(
            isinstance(item, (str, bytes)) for item in value.flat
        )
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(is_text(item) for item in value)
    return False


def as_text_list(value):
    """An eager string or rank-1 batch of strings -> `(list of str, batched)`.

    Returns None for anything else; the caller raises its own error.
    """
    texts = map_strings(value, lambda text: text)
    if isinstance(texts, str):
        return [texts], False
    if isinstance(texts, list) and all(isinstance(t, str) for t in texts):
        return texts, True
    return None


def standardize_segments(x, max_segments=2, owner="The preprocessor"):
    """`x` -> a tuple of 1..`max_segments` text segments, or a clear error.

    A tuple is a group of segments (keras-hub convention); anything else is
    one segment (a string or a batch of strings).
    """
    if isinstance(x, dict):
        raise ValueError(
            f"{owner} takes raw text, but received a dict with keys "
            f"{sorted(x)}. Already preprocessed inputs go straight to the "
            "model: build the task with `preprocessor=None`."
        )
    segments = x if isinstance(x, tuple) else (x,)
    if not 1 <= len(segments) <= max_segments:
        expected = (
            "one text segment"
            if max_segments == 1
            else "one text segment or a pair `(first, second)`"
        )
        raise ValueError(
            f"{owner} takes {expected} per example. Received a tuple of "
            f"{len(segments)} segments. (A batch of texts is a list or an "
            "array, not a tuple.)"
        )
    return tuple(segments)


def _eager_batch_size(segment):
    """The number of texts in an eager batch; None for one text or unknown."""
    if isinstance(segment, (str, bytes)):
        return None
    if isinstance(segment, (list, tuple)):
        return len(segment)
    shape = getattr(segment, "shape", None)
    if shape is None:
        return None
    shape = tuple(shape)
    if not shape:
        return None
    return shape[0] if isinstance(shape[0], int) else None


def check_segment_batches(segments, owner="The preprocessor"):
    """Eager batches of text: not empty, and a pair's sides the same size.

    Raises a `ValueError` naming the segment and the sizes. Scalars and
    symbolic tensors (inside `tf.data`) are left to the packer.
    """
    sizes = [_eager_batch_size(segment) for segment in segments]
    for index, size in enumerate(sizes):
        if size == 0:
            raise ValueError(
                f"{owner} received an empty batch of texts (segment "
                f"{index}); it needs at least one string. Received: "
                f"{segments[index]!r}"
            )
    if len(segments) > 1 and None not in sizes and len(set(sizes)) > 1:
        raise ValueError(
            f"{owner} received a pair `(first, second)` whose sides hold "
            f"different numbers of texts: {sizes}. Each example needs one "
            "first and one second text."
        )
    if len(segments) > 1 and len({size is None for size in sizes}) > 1:
        raise ValueError(
            f"{owner} received a pair mixing one text and a batch of texts "
            f"(sizes {sizes}, None meaning a single string). Pass both "
            "sides as strings or both as batches of the same size."
        )
    return segments


class SegmentTupleCallMixin:
    """Keeps a tuple of text segments together when the layer is called.

    keras-hub preprocessing layers read a single tuple argument of length 2
    or 3 as `(x, y)` or `(x, y, sample_weight)`, so `preprocessor(("a", "b"))`
    would treat the second text as a label. A tuple made only of text is a
    group of segments, never labels: such a call is passed on unchanged.
    """

    def __call__(self, *args, **kwargs):
        if (
            len(args) == 1
            and type(args[0]) is tuple
            and "y" not in kwargs
            and "sample_weight" not in kwargs
            and all(is_text(segment) for segment in args[0])
        ):
            return keras.layers.Layer.__call__(self, *args, **kwargs)
        return super().__call__(*args, **kwargs)
