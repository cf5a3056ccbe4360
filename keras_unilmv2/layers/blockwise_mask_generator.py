"""Blockwise masking of UniLMv2 pre-training (paper Algorithm 1)."""

import keras
import numpy as np
import tensorflow as tf

from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.checks import check_rate
from keras_unilmv2.utils.checks import check_replacement_rates
from keras_unilmv2.utils.seeding import base_seeds
from keras_unilmv2.utils.seeding import check_seed

_UNIT_BITS = 24  # resolution of the uniform floats made from random bits


def _select(allowed, choice, chunk=32):
    """The position of the `(choice + 1)`-th `True` of every row.

    `allowed` is bool `[B, N]`, `choice` int32 `[B]` (below the row's count
    of `True`). Counts per chunk of `chunk` positions, finds the chunk, then
    the position inside it: a few passes over the row, where a prefix sum
    over all N positions (`tf.cumsum`, which XLA lowers on the CPU to a
    reduce-window quadratic in N) would dominate the sampling loop.
    """
    n = allowed.shape[1]
    chunks = -(-n // chunk)
    flags = tf.cast(allowed, tf.int32)
    if chunks * chunk != n:
        flags = tf.pad(flags, [[0, 0], [0, chunks * chunk - n]])
    flags = tf.reshape(flags, [-1, chunks, chunk])
    per_chunk = tf.reduce_sum(flags, axis=2)  # [B, chunks]
    through = tf.cumsum(per_chunk, axis=1)  # short: `chunks` entries
    # The chunk holding it: the number of chunks that end at or before it.
    index = tf.reduce_sum(
        tf.cast(through <= choice[:, tf.newaxis], tf.int32), axis=1
    )
    index = tf.minimum(index, chunks - 1)
    before = tf.gather(through - per_chunk, index, batch_dims=1)
    row = tf.cumsum(tf.gather(flags, index, batch_dims=1), axis=1)
    inside = tf.reduce_sum(
        tf.cast(row <= (choice - before)[:, tf.newaxis], tf.int32), axis=1
    )
    return index * chunk + inside


class CompiledInGraphs:
    """Runs a TF function XLA-compiled when traced into a graph.

    Traced into a graph (`tf.data`, `tf.function`), `fn` runs as one XLA
    program per input shape: loops then run compiled instead of op by op,
    and the compilation (seconds) is paid once per pipeline. Called eagerly,
    it runs as a plain `tf.function`, which needs no compilation. `fn` must
    give identical results both ways (integer logic, random bits drawn as
    integers).
    """

    def __init__(self, fn):
        self._fn = fn
        self._graph_fn = None
        self._xla_fn = None

    def __call__(self, *args):
        if tf.executing_eagerly():
            if self._graph_fn is None:
                self._graph_fn = tf.function(self._fn, reduce_retracing=True)
            return self._graph_fn(*args)
        if self._xla_fn is None:
            self._xla_fn = tf.function(self._fn, jit_compile=True)
        return self._xla_fn(*args)


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2BlockwiseMaskGenerator(keras.layers.Layer):
    """Blockwise masking of UniLMv2 PMLM pre-training (paper Algorithm 1).

    Given packed token ids, selects blocks of tokens to mask and a random
    factorization order over them, and returns the corrupted ids plus the
    masked positions listed in that order (the input of
    `keras_unilmv2.masks.pmlm_layout`). The sampler:

    1. Repeats: with probability `span_probability` draws a span length
       uniformly from `[min_span_length, max_span_length]`, else length 1,
       and places the block at a start drawn uniformly among the starts
       where it covers only selectable, not yet masked tokens; until at
       least `ceil(mask_rate * n)` tokens are masked (n = selectable
       tokens). A rejected proposal keeps its length and redraws only its
       start, so the accepted lengths follow the stated distribution
       exactly. If no free run of the drawn length is left, or the block
       would exceed `max_predictions`, it is shortened to the longest length
       that fits. Each block masks at least one token, so the loop runs at
       most `max_predictions` times.
    2. Draws a uniformly random permutation of the blocks: block i is
       predicted at factorization step `mask_steps` (1-based).
    3. Corrupts the masked tokens: all become `mask_token_id`, or with
       `mask_token_replacement_rates=(mask, random, keep)` each one
       independently becomes `mask_token_id`, a uniformly random id in
       `[0, vocabulary_size)` or stays itself.

    Randomness: every example gets its own stateless (Philox) random
    stream, keyed by `(seed, fingerprint of its token ids)`, so an example's
    masks depend only on its ids and `seed`, never on the batch it is in, on
    `tf.data` parallelism or on eager versus graph execution. With
    `seed=None` every call draws fresh masks. The sampling runs XLA-compiled
    on the CPU (TensorFlow, on every Keras backend); eager calls return
    backend tensors.

    Args:
        mask_rate: float in (0, 1), the fraction of selectable tokens to
            mask.
        max_predictions: int >= 1, the padded number K of masked tokens per
            example (the length of every output list); at most the sequence
            length.
        mask_token_id: int, the id of `[MASK]`.
        unselectable_token_ids: list of ints, ids never masked (padding,
            `[CLS]`, `[SEP]`, ...). Padding must be among them. Defaults to
            `[0]`.
        span_probability: float in [0, 1], the probability that a block is
            a span rather than a single token. Defaults to 0.4.
        min_span_length: int >= 1, the shortest span. Defaults to 2.
        max_span_length: int >= `min_span_length`, the longest span.
            Defaults to 6.
        mask_token_replacement_rates: `None` (the default: every masked
            token becomes `mask_token_id`) or `(mask, random, keep)`,
            non-negative rates summing to 1.
        vocabulary_size: int, the range of random replacement ids; required
            when `mask_token_replacement_rates` has a random rate > 0.
        seed: int or `None`, see "Randomness". Defaults to `None`.

    Call arguments:
        token_ids: int, dense `[N]` (one example) or `[B, N]` with a static
            length N.

    Returns:
        A dict; `K = max_predictions`, batch axis as in the input:

        - `"token_ids"`: int32 `[B, N]`, the corrupted ids.
        - `"mask_positions"`: int32 `[B, K]`, the masked positions sorted by
          (step, position), 0 on padding entries.
        - `"mask_ids"`: int32 `[B, K]`, the original ids there (0 on
          padding entries).
        - `"mask_steps"`: int32 `[B, K]`, the factorization step (1-based)
          of every masked position, 0 on padding entries.
        - `"mask_weights"`: float32 `[B, K]`, 1 on real entries, 0 on
          padding entries.

    Example:
    ```python
    generator = keras_unilmv2.layers.UniLMv2BlockwiseMaskGenerator(
        mask_rate=0.15,
        max_predictions=24,
        mask_token_id=103,
        unselectable_token_ids=[0, 101, 102],
        seed=42,
    )
    ids = np.array([[101] + list(range(1000, 1126)) + [102]], "int32")
    out = generator(ids)
    out["mask_positions"].shape  # (1, 24)
    int(out["mask_weights"].numpy().sum())  # 19 to 24 masked tokens
    ```
    """

    def __init__(
        self,
        mask_rate,
        max_predictions,
        mask_token_id,
        unselectable_token_ids=(0,),
        span_probability=0.4,
        min_span_length=2,
        max_span_length=6,
        mask_token_replacement_rates=None,
        vocabulary_size=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Inputs stay TensorFlow tensors (strings of ids, tf.data graphs).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.mask_rate = check_rate(
            "mask_rate", mask_rate, 0, 1, open_low=True, open_high=True
        )
        self.max_predictions = check_int("max_predictions", max_predictions, 1)
        self.mask_token_id = check_int("mask_token_id", mask_token_id, 0)
        if isinstance(unselectable_token_ids, (str, bytes)) or not isinstance(
            unselectable_token_ids, (list, tuple)
        ):
            raise ValueError(
                "`unselectable_token_ids` must be a list of token ids. "
                f"Received: unselectable_token_ids={unselectable_token_ids!r}"
            )
        self.unselectable_token_ids = [
            check_int("unselectable_token_ids[]", i, 0)
            for i in unselectable_token_ids
        ]
        self.span_probability = check_rate(
            "span_probability", span_probability, 0, 1
        )
        self.min_span_length = check_int("min_span_length", min_span_length, 1)
        self.max_span_length = check_int(
            "max_span_length", max_span_length, self.min_span_length
        )
        self.mask_token_replacement_rates = check_replacement_rates(
            mask_token_replacement_rates
        )
        if vocabulary_size is not None:
            vocabulary_size = check_int("vocabulary_size", vocabulary_size, 1)
        rates = self.mask_token_replacement_rates
        if rates is not None and rates[1] > 0 and vocabulary_size is None:
            raise ValueError(
                "`vocabulary_size` is required when "
                "`mask_token_replacement_rates` has a random rate > 0 (random "
                "ids are drawn from [0, vocabulary_size)). Received: "
                f"vocabulary_size=None, mask_token_replacement_rates={rates}"
            )
        self.vocabulary_size = vocabulary_size
        self.seed = check_seed(seed)
        self._generate_fn = CompiledInGraphs(self._generate)
        self.built = True

    # -- Randomness -----------------------------------------------------------

    def _base_seeds(self, token_ids):
        """One Philox key `[B, 2]` per example: (seed, fingerprint of ids)."""
        return base_seeds(self.seed, token_ids)

    def _draws(self, base_seeds, n):
        """Every random number of every example, `[B, ...]` per use.

        Drawn row by row from the example's own Philox stream as raw 64-bit
        integers (which XLA and TensorFlow's kernels produce bit for bit
        alike), then mapped to floats and ranges with exact integer ops, so
        compiled and op-by-op runs give identical masks.
        """
        k = self.max_predictions
        replace = self.mask_token_replacement_rates is not None
        total = 4 * k + (2 * n if replace else 0)

        def draw(base):
            return tf.random.stateless_uniform(
                [total], base, minval=None, maxval=None, dtype=tf.int64,
                alg="philox",
            )

        bits = tf.map_fn(
            draw, base_seeds, fn_output_signature=tf.TensorSpec([total], tf.int64)
        )

        def unit(x):  # uniform in [0, 1) from the low bits
            low = tf.bitwise.bitwise_and(x, 2**_UNIT_BITS - 1)
            return tf.cast(low, tf.float32) * (2.0**-_UNIT_BITS)

        def below(x, size):  # uniform in [0, size) (bias below 2**-40)
            return tf.cast(tf.math.floormod(x, size), tf.int32)

        spans = self.max_span_length - self.min_span_length + 1
        out = {
            "is_span": unit(bits[:, :k]) < self.span_probability,
            "span_length": self.min_span_length
            + below(bits[:, k : 2 * k], spans),
            "start": bits[:, 2 * k : 3 * k],
            "order": unit(bits[:, 3 * k : 4 * k]),
        }
        if replace:
            out["replace"] = unit(bits[:, 4 * k : 4 * k + n])
            out["random"] = below(
                bits[:, 4 * k + n :], self.vocabulary_size or 1
            )
        return out

    # -- The sampler ------------------------------------------------------------

    def _sample_blocks(self, candidate, target, draws):
        """Places the blocks: their starts and lengths, in placing order.

        Vectorized over the batch: each loop iteration places one block in
        every example that still needs one (an example stops once it has
        `target` masked tokens or no free token is left). Returns the
        number of blocks `[B]`, of masked tokens `[B]`, the masked flags
        `[B, N]` and the start and length of block i `[B, K]` (0 past the
        last block).
        """
        n = candidate.shape[1]
        k = self.max_predictions
        batch_size = tf.shape(candidate)[0]
        positions = tf.range(n)[tf.newaxis, :]
        slots = tf.range(k)[tf.newaxis, :]
        drawn = tf.where(draws["is_span"], draws["span_length"], 1)  # [B, K]
        start_draws = draws["start"]  # [B, K]

        def going(count, num_free):
            return tf.logical_and(count < target, num_free > 0)

        def cond(num_blocks, count, run, starts_of, lengths_of, active):
            return tf.reduce_any(active)

        def body(num_blocks, count, run, starts_of, lengths_of, active):
            block = tf.minimum(num_blocks, k - 1)
            wanted = tf.minimum(
                tf.gather(drawn, block, batch_dims=1), k - count
            )
            # The drawn length, shortened to the longest free run if needed.
            block_length = tf.minimum(tf.reduce_max(run, axis=1), wanted)
            block_length = tf.where(active, block_length, 0)
            allowed = tf.logical_and(
                run >= block_length[:, tf.newaxis],
                (block_length > 0)[:, tf.newaxis],
            )  # [B, N]
            num_starts = tf.reduce_sum(tf.cast(allowed, tf.int32), axis=1)
            choice = tf.math.floormod(
                tf.gather(start_draws, block, batch_dims=1),
                tf.cast(tf.maximum(num_starts, 1), tf.int64),
            )
            start = _select(allowed, tf.cast(choice, tf.int32))
            here = tf.logical_and(
                slots == num_blocks[:, tf.newaxis], active[:, tf.newaxis]
            )
            starts_of = tf.where(here, start[:, tf.newaxis], starts_of)
            lengths_of = tf.where(
                here, block_length[:, tf.newaxis], lengths_of
            )
            end = (start + block_length)[:, tf.newaxis]
            start = start[:, tf.newaxis]
            # Runs reaching into the block now stop at its start.
            run = tf.where(
                positions < start,
                tf.minimum(run, start - positions),
                tf.where(positions < end, 0, run),
            )
            num_blocks = num_blocks + tf.cast(active, tf.int32)
            count = count + block_length
            return (
                num_blocks,
                count,
                run,
                starts_of,
                lengths_of,
                going(count, num_candidates - count),
            )

        # run[b, p]: free slots in a row from p (capped at the longest
        # span); a block of length l fits at p iff run[b, p] >= l.
        run = tf.cast(candidate, tf.int32)
        alive = candidate
        for shift in range(1, min(self.max_span_length, n)):
            ahead = tf.pad(candidate[:, shift:], [[0, 0], [0, shift]])
            alive = tf.logical_and(alive, ahead)
            run += tf.cast(alive, tf.int32)
        num_candidates = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)
        zeros = tf.zeros([batch_size], tf.int32)
        per_block = tf.zeros([batch_size, k], tf.int32)
        num_blocks, count, run, starts_of, lengths_of, _ = tf.while_loop(
            cond,
            body,
            (
                zeros,
                zeros,
                run,
                per_block,
                per_block,
                going(zeros, num_candidates),
            ),
            maximum_iterations=k,
        )
        # A free slot has a run of at least 1 (itself).
        masked = tf.logical_and(candidate, tf.equal(run, 0))
        return num_blocks, count, masked, starts_of, lengths_of

    def _generate(self, token_ids, base_seeds):
        """The masks of dense ids `[B, N]` (XLA-compiled, see `call`)."""
        n = token_ids.shape[1]
        k = self.max_predictions
        unselectable = tf.reduce_any(
            tf.equal(
                token_ids[:, :, tf.newaxis],
                tf.constant(self.unselectable_token_ids or [-1], tf.int32),
            ),
            axis=2,
        )
        candidate = tf.logical_not(unselectable)
        num_candidates = tf.reduce_sum(tf.cast(candidate, tf.float64), axis=1)
        target = tf.cast(
            tf.math.ceil(num_candidates * self.mask_rate - 1e-9), tf.int32
        )
        target = tf.minimum(target, k)
        draws = self._draws(base_seeds, n)
        num_blocks, count, masked, starts_of, lengths_of = (
            self._sample_blocks(candidate, target, draws)
        )

        # Factorization order: a uniform permutation of the blocks; step s
        # predicts block order[s - 1].
        slots = tf.range(k)[tf.newaxis, :]
        keys = tf.where(slots < num_blocks[:, tf.newaxis], draws["order"], 2.0)
        order = tf.argsort(keys, axis=1, stable=True)
        start = tf.gather(starts_of, order, batch_dims=1)  # [B, K] by step
        length = tf.gather(lengths_of, order, batch_dims=1)
        # The masked positions listed by (step, position): entry j lies in
        # the step whose blocks so far end after j.
        through = tf.cumsum(length, axis=1)  # [B, K]
        step = tf.reduce_sum(
            tf.cast(through[:, tf.newaxis, :] <= slots[:, :, tf.newaxis], tf.int32),
            axis=2,
        )  # [B, K]: 0-based step of entry j
        step = tf.minimum(step, k - 1)
        offset = tf.gather(through - length, step, batch_dims=1)
        listed = tf.gather(start, step, batch_dims=1) + slots - offset
        valid = slots < count[:, tf.newaxis]
        listed = tf.where(valid, listed, 0)

        corrupted = tf.where(masked, self.mask_token_id, token_ids)
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
        return {
            "token_ids": corrupted,
            "mask_positions": listed,
            "mask_ids": tf.where(
                valid, tf.gather(token_ids, listed, batch_dims=1), 0
            ),
            "mask_steps": tf.where(valid, step + 1, 0),
            "mask_weights": tf.cast(valid, tf.float32),
        }

    # -- Layer API ------------------------------------------------------------

    def _to_tf(self, token_ids):
        if isinstance(token_ids, tf.RaggedTensor):
            raise ValueError(
                "`token_ids` must be dense (packed to a fixed length); pad "
                "ragged ids first, with a padding id among "
                "`unselectable_token_ids`. Received a tf.RaggedTensor."
            )
        if not isinstance(token_ids, tf.Tensor):
            if keras.ops.is_tensor(token_ids):
                token_ids = keras.ops.convert_to_numpy(token_ids)
            array = np.asarray(token_ids)
            if array.dtype.kind not in "iu":
                raise ValueError(
                    "`token_ids` must be integer token ids. Received: "
                    f"token_ids with dtype {array.dtype}"
                )
            token_ids = tf.constant(array.astype("int32"))
        if not token_ids.dtype.is_integer:
            raise ValueError(
                "`token_ids` must be integer token ids. Received dtype "
                f"{token_ids.dtype.name}."
            )
        return tf.cast(token_ids, tf.int32)

    def _check_input(self, token_ids):
        """Dense int32 `[B, N]` TF ids and whether the input was batched."""
        token_ids = self._to_tf(token_ids)
        rank = token_ids.shape.rank
        if rank not in (1, 2) or token_ids.shape[-1] is None:
            raise ValueError(
                "`token_ids` must be rank 1 (one example) or rank 2 (a "
                "batch) with a static last dimension. Received shape "
                f"{token_ids.shape}."
            )
        n = token_ids.shape[-1]
        if self.max_predictions > n:
            raise ValueError(
                "`max_predictions` can be at most the sequence length "
                f"({n}). Received: max_predictions={self.max_predictions}"
            )
        batched = rank == 2
        if not batched:
            token_ids = token_ids[tf.newaxis]
        return token_ids, batched

    def _generate_tf(self, token_ids):
        """The masks of TF ids `[B, N]` as TF tensors (XLA-compiled when
        traced into a graph, see `CompiledInGraphs`)."""
        return self._generate_fn(token_ids, self._base_seeds(token_ids))

    def call(self, token_ids):
        with tf.device("cpu"):
            token_ids, batched = self._check_input(token_ids)
            out = self._generate_tf(token_ids)
            if not batched:
                out = {key: value[0] for key, value in out.items()}
        if tf.executing_eagerly():
            out = {
                key: keras.ops.convert_to_tensor(value.numpy())
                for key, value in out.items()
            }
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mask_rate": self.mask_rate,
                "max_predictions": self.max_predictions,
                "mask_token_id": self.mask_token_id,
                "unselectable_token_ids": list(self.unselectable_token_ids),
                "span_probability": self.span_probability,
                "min_span_length": self.min_span_length,
                "max_span_length": self.max_span_length,
                "mask_token_replacement_rates": (
                    None
                    if self.mask_token_replacement_rates is None
                    else list(self.mask_token_replacement_rates)
                ),
                "vocabulary_size": self.vocabulary_size,
                "seed": self.seed,
            }
        )
        return config

    def compute_output_spec(self, token_ids):
        shape = tuple(token_ids.shape)
        lead = shape[:-1]
        k = (self.max_predictions,)
        return {
            "token_ids": keras.KerasTensor(shape, "int32"),
            "mask_positions": keras.KerasTensor(lead + k, "int32"),
            "mask_ids": keras.KerasTensor(lead + k, "int32"),
            "mask_steps": keras.KerasTensor(lead + k, "int32"),
            "mask_weights": keras.KerasTensor(lead + k, "float32"),
        }
