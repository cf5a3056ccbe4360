"""PMLM training step against a plain BERT-style MLM step on the same model.

Same texts, same backbone size, same backend, same run: the MLM step encodes
the N-token text with 15% of it masked and scores the masked slots; the PMLM
step encodes the PMLM layout (N + 2K slots: context, pseudo masks and
originals under the 3-D mask) and scores both the `[M]` and the `[P]` slots.
Prints the step-time ratio PMLM / MLM (goal <= 1.3) and the peak-memory
ratio (goal <= 1.4; measured from XLA's compiled memory analysis on JAX and
from the allocator on a GPU), per backend. `UniLMv2PMLM` computes its last
layer only at the slots its heads score (`UniLMv2Backbone.encode`); a
second line compares it with an MLM step that does the same, for a like-for-
like view of that optimization.

    python tools/benchmark_pmlm.py                       # all backends, CPU, small dims
    python tools/benchmark_pmlm.py --backend current --size base --batch 32 \
        --length 512 --dtype mixed_bfloat16              # GPU, base dims
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

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def _batches(args, vocabulary_size):
    import numpy as np

    from keras_unilmv2.masks import pmlm_layout
    from keras_unilmv2.masks import pmlm_model_inputs

    rng = np.random.default_rng(0)
    n, k = args.length, int(round(0.15 * (args.length - 2)))
    text = rng.integers(10, vocabulary_size, (args.batch, n)).astype("int32")
    positions = np.stack([np.sort(rng.choice(np.arange(1, n - 1), k, replace=False)) for _ in range(args.batch)])
    originals = np.take_along_axis(text, positions, axis=1)
    corrupted = text.copy()
    np.put_along_axis(corrupted, positions, 4, axis=1)
    ones = np.ones((args.batch, n), "int32")
    mlm = (
        {
            "token_ids": corrupted,
            "segment_ids": 0 * ones,
            "padding_mask": ones,
            "mask_positions": positions.astype("int32"),
        },
        originals,
    )
    # Blocks of 1..3 tokens in a random factorization order.
    steps = np.zeros((args.batch, k), "int32")
    for row in steps:
        step, i = 0, 0
        while i < k:
            size = min(k - i, 1 + rng.integers(0, 3))
            step += 1
            row[i : i + size] = step
            i += size
        rng.shuffle(row)
    layout = pmlm_layout(corrupted, ones.astype(bool), positions, steps, originals, 4, ops="keras")
    pmlm = (pmlm_model_inputs(layout, positions), {"ae": originals, "par": originals})
    return mlm, pmlm


def _mlm_model(backbone, scored_rows_only=False):
    """BERT-style MLM: the LM head at the masked slots. `scored_rows_only`:
    the last layer computes only those rows, as `UniLMv2PMLM` does."""
    import keras

    inputs = {
        name: keras.Input((None,), dtype="int32", name=name)
        for name in ("token_ids", "segment_ids", "padding_mask", "mask_positions")
    }
    backbone_inputs = {k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    positions = inputs["mask_positions"]
    if scored_rows_only:  # the encoder returns exactly the scored rows
        scored = backbone.encode(backbone_inputs, output_positions=positions)
        return keras.Model(inputs, backbone.lm_head(scored))
    sequence = backbone(backbone_inputs)["sequence_output"]
    return keras.Model(inputs, backbone.lm_head(sequence, positions=positions))


def _jax_peak_bytes(model, x, y):
    """Temp + argument bytes of the compiled forward + backward pass (XLA)."""
    import jax
    import keras

    def loss_fn(trainable, non_trainable, x, y):
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=True)
        total = 0.0
        for logits, labels in zip(keras.tree.flatten(outputs), keras.tree.flatten(y)):
            total = total + keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            )
        return total

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    compiled = jax.jit(jax.grad(loss_fn)).lower(trainable, non_trainable, x, y).compile()
    analysis = compiled.memory_analysis()
    return analysis.temp_size_in_bytes + analysis.argument_size_in_bytes


def _measure(args):
    import keras
    import numpy as np

    from keras_unilmv2 import UniLMv2Backbone
    from keras_unilmv2 import UniLMv2PMLM

    keras.config.set_dtype_policy(args.dtype)
    vocabulary_size = _vocabulary_size(args.size)
    (mlm_x, mlm_y), (pmlm_x, pmlm_y) = _batches(args, vocabulary_size)

    def backbone():
        keras.utils.set_random_seed(0)
        return UniLMv2Backbone(
            vocabulary_size=vocabulary_size,
            max_sequence_length=max(512, args.length),
            **SIZES[args.size],
        )

    runs = {}
    for name, scored_rows_only in (("mlm", False), ("mlm_rows", True)):
        mlm = _mlm_model(backbone(), scored_rows_only)
        mlm.compile(
            optimizer=keras.optimizers.AdamW(1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile="auto",
        )
        runs[name] = (mlm, mlm_x, mlm_y)
    pmlm = UniLMv2PMLM(backbone())
    pmlm.compile(optimizer=keras.optimizers.AdamW(1e-4), weighted_metrics=[], jit_compile="auto")
    runs["pmlm"] = (pmlm, pmlm_x, pmlm_y)
    for model, x, y in runs.values():
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
    times = {name: [] for name in runs}
    for _ in range(args.steps):
        for name, (model, x, y) in runs.items():
            start = time.perf_counter()
            loss = model.train_on_batch(x, y)
            np.asarray(keras.tree.flatten(loss)[0])  # wait for the step
            times[name].append(time.perf_counter() - start)
    result = {name: float(np.median(values)) for name, values in times.items()}
    result["time_ratio"] = result["pmlm"] / result["mlm"]
    result["time_ratio_rows"] = result["pmlm"] / result["mlm_rows"]
    result["backend"] = keras.config.backend()
    result["memory_ratio"] = None
    if keras.config.backend() == "jax":
        try:
            mem = {name: _jax_peak_bytes(m, x, y) for name, (m, x, y) in runs.items()}
            result["memory_ratio"] = mem["pmlm"] / mem["mlm"]
            result["memory_ratio_rows"] = mem["pmlm"] / mem["mlm_rows"]
        except Exception as e:  # memory analysis is best effort
            result["memory_error"] = f"{type(e).__name__}: {e}"[:200]
    return result


def main(argv=None):
    args = step_parser(__doc__, steps=5, warmup=2).parse_args(argv)
    header = (
        f"PMLM vs MLM train step, {args.size} dims, batch {args.batch} x length "
        f"{args.length}, {args.dtype}"
    )
    return run(__file__, args, _measure, lambda r: print(_row(r)), header)


def _row(r):
    def memory(key):
        return "n/a on CPU" if r.get(key) is None else f"{r[key]:.3f}"

    return (
        f"{r['backend']:>10}: MLM {r['mlm'] * 1e3:.1f} ms  PMLM {r['pmlm'] * 1e3:.1f} ms  "
        f"time ratio {r['time_ratio']:.3f}  peak-memory ratio {memory('memory_ratio')}\n"
        f"{'':>10}  vs an MLM that also computes only its scored rows in the last layer "
        f"({r['mlm_rows'] * 1e3:.1f} ms): time {r['time_ratio_rows']:.3f}  "
        f"memory {memory('memory_ratio_rows')}"
    )


if __name__ == "__main__":
    sys.exit(main())
