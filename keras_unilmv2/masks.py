"""Attention-mask, position-id and segment-id rules of UniLMv2.

Every job of UniLMv2 (PMLM pre-training, pseudo-mask sequence-to-sequence
training, incremental decoding) runs the same encoder; the jobs differ only in
how the tokens are laid out, which position ids they get and which token may
attend to which. Those rules live here, each in one small function whose
docstring states the rule in words.

Two array libraries:

- `ops="tf"` (the default): TensorFlow ops. Preprocessors use this; it works
  eagerly and inside `tf.data` / `tf.function` graphs, whatever the Keras
  backend is.
- `ops="keras"`: `keras.ops`, for use inside a model at run time on any
  backend (e.g. building a decoding mask in a `generate_step`).

Both give the same values. TensorFlow is imported only when `ops="tf"` is
used, so `import keras_unilmv2` works without it.

Conventions:

- Masks are boolean `[..., query, key]` tensors: element `[..., i, j]` is
  `True` when query slot `i` may attend to key slot `j`. Cast them with
  `ops.cast(mask, "int32")` to get the 0/1 masks of the reference code.
- Id tensors are int32. Leading batch dimensions are optional: a function
  given `[S]`-shaped inputs returns one example, given `[B, S]` a batch
  (scalars such as real lengths broadcast the same way: `n` or `[B]`).
"""

import keras
import numpy as np

from keras_unilmv2.utils.checks import check_int

# Kinds of slot in a blockwise (PMLM) layout, see `pmlm_attention_mask`.
CONTEXT_SLOT = 0
PSEUDO_SLOT = 1
ORIGINAL_SLOT = 2
PADDING_SLOT = 3


class _ArrayOps:
    """The few array functions the rules need; subclasses pick a library."""

    def broadcast_batch(self, xs):
        """Broadcast the leading (batch) dims of tensors; keep the last.

        Done by adding zeros of shape `[..., 1]`, so it needs no static
        shapes (works on symbolic batch dimensions too).
        """
        zeros = None
        for x in xs:
            z = self.zeros_like(self.int32(x[..., :1]))
            zeros = z if zeros is None else zeros + z
        out = []
        for x in xs:
            if keras.backend.standardize_dtype(x.dtype) == "bool":
                out.append(self.logical_or(x, self.bool(zeros)))
            else:
                out.append(x + zeros)
        return out


class _TensorFlowOps(_ArrayOps):
    """The array functions on TensorFlow."""

    def __init__(self):
        try:
            import tensorflow as tf
        except ImportError as e:
            raise ImportError(
                "`ops='tf'` needs TensorFlow (`pip install tensorflow`). "
                "Pass `ops='keras'` to build masks with `keras.ops`."
            ) from e
        self.tf = tf

    def int32(self, x):
        return self.tf.cast(self.tf.convert_to_tensor(x), "int32")

    def bool(self, x):
        return self.tf.cast(self.tf.convert_to_tensor(x), "bool")

    def arange(self, n):
        return self.tf.range(n, dtype="int32")

    def concat(self, xs):
        return self.tf.concat(xs, axis=-1)

    def expand(self, x, axis):
        return self.tf.expand_dims(x, axis)

    def where(self, condition, x, y):
        return self.tf.where(condition, x, y)

    def sum(self, x, axis):
        return self.tf.reduce_sum(x, axis=axis)

    def any(self, x, axis):
        return self.tf.reduce_any(x, axis=axis)

    def max(self, x, axis):
        return self.tf.reduce_max(x, axis=axis)

    def cumsum(self, x, axis):
        return self.tf.cumsum(x, axis=axis)

    def zeros_like(self, x):
        return self.tf.zeros_like(x)

    def logical_and(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = self.tf.logical_and(out, x)
        return out

    def logical_or(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = self.tf.logical_or(out, x)
        return out

    def logical_not(self, x):
        return self.tf.logical_not(x)

    def equal(self, x, y):
        return self.tf.equal(x, y)

    def not_equal(self, x, y):
        return self.tf.not_equal(x, y)

    def less(self, x, y):
        return self.tf.less(x, y)

    def less_equal(self, x, y):
        return self.tf.less_equal(x, y)

    def greater(self, x, y):
        return self.tf.greater(x, y)

    def greater_equal(self, x, y):
        return self.tf.greater_equal(x, y)


class _KerasOps(_ArrayOps):
    """The same functions on `keras.ops` (any backend)."""

    def __init__(self):
        self.o = keras.ops

    def int32(self, x):
        return self.o.cast(self.o.convert_to_tensor(x), "int32")

    def bool(self, x):
        return self.o.cast(self.o.convert_to_tensor(x), "bool")

    def arange(self, n):
        return self.o.arange(n, dtype="int32")

    def concat(self, xs):
        return self.o.concatenate(xs, axis=-1)

    def expand(self, x, axis):
        return self.o.expand_dims(x, axis)

    def where(self, condition, x, y):
        return self.o.where(condition, x, y)

    def sum(self, x, axis):
        return self.o.sum(x, axis=axis)

    def any(self, x, axis):
        return self.o.any(x, axis=axis)

    def max(self, x, axis):
        return self.o.max(x, axis=axis)

    def cumsum(self, x, axis):
        return self.o.cumsum(x, axis=axis)

    def zeros_like(self, x):
        return self.o.zeros_like(x)

    def logical_and(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = self.o.logical_and(out, x)
        return out

    def logical_or(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = self.o.logical_or(out, x)
        return out

    def logical_not(self, x):
        return self.o.logical_not(x)

    def equal(self, x, y):
        return self.o.equal(x, y)

    def not_equal(self, x, y):
        return self.o.not_equal(x, y)

    def less(self, x, y):
        return self.o.less(x, y)

    def less_equal(self, x, y):
        return self.o.less_equal(x, y)

    def greater(self, x, y):
        return self.o.greater(x, y)

    def greater_equal(self, x, y):
        return self.o.greater_equal(x, y)


_OPS_CACHE = {}


def _ops(ops):
    if ops not in ("tf", "keras"):
        raise ValueError(
            "`ops` must be 'tf' (TensorFlow ops, for tf.data) or 'keras' "
            f"(keras.ops, for use inside a model). Received: ops={ops!r}"
        )
    if ops not in _OPS_CACHE:
        _OPS_CACHE[ops] = _TensorFlowOps() if ops == "tf" else _KerasOps()
    return _OPS_CACHE[ops]


def _check_length(name, value, minimum=1):
    check_int(name, value, minimum, hint=" (a Python int: a static block length)")


def _static_length(name, tensor):
    length = tensor.shape[-1]
    if length is None:
        raise ValueError(
            f"The last dimension of `{name}` must be static (fixed, padded "
            f"length). Received a tensor of shape {tensor.shape}."
        )
    return int(length)


def _block_positions(xp, num_tokens, length, offset=None):
    """`offset + i` on the first `num_tokens` slots of a block, 0 on pads.

    Returns the positions and the real-slot flags, both `[..., length]`.
    """
    index = xp.arange(length)
    real = xp.less(index, xp.expand(num_tokens, -1))
    if offset is not None:
        index = index + xp.expand(offset, -1)
    return xp.where(real, index, 0), real


# -- The pseudo-mask ("w") rule of s2s-ft -------------------------------------


def pseudo_mask_attention_mask(weights, valid, *, ops="tf"):
    """The pseudo-mask visibility rule of s2s-ft, from per-slot weights.

    Every slot carries a weight `w` and a flag `valid`: source slots
    `w = 0`, a target slot with position id `p` has `w = p`, its pseudo copy
    `w = -p`, and padding slots `w = 0`. A key is a *true token* if
    `w >= 0` and it is valid (a real, non-padding source or target token).

    - A query with `w >= 0` (source, target and every padding slot) sees the
      true tokens whose weight is `<=` its own: the source sees the whole
      real source, the target slot at position `p` sees the source and the
      target slots at positions `<= p`, padding slots see the source only.
    - A pseudo query with `w = -p` sees the true tokens with weight `< p`
      (the source and the targets strictly before `p`) plus every key with
      exactly its own weight (itself).

    Nothing sees a pseudo slot except the pseudo slot itself, padding keys
    are never visible, and no row is empty as long as the source has a real
    token.

    Args:
        weights: int `[..., L]`, the weight `w` of every slot.
        valid: bool `[..., L]`, `True` for real (non-padding) source and
            target slots. Its value on pseudo slots does not matter.
        ops: `"tf"` or `"keras"`, see the module docstring.

    Returns:
        bool `[..., L, L]`, `True` where query `i` may attend to key `j`.
    """
    xp = _ops(ops)
    weights = xp.int32(weights)
    valid = xp.bool(valid)
    w_query = xp.expand(weights, -1)
    w_key = xp.expand(weights, -2)
    true_key = xp.logical_and(
        xp.greater_equal(w_key, 0), xp.expand(valid, -2)
    )
    from_true = xp.logical_and(
        xp.greater_equal(w_query, 0), true_key, xp.less_equal(w_key, w_query)
    )
    is_pseudo_query = xp.less(w_query, 0)
    from_pseudo = xp.logical_and(
        is_pseudo_query, true_key, xp.greater(-w_key, w_query)
    )
    itself = xp.logical_and(is_pseudo_query, xp.equal(w_key, w_query))
    return xp.logical_or(from_true, from_pseudo, itself)


# -- s2s-ft training layout: [source S | target T | pseudo T] -----------------


def seq2seq_token_type_ids(
    source_length,
    target_length,
    source_type_id=0,
    target_type_id=1,
    *,
    ops="tf",
):
    """Segment ids of the `[source | target | pseudo]` layout.

    The rule: `source_type_id` on every slot of the source block (padding
    included), `target_type_id` on every slot of the target and pseudo
    blocks (padding included).

    Args:
        source_length: int, the padded source length S.
        target_length: int, the padded target length T.
        source_type_id: int, the source segment id (0 in UniLMv2 configs).
        target_type_id: int, the target segment id (1 in UniLMv2 configs).
        ops: `"tf"` or `"keras"`.

    Returns:
        int32 `[S + 2T]`; broadcast it against a batch if needed.
    """
    _check_length("source_length", source_length)
    _check_length("target_length", target_length)
    xp = _ops(ops)
    source = xp.zeros_like(xp.arange(source_length)) + source_type_id
    target = xp.zeros_like(xp.arange(2 * target_length)) + target_type_id
    return xp.concat([source, target])


def seq2seq_position_ids(
    num_source_tokens,
    num_target_tokens,
    source_length,
    target_length,
    *,
    ops="tf",
):
    """Position ids of the `[source | target | pseudo]` layout.

    The rule: real source tokens get `0 .. n_s - 1`; real target tokens
    continue at `n_s .. n_s + n_t - 1`; the pseudo token standing for target
    token `t` shares its position `n_s + t`; every padding slot gets 0.

    Args:
        num_source_tokens: int or int `[B]`, real source length n_s
            (with `[CLS]` and `[SEP]`).
        num_target_tokens: int or int `[B]`, real target length n_t
            (with the final `[SEP]`).
        source_length: int, padded source length S.
        target_length: int, padded target length T.
        ops: `"tf"` or `"keras"`.

    Returns:
        int32 `[..., S + 2T]`.
    """
    _check_length("source_length", source_length)
    _check_length("target_length", target_length)
    xp = _ops(ops)
    n_s = xp.int32(num_source_tokens)
    n_t = xp.int32(num_target_tokens)
    source, _ = _block_positions(xp, n_s, source_length)
    target, _ = _block_positions(xp, n_t, target_length, offset=n_s)
    source, target = xp.broadcast_batch([source, target])
    return xp.concat([source, target, target])


def seq2seq_attention_mask(
    num_source_tokens,
    num_target_tokens,
    source_length,
    target_length,
    *,
    ops="tf",
):
    """Attention mask of the `[source | target | pseudo]` layout (s2s-ft).

    The rule of `pseudo_mask_attention_mask` with `w = 0` on the source
    block, `w = p` on target slots and `w = -p` on pseudo slots (`p` = the
    slot's position id, 0 on padding), and `valid` = real source and target
    tokens. In words:

    - source tokens see the real source (bidirectional);
    - target token `t` sees the real source and target tokens `<= t`;
    - pseudo token `t` sees the real source, target tokens `< t` and itself;
    - every padding row sees the real source only;
    - nothing sees a pseudo token but itself; padding keys are never seen.

    Args:
        num_source_tokens: int or int `[B]`, real source length n_s.
        num_target_tokens: int or int `[B]`, real target length n_t.
        source_length: int, padded source length S.
        target_length: int, padded target length T.
        ops: `"tf"` or `"keras"`.

    Returns:
        bool `[..., S + 2T, S + 2T]`.
    """
    _check_length("source_length", source_length)
    _check_length("target_length", target_length)
    xp = _ops(ops)
    n_s = xp.int32(num_source_tokens)
    n_t = xp.int32(num_target_tokens)
    _, source_valid = _block_positions(xp, n_s, source_length)
    target_pos, target_valid = _block_positions(
        xp, n_t, target_length, offset=n_s
    )
    source_w = xp.zeros_like(xp.int32(source_valid))
    source_w, target_pos = xp.broadcast_batch([source_w, target_pos])
    source_valid, target_valid = xp.broadcast_batch(
        [source_valid, target_valid]
    )
    weights = xp.concat([source_w, target_pos, -target_pos])
    valid = xp.concat([source_valid, target_valid, target_valid])
    return pseudo_mask_attention_mask(weights, valid, ops=ops)


def seq2seq_inputs(
    source_ids,
    target_ids,
    pseudo_ids,
    num_source_tokens,
    num_target_tokens,
    source_type_id=0,
    target_type_id=1,
    *,
    ops="tf",
):
    """The full s2s-ft training input from padded source/target/pseudo blocks.

    Concatenates `[source | target | pseudo]` and adds the segment ids,
    position ids and attention mask of `seq2seq_token_type_ids`,
    `seq2seq_position_ids` and `seq2seq_attention_mask`.

    Args:
        source_ids: int `[..., S]`, `[CLS] source [SEP]` then padding.
        target_ids: int `[..., T]`, `target [SEP]` then padding.
        pseudo_ids: int `[..., T]`, one pseudo token per real target token
            (`[MASK]`, or a noised id), then padding.
        num_source_tokens: int or int `[B]`, real source length n_s.
        num_target_tokens: int or int `[B]`, real target length n_t.
        source_type_id: int, segment id of the source block.
        target_type_id: int, segment id of the target and pseudo blocks.
        ops: `"tf"` or `"keras"`.

    Returns:
        A dict with `token_ids`, `segment_ids`, `position_ids` (int32
        `[..., S + 2T]`), `padding_mask` (bool `[..., S + 2T]`, real source,
        target and pseudo slots) and `attention_mask` (bool
        `[..., S + 2T, S + 2T]`).

    Example:
    ```python
    inputs = keras_unilmv2.masks.seq2seq_inputs(
        source_ids=[101, 1037, 102, 0],   # [CLS] a [SEP] pad
        target_ids=[1038, 102, 0],        # y1 [SEP] pad
        pseudo_ids=[103, 103, 0],         # [P] [P] pad
        num_source_tokens=3,
        num_target_tokens=2,
    )
    inputs["position_ids"]  # [0, 1, 2, 0, 3, 4, 0, 3, 4, 0]
    ```
    """
    xp = _ops(ops)
    source_ids = xp.int32(source_ids)
    target_ids = xp.int32(target_ids)
    pseudo_ids = xp.int32(pseudo_ids)
    source_length = _static_length("source_ids", source_ids)
    target_length = _static_length("target_ids", target_ids)
    if _static_length("pseudo_ids", pseudo_ids) != target_length:
        raise ValueError(
            "`pseudo_ids` must have the padded length of `target_ids`. "
            f"Received shapes {pseudo_ids.shape} and {target_ids.shape}."
        )
    n_s = xp.int32(num_source_tokens)
    n_t = xp.int32(num_target_tokens)
    token_ids = xp.concat([source_ids, target_ids, pseudo_ids])
    position_ids = seq2seq_position_ids(
        n_s, n_t, source_length, target_length, ops=ops
    )
    segment_ids = seq2seq_token_type_ids(
        source_length, target_length, source_type_id, target_type_id, ops=ops
    )
    _, source_valid = _block_positions(xp, n_s, source_length)
    _, target_valid = _block_positions(xp, n_t, target_length)
    source_valid, target_valid = xp.broadcast_batch(
        [source_valid, target_valid]
    )
    padding_mask = xp.concat([source_valid, target_valid, target_valid])
    token_ids, position_ids, segment_ids = xp.broadcast_batch(
        [token_ids, position_ids, segment_ids]
    )
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "position_ids": position_ids,
        "padding_mask": padding_mask,
        "attention_mask": seq2seq_attention_mask(
            n_s, n_t, source_length, target_length, ops=ops
        ),
    }


# -- s2s-ft decoding layout: [source S | target slots T] ----------------------


def seq2seq_decoding_position_ids(
    num_source_tokens, source_length, target_length, *, ops="tf"
):
    """Position ids of the decoding layout `[source S | target slots T]`.

    The rule: real source tokens get `0 .. n_s - 1`, source padding 0, and
    target slot `t` (the `t`-th generated token, or the `[MASK]` that
    predicts it) gets `n_s + t`.

    Args:
        num_source_tokens: int or int `[B]`, real source length n_s.
        source_length: int, padded source length S.
        target_length: int, number of target slots T (the maximum number of
            generated tokens).
        ops: `"tf"` or `"keras"`.

    Returns:
        int32 `[..., S + T]`.
    """
    _check_length("source_length", source_length)
    _check_length("target_length", target_length)
    xp = _ops(ops)
    n_s = xp.int32(num_source_tokens)
    source, _ = _block_positions(xp, n_s, source_length)
    target = xp.arange(target_length) + xp.expand(n_s, -1)
    source, target = xp.broadcast_batch([source, target])
    return xp.concat([source, target])


def seq2seq_decoding_attention_mask(
    num_source_tokens, source_length, target_length, *, ops="tf"
):
    """Attention mask of the decoding layout `[source S | target slots T]`.

    The rule (the pseudo-mask rule with `w = 0` on the source and
    `w = t + 1` on target slot `t`, every target slot valid): every row sees
    the real source; target slot `t` also sees target slots `<= t` (causal,
    itself included); source rows (real or padding) see no target slot;
    source padding keys are never visible. A `[MASK]` placed at slot `t`
    therefore sees the source and the generated tokens before it.

    Args:
        num_source_tokens: int or int `[B]`, real source length n_s.
        source_length: int, padded source length S.
        target_length: int, number of target slots T.
        ops: `"tf"` or `"keras"`.

    Returns:
        bool `[..., S + T, S + T]`.
    """
    _check_length("source_length", source_length)
    _check_length("target_length", target_length)
    xp = _ops(ops)
    n_s = xp.int32(num_source_tokens)
    _, source_valid = _block_positions(xp, n_s, source_length)
    target_w = xp.arange(target_length) + 1
    target_valid = xp.greater(target_w, 0)
    source_w = xp.zeros_like(xp.int32(source_valid))
    source_w, target_w = xp.broadcast_batch([source_w, target_w])
    source_valid, target_valid = xp.broadcast_batch(
        [source_valid, target_valid]
    )
    weights = xp.concat([source_w, target_w])
    valid = xp.concat([source_valid, target_valid])
    return pseudo_mask_attention_mask(weights, valid, ops=ops)


# -- PMLM (blockwise pseudo-masked LM) layout ---------------------------------


def pmlm_attention_mask(slot_kind, slot_step, *, ops="tf"):
    """The blockwise pseudo-mask rule of PMLM pre-training (paper Figure 3).

    Every slot has a kind: `CONTEXT_SLOT` (the corrupted text, `[M]`
    included), `PSEUDO_SLOT` (`[P]` of factorization step k),
    `ORIGINAL_SLOT` (the original token re-appended at step k) or
    `PADDING_SLOT`; pseudo and original slots also carry their step k >= 1.
    Writing C for the context, P_k and O_k for the pseudo and original
    blocks of step k:

    | query | may attend to |
    |---|---|
    | C | C |
    | P_k | C, O_1 .. O_{k-1}, P_k |
    | O_k | C, O_1 .. O_k |
    | padding | C |

    So the context never sees a pseudo or original slot, pseudo slots see
    each other only within their own step, no slot sees another step's
    pseudo block, padding keys are never visible, and padding rows see the
    context (no row is empty when the context has a real token).

    The s2s-ft mask is the special case with context = source, O = target,
    P = pseudo and step = the target position.

    Args:
        slot_kind: int `[..., L]`, one of the `*_SLOT` constants per slot.
        slot_step: int `[..., L]`, the step k of pseudo and original slots
            (ignored on context and padding slots).
        ops: `"tf"` or `"keras"`.

    Returns:
        bool `[..., L, L]`.
    """
    xp = _ops(ops)
    kind = xp.int32(slot_kind)
    step = xp.int32(slot_step)
    q_kind, k_kind = xp.expand(kind, -1), xp.expand(kind, -2)
    q_step, k_step = xp.expand(step, -1), xp.expand(step, -2)
    key_context = xp.equal(k_kind, CONTEXT_SLOT)
    key_original = xp.equal(k_kind, ORIGINAL_SLOT)
    key_pseudo = xp.equal(k_kind, PSEUDO_SLOT)
    pseudo_row = xp.logical_and(
        xp.equal(q_kind, PSEUDO_SLOT),
        xp.logical_or(
            key_context,
            xp.logical_and(key_original, xp.less(k_step, q_step)),
            xp.logical_and(key_pseudo, xp.equal(k_step, q_step)),
        ),
    )
    original_row = xp.logical_and(
        xp.equal(q_kind, ORIGINAL_SLOT),
        xp.logical_or(
            key_context,
            xp.logical_and(key_original, xp.less_equal(k_step, q_step)),
        ),
    )
    other_row = xp.logical_and(
        xp.logical_or(
            xp.equal(q_kind, CONTEXT_SLOT), xp.equal(q_kind, PADDING_SLOT)
        ),
        key_context,
    )
    return xp.logical_or(pseudo_row, original_row, other_row)


def pmlm_layout(
    context_ids,
    context_padding_mask,
    masked_positions,
    masked_steps,
    masked_ids,
    pseudo_token_id,
    pad_token_id=0,
    drop_last_step_originals=False,
    *,
    with_attention_mask=True,
    ops="tf",
):
    """The PMLM input layout (paper Figure 2) with its mask and positions.

    Layout of length `L = N + 2K` (N = padded context length, K = padded
    number of masked tokens), in this order:

    1. the N context slots: the corrupted text (`[M]` at masked positions)
       as given in `context_ids`, padding included;
    2. for every factorization step k = 1, 2, ... in order: `[P]` x |M_k|
       (the pseudo block P_k), then the original tokens x_{M_k} (the
       original block O_k), each block in the order the tokens are listed
       in `masked_positions`;
    3. padding up to L.

    Position ids: real context slot i gets i, context padding 0, both the
    `[P]` and the original copy of the token masked at position p get p,
    trailing padding 0. Segment ids are all 0. The attention mask is
    `pmlm_attention_mask` of the slot kinds and steps.

    The original tokens of the last step are seen by no pseudo token (only
    by themselves), so they change no prediction. With
    `drop_last_step_originals=True` their slots become padding instead
    (same length L, those rows and columns masked out).

    Args:
        context_ids: int `[..., N]`, the corrupted context.
        context_padding_mask: bool `[..., N]`, `True` on real context slots.
        masked_positions: int `[..., K]`, the context position of every
            masked token; entries with step 0 are padding.
        masked_steps: int `[..., K]`, the factorization step (1-based) of
            every masked token, 0 for padding entries. Tokens with the same
            step form one block; steps may be given in any order and need
            not be contiguous numbers.
        masked_ids: int `[..., K]`, the original token of every masked
            position (put on the original slots).
        pseudo_token_id: int, the id of `[P]` (UniLMv2 uses `[MASK]`).
        pad_token_id: int, the id put on padding slots after the context.
        drop_last_step_originals: bool, see above. Defaults to `False`.
        with_attention_mask: bool, whether to build the dense
            `attention_mask` (`[..., L, L]`). The slot descriptors
            `slot_kind` and `slot_step` determine it
            (`pmlm_attention_mask`), so a pipeline that feeds `UniLMv2PMLM`
            passes `False` and lets the model build it on the device.
            Defaults to `True`.
        ops: `"tf"` or `"keras"`.

    Returns:
        A dict with `token_ids`, `segment_ids`, `position_ids`
        (int32 `[..., L]`), `padding_mask` (bool `[..., L]`, every
        non-padding slot), `attention_mask` (bool `[..., L, L]`; only with
        `with_attention_mask=True`),
        `pseudo_positions` (int32 `[..., K]`: the layout slot of the `[P]`
        of every masked token, 0 for padding entries), `slot_kind` and
        `slot_step` (int32 `[..., L]`).

    Example:
    ```python
    # x1 [M] x3 [M] [M] x6 with blocks {1} and {3, 4}; order {3, 4} -> {1}.
    layout = keras_unilmv2.masks.pmlm_layout(
        context_ids=[11, 103, 13, 103, 103, 16],
        context_padding_mask=[True] * 6,
        masked_positions=[3, 4, 1],
        masked_steps=[1, 1, 2],
        masked_ids=[14, 15, 12],
        pseudo_token_id=103,
    )
    layout["token_ids"]
    # [11, 103, 13, 103, 103, 16, 103, 103, 14, 15, 103, 12]
    layout["position_ids"]  # [0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1, 1]
    ```
    """
    xp = _ops(ops)
    context_ids = xp.int32(context_ids)
    context_real = xp.bool(context_padding_mask)
    positions = xp.int32(masked_positions)
    steps = xp.int32(masked_steps)
    originals = xp.int32(masked_ids)
    n = _static_length("context_ids", context_ids)
    k = _static_length("masked_positions", positions)
    if n < 1 or k < 1:
        raise ValueError(
            "`context_ids` and `masked_positions` must each have at least "
            f"one slot. Received shapes {context_ids.shape} and "
            f"{positions.shape}."
        )
    for name, tensor in (("masked_steps", steps), ("masked_ids", originals)):
        if _static_length(name, tensor) != k:
            raise ValueError(
                f"`{name}` must have the length of `masked_positions` "
                f"({k}). Received shape {tensor.shape}."
            )

    valid = xp.greater(steps, 0)  # [..., K]
    valid_j = xp.expand(valid, -2)  # [..., 1, K] (other token j)
    step_i, step_j = xp.expand(steps, -1), xp.expand(steps, -2)
    same_step = xp.logical_and(valid_j, xp.equal(step_j, step_i))
    earlier_step = xp.logical_and(valid_j, xp.less(step_j, step_i))
    index = xp.arange(k)
    listed_before = xp.less(xp.expand(index, -2), xp.expand(index, -1))
    # Tokens of earlier steps, tokens of this step, and this token's rank
    # inside its step.
    offset = xp.sum(xp.int32(earlier_step), axis=-1)
    size = xp.sum(xp.int32(same_step), axis=-1)
    rank = xp.sum(xp.int32(xp.logical_and(same_step, listed_before)), -1)
    pseudo_slot = n + 2 * offset + rank
    original_slot = pseudo_slot + size
    last_step = xp.max(xp.where(valid, steps, 0), axis=-1)
    keep_original = valid
    if drop_last_step_originals:
        keep_original = xp.logical_and(
            valid, xp.not_equal(steps, xp.expand(last_step, -1))
        )

    # For each appended slot n + r (r < 2K), which token sits there.
    slot = xp.expand(xp.arange(2 * k) + n, -1)  # [2K, 1]
    at_pseudo = xp.logical_and(
        xp.expand(valid, -2), xp.equal(slot, xp.expand(pseudo_slot, -2))
    )  # [..., 2K, K]
    at_original = xp.logical_and(
        xp.expand(keep_original, -2),
        xp.equal(slot, xp.expand(original_slot, -2)),
    )
    at_any = xp.logical_or(at_pseudo, at_original)

    def pick(values, where):
        chosen = xp.where(where, xp.expand(values, -2), 0)
        return xp.sum(chosen, axis=-1)

    is_pseudo = xp.any(at_pseudo, axis=-1)
    is_original = xp.any(at_original, axis=-1)
    tail_ids = xp.where(
        is_pseudo,
        pseudo_token_id,
        xp.where(is_original, pick(originals, at_original), pad_token_id),
    )
    tail_positions = pick(positions, at_any)
    tail_steps = pick(steps, at_any)
    tail_kind = xp.where(
        is_pseudo,
        PSEUDO_SLOT,
        xp.where(is_original, ORIGINAL_SLOT, PADDING_SLOT),
    )

    context_index = xp.arange(n)
    context_positions = xp.where(context_real, context_index, 0)
    context_kind = xp.where(context_real, CONTEXT_SLOT, PADDING_SLOT)
    context_steps = xp.zeros_like(context_positions)

    context_ids, tail_ids = xp.broadcast_batch([context_ids, tail_ids])
    context_positions, tail_positions = xp.broadcast_batch(
        [context_positions, tail_positions]
    )
    context_kind, tail_kind = xp.broadcast_batch([context_kind, tail_kind])
    context_steps, tail_steps = xp.broadcast_batch(
        [context_steps, tail_steps]
    )
    token_ids = xp.concat([context_ids, tail_ids])
    position_ids = xp.concat([context_positions, tail_positions])
    slot_kind = xp.concat([context_kind, tail_kind])
    slot_step = xp.concat([context_steps, tail_steps])
    layout = {
        "token_ids": token_ids,
        "segment_ids": xp.zeros_like(token_ids),
        "position_ids": position_ids,
        "padding_mask": xp.not_equal(slot_kind, PADDING_SLOT),
        "pseudo_positions": xp.where(valid, pseudo_slot, 0),
        "slot_kind": slot_kind,
        "slot_step": slot_step,
    }
    if with_attention_mask:
        layout["attention_mask"] = pmlm_attention_mask(
            slot_kind, slot_step, ops=ops
        )
    return layout


# The inputs of `UniLMv2PMLM` (and outputs `x` of `UniLMv2PMLMPreprocessor`):
# O(L) per-slot descriptors, no dense mask.
PMLM_MODEL_INPUTS = (
    "token_ids",
    "position_ids",
    "slot_kind",
    "slot_step",
    "mask_positions",
    "pseudo_positions",
)


def pmlm_backbone_inputs(inputs, *, ops="keras"):
    """The backbone inputs of a PMLM example, from its per-slot descriptors.

    `UniLMv2PMLM` takes O(L) inputs per example (see `PMLM_MODEL_INPUTS`):
    token ids, position ids and, per slot, its kind (`CONTEXT_SLOT`,
    `PSEUDO_SLOT`, `ORIGINAL_SLOT`, `PADDING_SLOT`) and factorization step.
    This function expands them into what `UniLMv2Backbone` reads: segment
    ids (all 0), the padding mask (every non-padding slot) and the dense
    3-D attention mask of `pmlm_attention_mask`. The model calls it in its
    graph (`ops="keras"`), so the `[L, L]` mask is built on the device and
    never shipped from the host; tests and pictures that want the dense mask
    call it (or `pmlm_attention_mask`) on the same descriptors.

    Args:
        inputs: a dict with at least `token_ids`, `position_ids`,
            `slot_kind` and `slot_step` (int `[..., L]`).
        ops: `"keras"` (the default, e.g. inside a model) or `"tf"`.

    Returns:
        A dict with `token_ids`, `segment_ids`, `position_ids` (int32
        `[..., L]`), `padding_mask` (bool `[..., L]`) and `attention_mask`
        (bool `[..., L, L]`).

    Example:
    ```python
    layout = keras_unilmv2.masks.pmlm_layout(
        [11, 103, 13, 16], [True] * 4, [1], [1], [12], pseudo_token_id=103,
        with_attention_mask=False,
    )
    dense = keras_unilmv2.masks.pmlm_backbone_inputs(layout, ops="tf")
    dense["attention_mask"].shape  # (6, 6)
    ```
    """
    if not isinstance(inputs, dict):
        raise TypeError(
            "`inputs` must be a dict of PMLM inputs (token_ids, "
            "position_ids, slot_kind, slot_step). Received: inputs of type "
            f"{type(inputs).__name__}"
        )
    missing = [
        key
        for key in ("token_ids", "position_ids", "slot_kind", "slot_step")
        if key not in inputs
    ]
    if missing:
        raise ValueError(
            f"`inputs` is missing the PMLM inputs {missing}. Received keys: "
            f"{sorted(inputs)}"
        )
    xp = _ops(ops)
    token_ids = xp.int32(inputs["token_ids"])
    kind = xp.int32(inputs["slot_kind"])
    return {
        "token_ids": token_ids,
        "segment_ids": xp.zeros_like(token_ids),
        "position_ids": xp.int32(inputs["position_ids"]),
        "padding_mask": xp.not_equal(kind, PADDING_SLOT),
        "attention_mask": pmlm_attention_mask(
            kind, inputs["slot_step"], ops=ops
        ),
    }


def pmlm_model_inputs(layout, mask_positions):
    """`UniLMv2PMLM`'s inputs for a `pmlm_layout` result, as NumPy arrays.

    For building PMLM batches outside the preprocessor (tests, benchmarks,
    custom pipelines): the layout's token ids, position ids and slot
    descriptors plus the `[M]` slots to score, all int32 (the keys of
    `PMLM_MODEL_INPUTS`). The model builds the attention mask from them
    (`pmlm_backbone_inputs` gives the dense backbone inputs).

    Args:
        layout: the dict returned by `pmlm_layout` (any `ops`).
        mask_positions: int `[..., K]`, the `[M]` slots (`masked_positions`
            of the layout).

    Returns:
        A dict with `token_ids`, `position_ids`, `slot_kind`, `slot_step`,
        `mask_positions` and `pseudo_positions`.
    """
    inputs = {
        name: np.asarray(keras.ops.convert_to_numpy(layout[name])).astype("int32")
        for name in PMLM_MODEL_INPUTS
        if name != "mask_positions"
    }
    inputs["mask_positions"] = np.asarray(
        keras.ops.convert_to_numpy(mask_positions)
    ).astype("int32")
    return {name: inputs[name] for name in PMLM_MODEL_INPUTS}
