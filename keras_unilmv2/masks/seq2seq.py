"""Masks and position ids of pseudo-mask sequence-to-sequence (s2s-ft).

Training layout `[source S | target T | pseudo T]` (`seq2seq_inputs`) and
incremental-decoding layout `[source S | target slots T]`
(`seq2seq_decoding_*`), both from the pseudo-mask ("w") visibility rule of
s2s-ft.
"""

from keras_unilmv2.masks._ops import array_ops
from keras_unilmv2.masks._ops import block_positions
from keras_unilmv2.masks._ops import check_length
from keras_unilmv2.masks._ops import static_length


def _pseudo_mask_attention_mask(xp, weights, valid):
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
    token. `weights` int `[..., L]`, `valid` bool `[..., L]` (its value on
    pseudo slots does not matter); returns bool `[..., L, L]`.
    """
    w_query = xp.expand_dims(weights, -1)
    w_key = xp.expand_dims(weights, -2)
    true_key = xp.logical_and(
        xp.greater_equal(w_key, 0), xp.expand_dims(valid, -2)
    )
    from_true = xp.all_of(
        xp.greater_equal(w_query, 0), true_key, xp.less_equal(w_key, w_query)
    )
    is_pseudo_query = xp.less(w_query, 0)
    from_pseudo = xp.all_of(
        is_pseudo_query, true_key, xp.greater(-w_key, w_query)
    )
    itself = xp.logical_and(is_pseudo_query, xp.equal(w_key, w_query))
    return xp.any_of(from_true, from_pseudo, itself)


def _training_layout(xp, n_s, n_t, source_length, target_length):
    """Position ids, padding mask and attention mask of the training layout.

    The rules: real source tokens get positions `0 .. n_s - 1`; real target
    tokens continue at `n_s .. n_s + n_t - 1`; the pseudo token standing for
    target token `t` shares its position `n_s + t`; every padding slot gets
    0. The mask is the pseudo-mask rule with `w = 0` on the source block,
    `w = p` on target slots and `w = -p` on pseudo slots (`p` = the slot's
    position id, 0 on padding), `valid` = real source and target tokens.
    """
    source_pos, source_valid = block_positions(xp, n_s, source_length)
    target_pos, target_valid = block_positions(
        xp, n_t, target_length, offset=n_s
    )
    source_pos, target_pos = xp.broadcast_batch([source_pos, target_pos])
    source_valid, target_valid = xp.broadcast_batch(
        [source_valid, target_valid]
    )
    position_ids = xp.concatenate([source_pos, target_pos, target_pos], -1)
    valid = xp.concatenate([source_valid, target_valid, target_valid], -1)
    weights = xp.concatenate(
        [xp.zeros_like(source_pos), target_pos, -target_pos], -1
    )
    return position_ids, valid, _pseudo_mask_attention_mask(xp, weights, valid)


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
    """The s2s-ft training input `[source | target | pseudo]`.

    Concatenates the padded blocks and adds:

    - segment ids: `source_type_id` on every slot of the source block
      (padding included), `target_type_id` on every slot of the target and
      pseudo blocks (padding included);
    - position ids: real source tokens get `0 .. n_s - 1`; real target
      tokens continue at `n_s .. n_s + n_t - 1`; the pseudo token standing
      for target token `t` shares its position `n_s + t`; padding gets 0;
    - the attention mask (the pseudo-mask rule of s2s-ft):
      source tokens see the real source (bidirectional); target token `t`
      sees the real source and target tokens `<= t`; pseudo token `t` sees
      the real source, target tokens `< t` and itself; every padding row
      sees the real source only; nothing sees a pseudo token but itself;
      padding keys are never seen.

    Args:
        source_ids: int `[..., S]`, `[CLS] source [SEP]` then padding.
        target_ids: int `[..., T]`, `target [SEP]` then padding.
        pseudo_ids: int `[..., T]`, one pseudo token per real target token
            (`[MASK]`, or a noised id), then padding.
        num_source_tokens: int or int `[B]`, real source length n_s
            (with `[CLS]` and `[SEP]`).
        num_target_tokens: int or int `[B]`, real target length n_t
            (with the final `[SEP]`).
        source_type_id: int, segment id of the source block.
        target_type_id: int, segment id of the target and pseudo blocks.
        ops: `"tf"` (TensorFlow ops, for `tf.data`; the default) or
            `"keras"` (`keras.ops`, inside a model).

    Returns:
        A dict with `token_ids`, `segment_ids`, `position_ids` (int32
        `[..., S + 2T]`), `padding_mask` (bool `[..., S + 2T]`, real source,
        target and pseudo slots) and `attention_mask` (bool
        `[..., S + 2T, S + 2T]`). Scalar lengths broadcast against batched
        ones (`n` or `[B]`).

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
    xp = array_ops(ops)
    source_ids = xp.int32(source_ids)
    target_ids = xp.int32(target_ids)
    pseudo_ids = xp.int32(pseudo_ids)
    source_length = static_length("source_ids", source_ids)
    target_length = static_length("target_ids", target_ids)
    if static_length("pseudo_ids", pseudo_ids) != target_length:
        raise ValueError(
            "`pseudo_ids` must have the padded length of `target_ids`. "
            f"Received shapes {pseudo_ids.shape} and {target_ids.shape}."
        )
    n_s = xp.int32(num_source_tokens)
    n_t = xp.int32(num_target_tokens)
    position_ids, padding_mask, attention_mask = _training_layout(
        xp, n_s, n_t, source_length, target_length
    )
    token_ids = xp.concatenate([source_ids, target_ids, pseudo_ids], -1)
    segment_ids = xp.concatenate(
        [
            xp.zeros_like(source_ids) + source_type_id,
            xp.zeros_like(target_ids) + target_type_id,
            xp.zeros_like(pseudo_ids) + target_type_id,
        ],
        -1,
    )
    token_ids, position_ids, segment_ids = xp.broadcast_batch(
        [token_ids, position_ids, segment_ids]
    )
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "position_ids": position_ids,
        "padding_mask": padding_mask,
        "attention_mask": attention_mask,
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
        ops: `"tf"` (the default) or `"keras"`, see `seq2seq_inputs`.

    Returns:
        int32 `[..., S + T]`.

    Example:
    ```python
    keras_unilmv2.masks.seq2seq_decoding_position_ids(2, 3, 2)
    # [0, 1, 0, 2, 3]
    ```
    """
    check_length("source_length", source_length)
    check_length("target_length", target_length)
    xp = array_ops(ops)
    n_s = xp.int32(num_source_tokens)
    source, _ = block_positions(xp, n_s, source_length)
    target = xp.arange(target_length, dtype="int32") + xp.expand_dims(n_s, -1)
    source, target = xp.broadcast_batch([source, target])
    return xp.concatenate([source, target], -1)


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
        ops: `"tf"` (the default) or `"keras"`, see `seq2seq_inputs`.

    Returns:
        bool `[..., S + T, S + T]`.

    Example:
    ```python
    mask = keras_unilmv2.masks.seq2seq_decoding_attention_mask(
        [2, 3], 3, 4, ops="keras"
    )
    mask.shape  # (2, 7, 7)
    ```
    """
    check_length("source_length", source_length)
    check_length("target_length", target_length)
    xp = array_ops(ops)
    n_s = xp.int32(num_source_tokens)
    _, source_valid = block_positions(xp, n_s, source_length)
    target_w = xp.arange(target_length, dtype="int32") + 1
    target_valid = xp.greater(target_w, 0)
    source_w = xp.zeros_like(xp.int32(source_valid))
    source_w, target_w = xp.broadcast_batch([source_w, target_w])
    source_valid, target_valid = xp.broadcast_batch(
        [source_valid, target_valid]
    )
    weights = xp.concatenate([source_w, target_w], -1)
    valid = xp.concatenate([source_valid, target_valid], -1)
    return _pseudo_mask_attention_mask(xp, weights, valid)
