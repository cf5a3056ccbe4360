"""Tests of the attention-mask, position-id and segment-id rules (masks/).

Every rule is checked with TensorFlow ops (`ops="tf"`, what preprocessors use
inside tf.data) and with `keras.ops` (`ops="keras"`, the current backend).
Expected values come from the reference fixtures (s2s-ft outputs), from the
worked examples of the spec, or from constructions written here with plain
Python loops over the rule tables.
"""

import json

import numpy as np
import pytest
from unilmv2_test_utils import fixture_path

from keras_unilmv2 import masks

OPS = ["tf", "keras"]


def np_(x):
    """Any tensor (TF or backend) to NumPy."""
    if hasattr(x, "numpy"):
        try:
            return np.asarray(x.numpy())
        except (TypeError, RuntimeError):
            pass
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.fixture(scope="module")
def seq2seq_data():
    return np.load(fixture_path("seq2seq.npz"))


# -- s2s-ft training layout ----------------------------------------------------


@pytest.mark.parametrize("ops", OPS)
@pytest.mark.parametrize("case", ["case1_clean", "case2_noised"])
def test_seq2seq_inputs_match_reference(seq2seq_data, case, ops):
    def get(name):
        return seq2seq_data[f"{case}/{name}"]

    out = masks.seq2seq_inputs(
        get("source_ids"),
        get("target_ids"),
        get("pseudo_ids"),
        get("num_source_tokens"),
        get("num_target_tokens"),
        source_type_id=0,
        target_type_id=1,
        ops=ops,
    )
    np.testing.assert_array_equal(np_(out["token_ids"]), get("input_ids"))
    np.testing.assert_array_equal(
        np_(out["segment_ids"]), get("token_type_ids")
    )
    np.testing.assert_array_equal(
        np_(out["position_ids"]), get("position_ids")
    )
    mask = np_(out["attention_mask"])
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask.astype("int32"), get("attention_mask"))
    # The padding mask marks the real source, target and pseudo slots.
    s, t = get("source_ids").shape[1], get("target_ids").shape[1]
    expected_padding = np.concatenate(
        [
            get("source_ids") != 0,
            np.arange(t) < get("num_target_tokens")[:, None],
            np.arange(t) < get("num_target_tokens")[:, None],
        ],
        axis=1,
    )
    np.testing.assert_array_equal(np_(out["padding_mask"]), expected_padding)
    assert out["token_ids"].shape == (3, s + 2 * t)


@pytest.mark.parametrize("ops", OPS)
def test_seq2seq_rule_functions_match_reference_per_example(
    seq2seq_data, ops
):
    """Scalar lengths (one example) give the rows of the batched reference."""
    for b in range(3):
        n_s = int(seq2seq_data["case1_clean/num_source_tokens"][b])
        n_t = int(seq2seq_data["case1_clean/num_target_tokens"][b])
        out = masks.seq2seq_inputs(
            seq2seq_data["case1_clean/source_ids"][b],
            seq2seq_data["case1_clean/target_ids"][b],
            seq2seq_data["case1_clean/pseudo_ids"][b],
            n_s,
            n_t,
            ops=ops,
        )
        np.testing.assert_array_equal(
            np_(out["position_ids"]),
            seq2seq_data["case1_clean/position_ids"][b],
        )
        np.testing.assert_array_equal(
            np_(out["attention_mask"]).astype("int32"),
            seq2seq_data["case1_clean/attention_mask"][b],
        )


@pytest.mark.parametrize("ops", OPS)
def test_seq2seq_worked_example_of_the_spec(ops):
    # Spec §3.3: source `[CLS] a [SEP] pad`, target `y1 [SEP] pad`,
    # pseudo `P1 P2 pad`.
    expected_positions = [0, 1, 2, 0, 3, 4, 0, 3, 4, 0]
    src_rows = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    expected_mask = np.array(
        [
            src_rows,  # CLS
            src_rows,  # a
            src_rows,  # SEP
            src_rows,  # source pad
            [1, 1, 1, 0, 1, 0, 0, 0, 0, 0],  # y1
            [1, 1, 1, 0, 1, 1, 0, 0, 0, 0],  # SEP (target)
            src_rows,  # target pad
            [1, 1, 1, 0, 0, 0, 0, 1, 0, 0],  # P1
            [1, 1, 1, 0, 1, 0, 0, 0, 1, 0],  # P2
            src_rows,  # pseudo pad
        ]
    )
    out = masks.seq2seq_inputs(
        source_ids=[101, 1037, 102, 0],
        target_ids=[1038, 102, 0],
        pseudo_ids=[103, 103, 0],
        num_source_tokens=3,
        num_target_tokens=2,
        ops=ops,
    )
    np.testing.assert_array_equal(np_(out["position_ids"]), expected_positions)
    np.testing.assert_array_equal(
        np_(out["segment_ids"]), [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    )
    np.testing.assert_array_equal(
        np_(out["attention_mask"]).astype("int32"), expected_mask
    )


@pytest.mark.parametrize("ops", OPS)
def test_seq2seq_token_type_ids_other_ids(ops):
    out = masks.seq2seq_inputs(
        [101, 102], [7, 0, 0], [103, 0, 0], 2, 1,
        source_type_id=4, target_type_id=5, ops=ops,
    )
    # Every slot of a block, padding included, gets the block's id.
    np.testing.assert_array_equal(
        np_(out["segment_ids"]), [4, 4, 5, 5, 5, 5, 5, 5]
    )


@pytest.mark.parametrize("ops", OPS)
def test_seq2seq_scalar_and_batched_lengths_broadcast(ops):
    # A scalar source length with a batch of target lengths.
    out = masks.seq2seq_inputs(
        [[101, 102, 0], [101, 102, 0]],
        [[102, 0], [7, 102]],
        [[103, 0], [103, 103]],
        2,
        [1, 2],
        ops=ops,
    )
    np.testing.assert_array_equal(
        np_(out["position_ids"]),
        [[0, 1, 0, 2, 0, 2, 0], [0, 1, 0, 2, 3, 2, 3]],
    )
    np.testing.assert_array_equal(
        np_(out["padding_mask"]),
        [[1, 1, 0, 1, 0, 1, 0], [1, 1, 0, 1, 1, 1, 1]],
    )
    assert tuple(out["attention_mask"].shape) == (2, 7, 7)


# -- s2s-ft decoding layout ----------------------------------------------------


@pytest.mark.parametrize("ops", OPS)
def test_decoding_layout_matches_reference(ops):
    with open(fixture_path("decode.json")) as f:
        batch = json.load(f)["reference_batch"]
    input_ids = np.array(batch["input_ids"])
    source_length = int(batch["input_length"])
    target_length = int(batch["output_length"]) - source_length
    num_source = (input_ids != 0).sum(axis=1)
    positions = masks.seq2seq_decoding_position_ids(
        num_source, source_length, target_length, ops=ops
    )
    mask = masks.seq2seq_decoding_attention_mask(
        num_source, source_length, target_length, ops=ops
    )
    np.testing.assert_array_equal(np_(positions), batch["position_ids"])
    np.testing.assert_array_equal(
        np_(mask).astype("int32"), batch["attention_mask"]
    )


def test_keras_ops_variant_inside_a_compiled_function():
    """The keras.ops rules trace with an unknown batch size."""
    import keras

    def fn(num_source):
        return (
            masks.seq2seq_decoding_attention_mask(
                num_source, 4, 3, ops="keras"
            ),
            masks.seq2seq_decoding_position_ids(num_source, 4, 3, ops="keras"),
        )

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(
            fn, input_signature=[tf.TensorSpec([None], tf.int32)]
        )
    elif backend == "jax":
        import jax

        compiled = jax.jit(fn)
    else:  # torch runs eagerly in keras-hub generation.
        compiled = fn
    num_source = np.array([2, 4, 3], "int32")
    mask, positions = compiled(keras.ops.convert_to_tensor(num_source))
    np.testing.assert_array_equal(
        np_(mask),
        np_(masks.seq2seq_decoding_attention_mask(num_source, 4, 3)),
    )
    np.testing.assert_array_equal(
        np_(positions),
        np_(masks.seq2seq_decoding_position_ids(num_source, 4, 3)),
    )
    assert np_(mask).shape == (3, 7, 7)


# -- The general pseudo-mask ("w") rule ----------------------------------------


def w_rule_by_loops(weights, valid):
    n = len(weights)
    out = np.zeros((n, n), bool)
    for i in range(n):
        for j in range(n):
            true_key = weights[j] >= 0 and valid[j]
            if weights[i] >= 0:
                out[i, j] = true_key and weights[j] <= weights[i]
            else:
                out[i, j] = (true_key and weights[j] < -weights[i]) or (
                    weights[j] == weights[i]
                )
    return out


@pytest.mark.parametrize("ops", OPS)
def test_training_mask_is_the_pseudo_mask_rule(ops):
    """`seq2seq_inputs`' mask is the w rule with w = 0 on the source, the
    position p on target slots and -p on pseudo slots (0 on padding)."""
    rng = np.random.default_rng(0)
    s, t, batch = 6, 5, 8
    n_s = rng.integers(1, s + 1, size=batch)
    n_t = rng.integers(1, t + 1, size=batch)
    ids = rng.integers(5, 50, size=(batch, s + 2 * t))
    out = masks.seq2seq_inputs(
        ids[:, :s], ids[:, s : s + t], ids[:, s + t :], n_s, n_t, ops=ops
    )
    mask = np_(out["attention_mask"])
    for b in range(batch):
        target = np.where(np.arange(t) < n_t[b], n_s[b] + np.arange(t), 0)
        weights = np.concatenate([np.zeros(s, int), target, -target])
        real_target = np.arange(t) < n_t[b]
        valid = np.concatenate([np.arange(s) < n_s[b], real_target, real_target])
        np.testing.assert_array_equal(mask[b], w_rule_by_loops(weights, valid))
        # A mixed-sign check of the rule itself: pseudo rows see themselves.
        pseudo = s + t + np.nonzero(real_target)[0]
        assert mask[b][pseudo, pseudo].all()


@pytest.mark.parametrize("ops", OPS)
def test_decoding_mask_is_the_pseudo_mask_rule(ops):
    """The decoding mask is the w rule with w = 0 on the source and t + 1
    on target slot t, every target slot valid."""
    s, t = 5, 4
    n_s = np.array([1, 3, 5], "int32")
    mask = np_(masks.seq2seq_decoding_attention_mask(n_s, s, t, ops=ops))
    for b, n in enumerate(n_s):
        weights = np.concatenate([np.zeros(s, int), np.arange(1, t + 1)])
        valid = np.concatenate([np.arange(s) < n, np.ones(t, bool)])
        np.testing.assert_array_equal(mask[b], w_rule_by_loops(weights, valid))


# -- PMLM layout and mask ------------------------------------------------------


def pmlm_by_loops(context_ids, num_real, blocks, max_predictions, pseudo_id,
                  pad_id=0, drop_last=False):
    """The PMLM layout from the rule tables, with plain Python loops.

    `blocks` lists the blocks in factorization order, each a list of
    (position, original id) pairs.
    """
    n = len(context_ids)
    length = n + 2 * max_predictions
    kinds, steps, tokens, positions = [], [], [], []
    for i in range(n):
        real = i < num_real
        kinds.append("C" if real else "pad")
        steps.append(0)
        tokens.append(context_ids[i])
        positions.append(i if real else 0)
    pseudo_slots = []
    for k, block in enumerate(blocks, start=1):
        for position, _ in block:
            pseudo_slots.append(len(tokens))
            kinds.append("P")
            steps.append(k)
            tokens.append(pseudo_id)
            positions.append(position)
        for position, original in block:
            dropped = drop_last and k == len(blocks)
            kinds.append("pad" if dropped else "O")
            steps.append(0 if dropped else k)
            tokens.append(pad_id if dropped else original)
            positions.append(0 if dropped else position)
    while len(tokens) < length:
        kinds.append("pad")
        steps.append(0)
        tokens.append(pad_id)
        positions.append(0)
    mask = np.zeros((length, length), bool)
    for i in range(length):
        for j in range(length):
            qk, kk = kinds[i], kinds[j]
            if qk in ("C", "pad"):
                allowed = kk == "C"
            elif qk == "P":
                allowed = (
                    kk == "C"
                    or (kk == "O" and steps[j] < steps[i])
                    or (kk == "P" and steps[j] == steps[i])
                )
            else:  # "O"
                allowed = kk == "C" or (kk == "O" and steps[j] <= steps[i])
            mask[i, j] = allowed
    pseudo_slots += [0] * (max_predictions - len(pseudo_slots))
    return {
        "token_ids": np.array(tokens),
        "position_ids": np.array(positions),
        "padding_mask": np.array([kind != "pad" for kind in kinds]),
        "attention_mask": mask,
        "pseudo_positions": np.array(pseudo_slots),
    }


def blocks_to_arrays(blocks, max_predictions):
    positions, steps, ids = [], [], []
    for k, block in enumerate(blocks, start=1):
        for position, original in block:
            positions.append(position)
            steps.append(k)
            ids.append(original)
    pad = max_predictions - len(positions)
    return (
        np.array(positions + [0] * pad, "int32"),
        np.array(steps + [0] * pad, "int32"),
        np.array(ids + [0] * pad, "int32"),
    )


@pytest.mark.parametrize("ops", OPS)
def test_pmlm_layout_paper_figure(ops):
    # Paper Figure 2: x1 [M] x3 [M] [M] x6, blocks {x2}, {x4, x5},
    # factorization order {x4, x5} -> {x2} (0-based positions here).
    m, p = 103, 103
    out = masks.pmlm_layout(
        context_ids=[11, m, 13, m, m, 16],
        context_padding_mask=[True] * 6,
        masked_positions=[3, 4, 1],
        masked_steps=[1, 1, 2],
        masked_ids=[14, 15, 12],
        pseudo_token_id=p,
        ops=ops,
    )
    np.testing.assert_array_equal(
        np_(out["token_ids"]), [11, m, 13, m, m, 16, p, p, 14, 15, p, 12]
    )
    np.testing.assert_array_equal(
        np_(out["position_ids"]), [0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1, 1]
    )
    np.testing.assert_array_equal(np_(out["pseudo_positions"]), [6, 7, 10])
    np.testing.assert_array_equal(np_(out["segment_ids"]), [0] * 12)
    expected = pmlm_by_loops(
        [11, m, 13, m, m, 16], 6, [[(3, 14), (4, 15)], [(1, 12)]], 3, p
    )
    np.testing.assert_array_equal(
        np_(out["attention_mask"]), expected["attention_mask"]
    )


def random_blocks(rng, num_real, max_predictions, max_block=4):
    """Random disjoint blocks inside [1, num_real - 1), in random order."""
    free = list(range(1, num_real - 1))
    rng.shuffle(free)
    budget = int(rng.integers(0, max_predictions + 1))
    chosen = sorted(free[:budget])
    blocks, current = [], []
    for position in chosen:
        current.append(position)
        if len(current) == max_block or rng.random() < 0.5:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    order = rng.permutation(len(blocks))
    return [blocks[i] for i in order]


@pytest.mark.parametrize("ops", OPS)
@pytest.mark.parametrize("drop_last", [False, True])
def test_pmlm_layout_against_loops(ops, drop_last):
    rng = np.random.default_rng(1)
    n, k, pseudo_id, mask_id = 12, 6, 3, 4
    cases = []
    for _ in range(6):
        num_real = int(rng.integers(2, n + 1))
        original = np.where(
            np.arange(n) < num_real, rng.integers(10, 50, size=n), 0
        )
        blocks = random_blocks(rng, num_real, k)
        with_ids = [[(p, int(original[p])) for p in block] for block in blocks]
        context = original.copy()
        for block in blocks:
            context[block] = mask_id
        cases.append((context, num_real, with_ids))
    arrays = [blocks_to_arrays(c[2], k) for c in cases]
    out = masks.pmlm_layout(
        context_ids=np.stack([c[0] for c in cases]),
        context_padding_mask=np.stack(
            [np.arange(n) < c[1] for c in cases]
        ),
        masked_positions=np.stack([a[0] for a in arrays]),
        masked_steps=np.stack([a[1] for a in arrays]),
        masked_ids=np.stack([a[2] for a in arrays]),
        pseudo_token_id=pseudo_id,
        drop_last_step_originals=drop_last,
        ops=ops,
    )
    for b, (context, num_real, blocks) in enumerate(cases):
        expected = pmlm_by_loops(
            list(context), num_real, blocks, k, pseudo_id, drop_last=drop_last
        )
        for key, value in expected.items():
            np.testing.assert_array_equal(np_(out[key])[b], value, err_msg=key)
        # Structural guarantees of the rule.
        mask = np_(out["attention_mask"])[b]
        padding = ~np_(out["padding_mask"])[b]
        assert not mask[:, padding].any(), "a padding key is visible"
        assert mask.any(axis=1).all(), "a row sees nothing"
    # The compact model inputs (what the preprocessor ships) expand to the
    # same dense backbone inputs, on either array library.
    compact = masks.pmlm_model_inputs(out, np.stack([a[0] for a in arrays]))
    assert set(compact) == set(masks.PMLM_MODEL_INPUTS)
    assert all(value.ndim == 2 for value in compact.values())
    for expand_ops in OPS:
        dense = masks.pmlm_backbone_inputs(compact, ops=expand_ops)
        for key in dense:
            np.testing.assert_array_equal(
                np_(dense[key]), np_(out[key]), err_msg=key
            )
    without = masks.pmlm_layout(
        context_ids=np.stack([c[0] for c in cases]),
        context_padding_mask=np.stack(
            [np.arange(n) < c[1] for c in cases]
        ),
        masked_positions=np.stack([a[0] for a in arrays]),
        masked_steps=np.stack([a[1] for a in arrays]),
        masked_ids=np.stack([a[2] for a in arrays]),
        pseudo_token_id=pseudo_id,
        drop_last_step_originals=drop_last,
        with_attention_mask=False,
        ops=ops,
    )
    assert set(without) == set(out) - {"attention_mask"}
    for key in without:
        np.testing.assert_array_equal(np_(without[key]), np_(out[key]))


@pytest.mark.parametrize("ops", OPS)
def test_pmlm_layout_steps_in_any_order(ops):
    """Entries may be listed in any order; steps need not be contiguous."""
    kwargs = dict(
        context_ids=[6, 8, 8, 20, 8, 7, 0, 0],
        context_padding_mask=[1, 1, 1, 1, 1, 1, 0, 0],
        pseudo_token_id=8,
        ops=ops,
    )
    ordered = masks.pmlm_layout(
        masked_positions=[4, 1, 2, 0],
        masked_steps=[1, 2, 2, 0],
        masked_ids=[40, 10, 11, 0],
        **kwargs,
    )
    shuffled = masks.pmlm_layout(
        masked_positions=[0, 1, 4, 2],
        masked_steps=[0, 7, 3, 7],
        masked_ids=[0, 10, 40, 11],
        **kwargs,
    )
    for key in ("token_ids", "position_ids", "attention_mask"):
        np.testing.assert_array_equal(
            np_(ordered[key]), np_(shuffled[key]), err_msg=key
        )


def test_seq2seq_mask_is_the_pmlm_rule_special_case(seq2seq_data):
    """source = context, target = originals, pseudo = [P], step = position."""
    positions = seq2seq_data["case1_clean/position_ids"]
    n_t = seq2seq_data["case1_clean/num_target_tokens"]
    n_s = seq2seq_data["case1_clean/num_source_tokens"]
    s, t = 16, 10
    kind = np.full(positions.shape, masks.PADDING_SLOT)
    kind[:, :s] = np.where(
        np.arange(s) < n_s[:, None], masks.CONTEXT_SLOT, masks.PADDING_SLOT
    )
    real_target = np.arange(t) < n_t[:, None]
    kind[:, s:s + t] = np.where(
        real_target, masks.ORIGINAL_SLOT, masks.PADDING_SLOT
    )
    kind[:, s + t:] = np.where(
        real_target, masks.PSEUDO_SLOT, masks.PADDING_SLOT
    )
    mask = masks.pmlm_attention_mask(kind, positions)
    np.testing.assert_array_equal(
        np_(mask).astype("int32"), seq2seq_data["case1_clean/attention_mask"]
    )


# -- Arguments and imports -----------------------------------------------------


def test_pmlm_backbone_inputs_bad_arguments():
    with pytest.raises(TypeError, match="inputs"):
        masks.pmlm_backbone_inputs([1, 2, 3])
    with pytest.raises(ValueError, match="slot_step"):
        masks.pmlm_backbone_inputs(
            {"token_ids": [1], "position_ids": [0], "slot_kind": [0]}
        )


def test_bad_arguments():
    with pytest.raises(ValueError, match="ops"):
        masks.seq2seq_decoding_position_ids(2, 3, 3, ops="numpy")
    with pytest.raises(ValueError, match="source_length"):
        masks.seq2seq_decoding_position_ids(2, -1, 3)
    with pytest.raises(ValueError, match="target_length"):
        masks.seq2seq_decoding_attention_mask(2, 3, 2.5)
    with pytest.raises(ValueError, match="pseudo_ids"):
        masks.seq2seq_inputs([1, 2], [3, 4], [5], 2, 2)
    with pytest.raises(ValueError, match="masked_steps"):
        masks.pmlm_layout(
            [1, 2, 3], [1, 1, 1], [1], [1, 0], [2], pseudo_token_id=8
        )
