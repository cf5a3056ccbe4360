"""GPU throughput of UniLMv2 training steps against keras-hub BERT, as MFU.

Four training steps, each timed on JAX and on PyTorch, at the same size:

- `unilmv2_pmlm`: `UniLMv2PMLM` pre-training (the PMLM layout of N text
  tokens plus 2K pseudo/original slots, AE + PAR losses);
- `bert_mlm`: keras-hub `BertMaskedLM` on the N text tokens (K masked);
- `unilmv2_finetune`: `UniLMv2TextClassifier` (pooled output + dense);
- `bert_finetune`: keras-hub `BertTextClassifier` (pooled output + dense).

For each it prints the step time, tokens/s and the share of the
accelerator's dense bf16 peak (model FLOPs utilisation). "Tokens" are the
slots the encoder processes: N per sequence for BERT and fine-tuning,
N + 2K for the PMLM (whose text tokens/s, N per sequence, is printed too).
FLOPs per step, following the usual accounting (forward + backward = 3x
forward, 2 FLOPs per multiply-add):

    6 * non_embedding_params * tokens + 12 * layers * L^2 * hidden * batch

with L the processed length and `non_embedding_params` the backbone's
weights without the word, position and segment tables (the heads and the
tied vocabulary projection are not counted, so the share is a slight
underestimate for the MLM-style steps). Peak: 989 TFLOP/s dense bf16 for
H100 and H200 (`--peak-tflops` overrides; none is known for a CPU).

The GPU figures are NOT measured yet: this repository was developed without
a GPU. On CPU, `--size tiny` is a smoke check of the whole script.

    python tools/benchmark_gpu.py --size tiny              # CPU smoke check, JAX + torch
    python tools/benchmark_gpu.py --size base              # a GPU: base dims, bf16,
                                                           # batch 32 x 512
    python tools/benchmark_gpu.py --size base --backends jax --output gpu.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

# Runnable from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = {
    # num_layers, num_heads, hidden_dim, intermediate_dim; vocabulary; batch x length.
    "tiny": dict(
        dims=dict(num_layers=2, num_heads=4, hidden_dim=64, intermediate_dim=128),
        vocabulary_size=1000,
        batch=4,
        length=32,
    ),
    "base": dict(
        dims=dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
        vocabulary_size=30522,
        batch=32,
        length=512,
    ),
}
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}
STEPS = ("unilmv2_pmlm", "bert_mlm", "unilmv2_finetune", "bert_finetune")
MASK_ID = 4
# Run from a source checkout without installing the package.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def step_flops(non_embedding_params, num_layers, hidden_dim, batch, length):
    """Training FLOPs of one step over `batch` sequences of `length` slots."""
    dense = 6 * non_embedding_params * batch * length
    attention = 12 * num_layers * length**2 * hidden_dim * batch
    return dense + attention


def peak_tflops(device_name, override=None):
    """Dense bf16 peak of a device, from its name (None if unknown)."""
    if override:
        return float(override)
    for key, value in BF16_PEAK_TFLOPS.items():
        if key in (device_name or "").upper():
            return value
    return None


def _data(batch, length, vocabulary_size, mask_rate=0.15, seed=0):
    """Random text, its masked positions and the PMLM layout, as numpy."""
    import numpy as np

    from keras_unilmv2.masks import pmlm_layout
    from keras_unilmv2.masks import pmlm_model_inputs

    rng = np.random.default_rng(seed)
    k = max(1, int(round(mask_rate * (length - 2))))
    text = rng.integers(10, vocabulary_size, (batch, length)).astype("int32")
    positions = np.sort(
        np.stack([rng.choice(np.arange(1, length - 1), k, replace=False) for _ in range(batch)]),
        axis=1,
    ).astype("int32")
    originals = np.take_along_axis(text, positions, axis=1)
    corrupted = text.copy()
    np.put_along_axis(corrupted, positions, MASK_ID, axis=1)
    # Factorization steps: blocks of 1-3 masked tokens in a random order.
    steps = np.zeros((batch, k), "int32")
    for row in steps:
        blocks = np.cumsum(rng.integers(0, 3, k) == 0) + 1
        blocks -= blocks[0] - 1
        row[:] = rng.permutation(blocks.max())[blocks - 1] + 1
    ones = np.ones((batch, length), "int32")
    layout = pmlm_layout(
        corrupted, ones.astype(bool), positions, steps, originals, MASK_ID, ops="keras"
    )
    plain = {"token_ids": text, "segment_ids": 0 * ones, "padding_mask": ones}
    return {
        "pmlm": (pmlm_model_inputs(layout, positions), {"ae": originals, "par": originals}),
        "mlm": (dict(plain, token_ids=corrupted, mask_positions=positions), originals),
        "finetune": (plain, rng.integers(0, 2, batch).astype("int32")),
    }


def _non_embedding_params(backbone):
    """Trainable weights of the backbone minus the embedding tables.

    UniLMv2's backbone also carries the pretrained LM head (`lm_head/...`);
    it is left out like BERT's, which lives in the task.
    """
    tables = ("token_embedding", "position_embedding", "segment_embedding", "lm_head")
    total = 0
    for weight in backbone.trainable_weights:
        if any(part in tables for part in weight.path.split("/")):
            continue
        size = 1
        for dim in weight.shape:
            size *= int(dim)
        total += size
    return total


def _device_name():
    import keras

    backend = keras.config.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return device.platform, getattr(device, "device_kind", device.platform)
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return "gpu", torch.cuda.get_device_name(0)
        return "cpu", "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return ("gpu", gpus[0].name) if gpus else ("cpu", "cpu")


def _measure(args):
    import keras
    import keras_hub
    import numpy as np

    from keras_unilmv2 import UniLMv2Backbone
    from keras_unilmv2 import UniLMv2PMLM
    from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier

    size = SIZES[args.size]
    batch = args.batch or size["batch"]
    length = args.length or size["length"]
    vocabulary_size = size["vocabulary_size"]
    dims = size["dims"]
    keras.config.set_dtype_policy(args.dtype)
    data = _data(batch, length, vocabulary_size)
    pmlm_length = data["pmlm"][0]["token_ids"].shape[1]

    def backbone(kind):
        keras.utils.set_random_seed(0)
        cls = UniLMv2Backbone if kind == "unilmv2" else keras_hub.models.BertBackbone
        return cls(
            vocabulary_size=vocabulary_size,
            max_sequence_length=max(512, length),
            dropout=0.1,
            **dims,
        )

    def sparse_ce():
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def optimizer():
        return keras.optimizers.AdamW(1e-4)

    builders = {
        "unilmv2_pmlm": lambda b: UniLMv2PMLM(b),
        "bert_mlm": lambda b: keras_hub.models.BertMaskedLM(b, preprocessor=None),
        "unilmv2_finetune": lambda b: UniLMv2TextClassifier(b, num_classes=2),
        "bert_finetune": lambda b: keras_hub.models.BertTextClassifier(
            b, num_classes=2, preprocessor=None
        ),
    }
    batches = {
        "unilmv2_pmlm": data["pmlm"],
        "bert_mlm": data["mlm"],
        "unilmv2_finetune": data["finetune"],
        "bert_finetune": data["finetune"],
    }
    platform, device_name = _device_name()
    peak = peak_tflops(device_name, args.peak_tflops)
    results = {
        "backend": keras.config.backend(),
        "platform": platform,
        "device": device_name,
        "dtype": args.dtype,
        "size": args.size,
        "batch": batch,
        "length": length,
        "pmlm_length": pmlm_length,
        "peak_tflops": peak,
        "steps": {},
    }
    for name in args.steps_to_run:
        b = backbone(name.split("_")[0])
        model = builders[name](b)
        if name == "unilmv2_pmlm":
            model.compile(optimizer=optimizer(), weighted_metrics=[])
        elif name == "bert_mlm":
            model.compile(optimizer=optimizer(), loss=sparse_ce(), weighted_metrics=[])
        else:
            model.compile(optimizer=optimizer(), loss=sparse_ce(), metrics=[])
        x, y = batches[name]
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            loss = model.train_on_batch(x, y)
            float(np.asarray(keras.tree.flatten(loss)[0]))  # wait for the step
            times.append(time.perf_counter() - start)
        step = float(np.median(times))
        processed = pmlm_length if name == "unilmv2_pmlm" else length
        params = _non_embedding_params(b)
        flops = step_flops(params, dims["num_layers"], dims["hidden_dim"], batch, processed)
        row = {
            "step_s": step,
            "tokens_per_s": batch * processed / step,
            "text_tokens_per_s": batch * length / step,
            "non_embedding_params": params,
            "tflops_per_step": flops / 1e12,
            "achieved_tflops": flops / step / 1e12,
            "share_of_peak": None if peak is None else flops / step / 1e12 / peak,
        }
        results["steps"][name] = row
        del model, b
    return results


def _print(results):
    r = results
    print(
        f"{r['backend']} on {r['device']} ({r['platform']}), {r['size']} dims, {r['dtype']}, "
        f"batch {r['batch']} x length {r['length']} (PMLM layout {r['pmlm_length']}), "
        f"peak {r['peak_tflops'] or 'unknown'} TFLOP/s"
    )
    for name, row in r["steps"].items():
        share = "n/a" if row["share_of_peak"] is None else f"{100 * row['share_of_peak']:.1f}%"
        text = (
            f"  text {row['text_tokens_per_s']:>10.0f} tok/s" if name == "unilmv2_pmlm" else ""
        )
        print(
            f"  {name:17s} {row['step_s'] * 1e3:9.1f} ms  {row['tokens_per_s']:>10.0f} tok/s  "
            f"{row['achieved_tflops']:8.2f} TFLOP/s  {share:>6s} of peak{text}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="base", choices=sorted(SIZES))
    parser.add_argument(
        "--backends", default="jax,torch", help="comma-separated; 'current' = KERAS_BACKEND"
    )
    parser.add_argument("--batch", type=int, default=None, help="default: per size")
    parser.add_argument("--length", type=int, default=None, help="default: per size")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dtype", default="mixed_bfloat16")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated steps")
    parser.add_argument("--output", default=None, help="write all results as JSON here")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps_to_run = [s for s in args.only.split(",") if s]
    unknown = sorted(set(args.steps_to_run) - set(STEPS))
    if unknown:
        parser.error(f"--only: unknown steps {unknown}; choose from {list(STEPS)}")
    if args.size == "tiny":
        args.steps = min(args.steps, 3)
        args.warmup = min(args.warmup, 1)

    if args.backends == "current":
        results = _measure(args)
        if args.json:
            print("RESULT " + json.dumps(results))
        else:
            _print(results)
        return 0
    passed = ["--size", args.size, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    passed += ["--dtype", args.dtype, "--only", args.only]
    for flag, value in (("--batch", args.batch), ("--length", args.length)):
        if value:
            passed += [flag, str(value)]
    if args.peak_tflops:
        passed += ["--peak-tflops", str(args.peak_tflops)]
    all_results = []
    for backend in args.backends.split(","):
        command = [sys.executable, os.path.abspath(__file__), "--backends", "current", "--json"]
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run(command + passed, env=env, capture_output=True, text=True)
        lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
        if done.returncode or not lines:
            print(f"{backend}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        results = json.loads(lines[-1][len("RESULT ") :])
        _print(results)
        all_results.append(results)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(all_results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
