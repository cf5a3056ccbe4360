"""SQuAD v1.1 / v2.0 exact match and F1, as the official evaluation scripts."""

import collections
import re
import string

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text):
    """Lowercase, drop punctuation, drop the articles a/an/the, collapse
    whitespace (the official `normalize_answer`)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction, truth):
    """1 if the normalized strings are equal, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction, truth):
    """Token-overlap F1 of the normalized strings (v2.0 rule: if either is
    empty, 1 when both are, else 0)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(truth).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _examples_and_predictions(examples, predictions):
    if not isinstance(predictions, dict):
        raise TypeError(
            "`predictions` must be a dict {question id: answer text}. "
            f"Received: {type(predictions).__name__}"
        )
    for example in examples:
        if not isinstance(example, dict) or "id" not in example or "answers" not in example:
            raise ValueError(
                "`examples` must be SQuAD examples as `read_squad` returns them "
                f"(dicts with 'id' and 'answers'). Received: {example!r}"
            )
    return examples, predictions


def squad_v1_metrics(examples, predictions):
    """The official SQuAD v1.1 scores, in percent.

    Args:
        examples: `keras_unilmv2.datasets.read_squad` examples (each with
            `id` and `answers["text"]`).
        predictions: dict, question id -> predicted answer text. A missing
            question scores 0, as in the official script.

    Returns:
        `{"exact_match": ..., "f1": ...}`: the mean over questions of the
        maximum over the gold answers.

    Example:
    ```python
    squad_v1_metrics(
        [{"id": "q1", "answers": {"text": ["the cat"], "answer_start": [0]}}],
        {"q1": "Cat"},
    )  # {"exact_match": 100.0, "f1": 100.0}
    ```
    """
    examples, predictions = _examples_and_predictions(examples, predictions)
    if not examples:
        raise ValueError("`examples` is empty: nothing to score.")
    em = f1 = 0.0
    for example in examples:
        if example["id"] not in predictions:
            continue
        golds = example["answers"]["text"]
        prediction = predictions[example["id"]]
        em += max(exact_match(prediction, g) for g in golds)
        f1 += max(f1_score(prediction, g) for g in golds)
    return {"exact_match": 100.0 * em / len(examples), "f1": 100.0 * f1 / len(examples)}


def _best_threshold(predictions, raw, na_probs, has_answer):
    """The official `find_best_thresh`: sweep the questions by increasing
    no-answer probability, predicting an answer for those below."""
    score = best = sum(1 for q in has_answer if not has_answer[q])
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):
        if qid not in raw:
            continue
        if has_answer[qid]:
            diff = raw[qid]
        else:
            diff = -1 if predictions.get(qid) else 0
        score += diff
        if score > best:
            best = score
            threshold = na_probs[qid]
    return 100.0 * best / len(raw), threshold


def squad_v2_metrics(examples, predictions, na_probs=None, na_prob_thresh=1.0):
    """The official SQuAD v2.0 scores, in percent.

    A question without (non-empty after normalization) gold answers is
    unanswerable: its only gold answer is `""`, so the empty prediction
    scores 1. With `na_probs` (question id -> no-answer score, e.g. the
    null-score difference `null score - best span score`), a question
    whose score is above `na_prob_thresh` is predicted unanswerable, and
    the best threshold is searched as the official script does.

    Args:
        examples: `read_squad` examples.
        predictions: dict, question id -> answer text (`""` = no answer),
            for every question.
        na_probs: optional dict, question id -> no-answer score.
        na_prob_thresh: float, the threshold for `na_probs`.

    Returns:
        A dict with `exact`, `f1`, `total`, `HasAns_exact`, `HasAns_f1`,
        `HasAns_total`, `NoAns_exact`, `NoAns_f1`, `NoAns_total` (the last
        three groups when present) and, with `na_probs`, `best_exact`,
        `best_exact_thresh`, `best_f1`, `best_f1_thresh`.

    Example:
    ```python
    examples = keras_unilmv2.datasets.read_squad("dev-v2.0.json")
    squad_v2_metrics(examples, predictions, na_probs=null_score_diffs)
    ```
    """
    examples, predictions = _examples_and_predictions(examples, predictions)
    if not examples:
        raise ValueError("`examples` is empty: nothing to score.")
    has_answer, raw_exact, raw_f1 = {}, {}, {}
    for example in examples:
        qid = example["id"]
        golds = [t for t in example["answers"]["text"] if normalize_answer(t)]
        has_answer[qid] = bool(golds)
        if not golds:
            golds = [""]
        if qid not in predictions:
            raise ValueError(
                f"`predictions` has no answer for question {qid!r}; give every "
                'question one ("" for no answer).'
            )
        prediction = predictions[qid]
        raw_exact[qid] = max(exact_match(prediction, g) for g in golds)
        raw_f1[qid] = max(f1_score(prediction, g) for g in golds)
    if na_probs is None:
        probs = {qid: 0.0 for qid in has_answer}
    else:
        missing = [qid for qid in has_answer if qid not in na_probs]
        if missing:
            raise ValueError(
                f"`na_probs` has no score for {len(missing)} question(s), e.g. {missing[0]!r}."
            )
        probs = {qid: float(na_probs[qid]) for qid in has_answer}

    def thresholded(raw):
        out = {}
        for qid, value in raw.items():
            out[qid] = float(not has_answer[qid]) if probs[qid] > na_prob_thresh else value
        return out

    exact = thresholded(raw_exact)
    f1 = thresholded(raw_f1)

    def summary(qids, prefix=""):
        n = len(qids)
        return {
            prefix + "exact": 100.0 * sum(exact.get(q, 0.0) for q in qids) / n,
            prefix + "f1": 100.0 * sum(f1.get(q, 0.0) for q in qids) / n,
            prefix + "total": n,
        }

    qids = list(has_answer)
    result = summary(qids)
    with_answer = [q for q in qids if has_answer[q]]
    without = [q for q in qids if not has_answer[q]]
    if with_answer:
        result.update(summary(with_answer, "HasAns_"))
    if without:
        result.update(summary(without, "NoAns_"))
    if na_probs is not None:
        best_exact, exact_thresh = _best_threshold(predictions, raw_exact, probs, has_answer)
        best_f1, f1_thresh = _best_threshold(predictions, raw_f1, probs, has_answer)
        result.update(
            best_exact=best_exact,
            best_exact_thresh=exact_thresh,
            best_f1=best_f1,
            best_f1_thresh=f1_thresh,
        )
    return result
