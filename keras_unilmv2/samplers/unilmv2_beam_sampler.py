"""Beam search with the exact rules of the UniLMv2 (s2s-ft) reference decoder."""

import math
import numbers

import keras
import numpy as np
from keras import ops
from keras import tree
from keras_hub.samplers import Sampler

# Additive penalty the reference decoder uses for every forbidden choice.
_PENALTY = -10000.0


def _any_equal(x, ids):
    """Elementwise `x in ids` for a short static tuple of python ints."""
    result = None
    for token_id in ids:
        hit = ops.equal(x, token_id)
        result = hit if result is None else ops.logical_or(result, hit)
    return result


def _top_k_first(x, k):
    """Top `k` of the last axis of a 2-D float tensor, largest first.

    Exact ties are resolved the same way on every backend: the entry with
    the lowest index comes first (what a stable sort gives). The backends'
    own `top_k` agree on the values but not on the order of tied indices
    (torch's CPU `topk` does not keep index order), so this takes `k`
    rounds of max and first-argmax instead. (Feeding `ops.top_k` values
    back into the selection is no cheaper on CPU: XLA then lowers it to a
    full sort.)

    Returns `(values, indices)`, both of shape `[N, k]`, indices int32.
    """
    width = x.shape[-1]
    positions = ops.expand_dims(ops.arange(width, dtype="int32"), 0)
    taken = ops.zeros_like(x, dtype="bool")
    values, indices = [], []
    for _ in range(k):
        available = ops.where(taken, -np.inf, x)
        best = ops.max(available, axis=-1, keepdims=True)
        hit = ops.logical_and(
            ops.logical_not(taken), ops.equal(available, best)
        )
        index = ops.min(ops.where(hit, positions, width), axis=-1)
        # Only reachable with NaN inputs; keeps the gather in range.
        index = ops.minimum(index, width - 1)
        taken = ops.logical_or(
            taken, ops.equal(positions, ops.expand_dims(index, -1))
        )
        values.append(best[:, 0])
        indices.append(index)
    return ops.stack(values, axis=-1), ops.stack(indices, axis=-1)


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2BeamSampler(Sampler):
    """Beam search that reproduces the UniLMv2 reference decoder exactly.

    This sampler follows the beam search of Microsoft's s2s-ft decoder
    (`BertForSeq2SeqDecoder.beam_search` in `s2s_ft/modeling_decoding.py`),
    rule for rule, so that a faithful model port gives the same tokens as
    the reference. With `K = num_beams`:

    - Scores are cumulative float32 log-softmax values of the logits.
    - The first generated step takes the top `K` tokens of the single
      distribution of each example. At every later step each beam proposes
      its own top `K` tokens, the `K * K` candidates are scored
      `beam score + token log-prob`, and the best `K` survive. Exact ties
      go to the first candidate in (beam, rank) order.
    - A beam whose last token is an end token is finished: `-10000` is added
      to all of its continuations. It is not removed; it simply loses.
    - `min_length`: at generation step `s` (1-based), if
      `s <= min_length`, the end-token log-prob of every beam is *set to*
      `-10000` (after the n-gram penalty has been added).
    - `no_repeat_ngram_size = n`: for a beam whose generated history `h`
      has at least `n` tokens, every token `w` such that
      `h[-(n-1):] + [w]` already occurs in `h` gets `-10000` added to its
      log-prob, unless `w` is an ignore token; nothing is banned when the
      tail `h[-(n-1):]` contains an ignore token. The first ban can act at
      step `n + 1`. (For `n = 1` the reference's tail is the whole history,
      a quirk of its slicing that is kept here.)
    - Final choice per example: let `F` be the first step at which all `K`
      beams end with an end token (or the last step if that never
      happens). The candidates are every beam ending with an end token at
      steps `0..F` plus all `K` beams at step `F`, each scored
      `score / ((5 + len) / 6) ** length_penalty` when
      `length_penalty > 0` (`len` = generated tokens including the end
      token) and `score` otherwise. The maximum wins, the earliest one
      (scanning steps, then beams) on exact ties.

    The final choice is kept incrementally (a pool of the `K` best
    candidates per example), so no traces are stored; decoding stops early
    once every example has reached its `F`, which cannot change the result.
    Positions after the chosen hypothesis' last token are filled with the
    padding id 0, so the caller can cut at the first end or padding token.

    The loop is an `ops.while_loop` with static shapes, so the sampler can
    be compiled once per input shape with `jax.jit` or `tf.function`; on
    torch the same loop runs eagerly.

    Args:
        num_beams: int. The beam size `K`, at least 1. Defaults to `5`.
        length_penalty: float. GNMT length-penalty exponent, at least 0.
            `0` disables length normalisation. Defaults to `0.0`.
        min_length: int. End tokens are forbidden at the first
            `min_length` generated steps. Defaults to `0`.
        no_repeat_ngram_size: int. Size `n` of the n-grams that may not
            repeat within the generated tokens; `0` turns blocking off.
            Defaults to `0`.
        ngram_ignore_token_ids: list of ints. Token ids (the reference uses
            the id of `"."`) that disable blocking when they occur in the
            `(n - 1)`-token tail and that are never banned. Defaults to
            `None` (no ignore tokens).
        return_all_beams: bool. If `True`, return the `num_beams` best
            final candidates and their (length-normalised) scores, best
            first, instead of the single best sequence. Defaults to
            `False`.
        temperature: float. Logits are divided by it before the
            log-softmax. The reference has no temperature; keep the default
            `1.0` for reference parity.

    Call arguments:
        next: A function `next(prompt, cache, index)` that returns
            `(logits, hidden_states, cache)`. `prompt` is the
            `[batch_size * num_beams, max_length]` token tensor (beam `k` of
            example `b` is row `b * num_beams + k`), `index` the int32
            position being generated. `logits` must be
            `[batch_size * num_beams, vocab_size]`: the scores of the token
            at `prompt[:, index]` given `prompt[:, :index]` (for UniLMv2,
            the LM head at the `[MASK]` slot of step `index`; the previous
            token is `prompt[:, index - 1]`). `hidden_states` is ignored.
            `cache` is any structure of tensors whose leaves have
            `batch_size * num_beams` rows on axis 0; the sampler reorders
            every leaf along axis 0 after each step so that row `r` follows
            the beam now in row `r`.
        prompt: int tensor `[batch_size, max_length]`. Positions `>= index`
            are generated; `max_length - index` is the maximum number of
            generated steps (the reference's `max_tgt_length`).
        cache: optional structure of tensors with `batch_size` rows on axis
            0. Every leaf is repeated `num_beams` times along axis 0 (each
            row `num_beams` times in a row) before the first step.
        index: int or int scalar tensor. First position to generate.
        mask: optional bool tensor `[batch_size, max_length]`. `True` marks
            given prompt tokens. A `True` position at or after `index`
            forces that token for every beam of the example (the beams are
            not re-ranked at that step; the token's log-prob is added to
            their scores). The reference decoder has no such positions.
        stop_token_ids: tuple of end-token ids (required; the reference
            uses `[SEP]`). Every id in it counts as an end token.
        hidden_states: unused.
        model: optional model whose variables `next` uses (for the JAX
            stateless loop).
        return_scores: bool. If `True`, also return the final scores
            (see below) when `return_all_beams` is `False`. Defaults to
            `False`.

    Returns:
        If `return_all_beams` is `False`, an int tensor
        `[batch_size, max_length]`: the prompt with the chosen hypothesis
        written from `index` on and 0 after its last token; with
        `return_scores=True` a tuple `(sequences [batch_size, max_length],
        scores [batch_size])`. If `return_all_beams` is `True`, a tuple
        `(sequences [batch_size, num_beams, max_length],
        scores [batch_size, num_beams])`, best first. The scores are the
        length-normalised final scores: the summed log-probabilities of
        every token written from `index` on (forced prompt tokens
        included), divided by the length penalty when `length_penalty > 0`.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_unilmv2.samplers import UniLMv2BeamSampler

    vocab_size, end_id = 10, 2
    table = np.random.RandomState(0).randn(vocab_size, vocab_size)
    table = keras.ops.convert_to_tensor(table.astype("float32"))

    def next(prompt, cache, index):
        # Toy bigram "model": logits depend on the previous token only.
        previous = keras.ops.take(prompt, index - 1, axis=1)
        return keras.ops.take(table, previous, axis=0), None, cache

    sampler = UniLMv2BeamSampler(
        num_beams=3,
        length_penalty=0.9,
        min_length=1,
        no_repeat_ngram_size=3,
        ngram_ignore_token_ids=[9],
    )
    prompt = np.zeros((2, 8), "int32")
    prompt[:, 0] = 1  # a start token at position 0
    tokens = sampler(next, prompt, index=1, stop_token_ids=(end_id,))
    ```
    """

    def __init__(
        self,
        num_beams=5,
        length_penalty=0.0,
        min_length=0,
        no_repeat_ngram_size=0,
        ngram_ignore_token_ids=None,
        return_all_beams=False,
        temperature=1.0,
        **kwargs,
    ):
        num_beams = _check_int("num_beams", num_beams, minimum=1)
        length_penalty = _check_float(
            "length_penalty", length_penalty, minimum=0.0
        )
        min_length = _check_int("min_length", min_length, minimum=0)
        no_repeat_ngram_size = _check_int(
            "no_repeat_ngram_size", no_repeat_ngram_size, minimum=0
        )
        ngram_ignore_token_ids = _check_ids(
            "ngram_ignore_token_ids", ngram_ignore_token_ids
        )
        if not isinstance(return_all_beams, (bool, np.bool_)):
            raise TypeError(
                "`return_all_beams` must be a bool. "
                f"Received: return_all_beams={return_all_beams!r}"
            )
        temperature = _check_float("temperature", temperature, minimum=0.0)
        if temperature == 0.0:
            raise ValueError(
                "`temperature` must be > 0. "
                f"Received: temperature={temperature}"
            )
        super().__init__(temperature=temperature, **kwargs)
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.min_length = min_length
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.ngram_ignore_token_ids = ngram_ignore_token_ids
        self.return_all_beams = bool(return_all_beams)

    def __call__(
        self,
        next,
        prompt,
        cache=None,
        index=0,
        mask=None,
        stop_token_ids=None,
        hidden_states=None,
        model=None,
        return_scores=False,
    ):
        stop_token_ids = _check_ids("stop_token_ids", stop_token_ids)
        if not stop_token_ids:
            raise ValueError(
                "`UniLMv2BeamSampler` needs the end token: pass "
                "`stop_token_ids`, a non-empty tuple of token ids (the "
                "reference decoder uses the `[SEP]` id). "
                f"Received: stop_token_ids={stop_token_ids!r}"
            )
        num_beams = self.num_beams
        prompt = ops.convert_to_tensor(prompt)
        if len(prompt.shape) != 2:
            raise ValueError(
                "`prompt` must be a rank-2 tensor "
                "[batch_size, max_length]. "
                f"Received: prompt.shape={tuple(prompt.shape)}"
            )
        batch_size, max_length = ops.shape(prompt)[0], ops.shape(prompt)[1]
        index = ops.cast(index, "int32")
        start_index = index
        if mask is None:
            mask = ops.zeros_like(prompt, dtype="bool")
        else:
            mask = ops.cast(mask, "bool")
        has_cache = cache is not None
        cache = cache if has_cache else ()

        def expand(x):
            x = ops.repeat(x, num_beams, axis=0)
            if keras.config.backend() == "torch":
                # With one row, torch's repeat_interleave returns an
                # expanded view (one memory location per row), which the
                # in-place cache writes of generation refuse: copy it.
                x = x.contiguous()
            return x

        original_prompt = prompt
        beam_prompt = expand(prompt)
        cache = tree.map_structure(expand, cache)

        positions = ops.arange(max_length, dtype="int32")
        beam_ids = ops.arange(num_beams, dtype="int32")
        batch_offsets = ops.expand_dims(
            ops.arange(batch_size, dtype="int32") * num_beams, -1
        )
        # Length-penalty divisors ((5 + s + 1) / 6) ** lp for 0-based step s,
        # computed in float64 like the reference, then used in float32.
        lp = self.length_penalty
        if lp > 0 and isinstance(max_length, int):
            divisors = np.array(
                [math.pow((5 + s + 1) / 6.0, lp) for s in range(max_length)],
                dtype="float32",
            )
            divisors = ops.convert_to_tensor(divisors)
        else:
            divisors = None

        def length_divisor(step):
            if divisors is not None:
                return ops.take(divisors, step)
            step = ops.cast(step, "float32")
            return ops.power((6.0 + step) / 6.0, lp)

        def cond(prompt, cache, index, scores, ended, started, done, *_):
            return ops.logical_not(ops.all(done))

        def body(
            prompt,
            cache,
            index,
            scores,
            ended,
            started,
            done,
            pool_sequences,
            pool_scores,
        ):
            step = index - start_index  # 0-based generation step
            logits, _, new_cache = next(prompt, cache, index)
            logits = ops.cast(logits, "float32")
            if self.temperature != 1.0:
                logits = logits / self.temperature
            vocab_size = logits.shape[-1]
            if vocab_size is not None and vocab_size < num_beams:
                raise ValueError(
                    "`num_beams` cannot exceed the vocabulary size. "
                    f"Received: num_beams={num_beams}, "
                    f"vocab_size={vocab_size}"
                )
            log_probs = ops.log_softmax(logits, axis=-1)  # [B*K, V]

            if self.no_repeat_ngram_size > 0:
                banned = self._banned_tokens(
                    prompt, index, start_index, vocab_size
                )
                log_probs = log_probs + ops.where(banned, _PENALTY, 0.0)
            if self.min_length > 0:
                is_end_id = _any_equal(
                    ops.arange(vocab_size, dtype="int32"), stop_token_ids
                )
                block = ops.logical_and(
                    ops.less_equal(step + 1, self.min_length), is_end_id
                )
                log_probs = ops.where(
                    ops.expand_dims(block, 0), _PENALTY, log_probs
                )

            # Each beam proposes its own top K tokens.
            kk_scores, kk_ids = _top_k_first(log_probs, num_beams)
            kk_scores = ops.reshape(kk_scores, (-1, num_beams, num_beams))
            kk_ids = ops.reshape(kk_ids, (-1, num_beams * num_beams))
            # Finished beams get -10000 on every continuation.
            offsets = scores + ops.where(ended, _PENALTY, 0.0)  # [B, K]
            candidates = kk_scores + ops.expand_dims(offsets, -1)
            # Before the first real selection all beams are identical: only
            # beam 0 may propose (the reference's first step).
            identical = ops.logical_and(
                ops.expand_dims(ops.logical_not(started), -1),
                ops.expand_dims(ops.greater(beam_ids, 0), 0),
            )
            candidates = ops.where(
                ops.expand_dims(identical, -1), -np.inf, candidates
            )
            candidates = ops.reshape(candidates, (-1, num_beams * num_beams))
            new_scores, flat = _top_k_first(candidates, num_beams)
            parents = flat // num_beams
            tokens = ops.take_along_axis(kk_ids, flat, axis=1)

            # Given prompt tokens (mask) are forced on every beam.
            forced = ops.take(mask, index, axis=1)  # [B]
            forced_token = ops.cast(
                ops.take(original_prompt, index, axis=1), "int32"
            )
            forced_column = ops.clip(forced_token, 0, vocab_size - 1)
            forced_lp = ops.take_along_axis(
                log_probs,
                ops.expand_dims(ops.repeat(forced_column, num_beams), -1),
                axis=1,
            )
            forced_scores = ops.reshape(forced_lp, (-1, num_beams)) + offsets
            forced_2d = ops.expand_dims(forced, -1)
            new_scores = ops.where(forced_2d, forced_scores, new_scores)
            parents = ops.where(
                forced_2d, ops.expand_dims(beam_ids, 0), parents
            )
            tokens = ops.where(
                forced_2d, ops.expand_dims(forced_token, -1), tokens
            )
            started = ops.logical_or(started, ops.logical_not(forced))

            # Reorder the beams (prompt rows and every cache leaf).
            rows = ops.reshape(parents + batch_offsets, (-1,))
            prompt = ops.take(prompt, rows, axis=0)
            new_cache = tree.map_structure(
                lambda x: ops.take(x, rows, axis=0), new_cache
            )
            prompt = ops.slice_update(
                prompt,
                [0, index],
                ops.reshape(ops.cast(tokens, prompt.dtype), (-1, 1)),
            )
            ended = _any_equal(tokens, stop_token_ids)

            # Incremental final pick: offer this step's eligible entries to
            # a pool of the K best candidates (earlier entries win ties).
            is_last = ops.equal(index, max_length - 1)
            eligible = ops.logical_and(
                ops.expand_dims(ops.logical_not(done), -1),
                ops.logical_or(ended, is_last),
            )
            final_scores = new_scores
            if lp > 0:
                final_scores = new_scores / length_divisor(step)
            final_scores = ops.where(eligible, final_scores, -np.inf)
            keep = ops.logical_or(ops.less_equal(positions, index), mask)
            sequences = ops.where(
                ops.expand_dims(keep, 1),
                ops.reshape(prompt, (-1, num_beams, max_length)),
                ops.zeros((), dtype=prompt.dtype),
            )
            merged_scores = ops.concatenate([pool_scores, final_scores], 1)
            merged_sequences = ops.concatenate(
                [pool_sequences, sequences], axis=1
            )
            pool_scores, picked = _top_k_first(merged_scores, num_beams)
            pool_sequences = ops.take_along_axis(
                merged_sequences, ops.expand_dims(picked, -1), axis=1
            )
            done = ops.logical_or(done, ops.all(ended, axis=-1))
            return (
                prompt,
                new_cache,
                index + 1,
                new_scores,
                ended,
                started,
                done,
                pool_sequences,
                pool_scores,
            )

        loop_vars = (
            beam_prompt,
            cache,
            index,
            ops.zeros((batch_size, num_beams), dtype="float32"),
            ops.zeros((batch_size, num_beams), dtype="bool"),
            ops.zeros((batch_size,), dtype="bool"),
            ops.zeros((batch_size,), dtype="bool"),
            ops.zeros((batch_size, num_beams, max_length), prompt.dtype),
            ops.full((batch_size, num_beams), -np.inf, dtype="float32"),
        )
        outputs = self.run_loop(
            cond,
            body,
            loop_vars=loop_vars,
            maximum_iterations=(max_length - index),
            model=model,
        )
        pool_sequences, pool_scores = outputs[-2], outputs[-1]
        # Nothing was generated (index >= max_length): keep the prompt.
        empty = ops.expand_dims(ops.isneginf(pool_scores), -1)
        pool_sequences = ops.where(
            empty, ops.expand_dims(original_prompt, 1), pool_sequences
        )
        if self.return_all_beams:
            return pool_sequences, pool_scores
        if return_scores:
            return pool_sequences[:, 0, :], pool_scores[:, 0]
        return pool_sequences[:, 0, :]

    def _banned_tokens(self, prompt, index, start_index, vocab_size):
        """Bool `[rows, vocab_size]`: tokens the n-gram rule forbids now.

        The history of a row is `prompt[:, start_index:index]`.
        """
        n = self.no_repeat_ngram_size
        ignore = self.ngram_ignore_token_ids
        num_rows = ops.shape(prompt)[0]
        max_length = prompt.shape[-1]
        positions = ops.expand_dims(ops.arange(max_length, dtype="int32"), 0)
        tokens = ops.cast(prompt, "int32")

        # Start i of an earlier n-gram: its first n-1 tokens must equal the
        # tail, and its last token prompt[i + n - 1] must be in the history.
        matches = ops.logical_and(
            ops.greater_equal(positions, start_index),
            ops.less(positions + (n - 1), index),
        )
        for j in range(n - 1):
            tail_position = index - (n - 1) + j
            tail_token = ops.sum(
                ops.where(ops.equal(positions, tail_position), tokens, 0),
                axis=1,
                keepdims=True,
            )
            shifted = ops.pad(
                tokens[:, j:], [[0, 0], [0, j]], constant_values=-1
            )
            matches = ops.logical_and(matches, ops.equal(shifted, tail_token))
        following = ops.pad(
            tokens[:, n - 1 :], [[0, 0], [0, n - 1]], constant_values=0
        )
        following = ops.clip(following, 0, vocab_size - 1)
        if ignore:
            # The reference's tail is `seq[-(n - 1):]`, i.e. the whole
            # history when n == 1.
            tail_start = start_index if n == 1 else index - (n - 1)
            in_tail = ops.logical_and(
                ops.greater_equal(positions, tail_start),
                ops.less(positions, index),
            )
            tail_has_ignore = ops.any(
                ops.logical_and(in_tail, _any_equal(tokens, ignore)),
                axis=1,
                keepdims=True,
            )
            matches = ops.logical_and(
                matches, ops.logical_not(tail_has_ignore)
            )
            matches = ops.logical_and(
                matches, ops.logical_not(_any_equal(following, ignore))
            )
        # Scatter into [rows, vocab_size + 1]; non-matches go to the spare
        # last column, so every write stores the same value 1.
        columns = ops.where(matches, following, vocab_size)
        row_ids = ops.broadcast_to(
            ops.expand_dims(ops.arange(num_rows, dtype="int32"), -1),
            ops.shape(columns),
        )
        scatter_indices = ops.reshape(
            ops.stack([row_ids, columns], axis=-1), (-1, 2)
        )
        banned = ops.scatter_update(
            ops.zeros((num_rows, vocab_size + 1), dtype="int32"),
            scatter_indices,
            ops.ones((ops.shape(scatter_indices)[0],), dtype="int32"),
        )
        return ops.greater(banned[:, :vocab_size], 0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_beams": self.num_beams,
                "length_penalty": self.length_penalty,
                "min_length": self.min_length,
                "no_repeat_ngram_size": self.no_repeat_ngram_size,
                "ngram_ignore_token_ids": list(self.ngram_ignore_token_ids),
                "return_all_beams": self.return_all_beams,
            }
        )
        return config


def _check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Integral
    ):
        raise TypeError(
            f"`{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value}"
        )
    return int(value)


def _check_float(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Real
    ):
        raise TypeError(
            f"`{name}` must be a number >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise ValueError(
            f"`{name}` must be a finite number >= {minimum}. "
            f"Received: {name}={value}"
        )
    return value


def _check_ids(name, value):
    """`None`, an int, or an iterable of ints >= 0 -> tuple of ints."""
    if value is None:
        return ()
    if isinstance(value, numbers.Integral) and not isinstance(
        value, (bool, np.bool_)
    ):
        value = (value,)
    try:
        ids = tuple(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a list or tuple of token ids. "
            f"Received: {name}={value!r}"
        ) from None
    for token_id in ids:
        if (
            isinstance(token_id, (bool, np.bool_))
            or not isinstance(token_id, numbers.Integral)
            or token_id < 0
        ):
            raise ValueError(
                f"`{name}` must contain non-negative integer token ids. "
                f"Received: {name}={value!r}"
            )
    return tuple(int(token_id) for token_id in ids)
