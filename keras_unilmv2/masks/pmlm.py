"""Layout, attention mask and model inputs of PMLM pre-training.

The blockwise pseudo-masked LM of the UniLMv2 paper (Figures 2 and 3): the
corrupted text, then per factorization step a block of pseudo masks `[P]`
and the original tokens, with shared position ids and a 3-D mask.
"""

import keras
import numpy as np

from keras_unilmv2.masks._ops import array_ops
from keras_unilmv2.masks._ops import static_length

# Kinds of slot in a blockwise (PMLM) layout, see `pmlm_attention_mask`.
CONTEXT_SLOT = 0
PSEUDO_SLOT = 1
ORIGINAL_SLOT = 2
PADDING_SLOT = 3


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
    xp = array_ops(ops)
    kind = xp.int32(slot_kind)
    step = xp.int32(slot_step)
    q_kind, k_kind = xp.expand_dims(kind, -1), xp.expand_dims(kind, -2)
    q_step, k_step = xp.expand_dims(step, -1), xp.expand_dims(step, -2)
    key_context = xp.equal(k_kind, CONTEXT_SLOT)
    key_original = xp.equal(k_kind, ORIGINAL_SLOT)
    key_pseudo = xp.equal(k_kind, PSEUDO_SLOT)
    pseudo_row = xp.logical_and(
        xp.equal(q_kind, PSEUDO_SLOT),
        xp.any_of(
            key_context,
            xp.logical_and(key_original, xp.less(k_step, q_step)),
            xp.logical_and(key_pseudo, xp.equal(k_step, q_step)),
        ),
    )
    original_row = xp.logical_and(
        xp.equal(q_kind, ORIGINAL_SLOT),
        xp.any_of(
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
    return xp.any_of(pseudo_row, original_row, other_row)


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
    xp = array_ops(ops)
    context_ids = xp.int32(context_ids)
    context_real = xp.bool(context_padding_mask)
    positions = xp.int32(masked_positions)
    steps = xp.int32(masked_steps)
    originals = xp.int32(masked_ids)
    n = static_length("context_ids", context_ids)
    k = static_length("masked_positions", positions)
    if n < 1 or k < 1:
        raise ValueError(
            "`context_ids` and `masked_positions` must each have at least "
            f"one slot. Received shapes {context_ids.shape} and "
            f"{positions.shape}."
        )
    for name, tensor in (("masked_steps", steps), ("masked_ids", originals)):
        if static_length(name, tensor) != k:
            raise ValueError(
                f"`{name}` must have the length of `masked_positions` "
                f"({k}). Received shape {tensor.shape}."
            )

    valid = xp.greater(steps, 0)  # [..., K]
    valid_j = xp.expand_dims(valid, -2)  # [..., 1, K] (other token j)
    step_i, step_j = xp.expand_dims(steps, -1), xp.expand_dims(steps, -2)
    same_step = xp.logical_and(valid_j, xp.equal(step_j, step_i))
    earlier_step = xp.logical_and(valid_j, xp.less(step_j, step_i))
    index = xp.arange(k, dtype="int32")
    listed_before = xp.less(xp.expand_dims(index, -2), xp.expand_dims(index, -1))
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
            valid, xp.not_equal(steps, xp.expand_dims(last_step, -1))
        )

    # For each appended slot n + r (r < 2K), which token sits there.
    slot = xp.expand_dims(xp.arange(2 * k, dtype="int32") + n, -1)  # [2K, 1]
    at_pseudo = xp.logical_and(
        xp.expand_dims(valid, -2), xp.equal(slot, xp.expand_dims(pseudo_slot, -2))
    )  # [..., 2K, K]
    at_original = xp.logical_and(
        xp.expand_dims(keep_original, -2),
        xp.equal(slot, xp.expand_dims(original_slot, -2)),
    )
    at_any = xp.logical_or(at_pseudo, at_original)

    def pick(values, where):
        chosen = xp.where(where, xp.expand_dims(values, -2), 0)
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

    context_index = xp.arange(n, dtype="int32")
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
    token_ids = xp.concatenate([context_ids, tail_ids], -1)
    position_ids = xp.concatenate([context_positions, tail_positions], -1)
    slot_kind = xp.concatenate([context_kind, tail_kind], -1)
    slot_step = xp.concatenate([context_steps, tail_steps], -1)
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
    xp = array_ops(ops)
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
