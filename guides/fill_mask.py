"""Masked-LM fill-in with the pretrained (tied) LM head.

Every UniLMv2 preset carries the pretrained LM head, so a converted
Microsoft checkpoint or a shipped preset fills in `[MASK]` out of the box.
Fine-tuning the masked LM on new text adapts it further. We measure the
top-5 hit rate on held-out masked tokens (is the true token among the five
best guesses?) before and after a short fine-tuning with the task's default
`compile()` on the docstring bodies of `guides/data/docstrings_*.tsv`,
against the trivial unigram baseline: always guessing the five most
frequent tokens of the training text.

Run it: `python guides/fill_mask.py` (`--quick` for the test suite's run).
"""

import argparse
import collections
import csv
import os
import sys

import keras
import numpy as np

from keras_unilmv2.models.unilmv2_masked_lm import UniLMv2MaskedLM

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PRESET = "unilmv2_tiny_en_uncased"


def load(name):
    with open(os.path.join(HERE, "data", name), encoding="utf-8") as f:
        return [r["body"] for r in csv.DictReader(f, delimiter="\t")]


def masked_batches(masked_lm, texts, batch_size=32):
    """Randomly masked held-out text: (inputs, true ids, weights) batches."""
    for start in range(0, len(texts), batch_size):
        x, y, w = masked_lm.preprocessor(texts[start : start + batch_size])
        yield (
            {k: keras.ops.convert_to_numpy(v) for k, v in x.items()},
            keras.ops.convert_to_numpy(y),
            keras.ops.convert_to_numpy(w),
        )


def top5_hit_rates(masked_lm, batches, unigram_top5):
    """Top-5 hit rate of the model and of the unigram guess, same tokens."""
    model_hits = unigram_hits = total = 0.0
    for x, y, w in batches:
        logits = np.asarray(keras.Model.predict_on_batch(masked_lm, x))
        top5 = np.argsort(-logits, axis=-1)[..., :5]
        model_hits += float(np.sum((top5 == y[..., None]).any(-1) * w))
        unigram_hits += float(np.sum(np.isin(y, unigram_top5) * w))
        total += float(np.sum(w))
    return model_hits / total, unigram_hits / total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    train, test = load("docstrings_train.tsv"), load("docstrings_test.tsv")
    if args.quick:
        train, test = train[:32], test[:16]
        args.epochs = 1

    keras.utils.set_random_seed(0)
    masked_lm = UniLMv2MaskedLM.from_preset(args.preset, sequence_length=128)
    for text in (
        "Return the [MASK] of the list.",
        "Raise a [MASK] if the file does not exist.",
    ):
        top = masked_lm.fill_mask(text, top_k=5)[0]
        print(f"{text!r}: {[candidate['token'] for candidate in top]}")

    tokenizer = masked_lm.preprocessor.tokenizer
    counts = collections.Counter(
        int(i) for ids in tokenizer(train) for i in keras.ops.convert_to_numpy(ids)
    )
    unigram_top5 = [i for i, _ in counts.most_common(5)]
    print("unigram guess:", [tokenizer.id_to_token(i) for i in unigram_top5])
    # The same masked tokens before and after (the preprocessor is seeded).
    heldout = list(masked_batches(masked_lm, test))
    before, unigram = top5_hit_rates(masked_lm, heldout, unigram_top5)
    masked_lm.fit(train, batch_size=16, epochs=args.epochs, verbose=2)
    after, _ = top5_hit_rates(masked_lm, heldout, unigram_top5)
    print(
        f"held-out top-5 hit rate: unigram {unigram:.3f}, model before "
        f"fine-tuning {before:.3f}, after {after:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
