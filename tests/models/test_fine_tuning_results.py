"""Slow: fine-tuning with the library's defaults learns a real task.

The seq2seq task, from the shipped preset and with its default `compile()`,
is fine-tuned on the docstring summaries of
`guides/data/docstrings_*.tsv` (all 1,468 training pairs, 20 epochs: about
15 minutes on 2 CPU cores; real text: the body of a standard-library
docstring -> its summary line). Its greedy generations on the 164 held-out
pairs must be non-empty and beat the lead baseline (the first k source
words, k the mean target length) in ROUGE-L. With the former default (a
constant AdamW 5e-5) the tiny preset stayed at the unigram stage: after 3
epochs ROUGE-L 1.5 against the lead baseline's 14.1, 21 of 100 generations
empty (`[SEP]` predicted first). 10 epochs were not enough to beat the
baseline reliably: greedy ROUGE-L 15.6-16.7 on the 164 pairs over seeds and
machines (14.0-16.7 on the first 100) against the baseline's 15.1; 20
epochs gave 18.2 and 18.8 (seeds 0 and 1, JAX).
"""

import csv
import os

import keras
import pytest

from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM

GUIDE_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "guides",
    "data",
)


def _pairs(name):
    with open(os.path.join(GUIDE_DATA, name), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["body"] for r in rows], [r["summary"] for r in rows]


def _rouge_l(predictions, references):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]
    return sum(scores) / len(scores)


@pytest.mark.slow
def test_seq2seq_defaults_learn_docstring_summaries():
    train_x, train_y = _pairs("docstrings_train.tsv")
    test_x, test_y = _pairs("docstrings_test.tsv")
    # The guide's full run (`guides/seq2seq_docstrings.py`: 20 epochs, all
    # 164 held-out pairs).
    k = round(sum(len(y.split()) for y in train_y) / len(train_y))
    lead = _rouge_l([" ".join(x.split()[:k]) for x in test_x], test_y)

    keras.utils.set_random_seed(0)
    seq2seq = UniLMv2Seq2SeqLM.from_preset(
        "unilmv2_tiny_en_uncased", encoder_sequence_length=96, decoder_sequence_length=24
    )
    seq2seq.fit(
        {"encoder_text": train_x, "decoder_text": train_y},
        batch_size=16,
        epochs=20,
        verbose=0,
    )
    generations = seq2seq.generate(test_x, max_length=24)
    assert all(g.strip() for g in generations), [g for g in generations if not g.strip()]
    rouge_l = _rouge_l(generations, test_y)
    assert rouge_l > lead, (rouge_l, lead, generations[:5])
