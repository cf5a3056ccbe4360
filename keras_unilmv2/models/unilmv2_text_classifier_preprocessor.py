"""Preprocessing for UniLMv2 text classification (single texts and pairs)."""

import numbers

import keras
import numpy as np
from keras_hub.models import TextClassifierPreprocessor

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.preset_utils import PresetMixin

# TensorFlow is only needed inside `tf.data` / `tf.function`; eager calls run
# in pure Python. `import keras_unilmv2` must work without it.
try:
    import tensorflow as tf

    if not hasattr(tf, "executing_eagerly"):  # a half-uninstalled package
        tf = None
except ImportError:
    tf = None

TRUNCATE_MODES = ("round_robin", "waterfall")


# --- Small helpers shared by the task preprocessors of this package ----------


def check_rate(name, value):
    """Returns `value` as a float in [0, 1], or raises a `ValueError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= value <= 1.0
    ):
        raise ValueError(
            f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}"
        )
    return float(value)


def check_truncate(truncate):
    if truncate not in TRUNCATE_MODES:
        raise ValueError(
            f"`truncate` must be one of {list(TRUNCATE_MODES)}. "
            f"Received: truncate={truncate!r}"
        )
    return truncate


def in_tf_graph():
    """True while tracing a `tf.function` or a `tf.data` map function."""
    return tf is not None and not tf.executing_eagerly()


def is_text(value):
    """Whether `value` is a string or a batch of strings (any container)."""
    if isinstance(value, (str, bytes)):
        return True
    if tf is not None and isinstance(value, (tf.Tensor, tf.RaggedTensor)):
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


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2TextClassifierPreprocessor(
    PresetMixin, SegmentTupleCallMixin, TextClassifierPreprocessor
):
    """UniLMv2 preprocessing for text classification and regression.

    For every example it:

    1. tokenizes each segment with the `UniLMv2Tokenizer`;
    2. packs one text as `[CLS] a [SEP]` or a pair as `[CLS] a [SEP] b [SEP]`
       (segment ids 0 on `[CLS] a [SEP]`, 1 on `b [SEP]`), truncated to
       `sequence_length` with keras-hub's `MultiSegmentPacker`. The default
       `"round_robin"` truncation removes tokens from the end of the longer
       segment first, so both sides of a pair keep tokens;
    3. pads with `[PAD]` and returns the `padding_mask`.

    It runs eagerly (pure Python) and inside `tf.data` (TensorFlow ops) with
    the same result, on every Keras backend. Labels (`y`) and
    `sample_weight` pass through unchanged.

    Args:
        tokenizer: a `keras_unilmv2.models.UniLMv2Tokenizer`.
        sequence_length: int, the packed length (at least 3). Defaults to 512.
        truncate: `"round_robin"` (default) or `"waterfall"` (cut the last
            segment first).

    Call arguments:
        x: one segment (a string, or a batch of strings as a list, array or
            tensor) or a pair `(first, second)` of such segments. A tuple
            always means segments: a batch of single texts must be a list
            or an array.
        y: optional labels, returned unchanged.
        sample_weight: optional, returned unchanged.

    Returns:
        `x` (a dict of `token_ids`, `segment_ids` and `padding_mask`, each
        `[batch, sequence_length]`, or `[sequence_length]` for one
        unbatched example), or `(x, y)` / `(x, y, sample_weight)` when labels
        are given.

    Examples:
    ```python
    preprocessor = keras_unilmv2.models.UniLMv2TextClassifierPreprocessor(
        tokenizer=keras_unilmv2.models.UniLMv2Tokenizer(vocabulary=vocab),
        sequence_length=32,
    )
    # Single texts.
    x = preprocessor(["the fox ran .", "the dog sat ."])
    # Pairs, with labels.
    x, y = preprocessor((["is the sun big ?"], ["the sun is big ."]), [1])
    # In tf.data.
    ds = tf.data.Dataset.from_tensor_slices(((first, second), labels))
    ds = ds.batch(8).map(preprocessor)
    # From a preset (a directory holding a backbone and a tokenizer).
    preprocessor = (
        keras_unilmv2.models.UniLMv2TextClassifierPreprocessor.from_preset(
            "/path/to/preset", sequence_length=128
        )
    )
    ```
    """

    backbone_cls = UniLMv2Backbone
    tokenizer_cls = UniLMv2Tokenizer

    def __init__(
        self,
        tokenizer,
        sequence_length=512,
        truncate="round_robin",
        **kwargs,
    ):
        sequence_length = check_int("sequence_length", sequence_length, 3)
        check_truncate(truncate)
        super().__init__(
            tokenizer=tokenizer,
            sequence_length=sequence_length,
            truncate=truncate,
            **kwargs,
        )

    def call(self, x, y=None, sample_weight=None):
        segments = standardize_segments(
            x, owner="UniLMv2TextClassifierPreprocessor"
        )
        if not in_tf_graph():
            check_segment_batches(
                segments, owner="UniLMv2TextClassifierPreprocessor"
            )
        return super().call(segments, y=y, sample_weight=sample_weight)
