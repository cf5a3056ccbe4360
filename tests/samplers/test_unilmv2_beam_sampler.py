"""Tests for `UniLMv2BeamSampler`.

The sampler is checked against an independent plain-Python implementation of
the reference decoder's beam search (written from the rules in
`tests/data/tiny_uncased/README.md`, "decode.json and decode_steps.npz", and
the s2s-ft decoding code they describe): every beam step is stored in traces
and the final pick is done at the end, exactly as the reference does it.
"""

import math

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_unilmv2.samplers import UniLMv2BeamSampler

BACKEND = keras.config.backend()

PAD, START, EOS, DOT = 0, 1, 2, 3
A, B, C, D = 4, 5, 6, 7
NUM_HASHES = 7


# ---------------------------------------------------------------------------
# Independent reference implementation (numpy + python loops).
# ---------------------------------------------------------------------------


def np_log_softmax(logits):
    """float32 log-softmax, as the reference computes it."""
    x = np.asarray(logits, dtype=np.float32)
    shifted = x - np.max(x)
    return (shifted - np.log(np.sum(np.exp(shifted)))).astype(np.float32)


def stable_top_k(values, k):
    """Indices of the k largest values, lowest index first on ties."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    return [int(i) for i in order[:k]]


def duplicate_ngram_candidates(seq, n, ignore_ids):
    """Tokens that would repeat an n-gram of `seq` (reference rule)."""
    if len(seq) < n:
        return set()
    # Python slicing exactly as the reference: for n == 1 `seq[-0:]` is the
    # whole sequence.
    tail = seq[-(n - 1) :]
    if ignore_ids and any(token in ignore_ids for token in tail):
        return set()
    banned = set()
    for i in range(len(seq) - (n - 1)):
        if all(seq[i + j] == tail[j] for j in range(n - 1)):
            following = seq[i + n - 1]
            if not (ignore_ids and following in ignore_ids):
                banned.add(following)
    return banned


def reference_beam_search(
    log_prob_fn,
    num_beams,
    num_steps,
    end_id,
    length_penalty=0.0,
    min_len=0,
    ngram_size=0,
    ignore_ids=(),
):
    """Beam search of the reference decoder for ONE example.

    `log_prob_fn(history, step)` returns the float32 log-probs `[V]` of the
    next token given the generated tokens `history` (a list) at 0-based
    `step`. Returns a dict with the traces, the pick and coverage events.
    """
    K = num_beams
    neg = np.float32(-10000.0)
    scores, wids, ptrs = [], [], []
    seqs = None
    forbid = None  # per-beam sets of banned tokens for the next step
    events = {"ban_hit": 0, "min_len_hit": 0, "penalized_survivor": 0}
    events["tie"] = 0
    for step in range(num_steps):
        if step == 0:
            rows = [log_prob_fn([], 0)]
        else:
            rows = [log_prob_fn(seqs[k], step) for k in range(K)]
        rows = [np.array(r, dtype=np.float32) for r in rows]
        for k, row in enumerate(rows):
            top_before = set(stable_top_k(row, K))
            if forbid is not None:
                for token in forbid[k]:
                    row[token] = row[token] + neg
                if top_before - set(stable_top_k(row, K)):
                    events["ban_hit"] += 1
            if min_len and step + 1 <= min_len:
                if end_id in set(stable_top_k(row, K)):
                    events["min_len_hit"] += 1
                row[end_id] = neg
        proposals = [stable_top_k(row, K) for row in rows]
        if step == 0:
            step_wids = list(proposals[0])
            step_ptrs = [0] * K
            step_scores = [rows[0][t] for t in step_wids]
        else:
            flat_scores, flat_ids = [], []
            for k in range(K):
                finished = wids[-1][k] == end_id
                offset = np.float32(
                    (neg if finished else np.float32(0.0)) + scores[-1][k]
                )
                for token in proposals[k]:
                    flat_scores.append(np.float32(rows[k][token] + offset))
                    flat_ids.append(token)
            chosen = stable_top_k(flat_scores, K)
            boundary = flat_scores[chosen[-1]]
            if sum(1 for s in flat_scores if s == boundary) > 1:
                events["tie"] += 1
            step_wids = [flat_ids[i] for i in chosen]
            step_ptrs = [i // K for i in chosen]
            step_scores = [flat_scores[i] for i in chosen]
            all_finished_before = all(w == end_id for w in wids[-1])
            for score, parent in zip(step_scores, step_ptrs):
                if wids[-1][parent] == end_id and not all_finished_before:
                    events["penalized_survivor"] += 1
        scores.append([np.float32(s) for s in step_scores])
        wids.append(step_wids)
        ptrs.append(step_ptrs)
        if step == 0:
            seqs = [[w] for w in step_wids]
        else:
            seqs = [seqs[p] + [w] for p, w in zip(step_ptrs, step_wids)]
        if ngram_size > 0 and len(seqs[0]) >= ngram_size:
            forbid = [
                duplicate_ngram_candidates(s, ngram_size, ignore_ids)
                for s in seqs
            ]
        else:
            forbid = None

    # Final pick, done at the end on the stored traces.
    last_frame = num_steps - 1
    all_eos_frame = None
    for f in range(num_steps):
        if all(w == end_id for w in wids[f]):
            last_frame = all_eos_frame = f
            break
    candidates = []  # (final score, frame, beam), in scan order
    for f in range(last_frame + 1):
        for i, w in enumerate(wids[f]):
            if w == end_id or f == last_frame:
                s = float(scores[f][i])
                if length_penalty > 0:
                    s /= math.pow((5 + f + 1) / 6.0, length_penalty)
                candidates.append((s, f, i))
    best = None
    for cand in candidates:
        if best is None or cand[0] > best[0]:
            best = cand

    def backtrack(frame, beam):
        seq = [wids[frame][beam]]
        for f in range(frame, 0, -1):
            beam = ptrs[f][beam]
            seq.append(wids[f - 1][beam])
        return seq[::-1]

    order = sorted(range(len(candidates)), key=lambda j: -candidates[j][0])
    ranked = [
        (backtrack(candidates[j][1], candidates[j][2]), candidates[j][0])
        for j in order[:K]
    ]
    return {
        "tokens": backtrack(best[1], best[2]),
        "final_score": best[0],
        "raw_score": float(scores[best[1]][best[2]]),
        "ranked": ranked,
        "all_eos_frame": all_eos_frame,
        "events": events,
        "traces": (scores, wids, ptrs),
    }


# ---------------------------------------------------------------------------
# Toy "models".
# ---------------------------------------------------------------------------


class ToyModel:
    """Pseudo-random logits table indexed by (example, prev, hash, position).

    `hash` is a running hash of the tokens read so far, kept in the cache,
    so a sampler that does not reorder the cache with its beams gets other
    logits. The example id also travels in a rank-3 cache leaf.

    `exact=True` makes every logits row one 0 and values <= -17 elsewhere:
    then log-softmax returns the logits bit for bit on every backend and in
    numpy, so ties (incl. those created by float32 rounding at -10000) are
    identical in the sampler and in the reference.
    """

    def __init__(self, seed, num_examples, vocab_size, max_length, exact):
        rng = np.random.RandomState(seed)
        shape = (num_examples, vocab_size, NUM_HASHES, max_length, vocab_size)
        if exact:
            table = -17.0 - 20.0 * rng.rand(*shape)
            # Coarse values make float32 ties at -10000 frequent.
            table = np.round(table * 4.0) / 4.0
            top = rng.randint(0, vocab_size, size=shape[:-1])
            np.put_along_axis(table, top[..., None], 0.0, axis=-1)
        else:
            table = rng.randn(*shape) * 1.5
            # End-token bias growing with the position, different per
            # example, so examples finish at different steps (or never).
            start = rng.uniform(-3.0, 1.0, size=(num_examples, 1, 1, 1))
            slope = rng.uniform(0.0, 0.6, size=(num_examples, 1, 1, 1))
            positions = np.arange(max_length)[None, None, None, :]
            table[..., EOS] += start + slope * positions
            # Favourite tokens make repeated n-grams (and bans) common.
            table[..., DOT] += 0.7
            table[..., A] += 1.2
            table[..., B] += 1.0
            table[..., PAD] -= 2.0
        self.table = table.astype(np.float32)
        self.num_examples = num_examples
        self.vocab_size = vocab_size
        self.max_length = max_length

    def logits(self, example, prev, hash_value, position):
        return self.table[example, prev, hash_value, position]

    def log_prob_fn(self, example, prompt_row, index):
        """`log_prob_fn(history, step)` for `reference_beam_search`."""
        first_prev = START if index == 0 else int(prompt_row[index - 1])

        def fn(history, step):
            read = [first_prev] + list(history)
            hash_value = 0
            for token in read:
                hash_value = (hash_value * 5 + token) % NUM_HASHES
            logits = self.logits(example, read[-1], hash_value, index + step)
            return np_log_softmax(logits)

        return fn

    def initial_cache(self, batch_size):
        examples = np.arange(batch_size, dtype=np.float32)
        return (
            {"hash": ops.zeros((batch_size,), dtype="int32")},
            ops.convert_to_tensor(
                np.broadcast_to(examples[:, None, None], (batch_size, 2, 3))
            ),
        )

    def make_next(self, table=None):
        V, H, L = self.vocab_size, NUM_HASHES, self.max_length
        table = ops.convert_to_tensor(self.table if table is None else table)
        flat_table = ops.reshape(table, (-1, V))

        def next(prompt, cache, index):
            state, examples = cache
            example = ops.cast(examples[:, 0, 0], "int32")
            prev = ops.take(prompt, ops.maximum(index - 1, 0), axis=1)
            prev = ops.where(ops.equal(index, 0), START, prev)
            prev = ops.cast(prev, "int32")
            hash_value = (state["hash"] * 5 + prev) % H
            row = ((example * V + prev) * H + hash_value) * L + index
            logits = ops.take(flat_table, row, axis=0)
            return logits, None, ({"hash": hash_value}, examples)

        return next


def make_bigram_next(rows):
    """`next` whose logits depend on the previous token only."""
    table = ops.convert_to_tensor(np.asarray(rows, dtype=np.float32))

    def next(prompt, cache, index):
        prev = ops.take(prompt, index - 1, axis=1)
        return ops.take(table, ops.cast(prev, "int32"), axis=0), None, cache

    return next


def bigram_log_prob_fn(rows):
    rows = np.asarray(rows, dtype=np.float32)

    def fn(history, step):
        prev = history[-1] if history else START
        return np_log_softmax(rows[prev])

    return fn


def expected_row(prompt_row, index, tokens):
    row = np.array(prompt_row).copy()
    row[index : index + len(tokens)] = tokens
    row[index + len(tokens) :] = PAD
    return row


def start_prompt(batch_size, max_length, index):
    """START before `index`; junk (not padding) in the slots to generate."""
    prompt = np.full((batch_size, max_length), A, dtype="int32")
    prompt[:, :index] = PAD
    if index > 0:
        prompt[:, index - 1] = START
    return prompt


# ---------------------------------------------------------------------------
# (a) Random tables: sampler == reference, token for token.
# ---------------------------------------------------------------------------

# (num_beams, length_penalty, min_length, ngram_size, ignore_ids, exact,
#  vocab_size, index)
RANDOM_SETTINGS = [
    (1, 0.9, 1, 3, (DOT,), False, 12, 1),
    (2, 0.0, 4, 2, (), False, 12, 1),
    (2, 0.9, 1, 3, (DOT,), False, 12, 0),
    (3, 0.9, 1, 3, (DOT,), False, 12, 1),
    (3, 0.9, 1, 3, (), False, 12, 2),
    (3, 2.0, 1, 2, (DOT, A), False, 12, 1),
    (4, 2.0, 4, 2, (), False, 12, 1),
    (4, 0.9, 4, 3, (DOT,), False, 12, 1),
    (3, 0.0, 0, 1, (), True, 5, 1),
    (3, 0.9, 1, 2, (DOT,), True, 5, 1),
    (4, 0.0, 2, 1, (DOT,), True, 5, 1),
    (4, 2.0, 0, 2, (), True, 5, 1),
]
NUM_EXAMPLES = 12
MAX_LENGTH = 11


def _settings_id(s):
    k, lp, ml, n, ign, exact, v, index = s
    kind = "exact" if exact else "float"
    return f"K{k}-lp{lp}-min{ml}-ng{n}-ign{len(ign)}-{kind}{v}-i{index}"


def _run_reference(model, settings, prompt):
    k, lp, min_len, n, ignore, _, _, index = settings
    return [
        reference_beam_search(
            model.log_prob_fn(e, prompt[e], index),
            num_beams=k,
            num_steps=MAX_LENGTH - index,
            end_id=EOS,
            length_penalty=lp,
            min_len=min_len,
            ngram_size=n,
            ignore_ids=ignore,
        )
        for e in range(model.num_examples)
    ]


def _model_for(position, settings):
    exact, vocab_size = settings[5], settings[6]
    return ToyModel(
        seed=1000 + position,
        num_examples=NUM_EXAMPLES,
        vocab_size=vocab_size,
        max_length=MAX_LENGTH,
        exact=exact,
    )


@pytest.mark.parametrize(
    "position", range(len(RANDOM_SETTINGS)), ids=map(_settings_id, RANDOM_SETTINGS)
)
def test_matches_reference_on_random_tables(position):
    settings = RANDOM_SETTINGS[position]
    k, lp, min_len, n, ignore, exact, _, index = settings
    model = _model_for(position, settings)
    prompt = start_prompt(NUM_EXAMPLES, MAX_LENGTH, index)
    sampler = UniLMv2BeamSampler(
        num_beams=k,
        length_penalty=lp,
        min_length=min_len,
        no_repeat_ngram_size=n,
        ngram_ignore_token_ids=list(ignore),
        return_all_beams=True,
    )
    sequences, final_scores = sampler(
        model.make_next(),
        prompt,
        cache=model.initial_cache(NUM_EXAMPLES),
        index=index,
        stop_token_ids=(EOS,),
    )
    sequences = ops.convert_to_numpy(sequences)
    final_scores = ops.convert_to_numpy(final_scores)
    references = _run_reference(model, settings, prompt)
    for e, ref in enumerate(references):
        for rank, (tokens, score) in enumerate(ref["ranked"]):
            np.testing.assert_array_equal(
                sequences[e, rank],
                expected_row(prompt[e], index, tokens),
                err_msg=f"example {e}, rank {rank}",
            )
            np.testing.assert_allclose(
                final_scores[e, rank], score, rtol=2e-6, atol=2e-5
            )
        assert ref["tokens"] == ref["ranked"][0][0]


def test_random_tables_exercise_every_rule():
    """The random cases above reach every rule (so they can fail)."""
    totals = {"ban_hit": 0, "min_len_hit": 0, "penalized_survivor": 0}
    totals["tie"] = 0
    frames = set()
    never = 0
    early_pick = 0
    for position, settings in enumerate(RANDOM_SETTINGS):
        model = _model_for(position, settings)
        index = settings[-1]
        prompt = start_prompt(NUM_EXAMPLES, MAX_LENGTH, index)
        for ref in _run_reference(model, settings, prompt):
            for key in totals:
                totals[key] += ref["events"][key]
            if ref["all_eos_frame"] is None:
                never += 1
            else:
                frames.add(ref["all_eos_frame"])
            if len(ref["tokens"]) < MAX_LENGTH - index:
                early_pick += 1
    assert totals["ban_hit"] > 20, totals
    assert totals["min_len_hit"] > 20, totals
    assert totals["penalized_survivor"] > 5, totals
    assert totals["tie"] > 5, totals
    assert never > 10 and len(frames) >= 4 and early_pick > 20


# ---------------------------------------------------------------------------
# (b) Hand-made cases, one rule each.
# ---------------------------------------------------------------------------

V8 = 8  # PAD START EOS DOT A B C D


def _rows(default, **per_prev):
    """Bigram logits rows [V8, V8] from {prev_name: {token: logit}}."""
    names = {"PAD": PAD, "START": START, "EOS": EOS, "DOT": DOT}
    names.update({"A": A, "B": B, "C": C, "D": D})
    rows = np.tile(np.asarray(default, dtype=np.float32), (V8, 1))
    for prev_name, values in per_prev.items():
        for token, logit in values.items():
            rows[names[prev_name], token] = logit
    return rows


def _decode(rows, max_length, **kwargs):
    sampler = UniLMv2BeamSampler(**kwargs)
    prompt = start_prompt(1, max_length, 1)
    out = sampler(
        make_bigram_next(rows), prompt, index=1, stop_token_ids=(EOS,)
    )
    if kwargs.get("return_all_beams"):
        return tuple(ops.convert_to_numpy(x)[0] for x in out)
    return ops.convert_to_numpy(out)[0]


def _check_with_reference(rows, max_length, output, **kwargs):
    ref = reference_beam_search(
        bigram_log_prob_fn(rows),
        num_beams=kwargs.get("num_beams", 1),
        num_steps=max_length - 1,
        end_id=EOS,
        length_penalty=kwargs.get("length_penalty", 0.0),
        min_len=kwargs.get("min_length", 0),
        ngram_size=kwargs.get("no_repeat_ngram_size", 0),
        ignore_ids=tuple(kwargs.get("ngram_ignore_token_ids") or ()),
    )
    np.testing.assert_array_equal(
        output, expected_row(start_prompt(1, max_length, 1)[0], 1, ref["tokens"])
    )


# Constant distribution: A > B > C > D >> the rest; EOS is the favourite.
EOS_FIRST = _rows([-9.0, -9.0, 6.0, -7.0, 5.0, 4.0, 3.0, 2.0])


@pytest.mark.parametrize(
    "min_length,expected",
    [
        (0, [START, EOS, 0, 0, 0, 0]),
        (1, [START, A, EOS, 0, 0, 0]),
        (3, [START, A, A, A, EOS, 0]),
    ],
)
def test_min_length_blocks_end_token(min_length, expected):
    out = _decode(EOS_FIRST, 6, num_beams=1, min_length=min_length)
    np.testing.assert_array_equal(out, expected)
    _check_with_reference(EOS_FIRST, 6, out, num_beams=1, min_length=min_length)


def test_min_length_sets_end_log_prob_to_minus_10000():
    # One step, K = V = 3: the blocked end token must still fill a beam, and
    # its score is exactly -10000 ("set to", not "add").
    rows = np.array([[1.0, 0.5, 3.0]] * 3, dtype=np.float32)
    sampler = UniLMv2BeamSampler(
        num_beams=3, min_length=1, length_penalty=0.9, return_all_beams=True
    )
    prompt = np.array([[START, 0]], dtype="int32")
    sequences, scores = sampler(
        make_bigram_next(rows), prompt, index=1, stop_token_ids=(EOS,)
    )
    sequences = ops.convert_to_numpy(sequences)[0]
    scores = ops.convert_to_numpy(scores)[0]
    lp = np_log_softmax(rows[0])
    np.testing.assert_array_equal(sequences[:, 1], [0, 1, EOS])
    assert scores[2] == -10000.0
    np.testing.assert_allclose(scores[:2], lp[:2], rtol=1e-6)


NO_EOS = _rows([-9.0, -9.0, -8.0, -7.0, 5.0, 4.0, 3.0, 2.0])


@pytest.mark.parametrize(
    "n,expected",
    [
        (0, [A, A, A, A, A, A, A]),
        (2, [A, A, B, A, C, A, D]),  # first ban at step 3
        (3, [A, A, A, B, A, A, C]),  # first ban at step 4
    ],
)
def test_ngram_ban_acts_from_step_n_plus_1(n, expected):
    out = _decode(NO_EOS, 8, num_beams=1, no_repeat_ngram_size=n)
    np.testing.assert_array_equal(out, [START] + expected)
    _check_with_reference(NO_EOS, 8, out, num_beams=1, no_repeat_ngram_size=n)


# After START: ".", after ".": A then B then C, after A or B or C: ".".
DOT_ROWS = _rows(
    [-9.0, -9.0, -8.0, -6.0, -5.0, -5.5, -6.5, -7.0],
    START={DOT: 5.0},
    DOT={A: 5.0, B: 3.0, C: 1.0},
    A={DOT: 5.0},
    B={DOT: 5.0},
    C={DOT: 5.0},
)


@pytest.mark.parametrize(
    "ignore,expected",
    [
        ([DOT], [DOT, A, DOT, A, DOT, A]),
        (None, [DOT, A, DOT, B, DOT, C]),
    ],
)
def test_ignore_token_disables_the_ban(ignore, expected):
    kwargs = dict(
        num_beams=1, no_repeat_ngram_size=2, ngram_ignore_token_ids=ignore
    )
    out = _decode(DOT_ROWS, 7, **kwargs)
    np.testing.assert_array_equal(out, [START] + expected)
    _check_with_reference(DOT_ROWS, 7, out, **kwargs)


def test_unigram_blocking_keeps_the_reference_tail_quirk():
    # n = 1: the reference's tail `seq[-0:]` is the whole history, so one
    # ignore token anywhere in it turns blocking off.
    rows = _rows(
        [-9.0, -9.0, -8.0, -6.0, 5.0, 4.0, 3.0, 2.0], START={DOT: 9.0}
    )
    with_dot = _decode(rows, 5, num_beams=1, no_repeat_ngram_size=1,
                       ngram_ignore_token_ids=[DOT])
    np.testing.assert_array_equal(with_dot, [START, DOT, A, A, A])
    without = _decode(rows, 5, num_beams=1, no_repeat_ngram_size=1)
    np.testing.assert_array_equal(without, [START, DOT, A, B, C])


# START: EOS (best) or A. After EOS: B would be very likely, after A: C, D.
FINISHED_ROWS = _rows(
    [-9.0] * 8,
    START={EOS: 5.0, A: 3.0},
    EOS={B: 10.0},
    A={C: 2.0, D: 1.5},
)


def test_finished_beam_gets_minus_10000_and_stays_a_candidate():
    sequences, scores = _decode(
        FINISHED_ROWS, 3, num_beams=2, return_all_beams=True
    )
    lp_start = np_log_softmax(FINISHED_ROWS[START])
    lp_a = np_log_softmax(FINISHED_ROWS[A])
    # The finished [EOS] beam of step 0 is still the best final candidate.
    np.testing.assert_array_equal(sequences[0], [START, EOS, 0])
    np.testing.assert_allclose(scores[0], lp_start[EOS], rtol=1e-6)
    # [EOS, B] (about as likely as [EOS]) was pushed out by the -10000.
    np.testing.assert_array_equal(sequences[1], [START, A, C])
    np.testing.assert_allclose(
        scores[1], lp_start[A] + lp_a[C], rtol=1e-6
    )


# [EOS] at step 0 vs [A, B, EOS]: the long one wins only with a penalty.
LENGTH_ROWS = _rows(
    [-9.0] * 8,
    START={A: 3.0, EOS: 2.2},
    A={B: 1.0, C: 0.5, D: 0.5},
    B={EOS: 2.0, C: 1.0},
)


@pytest.mark.parametrize(
    "length_penalty,expected",
    [
        (0.0, [START, EOS, 0, 0, 0]),
        (2.0, [START, A, B, EOS, 0]),
    ],
)
def test_length_penalty_changes_the_winner(length_penalty, expected):
    kwargs = dict(num_beams=2, length_penalty=length_penalty)
    out = _decode(LENGTH_ROWS, 5, **kwargs)
    np.testing.assert_array_equal(out, expected)
    _check_with_reference(LENGTH_ROWS, 5, out, **kwargs)


def test_exact_ties_go_to_the_first_candidate():
    # A and B tie after START; C and D tie after A and after B. All four
    # step-1 candidates tie: (beam 0, C) and (beam 0, D) must win, in order.
    rows = _rows(
        [-9.0] * 8, START={A: 5.0, B: 5.0}, A={C: 4.0, D: 4.0},
        B={C: 4.0, D: 4.0},
    )
    sequences, scores = _decode(rows, 3, num_beams=2, return_all_beams=True)
    np.testing.assert_array_equal(sequences, [[START, A, C], [START, A, D]])
    assert scores[0] == scores[1]
    out = _decode(rows, 3, num_beams=1)
    np.testing.assert_array_equal(out, [START, A, C])


# ---------------------------------------------------------------------------
# Early stop, forced tokens, batch independence.
# ---------------------------------------------------------------------------


def test_early_stop_does_not_change_the_result():
    model = ToyModel(7, 4, 12, MAX_LENGTH, exact=False)
    model.table[..., EOS] += 6.0  # every example finishes early
    settings = (3, 0.9, 1, 3, (DOT,), False, 12, 1)
    prompt = start_prompt(4, MAX_LENGTH, 1)
    calls = []
    inner = model.make_next()

    def next(prompt, cache, index):
        calls.append(1)
        return inner(prompt, cache, index)

    sampler = UniLMv2BeamSampler(
        num_beams=3, length_penalty=0.9, min_length=1,
        no_repeat_ngram_size=3, ngram_ignore_token_ids=[DOT],
    )
    out = ops.convert_to_numpy(
        sampler(next, prompt, cache=model.initial_cache(4), index=1,
                stop_token_ids=(EOS,))
    )
    refs = _run_reference(model, settings, prompt)
    frames = [ref["all_eos_frame"] for ref in refs]
    assert all(f is not None for f in frames) and max(frames) < 8
    for e, ref in enumerate(refs):
        np.testing.assert_array_equal(
            out[e], expected_row(prompt[e], 1, ref["tokens"])
        )
    if BACKEND != "jax":  # jax traces the body once; others run it per step
        assert len(calls) == max(frames) + 1


def test_batch_rows_are_independent():
    model = ToyModel(11, 5, 12, MAX_LENGTH, exact=False)
    sampler = UniLMv2BeamSampler(num_beams=3, length_penalty=0.9)
    prompt = start_prompt(5, MAX_LENGTH, 1)
    out = ops.convert_to_numpy(
        sampler(model.make_next(), prompt, cache=model.initial_cache(5),
                index=1, stop_token_ids=(EOS,))
    )
    refs = _run_reference(model, (3, 0.9, 0, 0, (), False, 12, 1), prompt)
    for e, ref in enumerate(refs):
        np.testing.assert_array_equal(
            out[e], expected_row(prompt[e], 1, ref["tokens"])
        )


def test_masked_positions_are_forced():
    # Example 0 gets its first two generated tokens forced to C, D.
    # Position-free bigram model, lp 0, no min_length / n-gram: the forced
    # prefix must give the same continuation as decoding after a prompt
    # that already holds it.
    rows = np.random.RandomState(3).randn(V8, V8).astype(np.float32)
    rows[:, EOS] -= 1.0
    length = 9
    sampler = UniLMv2BeamSampler(num_beams=3)
    prompt = start_prompt(2, length, 1)
    prompt[0, 1:3] = [C, D]
    mask = np.zeros((2, length), dtype=bool)
    mask[:, 0] = True
    mask[0, 1:3] = True
    forced = ops.convert_to_numpy(
        sampler(make_bigram_next(rows), prompt, index=1, mask=mask,
                stop_token_ids=(EOS,))
    )
    given = ops.convert_to_numpy(
        sampler(make_bigram_next(rows), prompt[:1], index=3,
                mask=mask[:1], stop_token_ids=(EOS,))
    )
    free = ops.convert_to_numpy(
        sampler(make_bigram_next(rows), prompt[1:], index=1,
                stop_token_ids=(EOS,))
    )
    np.testing.assert_array_equal(forced[0, 1:3], [C, D])
    np.testing.assert_array_equal(forced[0], given[0])
    np.testing.assert_array_equal(forced[1], free[0])


# ---------------------------------------------------------------------------
# (c) Compiled: jax.jit / tf.function once per shape; torch eager.
# ---------------------------------------------------------------------------


def test_compiled_matches_reference_and_traces_once():
    settings = (3, 0.9, 1, 3, (DOT,), False, 12, 1)
    models = [_model_for(50 + i, settings) for i in range(2)]
    prompt = start_prompt(NUM_EXAMPLES, MAX_LENGTH, 1)
    sampler = UniLMv2BeamSampler(
        num_beams=3, length_penalty=0.9, min_length=1,
        no_repeat_ngram_size=3, ngram_ignore_token_ids=[DOT],
    )
    traces = []

    def generate(prompt, table):
        traces.append(1)
        return sampler(
            models[0].make_next(table), prompt,
            cache=models[0].initial_cache(NUM_EXAMPLES), index=1,
            stop_token_ids=(EOS,),
        )

    compiled = [generate]
    if BACKEND == "jax":
        import jax

        compiled = [jax.jit(generate)]
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = [
            tf.function(generate, jit_compile=False, reduce_retracing=True),
            tf.function(generate, jit_compile=True),
        ]
    for fn in compiled:
        traces.clear()
        for model in models:
            out = ops.convert_to_numpy(fn(prompt, model.table))
            refs = _run_reference(model, settings, prompt)
            for e, ref in enumerate(refs):
                np.testing.assert_array_equal(
                    out[e], expected_row(prompt[e], 1, ref["tokens"])
                )
        expected_traces = 2 if BACKEND == "torch" else 1
        assert len(traces) == expected_traces


# ---------------------------------------------------------------------------
# (d) Config and argument checks.
# ---------------------------------------------------------------------------


def test_config_round_trip():
    sampler = UniLMv2BeamSampler(
        num_beams=8, length_penalty=0.9, min_length=1,
        no_repeat_ngram_size=3, ngram_ignore_token_ids=[9],
        return_all_beams=True,
    )
    config = sampler.get_config()
    assert config == {
        "temperature": 1.0,
        "num_beams": 8,
        "length_penalty": 0.9,
        "min_length": 1,
        "no_repeat_ngram_size": 3,
        "ngram_ignore_token_ids": [9],
        "return_all_beams": True,
    }
    restored = UniLMv2BeamSampler.from_config(config)
    assert restored.get_config() == config
    serialized = keras.saving.serialize_keras_object(sampler)
    assert serialized["registered_name"] == "keras_unilmv2>UniLMv2BeamSampler"
    restored = keras_hub.samplers.get(serialized)
    assert isinstance(restored, UniLMv2BeamSampler)
    assert restored.get_config() == config


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"num_beams": 0}, ValueError, "num_beams"),
        ({"num_beams": 2.5}, TypeError, "num_beams"),
        ({"num_beams": True}, TypeError, "num_beams"),
        ({"length_penalty": -0.1}, ValueError, "length_penalty"),
        ({"length_penalty": float("nan")}, ValueError, "length_penalty"),
        ({"length_penalty": "0.9"}, TypeError, "length_penalty"),
        ({"min_length": -1}, ValueError, "min_length"),
        ({"no_repeat_ngram_size": -3}, ValueError, "no_repeat_ngram_size"),
        ({"ngram_ignore_token_ids": [1.5]}, ValueError, "ngram_ignore"),
        ({"ngram_ignore_token_ids": [-1]}, ValueError, "ngram_ignore"),
        ({"ngram_ignore_token_ids": 3.0}, TypeError, "ngram_ignore"),
        ({"return_all_beams": "yes"}, TypeError, "return_all_beams"),
        ({"temperature": 0.0}, ValueError, "temperature"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        UniLMv2BeamSampler(**kwargs)


def test_bad_call_arguments():
    next = make_bigram_next(NO_EOS)
    prompt = start_prompt(1, 4, 1)
    with pytest.raises(ValueError, match="stop_token_ids"):
        UniLMv2BeamSampler(num_beams=2)(next, prompt, index=1)
    with pytest.raises(ValueError, match="stop_token_ids"):
        UniLMv2BeamSampler(num_beams=2)(
            next, prompt, index=1, stop_token_ids=()
        )
    with pytest.raises(ValueError, match="vocab"):
        UniLMv2BeamSampler(num_beams=9)(
            next, prompt, index=1, stop_token_ids=(EOS,)
        )
    with pytest.raises(ValueError, match="prompt"):
        UniLMv2BeamSampler(num_beams=2)(
            next, prompt[0], index=1, stop_token_ids=(EOS,)
        )
