"""Preprocessing for the UniLMv2 masked LM (BERT-style masking, fill-in)."""

import keras
import numpy as np
import tensorflow as tf
from keras_hub.models import MaskedLMPreprocessor
from keras_hub.src.utils.tensor_utils import convert_preprocessing_outputs_python
from keras_hub.src.utils.tensor_utils import convert_to_numpy
from keras_hub.src.utils.tensor_utils import preprocessing_function

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils.checks import check_choice
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.checks import check_rate
from keras_unilmv2.utils.preprocessing import TRUNCATE_MODES
from keras_unilmv2.utils.preprocessing import SegmentTupleCallMixin
from keras_unilmv2.utils.preprocessing import as_text_list
from keras_unilmv2.utils.preprocessing import standardize_segments
from keras_unilmv2.utils.preset_utils import PresetMixin

_OWNER = "UniLMv2MaskedLMPreprocessor"


def _python_texts(segment):
    """A segment as `(list of str, batched)`, or a clear error."""
    texts = as_text_list(segment)
    if texts is None:
        raise ValueError(
            f"{_OWNER} takes a string or a rank-1 batch of strings per "
            f"segment. Received: {segment!r}"
        )
    return texts


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2MaskedLMPreprocessor(
    PresetMixin, SegmentTupleCallMixin, MaskedLMPreprocessor
):
    """UniLMv2 preprocessing for masked language modeling.

    Training (`call`): tokenizes one text or a pair, packs
    `[CLS] a [SEP] (b [SEP])` like `UniLMv2TextClassifierPreprocessor`, then
    masks like BERT with keras-hub's `MaskedLMMaskGenerator`: each
    non-special token is selected with probability `mask_selection_rate`
    (at most `mask_selection_length` per example); a selected token becomes
    `[MASK]` with probability `mask_token_rate`, a random token with
    probability `random_token_rate`, else stays. The labels are the
    original ids of the selected tokens.

    Fill-in (`fill_mask_preprocess`): no random masking. The `[MASK]`
    tokens written in the text are kept as the mask id and
    `mask_positions` lists their slots, in order. The literal mask token
    (`tokenizer.mask_token`, `"[MASK]"`) is recognised in every string, also
    when the tokenizer was built with `special_tokens_in_strings=False`:
    the text is split at it before tokenization, so `"the [MASK] sat"`
    becomes `the [MASK] sat` and never `the [ mask ] sat`. `call` treats a
    written `[MASK]` the same way (it is never selected for masking).

    Both run eagerly (pure Python) and inside `tf.data` (TensorFlow ops), on
    every Keras backend.

    Args:
        tokenizer: a `keras_unilmv2.models.UniLMv2Tokenizer`.
        sequence_length: int, the packed length (at least 3). Defaults to 512.
        truncate: `"round_robin"` (default) or `"waterfall"`.
        mask_selection_rate: float in [0, 1], the probability that a token
            is selected for prediction. Defaults to 0.15.
        mask_selection_length: int >= 1, the number of prediction slots K
            per example (`mask_positions`, labels and weights are padded or
            cut to K). Defaults to 96.
        mask_token_rate: float, the probability that a selected token
            becomes `[MASK]`. Defaults to 0.8.
        random_token_rate: float, the probability that a selected token
            becomes a random token (`mask_token_rate + random_token_rate`
            must be at most 1). Defaults to 0.1.

    Call arguments:
        x: one segment (a string or a batch of strings) or a pair
            `(first, second)`.
        y, sample_weight: must be `None`: the labels are made here.

    Returns:
        `(x, y, sample_weight)`: `x` is a dict of `token_ids`, `segment_ids`,
        `padding_mask` (`[batch, sequence_length]`) and `mask_positions`
        (`[batch, K]`); `y` holds the original ids at `mask_positions`
        (`[batch, K]`) and `sample_weight` is 1 for real predictions and 0
        for padding slots.

    Examples:
    ```python
    preprocessor = keras_unilmv2.models.UniLMv2MaskedLMPreprocessor(
        tokenizer, sequence_length=32, mask_selection_length=5
    )
    # Random BERT-style masking, for training.
    x, y, sample_weight = preprocessor(["the quick fox ran over the dog ."])
    # The masks written in the text, for inference.
    x = preprocessor.fill_mask_preprocess(["the [MASK] sat on the [MASK] ."])
    x["mask_positions"]  # [[2, 6, 0, 0, 0]]
    # In tf.data.
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(8).map(preprocessor)
    ```
    """

    backbone_cls = UniLMv2Backbone
    tokenizer_cls = UniLMv2Tokenizer

    def __init__(
        self,
        tokenizer,
        sequence_length=512,
        truncate="round_robin",
        mask_selection_rate=0.15,
        mask_selection_length=96,
        mask_token_rate=0.8,
        random_token_rate=0.1,
        **kwargs,
    ):
        sequence_length = check_int("sequence_length", sequence_length, 3)
        check_choice("truncate", truncate, TRUNCATE_MODES)
        mask_selection_rate = check_rate(
            "mask_selection_rate", mask_selection_rate
        )
        mask_selection_length = check_int(
            "mask_selection_length", mask_selection_length, 1
        )
        mask_token_rate = check_rate("mask_token_rate", mask_token_rate)
        random_token_rate = check_rate("random_token_rate", random_token_rate)
        if mask_token_rate + random_token_rate > 1.0 + 1e-9:
            raise ValueError(
                "`mask_token_rate + random_token_rate` must be at most 1. "
                f"Received: mask_token_rate={mask_token_rate}, "
                f"random_token_rate={random_token_rate}"
            )
        super().__init__(
            tokenizer=tokenizer,
            sequence_length=sequence_length,
            truncate=truncate,
            mask_selection_rate=mask_selection_rate,
            mask_selection_length=mask_selection_length,
            mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate,
            **kwargs,
        )

    # --- Tokenization that keeps written [MASK] tokens ----------------------

    def _mask_token(self):
        return self.tokenizer.id_to_token(self.tokenizer.mask_token_id)

    def _tokenize_python(self, segment):
        texts, batched = _python_texts(segment)
        mask_token = self._mask_token()
        mask_id = int(self.tokenizer.mask_token_id)
        pieces = [text.split(mask_token) for text in texts]
        flat = [piece for parts in pieces for piece in parts]
        tokenized = self.tokenizer(flat) if flat else []
        tokenized = [
            [int(i) for i in convert_to_numpy(ids).tolist()]
            if not isinstance(ids, list)
            else [int(i) for i in ids]
            for ids in tokenized
        ]
        outputs, index = [], 0
        for parts in pieces:
            ids = []
            for k in range(len(parts)):
                if k:
                    ids.append(mask_id)
                ids.extend(tokenized[index])
                index += 1
            outputs.append(ids)
        return outputs if batched else outputs[0]

    def _tokenize_tf(self, segment):

        segment = tf.convert_to_tensor(segment)
        unbatched = segment.shape.rank == 0
        if unbatched:
            segment = segment[tf.newaxis]
        pieces = tf.strings.split(segment, sep=self._mask_token())  # [B, P]
        tokens = self.tokenizer(pieces.flat_values)  # [N, T] ragged
        if not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.RaggedTensor.from_tensor(tokens)
        tokens = tf.cast(tokens, tf.int32)
        # A [MASK] follows every piece but the last one of its text.
        row_ids = pieces.value_rowids()
        index_in_row = tf.range(tf.shape(row_ids, out_type=tf.int64)[0])
        index_in_row -= tf.gather(pieces.row_starts(), row_ids)
        is_last = index_in_row == tf.gather(pieces.row_lengths(), row_ids) - 1
        num_masks = tf.where(is_last, 0, 1)
        masks = tf.RaggedTensor.from_row_lengths(
            tf.fill(
                [tf.reduce_sum(num_masks)],
                tf.constant(int(self.tokenizer.mask_token_id), tf.int32),
            ),
            tf.cast(num_masks, tf.int64),
        )
        tokens = tf.concat([tokens, masks], axis=1)
        tokens = pieces.with_flat_values(tokens).merge_dims(1, 2)
        return tokens[0] if unbatched else tokens

    def _tokenize(self, segment):
        if self._use_tf_workflow():
            return self._tokenize_tf(segment)
        return self._tokenize_python(segment)

    # --- Training ---------------------------------------------------------

    def _check_no_labels(self, y, sample_weight):
        if y is not None or sample_weight is not None:
            raise ValueError(
                f"{_OWNER} makes the labels and weights itself by masking the "
                "text: `y` and `sample_weight` must be None. Received: "
                f"y={'None' if y is None else type(y).__name__}, "
                f"sample_weight="
                f"{'None' if sample_weight is None else type(sample_weight).__name__}"
            )

    def call(self, x, y=None, sample_weight=None):
        self._check_no_labels(y, sample_weight)
        segments = standardize_segments(x, owner=_OWNER)
        if self._use_tf_workflow():
            return self._call_tf(segments)
        return self._call_python(segments)

    @preprocessing_function
    def _call_tf(self, x, y=None, sample_weight=None):

        token_ids, segment_ids = self.packer(
            tuple(self._tokenize_tf(segment) for segment in x)
        )
        masked = self.masker(token_ids)
        inputs = {
            "token_ids": masked["token_ids"],
            "segment_ids": segment_ids,
            "padding_mask": token_ids != self.tokenizer.pad_token_id,
            "mask_positions": tf.cast(masked["mask_positions"], tf.int32),
        }
        return inputs, masked["mask_ids"], masked["mask_weights"]

    def _call_python(self, x, y=None, sample_weight=None):
        token_ids, segment_ids = self.packer(
            tuple(self._tokenize_python(segment) for segment in x)
        )
        masked = self.masker(token_ids)
        inputs = {
            "token_ids": masked["token_ids"],
            "segment_ids": segment_ids,
            "padding_mask": token_ids != self.tokenizer.pad_token_id,
            "mask_positions": masked["mask_positions"],
        }
        return inputs, masked["mask_ids"], masked["mask_weights"]

    # --- Fill-in ------------------------------------------------------------

    def fill_mask_preprocess(self, x):
        """Packs text with written `[MASK]` tokens; no random masking.

        Args:
            x: one segment (a string or a batch of strings) or a pair
                `(first, second)`, with `"[MASK]"` written where tokens
                should be predicted.

        Returns:
            A dict of `token_ids`, `segment_ids`, `padding_mask` and
            `mask_positions`. `mask_positions` (`[batch, K]`,
            K = `mask_selection_length`) lists the slots of the `[MASK]`
            tokens in order, padded with 0.

        Raises:
            ValueError (eager calls): if a text has more `[MASK]` tokens
            than `mask_selection_length`, or a `[MASK]` is cut off by
            `sequence_length`. Inside `tf.data` the extra masks are dropped.
        """
        if not self.built:
            self.build(None)
        segments = standardize_segments(x, owner=_OWNER)
        if self._use_tf_workflow():
            return self._fill_mask_tf(segments)
        return self._fill_mask_python(segments)

    @preprocessing_function
    def _fill_mask_tf(self, x):

        token_ids, segment_ids = self.packer(
            tuple(self._tokenize_tf(segment) for segment in x)
        )
        unbatched = token_ids.shape.rank == 1
        if unbatched:
            token_ids = token_ids[tf.newaxis]
            segment_ids = segment_ids[tf.newaxis]
        is_mask = token_ids == self.tokenizer.mask_token_id
        slots = tf.broadcast_to(
            tf.range(tf.shape(token_ids)[1], dtype=tf.int32),
            tf.shape(token_ids),
        )
        positions = tf.ragged.boolean_mask(slots, is_mask)
        k = self.mask_selection_length
        positions = positions[:, :k].to_tensor(
            default_value=0, shape=[None, k]
        )
        inputs = {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": token_ids != self.tokenizer.pad_token_id,
            "mask_positions": positions,
        }
        if unbatched:
            inputs = {key: value[0] for key, value in inputs.items()}
        return inputs

    def _fill_mask_python(self, x):
        mask_id = int(self.tokenizer.mask_token_id)
        tokenized = tuple(self._tokenize_python(segment) for segment in x)
        token_ids, segment_ids = self.packer(tokenized)
        token_ids = np.asarray(convert_to_numpy(token_ids), "int32")
        segment_ids = np.asarray(convert_to_numpy(segment_ids), "int32")
        unbatched = token_ids.ndim == 1
        if unbatched:
            token_ids, segment_ids = token_ids[None], segment_ids[None]
            tokenized = tuple([ids] for ids in tokenized)
        k = self.mask_selection_length
        positions = np.zeros((token_ids.shape[0], k), "int32")
        for row in range(token_ids.shape[0]):
            found = np.flatnonzero(token_ids[row] == mask_id)
            written = sum(
                list(segment[row]).count(mask_id) for segment in tokenized
            )
            if len(found) < written:
                raise ValueError(
                    f"Example {row} has {written} [MASK] token(s), but only "
                    f"{len(found)} fit in `sequence_length="
                    f"{self.sequence_length}`: the text is truncated before "
                    "a mask. Shorten the text or raise `sequence_length`."
                )
            if len(found) > k:
                raise ValueError(
                    f"Example {row} has {len(found)} [MASK] tokens, more than "
                    f"`mask_selection_length={k}` prediction slots. Raise "
                    "`mask_selection_length` or use fewer masks."
                )
            positions[row, : len(found)] = found
        inputs = {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": (token_ids != self.tokenizer.pad_token_id),
            "mask_positions": positions,
        }
        if unbatched:
            inputs = {key: value[0] for key, value in inputs.items()}
        return convert_preprocessing_outputs_python(inputs)
