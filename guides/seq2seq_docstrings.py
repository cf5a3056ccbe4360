"""Sequence-to-sequence fine-tuning with pseudo masks: docstring summaries.

UniLMv2 generates with its encoder: during fine-tuning (s2s-ft) the input is
`[source | target | pseudo copies of the target]`; each pseudo token `[P]`
shares its target token's position and, under a special attention mask,
sees the source and the target tokens before it. The loss is read at the
pseudo slots. Generation encodes the source once into the key/value cache,
then feeds `[previous token, [MASK]]` per step.

The task: given the body of a Python standard-library docstring, write its
summary line (`guides/data/docstrings_*.tsv`, rebuilt by
`tools/build_demo_data.py`). We fine-tune a shipped preset with the task's
default `compile()` (s2s-ft's AdamW with warm-up and linear decay, sized by
`fit`) and report ROUGE-L F1 (the `rouge-score` package) with greedy and
beam decoding against the trivial lead baseline: the first k words of the
source, k the mean target length in words.

Run it: `python guides/seq2seq_docstrings.py` (`--quick` for the version the
test suite runs).
"""

import argparse
import csv
import os
import sys

import keras

import keras_unilmv2
from keras_unilmv2.samplers import UniLMv2BeamSampler

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PRESET = "unilmv2_tiny_en_uncased"


def load(name):
    with open(os.path.join(HERE, "data", name), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["body"] for r in rows], [r["summary"] for r in rows]


def rouge(predictions, references):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references):
        for key, score in scorer.score(reference, prediction).items():
            totals[key] += score.fmeasure
    return {k: round(100 * v / len(references), 2) for k, v in totals.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--test-examples", type=int, default=None, help="the first N held-out pairs (default: all 164)"
    )
    args = parser.parse_args()

    train_x, train_y = load("docstrings_train.tsv")
    test_x, test_y = load("docstrings_test.tsv")
    if args.quick:
        train_x, train_y, test_x, test_y = train_x[:32], train_y[:32], test_x[:8], test_y[:8]
        args.epochs = 1
    else:
        test_x, test_y = test_x[: args.test_examples], test_y[: args.test_examples]

    k = round(sum(len(y.split()) for y in train_y) / len(train_y))
    lead = rouge([" ".join(x.split()[:k]) for x in test_x], test_y)
    print(f"lead-{k} baseline (first {k} source words):", lead)

    keras.utils.set_random_seed(0)
    # The task's defaults: s2s-ft's loss, optimizer and schedule.
    seq2seq = keras_unilmv2.UniLMv2Seq2SeqLM.from_preset(
        args.preset, encoder_sequence_length=96, decoder_sequence_length=24
    )
    before = seq2seq.generate(test_x, max_length=24)
    print("ROUGE before fine-tuning (greedy):", rouge(before, test_y))
    seq2seq.fit(
        {"encoder_text": train_x, "decoder_text": train_y},
        batch_size=16,
        epochs=args.epochs,
        verbose=2,
    )
    greedy = seq2seq.generate(test_x, max_length=24)
    scores = rouge(greedy, test_y)
    print("ROUGE after fine-tuning (greedy):", scores)
    empty = sum(not g.strip() for g in greedy)
    print(f"empty generations: {empty} of {len(greedy)}")
    dot = seq2seq.preprocessor.tokenizer.token_to_id(".")
    seq2seq.compile(
        optimizer=seq2seq.optimizer,
        sampler=UniLMv2BeamSampler(
            num_beams=4, length_penalty=0.9, no_repeat_ngram_size=3, ngram_ignore_token_ids=[dot]
        ),
    )
    beam = seq2seq.generate(test_x, max_length=24)
    beam_scores = rouge(beam, test_y)
    print("ROUGE after fine-tuning (beam 4):", beam_scores)
    for name, result in (("greedy", scores), ("beam 4", beam_scores)):
        ratio = result["rougeL"] / max(lead["rougeL"], 1e-9)
        print(f"ROUGE-L {name} / lead-{k}: {ratio:.2f}x (goal >= 1.2x)")
    for source, reference, prediction in list(zip(test_x, test_y, beam))[:3]:
        print(f"\nsource:    {source[:160]}\nreference: {reference}\ngenerated: {prediction}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
