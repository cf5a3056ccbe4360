"""PMLM input pipeline against keras-hub's `BertMaskedLMPreprocessor`.

Same process, same texts, same vocabulary, same `tf.data` pipeline
(`from_tensor_slices -> batch -> map(preprocessor, AUTOTUNE) -> prefetch`):
measures examples per second of `UniLMv2PMLMPreprocessor` and of keras-hub's
BERT masked-LM preprocessor, and the bytes of model input (`x`) per example
each one ships to the model. Prints both figures and the ratios
(goals: throughput ratio PMLM / BERT >= 0.8, bytes ratio <= 3), and the CPU
time (all threads) per example, which a busy machine disturbs less.

The texts are documents of the guides' corpora (`guides/data/*.tsv`, one
paragraph a line, consecutive paragraphs joined until a document fills the
sequence); the vocabulary is the shipped tiny preset's. Trials alternate
between the two preprocessors and the best trial of each is reported, so
that a busy machine penalizes both alike.

    python tools/benchmark_pmlm_input.py                     # N = 512
    python tools/benchmark_pmlm_input.py --length 128 --trials 5
"""

import argparse
import csv
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runnable from a source checkout without installing the package.
sys.path.insert(0, ROOT)

VOCABULARY = os.path.join(
    ROOT, "presets", "unilmv2_tiny_en_uncased", "assets", "tokenizer", "vocabulary.txt"
)


def documents(length, count):
    """`count` documents of about `length` words from the guides' corpora."""
    paragraphs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "guides", "data", "*.tsv"))):
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.reader(f, delimiter="\t"):
                if row:  # the first column: the paragraph (or body) text
                    paragraphs.append(" ".join(row[0].split()))
    if not paragraphs:
        raise SystemExit("No paragraphs found under guides/data/*.tsv.")
    docs, current, words, i = [], [], 0, 0
    while len(docs) < count:
        paragraph = paragraphs[i % len(paragraphs)]
        i += 1
        current.append(paragraph)
        words += len(paragraph.split())
        if words >= length:
            docs.append(" ".join(current))
            current, words = [], 0
    return docs


def input_bytes(x):
    """Bytes per example of the model inputs `x` (a dict of batched tensors)."""
    total = sum(int(t.numpy().nbytes) for t in x.values())
    return total / int(next(iter(x.values())).shape[0])


def throughput(preprocessor, texts, batch_size, batches):
    """Examples per second of the `tf.data` pipeline over `batches` batches."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(texts).repeat().batch(batch_size)
    ds = ds.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    iterator = iter(ds)
    for _ in range(2):  # tracing and warm-up
        next(iterator)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        element = next(iterator)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return batches * batch_size / elapsed, cpu / (batches * batch_size), element


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=512, help="sequence length N")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per trial")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--documents", type=int, default=256)
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras_hub

    from keras_unilmv2.models.unilmv2_pmlm_preprocessor import UniLMv2PMLMPreprocessor
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

    texts = documents(args.length, args.documents)
    bert = keras_hub.models.BertMaskedLMPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True),
        sequence_length=args.length,
    )
    pmlm = UniLMv2PMLMPreprocessor(
        UniLMv2Tokenizer(vocabulary=VOCABULARY), sequence_length=args.length, seed=0
    )
    best = {"bert": 0.0, "pmlm": 0.0}
    cpu = {"bert": float("inf"), "pmlm": float("inf")}
    size = {}
    for trial in range(args.trials):
        for name, layer in (("bert", bert), ("pmlm", pmlm)):
            rate, seconds, element = throughput(layer, texts, args.batch, args.batches)
            best[name] = max(best[name], rate)
            cpu[name] = min(cpu[name], seconds)
            size[name] = input_bytes(element[0])
            print(
                f"trial {trial}: {name:4s} {rate:8.1f} examples/s "
                f"{seconds * 1e3:6.2f} CPU ms/example",
                flush=True,
            )
    print(f"N = {args.length}, batch {args.batch}, best of {args.trials} trials")
    for name, label in (("bert", "BertMaskedLMPreprocessor"), ("pmlm", "UniLMv2PMLMPreprocessor")):
        print(
            f"{label:26s} {best[name]:8.1f} examples/s  "
            f"{cpu[name] * 1e3:6.2f} CPU ms/example  "
            f"{size[name] / 1024:8.1f} KiB of model input per example"
        )
    print(f"throughput ratio PMLM / BERT: {best['pmlm'] / best['bert']:.2f}x (goal >= 0.8)")
    # CPU time (all threads) per example: less sensitive to other processes
    # on a shared machine than wall-clock throughput.
    print(f"CPU-time ratio BERT / PMLM:   {cpu['bert'] / cpu['pmlm']:.2f}x")
    print(f"bytes ratio PMLM / BERT:      {size['pmlm'] / size['bert']:.2f}x (goal <= 3)")
    return best, size, cpu


if __name__ == "__main__":
    main()
