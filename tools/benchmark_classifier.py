"""UniLMv2TextClassifier against keras-hub's BertTextClassifier.

Same dimensions, same preprocessed batches, same backend, same run: the
fine-tuning step (train_on_batch) and `predict` throughput of each, and the
ratios UniLMv2 / BERT (goal >= 0.95).

    python tools/benchmark_classifier.py                   # all backends, CPU, small dims
    KERAS_BACKEND=jax python tools/benchmark_classifier.py --backend current
"""

import os
import sys
import time

# Runnable from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark_utils import SIZES  # noqa: E402
from benchmark_utils import run  # noqa: E402
from benchmark_utils import step_parser  # noqa: E402
from benchmark_utils import vocabulary_size as _vocabulary_size  # noqa: E402


def _measure(args):
    import keras
    import keras_hub
    import numpy as np

    from keras_unilmv2 import UniLMv2Backbone
    from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier

    keras.config.set_dtype_policy(args.dtype)
    vocabulary_size = _vocabulary_size(args.size)
    dims = SIZES[args.size]
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, vocabulary_size, (args.batch, args.length)).astype("int32"),
        "segment_ids": np.zeros((args.batch, args.length), "int32"),
        "padding_mask": np.ones((args.batch, args.length), "int32"),
    }
    y = rng.integers(0, 2, (args.batch,)).astype("int32")

    keras.utils.set_random_seed(0)
    unilm = UniLMv2TextClassifier(
        UniLMv2Backbone(vocabulary_size=vocabulary_size, max_sequence_length=512, **dims),
        num_classes=2,
    )
    keras.utils.set_random_seed(0)
    bert = keras_hub.models.BertTextClassifier(
        keras_hub.models.BertBackbone(vocabulary_size=vocabulary_size, max_sequence_length=512, **dims),
        num_classes=2,
        preprocessor=None,
    )
    models = {"unilmv2": unilm, "bert": bert}
    for model in models.values():
        model.compile(optimizer=keras.optimizers.AdamW(2e-5), jit_compile="auto")
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
            model.predict_on_batch(x)
    train = {k: [] for k in models}
    predict = {k: [] for k in models}
    for _ in range(args.steps):
        for name, model in models.items():
            start = time.perf_counter()
            np.asarray(keras.tree.flatten(model.train_on_batch(x, y))[0])
            train[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            np.asarray(model.predict_on_batch(x))
            predict[name].append(time.perf_counter() - start)
    tokens = args.batch * args.length
    result = {"backend": keras.config.backend()}
    for phase, times in (("train", train), ("predict", predict)):
        per = {k: tokens / float(np.median(v)) for k, v in times.items()}
        result[phase] = per
        result[f"{phase}_ratio"] = per["unilmv2"] / per["bert"]
    return result


def main(argv=None):
    args = step_parser(__doc__, steps=8, warmup=2).parse_args(argv)
    header = f"classifier, {args.size} dims, batch {args.batch} x length {args.length}, {args.dtype}"
    return run(__file__, args, _measure, lambda r: print(_row(r)), header)


def _row(r):
    return (
        f"{r['backend']:>10}: fine-tune UniLMv2 {r['train']['unilmv2']:.0f} tok/s, BERT "
        f"{r['train']['bert']:.0f} tok/s, ratio {r['train_ratio']:.3f} | predict UniLMv2 "
        f"{r['predict']['unilmv2']:.0f} tok/s, BERT {r['predict']['bert']:.0f} tok/s, "
        f"ratio {r['predict_ratio']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
