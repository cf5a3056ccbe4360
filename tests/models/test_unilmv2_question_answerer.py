"""UniLMv2QuestionAnswerer and its preprocessor: character offsets, windows
with a doc stride, labels, answer post-processing from hand-made logits,
the span head and its loss, training, saving and errors. Runs unchanged on
every Keras backend."""

import copy
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import tiny_backbone

from keras_unilmv2.models.unilmv2_question_answerer import MASKED_LOGIT
from keras_unilmv2.models.unilmv2_question_answerer import (
    UniLMv2QuestionAnswerer,
)
from keras_unilmv2.models.unilmv2_question_answerer_preprocessor import (
    MODEL_INPUTS,
)
from keras_unilmv2.models.unilmv2_question_answerer_preprocessor import (
    UniLMv2QuestionAnswererPreprocessor,
)
from keras_unilmv2.models.unilmv2_question_answerer_preprocessor import (
    WordPieceOffsetTokenizer,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

CLS, SEP, PAD, MASK, UNK = 6, 7, 0, 8, 5
# Fixture vocabulary ids: . 9, ? 12, the 15, a 16, cat 18, dog 19, park 32,
# ran 42, to 67, big 75.
CONTEXT = "The dog ran to the big park."
#          0123456789012345678901234567
# Tokens: the(0,3) dog(4,7) ran(8,11) to(12,14) the(15,18) big(19,22)
# park(23,27) .(27,28)
CONTEXT_IDS = [15, 19, 42, 67, 15, 75, 32, 9]
CONTEXT_SPANS = [(0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 22),
                 (23, 27), (27, 28)]


def model_inputs(features):
    return {name: features[name] for name in MODEL_INPUTS}


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


@pytest.fixture(scope="module")
def preprocessor(tokenizer):
    # 12 slots - [CLS] [SEP] [SEP] - a 2-token question = 7 context tokens per
    # window; windows start every 2 context tokens.
    return UniLMv2QuestionAnswererPreprocessor(
        tokenizer, sequence_length=12, doc_stride=2, max_question_length=3
    )


# --- character offsets ----------------------------------------------------------


HARD_TEXTS = [
    "The Cat's jumped!",
    "Cäts   DÖG\tran\nto the PARK.",
    "ca\u0308t c\x00at\u200bdog",
    "İstanbul ΟΔΟΣ ΣΑΣ",
    "the 中文 cat\u00a0dog\u3000sun",
    "x" * 120 + " cat",
    "",
    "   ",
    "a [MASK] dog",
]


@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize("special_tokens_in_strings", [False, True])
def test_offset_tokenizer_gives_the_tokenizer_ids(lowercase, special_tokens_in_strings):
    tokenizer = UniLMv2Tokenizer(
        vocabulary=fixture_path("vocab.txt"),
        lowercase=lowercase,
        special_tokens_in_strings=special_tokens_in_strings,
    )
    offsets = WordPieceOffsetTokenizer(tokenizer)
    with open(fixture_path("tokenizer.json")) as f:
        cases = json.load(f)["cases"]
    texts = [case["text"] for case in cases] + HARD_TEXTS
    for text in texts:
        ids, starts, ends = offsets(text)
        expected = np.asarray(tokenizer(text)).astype(int).tolist()
        assert ids == expected, text
        assert len(starts) == len(ends) == len(ids)
        assert all(0 <= s < e <= len(text) for s, e in zip(starts, ends))
        assert starts == sorted(starts)
    if lowercase and not special_tokens_in_strings:
        for case in cases:  # The reference WordPiece ids.
            assert offsets(case["text"])[0] == case["ids"]


def test_offsets_point_at_the_original_characters(tokenizer):
    offsets = WordPieceOffsetTokenizer(tokenizer)

    def pieces(text):
        ids, starts, ends = offsets(text)
        return [
            (tokenizer.id_to_token(i), text[s:e]) for i, s, e in zip(ids, starts, ends)
        ]

    assert pieces("The Cat's jumped!") == [
        ("the", "The"), ("cat", "Cat"), ("'", "'"), ("[UNK]", "s"),
        ("jump", "jump"), ("##ed", "ed"), ("!", "!"),
    ]
    # Accents are stripped for the ids but kept in the offsets.
    ids, starts, ends = offsets("Cäts  DÖG")
    assert [tokenizer.id_to_token(i) for i in ids] == ["cat", "##s", "dog"]
    assert list(zip(starts, ends)) == [(0, 3), (3, 4), (6, 9)]
    # A combining mark belongs to its base letter; deleted characters
    # (NUL, zero-width space) are inside the span of their word.
    ids, starts, ends = offsets("ca\u0308t c\x00at")
    assert ids == [18, 18]
    assert list(zip(starts, ends)) == [(0, 4), (5, 9)]
    # Context-dependent lowercasing (final sigma) still maps one to one.
    ids, starts, ends = offsets("ΟΔΟΣ cat")
    assert ids == [UNK, 18] and list(zip(starts, ends)) == [(0, 4), (5, 8)]
    # The example context of this module.
    ids, starts, ends = offsets(CONTEXT)
    assert ids == CONTEXT_IDS
    assert list(zip(starts, ends)) == CONTEXT_SPANS


def test_offset_tokenizer_needs_a_unilmv2_tokenizer():
    with pytest.raises(TypeError, match="UniLMv2Tokenizer"):
        WordPieceOffsetTokenizer(object())


# --- windows and labels ----------------------------------------------------------


def test_windows_with_doc_stride(preprocessor):
    questions = ["cat ?", "cat ?", "cat dog ran to ?", "cat ?"]
    contexts = [CONTEXT, CONTEXT, CONTEXT, ""]
    answers = {
        "answer_start": [19, 27, -1, -1],
        "answer_text": ["big park", ".", "", ""],
    }
    features = preprocessor.encode(questions, contexts, answers)
    # Example 0-1: 8 context tokens, 7 per window -> windows at 0 and 2.
    # Example 2: the question is cut to 3 tokens -> 6 per window -> windows
    # at 0 and 2. Example 3: an empty context still gives one window.
    np.testing.assert_array_equal(features["example_index"], [0, 0, 1, 1, 2, 2, 3])
    q = [CLS, 18, 12, SEP]
    np.testing.assert_array_equal(
        features["token_ids"][0], q + CONTEXT_IDS[0:7] + [SEP]
    )
    np.testing.assert_array_equal(
        features["token_ids"][1], q + CONTEXT_IDS[2:8] + [SEP, PAD]
    )
    np.testing.assert_array_equal(
        features["token_ids"][4], [CLS, 18, 19, 42, SEP] + CONTEXT_IDS[0:6] + [SEP]
    )
    np.testing.assert_array_equal(
        features["token_ids"][5],
        [CLS, 18, 19, 42, SEP] + CONTEXT_IDS[2:8] + [SEP],
    )
    np.testing.assert_array_equal(features["token_ids"][6], q + [SEP] + [PAD] * 7)
    np.testing.assert_array_equal(features["segment_ids"][1], [0] * 4 + [1] * 7 + [0])
    np.testing.assert_array_equal(features["padding_mask"][1], [1] * 11 + [0])
    np.testing.assert_array_equal(
        features["span_mask"][1], [1] + [0] * 3 + [1] * 6 + [0, 0]
    )
    np.testing.assert_array_equal(features["span_mask"][6], [1] + [0] * 11)
    offsets = features["token_offsets"][1]
    np.testing.assert_array_equal(offsets[:4], -1)
    np.testing.assert_array_equal(offsets[4:10], CONTEXT_SPANS[2:8])
    np.testing.assert_array_equal(offsets[10:], -1)
    # "big park" is tokens 5-6: slots 9-10 in window 0, 7-8 in window 1.
    # "." is token 7: only in window 1 (slot 9). No answer: [CLS].
    np.testing.assert_array_equal(
        features["labels"], [[9, 10], [7, 8], [0, 0], [9, 9], [0, 0], [0, 0], [0, 0]]
    )
    assert features["token_ids"].dtype == np.int32


def test_every_context_token_is_in_a_window(tokenizer):
    context = " ".join(["the big dog ran to the park ."] * 6)  # 48 tokens
    preprocessor = UniLMv2QuestionAnswererPreprocessor(
        tokenizer, sequence_length=20, doc_stride=5, max_question_length=4
    )
    features = preprocessor.encode("the dog ?", context)
    starts = features["token_offsets"][:, :, 0]
    seen = sorted(set(starts[starts >= 0].tolist()))
    all_starts = WordPieceOffsetTokenizer(tokenizer)(context)[1]
    assert seen == sorted(set(all_starts))
    # 20 - 3 - 3 = 14 tokens per window, every 5 tokens: 0, 5, ..., 30, 35.
    assert len(features["example_index"]) == 8
    first = [np.flatnonzero(row >= 0)[0] for row in starts]
    firsts = [int(np.searchsorted(all_starts, starts[w, first[w]])) for w in range(8)]
    assert firsts == [0, 5, 10, 15, 20, 25, 30, 35]


def test_call_returns_model_inputs_and_labels(preprocessor):
    x, y, weights = preprocessor(
        (["cat ?", "cat ?"], [CONTEXT, "a dog"]),
        {"answer_start": [19, 2], "answer_text": ["big park", "dog"]},
        sample_weight=[1.0, 0.5],
    )
    assert set(x) == set(MODEL_INPUTS)
    np.testing.assert_array_equal(y, [[9, 10], [7, 8], [5, 5]])
    np.testing.assert_array_equal(weights, [1.0, 1.0, 0.5])
    # Unbatched strings and a tuple passed as one argument.
    x = preprocessor(("cat ?", "a dog"))
    np.testing.assert_array_equal(
        x["token_ids"], [[CLS, 18, 12, SEP, 16, 19, SEP] + [PAD] * 5]
    )


# --- answers from hand-made logits ---------------------------------------------


def hand_logits(features, spans):
    """Logits that are 0 except `{(window, slot, row): value}`."""
    logits = np.zeros((len(features["example_index"]), 2, 12), "float32")
    for (window, slot, row), value in spans.items():
        logits[window, row, slot] = value
    return logits


def test_postprocess_answers_with_character_offsets(preprocessor):
    contexts = [CONTEXT, "The Cät ran.", "", CONTEXT]
    features = preprocessor.encode(["cat ?"] * 4, contexts)
    # windows: 0-1 example 0, 2 example 1, 3 example 2, 4-5 example 3.
    np.testing.assert_array_equal(features["example_index"], [0, 0, 1, 2, 3, 3])
    logits = hand_logits(
        features,
        {
            # Example 0: "big park" via window 1 (slots 7-8) beats "dog" in
            # window 0 (slot 5).
            (0, 5, 0): 2.0, (0, 5, 1): 2.0,
            (1, 7, 0): 3.0, (1, 8, 1): 3.0,
            # Example 1: "Cät" keeps its accent and case.
            (2, 5, 0): 4.0, (2, 5, 1): 4.0,
            # Example 3: the best end ("dog", slot 5) comes before the best
            # start ("big", slot 9). The best valid span is "ran to the"
            # (slots 6-8, 3.5 + 3), ahead of "The dog" (slots 4-5, 0 + 6).
            (4, 9, 0): 5.0, (4, 5, 1): 6.0, (4, 6, 0): 3.5, (4, 8, 1): 3.0,
        },
    )
    answers = preprocessor.postprocess(logits, features, contexts)
    assert [a["text"] for a in answers] == ["big park", "Cät", "", "ran to the"]
    assert [(a["start"], a["end"]) for a in answers] == [
        (19, 27), (4, 7), (-1, -1), (8, 18)
    ]
    for answer, context in zip(answers, contexts):
        assert context[answer["start"]:answer["end"]] == answer["text"] or (
            answer["start"] == -1
        )
    assert answers[0]["score"] == pytest.approx(6.0)
    assert answers[0]["null_score"] == pytest.approx(0.0)
    assert answers[3]["score"] == pytest.approx(6.5)
    # A max_answer_length of 2 tokens rules "ran to the" out.
    short = preprocessor.postprocess(logits, features, contexts, max_answer_length=2)
    assert (short[3]["text"], short[3]["start"], short[3]["end"]) == ("The dog", 0, 7)
    assert short[0]["text"] == "big park"
    # One unbatched context gives one dict.
    single = preprocessor.encode("cat ?", "The Cät ran.")
    one = preprocessor.postprocess(logits[2:3], single, "The Cät ran.")
    assert one["text"] == "Cät" and one["start"] == 4


def test_null_answer(preprocessor):
    features = preprocessor.encode(["cat ?"], [CONTEXT])
    # [CLS] scores 2 + 2 in window 0 and 1 + 1 in window 1 (null = min = 2);
    # the best span "dog" scores 1.5 + 1.5 = 3.
    logits = hand_logits(
        features,
        {(0, 0, 0): 2.0, (0, 0, 1): 2.0, (1, 0, 0): 1.0, (1, 0, 1): 1.0,
         (0, 5, 0): 1.5, (0, 5, 1): 1.5},
    )
    answer = preprocessor.postprocess(logits, features, [CONTEXT])[0]
    assert answer["text"] == "dog" and answer["null_score"] == pytest.approx(2.0)
    logits[1, :, 0] = 4.0  # null = min(4, 8) = 4 > 3: no answer.
    answer = preprocessor.postprocess(logits, features, [CONTEXT])[0]
    assert answer == {"text": "", "start": -1, "end": -1, "score": 4.0,
                      "null_score": 4.0}
    # The threshold: null only if it beats the span by more than it.
    kept = preprocessor.postprocess(
        logits, features, [CONTEXT], null_score_threshold=1.5
    )[0]
    assert kept["text"] == "dog"
    always = preprocessor.postprocess(
        logits, features, [CONTEXT], null_score_threshold=None
    )[0]
    assert (always["text"], always["start"], always["end"]) == ("dog", 4, 7)


# --- bad input ------------------------------------------------------------------


def test_preprocessor_errors(preprocessor, tokenizer):
    with pytest.raises(ValueError, match="answer_text` 'cat' is not at answer_start=4"):
        preprocessor.encode("q", CONTEXT, {"answer_start": 4, "answer_text": "cat"})
    with pytest.raises(ValueError, match="answer_start=25"):
        preprocessor.encode("q", CONTEXT, {"answer_start": 25, "answer_text": "park."})
    with pytest.raises(ValueError, match="answer_start.*integers"):
        preprocessor.encode("q", CONTEXT, {"answer_start": "4", "answer_text": "dog"})
    with pytest.raises(ValueError, match="'answer_start'.*'answer_text'"):
        preprocessor(("q", CONTEXT), [4])
    with pytest.raises(ValueError, match="one entry per example"):
        preprocessor.encode(
            ["q", "q"], [CONTEXT, CONTEXT],
            {"answer_start": [4], "answer_text": ["dog", "dog"]},
        )
    with pytest.raises(ValueError, match="2 question.*1 context"):
        preprocessor.encode(["q", "q"], [CONTEXT])
    with pytest.raises(ValueError, match=r"\(questions, contexts\)"):
        preprocessor((["q"], [CONTEXT], ["extra"]))
    with pytest.raises(ValueError, match="sequence_length=6"):
        UniLMv2QuestionAnswererPreprocessor(
            tokenizer, sequence_length=6, max_question_length=3
        )
    with pytest.raises(ValueError, match="sequence_length=5"):
        preprocessor.sequence_length = 5
    assert preprocessor.sequence_length == 12
    with pytest.raises(ValueError, match="doc_stride=0"):
        UniLMv2QuestionAnswererPreprocessor(tokenizer, doc_stride=0)
    with pytest.raises(ValueError, match="max_question_length=0"):
        UniLMv2QuestionAnswererPreprocessor(tokenizer, max_question_length=0)
    features = preprocessor.encode("q", CONTEXT)
    with pytest.raises(ValueError, match="max_answer_length=0"):
        preprocessor.postprocess(
            np.zeros((2, 2, 12)), features, CONTEXT, max_answer_length=0
        )
    with pytest.raises(ValueError, match="shape"):
        preprocessor.postprocess(np.zeros((3, 2, 12)), features, CONTEXT)
    ds = tf.data.Dataset.from_tensor_slices((["q"], [CONTEXT]))
    with pytest.raises(ValueError, match="tf.data"):
        ds.map(lambda q, c: preprocessor((q, c)))


# --- the task -------------------------------------------------------------------


def separable_qa(n=16, seed=0):
    """Contexts of filler words with one `cat`; the answer is `cat`."""
    rng = np.random.default_rng(seed)
    fillers = ["the", "a", "big", "red", "sat", "ran", "on", "park", "ball", "sun"]
    questions, contexts, starts = [], [], []
    for _ in range(n):
        words = list(rng.choice(fillers, size=6))
        words.insert(int(rng.integers(0, 7)), "cat")
        context = " ".join(words)
        questions.append("cat ?")
        contexts.append(context)
        starts.append(context.index("cat"))
    return questions, contexts, {"answer_start": starts, "answer_text": ["cat"] * n}


@pytest.fixture(scope="module")
def trained(tokenizer):
    """A question answerer fitted on `separable_qa()` from raw text."""
    keras.utils.set_random_seed(0)
    preprocessor = UniLMv2QuestionAnswererPreprocessor(
        tokenizer, sequence_length=12, doc_stride=4, max_question_length=3
    )
    model = UniLMv2QuestionAnswerer(
        tiny_backbone(dropout=0.0), preprocessor=preprocessor
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3, clipnorm=1.0))
    questions, contexts, answers = separable_qa()
    data = ((questions, contexts), answers)
    before = model.evaluate(*data, batch_size=8, verbose=0, return_dict=True)
    history = model.fit(*data, batch_size=8, epochs=8, verbose=0)
    after = model.evaluate(*data, batch_size=8, verbose=0, return_dict=True)
    return model, history.history, before, after


def test_output_masks_question_and_padding(trained):
    model = trained[0]
    features = model.preprocessor.encode(["cat ?", "cat ?"], [CONTEXT, "a dog"])
    logits = model.predict(features, batch_size=8, verbose=0)
    assert logits.shape == (3, 2, 12) and logits.dtype == np.float32
    allowed = features["span_mask"].astype(bool)[:, None, :].repeat(2, axis=1)
    np.testing.assert_array_equal(logits[~allowed], MASKED_LOGIT)
    assert np.all(np.abs(logits[allowed]) < 1e3)
    # Raw text gives the same windows and logits.
    raw = model.predict((["cat ?", "cat ?"], [CONTEXT, "a dog"]), batch_size=8, verbose=0)
    np.testing.assert_allclose(raw, logits, atol=1e-6)


def test_loss_is_the_mean_of_start_and_end_cross_entropy(trained):
    model = trained[0]
    features = model.preprocessor.encode(
        ["cat ?", "cat ?"], [CONTEXT, "a dog"],
        {"answer_start": [19, 2], "answer_text": ["big park", "dog"]},
    )
    logits = model.predict(features, batch_size=8, verbose=0).astype("float64")
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    labels = features["labels"]
    rows = np.arange(len(labels))
    start_ce = -log_probs[rows, 0, labels[:, 0]].mean()
    end_ce = -log_probs[rows, 1, labels[:, 1]].mean()
    result = model.evaluate(
        model_inputs(features), labels, batch_size=8, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(result["loss"], (start_ce + end_ce) / 2, rtol=1e-4)


def test_learns_to_find_the_answer(trained):
    model, history, before, after = trained
    assert after["loss"] < 0.3 * before["loss"]
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert after["sparse_categorical_accuracy"] > before["sparse_categorical_accuracy"]
    assert after["sparse_categorical_accuracy"] >= 0.9
    questions, contexts, answers = separable_qa(8, seed=1)
    predicted = model.answer(questions, contexts, null_score_threshold=None)
    correct = [
        (p["text"], p["start"]) == ("cat", s)
        for p, s in zip(predicted, answers["answer_start"])
    ]
    assert np.mean(correct) >= 0.75


def test_fit_and_evaluate_on_windows_and_tf_data(trained):
    model = trained[0]
    weights = [np.array(w) for w in model.get_weights()]
    questions, contexts, answers = separable_qa(8, seed=2)
    features = model.preprocessor.encode(questions, contexts, answers)
    try:
        from_raw = model.evaluate(
            (questions, contexts), answers, batch_size=8, verbose=0
        )
        from_arrays = model.evaluate(
            model_inputs(features), features["labels"], batch_size=8, verbose=0
        )
        np.testing.assert_allclose(from_raw, from_arrays, rtol=1e-5)
        ds = tf.data.Dataset.from_tensor_slices(
            (model_inputs(features), features["labels"])
        ).batch(8)
        history = model.fit(ds, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        history = model.fit(
            (questions, contexts), answers, batch_size=8, epochs=1,
            validation_data=((questions, contexts), answers), verbose=0,
        )
        assert np.isfinite(history.history["val_loss"][0])
        raw_ds = tf.data.Dataset.from_tensor_slices((questions, contexts)).batch(4)
        with pytest.raises(ValueError, match="tf.data"):
            model.predict(raw_ds, verbose=0)
    finally:
        model.set_weights(weights)


def test_task_errors(trained):
    model = trained[0]
    bare = UniLMv2QuestionAnswerer(model.backbone, preprocessor=None)
    with pytest.raises(ValueError, match="need a preprocessor"):
        bare.answer("q", CONTEXT)
    with pytest.raises(ValueError, match="need a preprocessor"):
        bare.predict((["q"], [CONTEXT]), verbose=0)


# --- serialization and presets ---------------------------------------------------


def test_get_config_round_trip(trained):
    config = trained[0].get_config()
    restored = UniLMv2QuestionAnswerer.from_config(copy.deepcopy(config))
    assert restored.get_config() == config
    assert restored.preprocessor.doc_stride == 4
    assert restored.preprocessor.sequence_length == 12


def test_keras_file_and_preset_round_trips(trained, tokenizer, tmp_path):
    model = trained[0]
    features = model.preprocessor.encode(["cat ?"], [CONTEXT])
    expected = model.predict(features, batch_size=8, verbose=0)

    path = os.path.join(tmp_path, "qa.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, UniLMv2QuestionAnswerer)
    np.testing.assert_allclose(
        restored.predict(features, batch_size=8, verbose=0), expected, atol=1e-6
    )

    preset = os.path.join(tmp_path, "preset")
    model.save_to_preset(preset)
    assert os.path.exists(os.path.join(preset, "task.weights.h5"))
    loaded = UniLMv2QuestionAnswerer.from_preset(preset)
    assert loaded.preprocessor.doc_stride == 4
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)

    # A backbone-only preset: the backbone is loaded, the span head is new.
    backbone_preset = os.path.join(tmp_path, "backbone")
    model.backbone.save_to_preset(backbone_preset)
    tokenizer.save_to_preset(backbone_preset)
    fresh = UniLMv2QuestionAnswerer.from_preset(backbone_preset)
    assert isinstance(fresh.preprocessor, UniLMv2QuestionAnswererPreprocessor)
    for a, b in zip(fresh.backbone.get_weights(), model.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert fresh.span_dense.kernel.shape == (32, 2)
