"""ROUGE (via `rouge_score`) and BLEU (via `sacrebleu`) for generated text."""

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _require(module, package):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        raise ImportError(
            f"This metric needs the `{package}` package: `pip install {package}` "
            '(or `pip install "keras-unilmv2[metrics]"`).'
        ) from e


def split_sentences(text):
    """One sentence per line: breaks after `.`, `!` or `?` followed by
    whitespace, as s2s-ft's CNN/DailyMail evaluation prepares summaries for
    ROUGE-Lsum (which scores newline-separated sentences)."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def _texts(name, values):
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"`{name}` must be a list of strings. Received: {values!r:.200}")
    return list(values)


def _references(references, n):
    refs = list(references)
    if len(refs) != n:
        raise ValueError(
            f"`predictions` and `references` must be equally long. Received: {n} "
            f"predictions and {len(refs)} references"
        )
    out = []
    for ref in refs:
        if isinstance(ref, str):
            out.append([ref])
        elif ref and all(isinstance(r, str) for r in ref):
            out.append(list(ref))
        else:
            raise TypeError(
                "Every reference must be a string or a non-empty list of strings. "
                f"Received: {ref!r:.200}"
            )
    return out


def rouge(
    predictions,
    references,
    rouge_types=("rouge1", "rouge2", "rougeL"),
    use_stemmer=True,
    sentence_split=False,
):
    """Corpus ROUGE F1 (the mean of the per-example F1), with `rouge_score`.

    Args:
        predictions: list of generated strings.
        references: list of reference strings (or lists of references: the
            best-scoring reference counts, per ROUGE type).
        rouge_types: `rouge_score` types, e.g. `"rouge1"`, `"rouge2"`,
            `"rougeL"`, `"rougeLsum"`.
        use_stemmer: bool, Porter stemming (as the ROUGE-1.5.5 `-m` flag).
        sentence_split: bool, put each sentence on its own line first
            (`split_sentences`), as s2s-ft does on CNN/DailyMail for
            ROUGE-Lsum; other types ignore the newlines.

    Returns:
        A dict, ROUGE type -> F1 in [0, 1].

    Example:
    ```python
    rouge(["the cat sat on the mat"], ["the cat is on the mat"])
    # {"rouge1": 0.833..., "rouge2": 0.6, "rougeL": 0.833...}
    ```
    """
    scoring = _require("rouge_score.rouge_scorer", "rouge-score")
    predictions = _texts("predictions", predictions)
    references = _references(references, len(predictions))
    if not predictions:
        raise ValueError("`predictions` is empty: nothing to score.")
    scorer = scoring.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    totals = {t: 0.0 for t in rouge_types}
    for prediction, refs in zip(predictions, references):
        if sentence_split:
            prediction = split_sentences(prediction)
            refs = [split_sentences(r) for r in refs]
        best = {t: 0.0 for t in rouge_types}
        for ref in refs:
            scores = scorer.score(ref, prediction)
            for t in rouge_types:
                best[t] = max(best[t], scores[t].fmeasure)
        for t in rouge_types:
            totals[t] += best[t]
    return {t: totals[t] / len(predictions) for t in rouge_types}


def bleu(predictions, references, tokenize="13a", lowercase=False):
    """Corpus BLEU-4 (0-100) with `sacrebleu`.

    Args:
        predictions: list of generated strings.
        references: list of reference strings, or of equally long lists of
            references (several references per example).
        tokenize: sacrebleu tokenizer (`"13a"`, the WMT default; `"none"`
            for pre-tokenized text).
        lowercase: bool, case-insensitive BLEU.

    Returns:
        The BLEU score, a float in [0, 100].

    Example:
    ```python
    bleu(["the cat sat on the mat"], ["the cat sat on the mat"])  # 100.0
    ```
    """
    sacrebleu = _require("sacrebleu", "sacrebleu")
    predictions = _texts("predictions", predictions)
    references = _references(references, len(predictions))
    if not predictions:
        raise ValueError("`predictions` is empty: nothing to score.")
    counts = {len(r) for r in references}
    if len(counts) != 1:
        raise ValueError(
            "Every example needs the same number of references for BLEU. "
            f"Received counts: {sorted(counts)}"
        )
    streams = [list(s) for s in zip(*references)]
    result = sacrebleu.corpus_bleu(
        predictions, streams, tokenize=tokenize, lowercase=lowercase
    )
    return float(result.score)
