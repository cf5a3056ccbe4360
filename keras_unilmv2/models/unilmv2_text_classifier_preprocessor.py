"""Preprocessing for UniLMv2 text classification (single texts and pairs)."""

import keras
from keras_hub.models import TextClassifierPreprocessor

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils.checks import check_choice
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.preprocessing import TRUNCATE_MODES
from keras_unilmv2.utils.preprocessing import SegmentTupleCallMixin
from keras_unilmv2.utils.preprocessing import check_segment_batches
from keras_unilmv2.utils.preprocessing import in_tf_graph
from keras_unilmv2.utils.preprocessing import standardize_segments
from keras_unilmv2.utils.preset_utils import PresetMixin


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
        check_choice("truncate", truncate, TRUNCATE_MODES)
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
