"""Preprocessing for UniLMv2 PMLM (pseudo-masked LM) pre-training."""

import math
import numbers

import keras
import numpy as np
from keras_hub.models import Preprocessor

from keras_unilmv2 import masks
from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.preset_utils import PresetMixin

# TensorFlow runs this preprocessor (eagerly and inside tf.data) on every
# Keras backend, but `import keras_unilmv2` must work without it.
try:
    import tensorflow as tf

    if not hasattr(tf, "executing_eagerly"):  # a half-uninstalled package
        tf = None
except ImportError:
    tf = None

_REQUIRED_TOKEN_IDS = (
    "cls_token_id",
    "sep_token_id",
    "pad_token_id",
    "mask_token_id",
)
# Streams of the per-example random generator (see `_example_seeds`).
_STREAMS = ("is_span", "span_length", "start", "order", "replace", "random")


def _require_tf():
    if tf is None:
        raise ImportError(
            "UniLMv2PMLMPreprocessor runs on TensorFlow ops (eagerly and "
            "inside tf.data) on every Keras backend. Install it with "
            "`pip install tensorflow tensorflow-text`."
        )
    return tf


def _check_rate(name, value, low, high, open_low=False, open_high=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high
        )
    if not ok:
        interval = ("(" if open_low else "[") + f"{low}, {high}"
        interval += ")" if open_high else "]"
        raise ValueError(
            f"`{name}` must be a number in {interval}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


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
    2. Blockwise masking (paper Algorithm 1): repeat, with probability
       `span_probability` draw a span length uniformly from
       `[min_span_length, max_span_length]`, else length 1, and place the
       block at a start drawn uniformly among the starts where it covers
       only unmasked, real, non-special tokens; until at least
       `ceil(mask_rate * n)` tokens are masked (n = maskable tokens of the
       text). A rejected proposal keeps its length and redraws only its
       start, so the accepted lengths follow the stated distribution
       exactly (redrawing the length as well would under-represent spans,
       which collide more often). If no free run of the drawn length is
       left, or it would exceed `max_predictions`, the block is shortened to
       the longest length that fits. Each step masks at least one token, so
       the loop runs at most `max_predictions` times.
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
    seed. All random draws use the Philox algorithm on the CPU.

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
        self._process_fn = None
        self._process_key = None
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.mask_rate = _check_rate(
            "mask_rate", mask_rate, 0, 1, open_low=True, open_high=True
        )
        self.span_probability = _check_rate(
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
        self.mask_token_replacement_rates = self._check_replacement_rates(
            mask_token_replacement_rates
        )
        if not isinstance(drop_last_step_originals, bool):
            raise ValueError(
                "`drop_last_step_originals` must be a bool. Received: "
                f"drop_last_step_originals={drop_last_step_originals!r}"
            )
        self.drop_last_step_originals = drop_last_step_originals
        if seed is not None:
            seed = check_int("seed", seed, -(2**63))
            if seed >= 2**63:
                raise ValueError(
                    f"`seed` must fit in int64. Received: seed={seed}"
                )
        self.seed = seed

    @staticmethod
    def _check_replacement_rates(rates):
        if rates is None:
            return None
        message = (
            "`mask_token_replacement_rates` must be None or three "
            "non-negative numbers (mask, random, keep) summing to 1. "
            f"Received: mask_token_replacement_rates={rates!r}"
        )
        if not isinstance(rates, (list, tuple)) or len(rates) != 3:
            raise ValueError(message)
        if not all(
            isinstance(r, numbers.Real) and not isinstance(r, bool) and r >= 0
            for r in rates
        ):
            raise ValueError(message)
        if abs(sum(rates) - 1.0) > 1e-6:
            raise ValueError(message)
        return tuple(float(r) for r in rates)

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
        """Read the token ids from the tokenizer and trace the TF function.

        Runs on the first call (once the tokenizer's vocabulary is set), and
        again if a setting was changed since.
        """
        if self._process_fn is not None and self._process_key == (
            self._settings()
        ):
            return
        _require_tf()
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
        text_length = self.sequence_length - 2
        self._process_fn = tf.function(
            self._process_batch,
            input_signature=[
                tf.TensorSpec([None, text_length], tf.int32),
                tf.TensorSpec([None], tf.int32),
            ],
        )
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

    def _process_batch(self, text_ids, text_lengths):
        """Pack `[CLS] text [SEP]` and build the PMLM example of each row.

        Every step works on the whole batch at once (`[B, ...]` tensors);
        only the per-example random draws run per row (`_example_draws`),
        so that each example keeps its own random stream.
        """
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
        packed = tf.where(
            tf.equal(index, 0),
            self._cls_id,
            tf.where(tf.equal(index, lengths + 1), self._sep_id, shifted),
        )
        return self._process_packed(packed, text_lengths + 2)

    def _example_seeds(self, token_ids):
        """One Philox seed per random stream, keyed by (seed, the ids)."""
        if self.seed is None:
            base = tf.random.uniform([2], 0, 2**62, dtype=tf.int64)
        else:
            fingerprint = tf.fingerprint(token_ids[tf.newaxis])  # [1, 8]
            key = tf.bitcast(fingerprint, tf.int64)[0]
            base = tf.stack([tf.constant(self.seed, tf.int64), key])
        return {
            name: tf.random.experimental.stateless_fold_in(
                base, i, alg="philox"
            )
            for i, name in enumerate(_STREAMS)
        }

    def _example_draws(self, packed):
        """Every random number of every example, `[B, ...]` per stream.

        Drawn row by row from the example's own streams
        (`_example_seeds`), so an example's draws do not depend on the
        batch it is in.
        """
        n, k = self.sequence_length, self.max_predictions
        replace = self.mask_token_replacement_rates is not None

        def draw(token_ids):
            seeds = self._example_seeds(token_ids)
            out = {
                "is_span": tf.random.stateless_uniform(
                    [k], seeds["is_span"], alg="philox"
                )
                < self.span_probability,
                "span_length": tf.random.stateless_uniform(
                    [k],
                    seeds["span_length"],
                    minval=self.min_span_length,
                    maxval=self.max_span_length + 1,
                    dtype=tf.int32,
                    alg="philox",
                ),
                "start": tf.random.stateless_uniform(
                    [k], seeds["start"], minval=None, maxval=None,
                    dtype=tf.int64, alg="philox",
                ),
                "order": tf.random.stateless_uniform(
                    [k], seeds["order"], alg="philox"
                ),
            }
            if replace:
                out["replace"] = tf.random.stateless_uniform(
                    [n], seeds["replace"], alg="philox"
                )
                out["random"] = tf.random.stateless_uniform(
                    [n],
                    seeds["random"],
                    minval=0,
                    maxval=self._vocabulary_size,
                    dtype=tf.int32,
                    alg="philox",
                )
            return out

        spec = {
            "is_span": tf.TensorSpec([k], tf.bool),
            "span_length": tf.TensorSpec([k], tf.int32),
            "start": tf.TensorSpec([k], tf.int64),
            "order": tf.TensorSpec([k], tf.float32),
        }
        if replace:
            spec["replace"] = tf.TensorSpec([n], tf.float32)
            spec["random"] = tf.TensorSpec([n], tf.int32)
        return tf.map_fn(
            draw, packed, fn_output_signature=spec, parallel_iterations=16
        )

    def _sample_blocks(self, candidate, target, draws):
        """Blockwise masking: the block id (1-based) of every position.

        Vectorized over the batch: each loop iteration places one block in
        every example that still needs one (an example stops once it has
        `target` masked tokens or no free token is left).

        Returns the number of blocks `[B]`, the number of masked tokens
        `[B]` and `block_of` (int32 `[B, N]`, 0 = not masked).
        """
        n, k = self.sequence_length, self.max_predictions
        batch_size = tf.shape(candidate)[0]
        longest = self.max_span_length
        positions = tf.range(n)[tf.newaxis, :]
        drawn = tf.where(draws["is_span"], draws["span_length"], 1)  # [B, K]
        start_draws = draws["start"]  # [B, K]

        def going(count, free):
            """Examples that still place a block: short of the target and
            with a free token left."""
            return tf.logical_and(count < target, tf.reduce_any(free, axis=1))

        def cond(num_blocks, count, free, block_of, active):
            return tf.reduce_any(active)

        def body(num_blocks, count, free, block_of, active):
            # run[b, p]: free slots in a row from p (capped at the longest
            # span); a block of length l fits at p iff run[b, p] >= l.
            run = tf.cast(free, tf.int32)
            alive = free
            for shift in range(1, longest):
                ahead = tf.pad(free[:, shift:], [[0, 0], [0, shift]])
                alive = tf.logical_and(alive, ahead)
                run += tf.cast(alive, tf.int32)
            block = tf.minimum(num_blocks, k - 1)
            wanted = tf.minimum(
                tf.gather(drawn, block, batch_dims=1), k - count
            )
            # The drawn length, shortened to the longest free run if needed.
            block_length = tf.minimum(tf.reduce_max(run, axis=1), wanted)
            block_length = tf.where(active, block_length, 0)
            starts = tf.logical_and(
                run >= block_length[:, tf.newaxis],
                (block_length > 0)[:, tf.newaxis],
            )  # [B, N]
            num_starts = tf.reduce_sum(tf.cast(starts, tf.int64), axis=1)
            choice = tf.math.floormod(
                tf.gather(start_draws, block, batch_dims=1),
                tf.maximum(num_starts, 1),
            )
            rank = tf.cumsum(tf.cast(starts, tf.int64), axis=1) - 1
            start = tf.argmax(
                tf.cast(
                    tf.logical_and(starts, rank == choice[:, tf.newaxis]),
                    tf.int32,
                ),
                axis=1,
                output_type=tf.int32,
            )
            in_block = tf.logical_and(
                positions >= start[:, tf.newaxis],
                positions < (start + block_length)[:, tf.newaxis],
            )
            block_of = tf.where(
                in_block, (num_blocks + 1)[:, tf.newaxis], block_of
            )
            free = tf.logical_and(free, tf.logical_not(in_block))
            num_blocks = num_blocks + tf.cast(active, tf.int32)
            count = count + block_length
            return num_blocks, count, free, block_of, going(count, free)

        zeros = tf.zeros([batch_size], tf.int32)
        num_blocks, count, _, block_of, _ = tf.while_loop(
            cond,
            body,
            (
                zeros,
                zeros,
                candidate,
                tf.zeros([batch_size, n], tf.int32),
                going(zeros, candidate),
            ),
            maximum_iterations=k,
        )
        return num_blocks, count, block_of

    def _process_packed(self, token_ids, num_real):
        """The PMLM examples of packed ids `[B, N]` with real lengths `[B]`."""
        n, k = self.sequence_length, self.max_predictions
        positions = tf.range(n)[tf.newaxis, :]
        real = positions < num_real[:, tf.newaxis]
        special = tf.reduce_any(
            tf.equal(
                token_ids[:, :, tf.newaxis],
                tf.constant(self._special_ids, tf.int32),
            ),
            axis=2,
        )
        candidate = tf.logical_and(real, tf.logical_not(special))
        num_candidates = tf.reduce_sum(tf.cast(candidate, tf.float64), axis=1)
        target = tf.cast(
            tf.math.ceil(num_candidates * self.mask_rate - 1e-9), tf.int32
        )
        target = tf.minimum(target, k)
        draws = self._example_draws(token_ids)
        num_blocks, count, block_of = self._sample_blocks(
            candidate, target, draws
        )
        masked = block_of > 0

        # Factorization order: a uniform permutation of the blocks.
        slots = tf.range(k)[tf.newaxis, :]
        keys = tf.where(slots < num_blocks[:, tf.newaxis], draws["order"], 2.0)
        order = tf.argsort(keys, axis=1, stable=True)
        # The inverse permutation: the step (1-based) of every block.
        step_of_block = tf.argsort(order, axis=1, stable=True) + 1
        step_of_position = tf.where(
            masked,
            tf.gather(step_of_block, tf.maximum(block_of - 1, 0), batch_dims=1),
            0,
        )
        # Masked positions sorted by (step, position); the rest after them.
        sort_key = tf.where(
            masked, step_of_position * n + positions, (k + 1) * n + positions
        )
        listed = tf.argsort(sort_key, axis=1, stable=True)[:, :k]
        valid = slots < count[:, tf.newaxis]
        masked_positions = tf.where(valid, listed, 0)
        masked_steps = tf.where(
            valid, tf.gather(step_of_position, listed, batch_dims=1), 0
        )
        masked_ids = tf.where(
            valid, tf.gather(token_ids, listed, batch_dims=1), 0
        )

        # The corrupted context.
        corrupted = tf.where(masked, self._mask_id, token_ids)
        if self.mask_token_replacement_rates is not None:
            mask_rate, random_rate, _ = self.mask_token_replacement_rates
            u = draws["replace"]
            corrupted = tf.where(
                u < mask_rate,
                corrupted,
                tf.where(
                    u < mask_rate + random_rate, draws["random"], token_ids
                ),
            )
            corrupted = tf.where(masked, corrupted, token_ids)

        layout = masks.pmlm_layout(
            corrupted,
            real,
            masked_positions,
            masked_steps,
            masked_ids,
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
            "mask_positions": masked_positions,
            "pseudo_positions": layout["pseudo_positions"],
            "labels": masked_ids,
            "weights": tf.cast(valid, tf.float32),
        }

    # -- Layer API ------------------------------------------------------------

    def call(self, x, y=None, sample_weight=None):
        _require_tf()
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
            out = self._process_fn(text_ids, text_lengths)
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
