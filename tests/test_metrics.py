"""keras_unilmv2.metrics against hand-computed values."""

import math
import sys

import pytest

from keras_unilmv2 import metrics


def _squad_example(qid, answers):
    return {"id": qid, "answers": {"text": answers, "answer_start": [0] * len(answers)}}


def test_normalize_answer_and_token_scores():
    assert metrics.normalize_answer("The  Cat,   sat!") == "cat sat"
    assert metrics.normalize_answer("An apple a day; THE end.") == "apple day end"
    # Articles only as whole words.
    assert metrics.normalize_answer("Theatre and another") == "theatre and another"
    assert metrics.exact_match("The Cat!", "cat") == 1
    assert metrics.exact_match("cats", "cat") == 0
    # [cat, sat] vs [cat, sat, down]: p = 1, r = 2/3.
    assert metrics.f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)
    assert metrics.f1_score("dog", "cat") == 0.0
    # v2 rule: empty vs empty is 1, empty vs text 0.
    assert metrics.f1_score("", "the") == 1.0
    assert metrics.f1_score("", "cat") == 0.0


def test_squad_v1_takes_the_best_gold_answer():
    examples = [
        _squad_example("q1", ["cat", "the black cat"]),
        _squad_example("q2", ["on the mat"]),
    ]
    result = metrics.squad_v1_metrics(examples, {"q1": "black cat", "q2": "mat"})
    assert result["exact_match"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    # A missing prediction scores 0.
    result = metrics.squad_v1_metrics(examples, {"q1": "black cat"})
    assert result == {"exact_match": pytest.approx(50.0), "f1": pytest.approx(50.0)}
    with pytest.raises(TypeError, match="predictions"):
        metrics.squad_v1_metrics(examples, ["black cat"])


def test_squad_v2_no_answer_handling_and_best_threshold():
    examples = [
        _squad_example("q1", ["cat"]),
        _squad_example("q2", []),  # unanswerable
        _squad_example("q3", []),  # unanswerable
        _squad_example("q4", ["on the mat"]),
    ]
    predictions = {"q1": "cat", "q2": "", "q3": "mat", "q4": "mat"}
    result = metrics.squad_v2_metrics(examples, predictions)
    assert result["exact"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(100 * (2 + 2 / 3) / 4)
    assert result["HasAns_exact"] == pytest.approx(50.0)
    assert result["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert result["NoAns_exact"] == pytest.approx(50.0)
    assert result["total"] == 4 and result["HasAns_total"] == 2 and result["NoAns_total"] == 2
    assert "best_f1" not in result

    na = {"q1": 0.1, "q2": 0.9, "q3": 0.8, "q4": 0.2}
    result = metrics.squad_v2_metrics(examples, predictions, na_probs=na, na_prob_thresh=0.5)
    # q2 and q3 are above 0.5: predicted unanswerable, both right.
    assert result["exact"] == pytest.approx(75.0)
    assert result["f1"] == pytest.approx(100 * (3 + 2 / 3) / 4)
    # Sweep: start at 2 (no-answer questions); q1 +1 -> 3 (thresh 0.1);
    # q4 +0 (EM) / +2/3 (F1, thresh 0.2); q3 -1; q2 0.
    assert result["best_exact"] == pytest.approx(75.0)
    assert result["best_exact_thresh"] == pytest.approx(0.1)
    assert result["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 4)
    assert result["best_f1_thresh"] == pytest.approx(0.2)

    with pytest.raises(ValueError, match="q4"):
        metrics.squad_v2_metrics(examples, {"q1": "cat", "q2": "", "q3": ""})
    with pytest.raises(ValueError, match="na_probs"):
        metrics.squad_v2_metrics(examples, predictions, na_probs={"q1": 0.0})


def test_glue_metrics():
    predictions, labels = [1, 0, 1, 1], [1, 0, 0, 1]
    assert metrics.accuracy(predictions, labels) == pytest.approx(0.75)
    assert metrics.f1(predictions, labels) == pytest.approx(0.8)  # tp 2, fp 1, fn 0
    # tp 2, tn 1, fp 1, fn 0: (2 * 1 - 1 * 0) / sqrt(3 * 2 * 2 * 1).
    assert metrics.matthews_corrcoef(predictions, labels) == pytest.approx(2 / math.sqrt(12))
    assert metrics.matthews_corrcoef([1, 1, 1], [1, 0, 1]) == 0.0  # undefined -> 0
    assert metrics.pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    # Ties share their average rank: [1, 2.5, 2.5, 4].
    assert metrics.spearman([1, 2, 3, 4], [10, 20, 20, 40]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert metrics.glue_metrics("mrpc", predictions, labels) == {
        "accuracy": pytest.approx(0.75),
        "f1": pytest.approx(0.8),
    }
    assert set(metrics.glue_metrics("cola", predictions, labels)) == {"matthews_corrcoef"}
    assert set(metrics.glue_metrics("STS-B", [0.1, 2.0, 3.5], [0.0, 2.5, 3.0])) == {
        "pearson",
        "spearman",
    }
    assert set(metrics.glue_metrics("mnli-mm", [0, 1], [0, 2])) == {"accuracy"}
    with pytest.raises(ValueError, match="equally long"):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="Unknown GLUE task 'glue'"):
        metrics.glue_metrics("glue", [1], [1])


def test_rouge_hand_computed():
    result = metrics.rouge(["the cat sat on the mat"], ["the cat is on the mat"], use_stemmer=False)
    # Unigrams: 5 of 6 shared; bigrams: 3 of 5; LCS "the cat on the mat".
    assert result["rouge1"] == pytest.approx(5 / 6)
    assert result["rouge2"] == pytest.approx(0.6)
    assert result["rougeL"] == pytest.approx(5 / 6)
    # The best of several references counts.
    best = metrics.rouge(["the cat"], [["a dog", "the cat"]], rouge_types=("rouge1",))
    assert best["rouge1"] == pytest.approx(1.0)


def test_rouge_lsum_with_sentence_splitting():
    assert metrics.split_sentences("One. Two!  Three? four") == "One.\nTwo!\nThree?\nfour"
    pred, ref = ["the cat sat. the dog ran."], ["the dog ran. the cat sat."]
    flat = metrics.rouge(pred, ref, rouge_types=("rougeL", "rougeLsum"), use_stemmer=False)
    # One "sentence": the LCS is 3 of 6 tokens.
    assert flat["rougeLsum"] == pytest.approx(0.5) and flat["rougeL"] == pytest.approx(0.5)
    split = metrics.rouge(
        pred, ref, rouge_types=("rougeL", "rougeLsum"), use_stemmer=False, sentence_split=True
    )
    # Sentence-level union LCS finds both sentences.
    assert split["rougeLsum"] == pytest.approx(1.0)
    assert split["rougeL"] == pytest.approx(0.5)


def test_bleu_hand_computed():
    assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    # Precisions 5/6, 3/5, 2/4, 1/3; equal lengths (no brevity penalty).
    score = metrics.bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert score == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-4)
    # Two references per example.
    score = metrics.bleu(["the cat sat on the mat"], [["a b c", "the cat sat on the mat"]])
    assert score == pytest.approx(100.0)
    with pytest.raises(ValueError, match="equally long"):
        metrics.bleu(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="predictions"):
        metrics.bleu("the cat", ["the cat"])


@pytest.mark.parametrize(
    "module, call, package",
    [
        ("sacrebleu", lambda: metrics.bleu(["a"], ["a"]), "pip install sacrebleu"),
        ("rouge_score.rouge_scorer", lambda: metrics.rouge(["a"], ["a"]), "pip install rouge-score"),
    ],
)
def test_missing_packages_say_what_to_install(monkeypatch, module, call, package):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=package):
        call()
