"""Preprocessing for UniLMv2 PMLM (pseudo-masked LM) pre-training."""

import math

import keras
import numpy as np
import tensorflow as tf
from keras_hub.models import Preprocessor

from keras_unilmv2 import masks
from keras_unilmv2.layers.blockwise_mask_generator import CompiledInGraphs
from keras_unilmv2.layers.blockwise_mask_generator import UniLMv2BlockwiseMaskGenerator
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.checks import check_rate
from keras_unilmv2.utils.checks import check_replacement_rates
from keras_unilmv2.utils.preset_utils import PresetMixin
from keras_unilmv2.utils.seeding import check_seed

_REQUIRED_TOKEN_IDS = (
    "cls_token_id",
    "sep_token_id",
    "pad_token_id",
    "mask_token_id",
)
def default_max_predictions(sequence_length, mask_rate, max_span_length):
    """The default `max_predictions` of `UniLMv2PMLMPreprocessor`.

    The sampler stops as soon as `ceil(mask_rate * n)` tokens are masked
    (`n` = maskable tokens, at most `sequence_length - 2`), and the last
    block adds at most `max_span_length - 1` tokens beyond that, so this
    many predictions always suffice: the budget never shortens a block.
    """
    text_length = sequence_length - 2
    target = math.ceil(mask_rate * text_length - 1e-9)
    return max(1, min(text_length, target + max_span_length - 1))


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2PMLMPreprocessor(PresetMixin, Preprocessor):
    """UniLMv2 preprocessing for PMLM (pseudo-masked LM) pre-training.

    Turns text into the one-pass PMLM input of the UniLMv2 paper: the
    corrupted text (conventional masks `[M]`) for the autoencoding (AE)
    objective, followed by, for each factorization step, pseudo masks `[P]`
    and the original tokens for the partially autoregressive (PAR)
    objective, with shared position ids and the blockwise 3-D attention
    mask. Steps:

    1. Tokenize (strings) and pack `[CLS] text [SEP]`, truncated and padded
       to `sequence_length` (N).
    2. Blockwise masking (paper Algorithm 1) with
       `keras_unilmv2.layers.UniLMv2BlockwiseMaskGenerator`: repeat, with
       probability `span_probability` draw a span length uniformly from
       `[min_span_length, max_span_length]`, else length 1, and place the
       block at a start drawn uniformly among the starts where it covers
       only unmasked, real, non-special tokens; until at least
       `ceil(mask_rate * n)` tokens are masked (n = maskable tokens of the
       text). A rejected proposal keeps its length and redraws only its
       start, so the accepted lengths follow the stated distribution
       exactly. Blocks that do not fit (no free run of the drawn length, or
       beyond `max_predictions`) are shortened to the longest that fits.
    3. A uniformly random permutation of the blocks is the factorization
       order.
    4. Layout (length `L = N + 2 * max_predictions`, fixed so that batches
       compile once): the N corrupted context slots, then per step k the
       `[P]` block and the original tokens of block k, then padding; see
       `keras_unilmv2.masks.pmlm_layout` and `pmlm_attention_mask` for the
       position ids and the mask rule. The output describes every slot by
       its kind and step (O(L) per example); the model builds the mask.
       The originals of the last step are kept by default (they are
       attended by no prediction, so keeping or dropping them changes no
       loss; `drop_last_step_originals=True` turns their slots into
       padding).

    Randomness: every example gets its own stateless random stream, keyed by
    `(seed, fingerprint of its packed token ids)`. The output for a text
    therefore depends only on the text and `seed`, never on the batch it is
    in, on `tf.data` parallelism or on eager versus graph execution: calling
    the layer eagerly and inside `tf.data.Dataset.map` gives identical
    results. The flip side: with a fixed `seed`, the same text is masked
    the same way every epoch (static masking). For different masks per
    epoch either use `seed=None` (fresh randomness on every call, not
    reproducible) or map each epoch with a preprocessor built with another
    seed. All random draws use the Philox algorithm on the CPU. Inside
    `tf.data` the sampling loop runs XLA-compiled (one compilation per batch
    shape, seconds, then several times faster); eager calls run it without
    compiling; both give identical results.

    The preprocessor always runs TensorFlow ops (also on the JAX and PyTorch
    backends); eager calls return backend tensors.

    Args:
        tokenizer: a `keras_unilmv2.models.UniLMv2Tokenizer`, or any
            keras-hub WordPiece-style tokenizer with `cls_token_id`,
            `sep_token_id`, `pad_token_id` and `mask_token_id` attributes
            and a `token_to_id()` method.
        sequence_length: int, the packed length N of the original text
            including `[CLS]` and `[SEP]` (at least 3).
        mask_rate: float in (0, 1), the fraction of maskable tokens to mask.
        span_probability: float in [0, 1], the probability that a block is
            a span rather than a single token.
        min_span_length: int >= 1, shortest span.
        max_span_length: int >= `min_span_length`, longest span.
        max_predictions: int or `None`, the padded number of masked tokens
            K (1 <= K <= `sequence_length - 2`). Defaults to
            `ceil(mask_rate * (sequence_length - 2)) + max_span_length - 1`
            (capped at `sequence_length - 2`), the most the sampler can mask,
            so the budget never shortens a block.
        pseudo_token: str, the token used for `[P]`. Defaults to `"[MASK]"`,
            as in the released UniLMv2 code.
        mask_token_replacement_rates: `None` or a triple
            `(mask, random, keep)` of non-negative rates summing to 1. With
            `None` (the default) every masked context slot holds the mask
            token `[M]`. With e.g. `(0.8, 0.1, 0.1)` each masked context
            token independently becomes `[MASK]`, a uniformly random id in
            `[0, vocabulary_size)`, or stays itself (BERT style). The `[P]`
            slots always hold `pseudo_token`. AE labels are the original
            tokens in every case.
        drop_last_step_originals: bool, see step 4. Defaults to `False`.
        seed: int or `None`, see "Randomness" above. Defaults to `None`.

    Call arguments:
        x: a string, a batch of strings (list, array or tensor), or token
            ids without `[CLS]`/`[SEP]` (a rank-1 tensor for one example, a
            dense or ragged rank-2 tensor or a list of lists for a batch).
            Ids equal to `pad_token_id` in id inputs are dropped.
        y, sample_weight: must be `None`; the labels are made here.

    Returns:
        `(x, y, sample_weight)` with, for a batch of B examples
        (`L = sequence_length + 2 * max_predictions`, `K = max_predictions`):

        - `x["token_ids"]`: int32 `[B, L]`.
        - `x["position_ids"]`: int32 `[B, L]`: context slot i has position
          i, `[P]` and original copies the position of the token they stand
          for, padding 0.
        - `x["slot_kind"]`: int32 `[B, L]`, the kind of every slot:
          `masks.CONTEXT_SLOT`, `PSEUDO_SLOT`, `ORIGINAL_SLOT` or
          `PADDING_SLOT`.
        - `x["slot_step"]`: int32 `[B, L]`, the factorization step (1-based)
          of every `[P]` and original slot, 0 elsewhere.

          No dense mask is shipped: `UniLMv2PMLM` builds the `[L, L]`
          attention mask (and the all-0 segment ids and the padding mask,
          `slot_kind != PADDING_SLOT`) from these descriptors in its graph,
          on the device, with `keras_unilmv2.masks.pmlm_backbone_inputs`;
          call that function (`ops="tf"` or `"keras"`) on `x` to see the
          dense mask.
        - `x["mask_positions"]`: int32 `[B, K]`, the slots whose outputs
          are scored by the AE loss (the masked context slots).
        - `x["pseudo_positions"]`: int32 `[B, K]`, the `[P]` slots scored by
          the PAR loss. Entry i of both lists is the same masked token;
          tokens are listed in factorization order.
        - `y = {"ae": ids, "par": ids}`: int32 `[B, K]`, the original token
          of every masked position (the two tensors are equal, one per
          loss, so a task with outputs `{"ae", "par"}` trains with Keras'
          per-output losses).
        - `sample_weight = {"ae": w, "par": w}`: float32 `[B, K]`, 1 for real
          predictions, 0 for padding entries (whose positions and labels
          are 0).

        Unbatched inputs give the same without the batch axis. A text with
        no maskable token gives zero predictions (all weights 0).

    Examples:
    ```python
    tokenizer = keras_unilmv2.models.UniLMv2Tokenizer(vocabulary=vocab)
    preprocessor = keras_unilmv2.models.UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=128, seed=42
    )
    x, y, sample_weight = preprocessor(["the quick fox ran to the park ."])
    x["token_ids"].shape  # (1, 128 + 2 * 24)
    x["slot_kind"].shape  # (1, 176): O(L) inputs, no [L, L] mask
    # The dense mask the model builds from them:
    mask = keras_unilmv2.masks.pmlm_backbone_inputs(x)["attention_mask"]
    mask.shape  # (1, 176, 176)

    # In a tf.data pipeline: same output as the eager call.
    ds = tf.data.Dataset.from_tensor_slices(texts)
    ds = ds.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(32)
    ```
    """

    backbone_cls = UniLMv2Backbone
    tokenizer_cls = UniLMv2Tokenizer

    def __init__(
        self,
        tokenizer,
        sequence_length=512,
        mask_rate=0.15,
        span_probability=0.4,
        min_span_length=2,
        max_span_length=6,
        max_predictions=None,
        pseudo_token="[MASK]",
        mask_token_replacement_rates=None,
        drop_last_step_originals=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._pack_fn = None
        self._process_key = None
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.mask_rate = check_rate(
            "mask_rate", mask_rate, 0, 1, open_low=True, open_high=True
        )
        self.span_probability = check_rate(
            "span_probability", span_probability, 0, 1
        )
        self.min_span_length = check_int("min_span_length", min_span_length, 1)
        self.max_span_length = check_int(
            "max_span_length", max_span_length, self.min_span_length
        )
        if max_predictions is not None:
            max_predictions = check_int("max_predictions", max_predictions, 1)
            if max_predictions > self.sequence_length - 2:
                raise ValueError(
                    "`max_predictions` can be at most `sequence_length - 2` "
                    f"(= {self.sequence_length - 2}), the number of text "
                    "slots between [CLS] and [SEP]. Received: "
                    f"max_predictions={max_predictions}"
                )
        self._max_predictions_arg = max_predictions
        if not isinstance(pseudo_token, str):
            raise ValueError(
                "`pseudo_token` must be a string token of the vocabulary. "
                f"Received: pseudo_token={pseudo_token!r}"
            )
        self.pseudo_token = pseudo_token
        self.mask_token_replacement_rates = check_replacement_rates(
            mask_token_replacement_rates
        )
        if not isinstance(drop_last_step_originals, bool):
            raise ValueError(
                "`drop_last_step_originals` must be a bool. Received: "
                f"drop_last_step_originals={drop_last_step_originals!r}"
            )
        self.drop_last_step_originals = drop_last_step_originals
        self.seed = check_seed(seed)

    @property
    def sequence_length(self):
        """The packed length N of the text, `[CLS]` and `[SEP]` included."""
        return self._sequence_length

    @sequence_length.setter
    def sequence_length(self, value):
        self._sequence_length = check_int("sequence_length", value, 3)

    @property
    def max_predictions(self):
        """The padded number of masked tokens K per example."""
        if self._max_predictions_arg is not None:
            return self._max_predictions_arg
        return default_max_predictions(
            self.sequence_length, self.mask_rate, self.max_span_length
        )

    @property
    def layout_length(self):
        """The length of the PMLM layout, `sequence_length + 2 * K`."""
        return self.sequence_length + 2 * self.max_predictions

    def build(self, input_shape=None):
        super().build(input_shape)
        self._setup()

    def _settings(self):
        return (
            id(self.tokenizer),
            self.sequence_length,
            self.mask_rate,
            self.span_probability,
            self.min_span_length,
            self.max_span_length,
            self.max_predictions,
            self.pseudo_token,
            self.mask_token_replacement_rates,
            self.drop_last_step_originals,
            self.seed,
        )

    def _setup(self):
        """Read the token ids from the tokenizer and make the TF functions.

        Runs on the first call (once the tokenizer's vocabulary is set), and
        again if a setting was changed since.
        """
        if self._pack_fn is not None and self._process_key == (
            self._settings()
        ):
            return
        tokenizer = self.tokenizer
        ids = {}
        for attr in _REQUIRED_TOKEN_IDS:
            value = getattr(tokenizer, attr, None)
            if value is None:
                raise ValueError(
                    "`tokenizer` must have the attribute "
                    f"`{attr}` set (a WordPiece tokenizer with [CLS], [SEP], "
                    f"[PAD] and [MASK]). Received: tokenizer={tokenizer!r} "
                    f"with {attr}={value!r}"
                )
            ids[attr] = int(value)
        self._cls_id = ids["cls_token_id"]
        self._sep_id = ids["sep_token_id"]
        self._pad_id = ids["pad_token_id"]
        self._mask_id = ids["mask_token_id"]
        try:
            self._pseudo_id = int(tokenizer.token_to_id(self.pseudo_token))
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"`pseudo_token` {self.pseudo_token!r} is not in the "
                "tokenizer's vocabulary."
            ) from e
        special = set(ids.values())
        try:
            special.update(int(i) for i in tokenizer.special_token_ids)
        except (AttributeError, TypeError, ValueError):
            pass
        special.add(self._pseudo_id)
        self._special_ids = tuple(sorted(special))
        self._vocabulary_size = int(tokenizer.vocabulary_size())
        # Not a tracked sublayer: it is rebuilt from the settings whenever
        # they change, also after the preprocessor is built.
        self.__dict__["_mask_generator"] = UniLMv2BlockwiseMaskGenerator(
            mask_rate=self.mask_rate,
            max_predictions=self.max_predictions,
            mask_token_id=self._mask_id,
            unselectable_token_ids=list(self._special_ids),
            span_probability=self.span_probability,
            min_span_length=self.min_span_length,
            max_span_length=self.max_span_length,
            mask_token_replacement_rates=self.mask_token_replacement_rates,
            vocabulary_size=self._vocabulary_size,
            seed=self.seed,
            dtype="int32",
        )
        text_length = self.sequence_length - 2
        self._pack_fn = tf.function(
            self._pack,
            input_signature=[
                tf.TensorSpec([None, text_length], tf.int32),
                tf.TensorSpec([None], tf.int32),
            ],
        )
        self._mask_and_layout_fn = CompiledInGraphs(self._mask_and_layout)
        self._process_key = self._settings()

    # -- Input handling -------------------------------------------------------

    @staticmethod
    def _to_tf(x):
        """Eager inputs (Python, NumPy, backend tensors) to TF tensors."""
        if isinstance(x, (tf.Tensor, tf.RaggedTensor)):
            return x
        if isinstance(x, (str, bytes)):
            return tf.constant(x)
        if isinstance(x, list):
            try:
                array = np.array(x)
            except ValueError:
                array = None
            if array is None or array.dtype == object:
                return tf.ragged.constant(x)
            if array.size == 0:
                if array.ndim < 2:
                    raise ValueError(
                        "`x` is an empty batch; it must hold at least one "
                        f"string (or token id). Received: x={x!r}"
                    )
                # Rows without tokens (e.g. the tokens of `[""]`).
                array = array.astype("int32")
            x = array
        if not isinstance(x, np.ndarray):
            if not keras.ops.is_tensor(x):
                raise ValueError(
                    "`x` must be a string, a batch of strings, or token "
                    f"ids. Received: x of type {type(x).__name__}"
                )
            x = keras.ops.convert_to_numpy(x)
        if x.dtype.kind in "iu":
            x = x.astype("int32")
        return tf.constant(x)

    def _token_ids(self, x):
        """Token ids of the text(s), as a ragged `[B, None]` int32 tensor."""
        if isinstance(x, tuple):
            raise ValueError(
                "UniLMv2PMLMPreprocessor takes one text segment per example "
                f"(a string or a batch of strings). Received a tuple of "
                f"{len(x)} inputs."
            )
        x = self._to_tf(x)
        if x.dtype == tf.string:
            if x.shape.rank not in (0, 1):
                raise ValueError(
                    "String input must be a scalar or a rank-1 batch. "
                    f"Received shape {x.shape}."
                )
            x = self._to_tf(self.tokenizer(x))
        if not x.dtype.is_integer:
            raise ValueError(
                "`x` must be strings or integer token ids. Received dtype "
                f"{x.dtype.name}."
            )
        x = tf.cast(x, tf.int32)
        rank = x.shape.rank
        if rank not in (1, 2):
            raise ValueError(
                "Token id input must be rank 1 (one example) or rank 2 (a "
                f"batch). Received shape {x.shape}."
            )
        batched = rank == 2
        if not batched:
            x = tf.RaggedTensor.from_tensor(x[tf.newaxis])
        elif not isinstance(x, tf.RaggedTensor):
            x = tf.RaggedTensor.from_tensor(x)
        x = tf.ragged.boolean_mask(x, tf.not_equal(x, self._pad_id))
        return x, batched

    # -- The TensorFlow computation ------------------------------------------

    def _pack(self, text_ids, text_lengths):
        """`[CLS] text [SEP]` then padding, `[B, N]`, from `[B, N - 2]` ids."""
        n = self.sequence_length
        batch_size = tf.shape(text_ids)[0]
        shifted = tf.concat(
            [
                tf.fill([batch_size, 1], self._pad_id),
                text_ids,
                tf.fill([batch_size, 1], self._pad_id),
            ],
            axis=1,
        )
        index = tf.range(n)[tf.newaxis, :]
        lengths = text_lengths[:, tf.newaxis]
        return tf.where(
            tf.equal(index, 0),
            self._cls_id,
            tf.where(tf.equal(index, lengths + 1), self._sep_id, shifted),
        )

    def _mask_and_layout(self, packed, num_real, seeds):
        """Masks (`UniLMv2BlockwiseMaskGenerator`) and lays out a batch."""
        generated = self._mask_generator._generate(packed, seeds)
        positions = tf.range(self.sequence_length)[tf.newaxis, :]
        real = positions < num_real[:, tf.newaxis]
        layout = masks.pmlm_layout(
            generated["token_ids"],
            real,
            generated["mask_positions"],
            generated["mask_steps"],
            generated["mask_ids"],
            pseudo_token_id=self._pseudo_id,
            pad_token_id=self._pad_id,
            drop_last_step_originals=self.drop_last_step_originals,
            with_attention_mask=False,
            ops="tf",
        )
        return {
            "token_ids": layout["token_ids"],
            "position_ids": layout["position_ids"],
            "slot_kind": layout["slot_kind"],
            "slot_step": layout["slot_step"],
            "mask_positions": generated["mask_positions"],
            "pseudo_positions": layout["pseudo_positions"],
            "labels": generated["mask_ids"],
            "weights": generated["mask_weights"],
        }

    def _process_batch(self, text_ids, text_lengths):
        """Pack, mask and lay out a batch.

        Every step works on the whole batch at once (`[B, ...]` tensors);
        the generator draws each example's randomness from its own stream.
        Masking and layout are one XLA program inside `tf.data`
        (`CompiledInGraphs`).
        """
        packed = self._pack_fn(text_ids, text_lengths)
        seeds = self._mask_generator._base_seeds(packed)
        return self._mask_and_layout_fn(packed, text_lengths + 2, seeds)

    # -- Layer API ------------------------------------------------------------

    def call(self, x, y=None, sample_weight=None):
        if y is not None or sample_weight is not None:
            raise ValueError(
                "UniLMv2PMLMPreprocessor makes its own labels and weights; "
                "pass only `x`, one text segment (or token ids) per example "
                "(a tuple `(a, b)` is read as `(x, y)`). Received: "
                f"y={y!r}, sample_weight={sample_weight!r}"
            )
        self._setup()
        with tf.device("cpu"):
            ids, batched = self._token_ids(x)
            text_length = self.sequence_length - 2
            text_lengths = tf.minimum(
                tf.cast(ids.row_lengths(), tf.int32), text_length
            )
            text_ids = ids.to_tensor(
                default_value=self._pad_id, shape=[None, text_length]
            )
            out = self._process_batch(text_ids, text_lengths)
            if not batched:
                out = {key: value[0] for key, value in out.items()}
        if tf.executing_eagerly():
            out = {
                key: keras.ops.convert_to_tensor(value.numpy())
                for key, value in out.items()
            }
        x = {key: out[key] for key in masks.PMLM_MODEL_INPUTS}
        y = {"ae": out["labels"], "par": out["labels"]}
        sample_weight = {"ae": out["weights"], "par": out["weights"]}
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "mask_rate": self.mask_rate,
                "span_probability": self.span_probability,
                "min_span_length": self.min_span_length,
                "max_span_length": self.max_span_length,
                "max_predictions": self._max_predictions_arg,
                "pseudo_token": self.pseudo_token,
                "mask_token_replacement_rates": (
                    None
                    if self.mask_token_replacement_rates is None
                    else list(self.mask_token_replacement_rates)
                ),
                "drop_last_step_originals": self.drop_last_step_originals,
                "seed": self.seed,
            }
        )
        return config
