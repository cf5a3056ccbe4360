"""Training-step throughput of UniLMv2Backbone against keras-hub's BertBackbone.

Both models get the same dimensions, the same inputs and the same loss, on
the same backend, in the same run; the script prints tokens/s for each and
the ratio UniLMv2 / BERT (goal: >= 0.95). UniLMv2 does a little more work
per layer (the shared relative-position bias is added to every attention
score), so the ratio measures what that costs.

    python tools/benchmark_backbone.py                 # all three backends (CPU, small dims)
    KERAS_BACKEND=jax python tools/benchmark_backbone.py --backend current
    python tools/benchmark_backbone.py --size base --batch 32 --length 512 \
        --dtype mixed_bfloat16 --backend current        # a GPU, BERT-base dims
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

    keras.config.set_dtype_policy(args.dtype)
    dims = SIZES[args.size]
    vocabulary_size = _vocabulary_size(args.size)
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, vocabulary_size, (args.batch, args.length)).astype("int32"),
        "segment_ids": np.zeros((args.batch, args.length), "int32"),
        "padding_mask": np.ones((args.batch, args.length), "int32"),
    }
    y = np.zeros((args.batch, args.length, dims["hidden_dim"]), "float32")

    def build(kind):
        keras.utils.set_random_seed(0)
        if kind == "unilmv2":
            backbone = UniLMv2Backbone(
                vocabulary_size=vocabulary_size,
                max_sequence_length=max(512, args.length),
                dropout=0.1,
                **dims,
            )
        else:
            backbone = keras_hub.models.BertBackbone(
                vocabulary_size=vocabulary_size,
                max_sequence_length=max(512, args.length),
                dropout=0.1,
                **dims,
            )
        inputs = {
            name: keras.Input((None,), dtype="int32", name=name)
            for name in ("token_ids", "segment_ids", "padding_mask")
        }
        outputs = backbone(inputs)["sequence_output"]
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4), loss="mse", jit_compile="auto")
        return model

    results = {}
    models = {kind: build(kind) for kind in ("unilmv2", "bert")}
    for kind, model in models.items():
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
    # Interleave the two models so that machine noise hits both alike.
    times = {kind: [] for kind in models}
    for _ in range(args.steps):
        for kind, model in models.items():
            start = time.perf_counter()
            loss = model.train_on_batch(x, y)
            float(np.asarray(loss))  # wait for the step to finish
            times[kind].append(time.perf_counter() - start)
    for kind, values in times.items():
        step = float(np.median(values))
        results[kind] = {"step_s": step, "tokens_per_s": args.batch * args.length / step}
    results["ratio"] = results["unilmv2"]["tokens_per_s"] / results["bert"]["tokens_per_s"]
    results["backend"] = keras.config.backend()
    return results


def main(argv=None):
    args = step_parser(__doc__, steps=10, warmup=3).parse_args(argv)
    header = f"train step, {args.size} dims, batch {args.batch} x length {args.length}, {args.dtype}"
    return run(__file__, args, _measure, _print_row, header)


def _print_row(r):
    print(
        f"{r['backend']:>10}: UniLMv2 {r['unilmv2']['tokens_per_s']:>9.0f} tok/s "
        f"({r['unilmv2']['step_s'] * 1e3:.1f} ms)  BERT {r['bert']['tokens_per_s']:>9.0f} tok/s "
        f"({r['bert']['step_s'] * 1e3:.1f} ms)  ratio {r['ratio']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
