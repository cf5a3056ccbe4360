"""Generation speed of UniLMv2Seq2SeqLM: cached vs uncached, and against BART.

Two comparisons, each on one backend in one run, same inputs, random weights
(nothing is downloaded):

1. Cached vs uncached greedy generation of `--new-tokens` tokens (default
   64). "Cached" is `UniLMv2Seq2SeqLM.generate`'s compiled function: the
   source is encoded once, then every step feeds `[previous token, [MASK]]`
   against the key/value cache. "Uncached" runs the same sampler loop, but
   every step recomputes the full `[source | generated | [MASK]]` forward
   pass through the backbone with the decoding mask and position ids of
   `keras_unilmv2.masks` (what a model without a cache has to do). Printed:
   the time of each and the ratio uncached / cached (goal: >= 10).
2. Beam search (`--beams`, default 4) tokens/s of UniLMv2 against keras-hub's
   `BartSeq2SeqLM` of matched size (same number of layers, hidden size,
   heads, feed-forward width and vocabulary; BART has that many encoder
   *and* decoder layers). UniLMv2 uses `UniLMv2BeamSampler` with
   `min_length = new tokens` so that it never stops early; BART uses
   keras-hub's `BeamSampler` without a stop token. Both generate exactly
   `--new-tokens` tokens per example. Printed: output tokens/s of each and
   the ratio UniLMv2 / BART (goal on JAX: >= 1.0).

Both models are compiled the way `generate()` compiles them: XLA on JAX and
on TensorFlow (`UniLMv2Seq2SeqLM` compiles generation with XLA unless
`jit_compile=False`; BART is compiled with `jit_compile=True` so that both
get XLA), eagerly on torch (UniLMv2 under `torch.inference_mode()`, BART
under keras-hub's `torch.no_grad()`). Timings are
medians of `--repeats` calls after one warm-up call.

    python tools/benchmark_generate.py                   # all three backends, small dims
    KERAS_BACKEND=jax python tools/benchmark_generate.py --backend current
    python tools/benchmark_generate.py --threads 1          # a shared / busy CPU
    python tools/benchmark_generate.py --size base --batch 16 --backend current   # a GPU
"""

import argparse
import os
import sys
import time
import types

# Runnable from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark_utils  # noqa: E402
from benchmark_utils import run  # noqa: E402
from benchmark_utils import vocabulary_size as _vocabulary_size  # noqa: E402

SIZES = {
    "tiny": dict(num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=512),
    **benchmark_utils.SIZES,
}


def _uncached_generate_step(self, inputs, stop_token_ids=None):
    """Generation without a cache: a full forward pass at every step."""
    from keras import ops

    from keras_unilmv2 import masks

    backbone = self.backbone
    mask_id, source_type, target_type = self._special_ids()
    source = ops.cast(inputs["encoder_token_ids"], "int32")
    source_mask = ops.cast(inputs["encoder_padding_mask"], "bool")
    prompt = inputs["decoder_token_ids"]
    batch, source_length = ops.shape(source)[0], ops.shape(source)[1]
    target_length = ops.shape(prompt)[1] - 1
    num_source = ops.sum(ops.cast(source_mask, "int32"), axis=1)
    positions = masks.seq2seq_decoding_position_ids(
        num_source, source_length, target_length, ops="keras"
    )
    attention = masks.seq2seq_decoding_attention_mask(
        num_source, source_length, target_length, ops="keras"
    )
    segments = ops.concatenate(
        [
            ops.full((batch, source_length), source_type, dtype="int32"),
            ops.full((batch, target_length), target_type, dtype="int32"),
        ],
        axis=1,
    )
    padding = ops.concatenate(
        [source_mask, ops.ones((batch, target_length), dtype="bool")], axis=1
    )
    slots = ops.arange(target_length, dtype="int32")[None, :]

    def next(prompt, cache, index):
        # Target slot t holds prompt[:, t + 1]; [MASK] at slot index - 1.
        target = ops.cast(prompt[:, 1:], "int32")
        target = ops.where(slots < index - 1, target, 0)
        target = ops.where(slots == index - 1, mask_id, target)
        sequence = backbone(
            {
                "token_ids": ops.concatenate([source, target], axis=1),
                "segment_ids": segments,
                "position_ids": positions,
                "padding_mask": padding,
                "attention_mask": attention,
            }
        )["sequence_output"]
        slot = ops.full((batch, 1), source_length - 1, dtype="int32") + index
        logits = backbone.lm_head(sequence, positions=slot)[:, 0, :]
        return logits, None, cache

    tokens = self.sampler(
        next=next,
        prompt=prompt,
        cache=None,
        index=1,
        mask=inputs["decoder_padding_mask"],
        stop_token_ids=stop_token_ids,
        model=self,
    )
    return {"decoder_token_ids": tokens, "decoder_padding_mask": ops.ones_like(tokens, "bool")}


def _limit_threads(threads):
    """Caps the CPU threads of every backend (call before importing them).

    On a shared or oversubscribed machine, spinning thread pools (OpenMP in
    torch especially) can make eager steps many times slower; one thread per
    process gives steadier numbers there.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (
        f"{flags} --xla_cpu_multi_thread_eigen=false "
        f"intra_op_parallelism_threads={threads}"
    ).strip()
    if os.environ.get("KERAS_BACKEND") == "torch":
        import torch

        torch.set_num_threads(threads)


def _measure(args):
    if args.threads:
        _limit_threads(args.threads)
    import keras
    import keras_hub
    import numpy as np

    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
    from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
    from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
        UniLMv2Seq2SeqLMPreprocessor,
    )
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
    from keras_unilmv2.samplers import UniLMv2BeamSampler

    keras.config.set_dtype_policy(args.dtype)
    dims = SIZES[args.size]
    vocabulary_size = _vocabulary_size(args.size)
    batch, source_length, new_tokens = args.batch, args.source_length, args.new_tokens
    table = source_length + new_tokens

    # A synthetic vocabulary: the five specials, then placeholder words.
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocabulary = specials + [f"w{i}" for i in range(vocabulary_size - len(specials))]
    tokenizer = UniLMv2Tokenizer(vocabulary=vocabulary)
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer,
        encoder_sequence_length=source_length,
        decoder_sequence_length=new_tokens,
    )
    keras.utils.set_random_seed(0)
    backbone = UniLMv2Backbone(
        vocabulary_size=vocabulary_size, max_sequence_length=table, dropout=0.0, **dims
    )
    cached = UniLMv2Seq2SeqLM(backbone, preprocessor=preprocessor)
    uncached = UniLMv2Seq2SeqLM(backbone, preprocessor=preprocessor)
    uncached.generate_step = types.MethodType(_uncached_generate_step, uncached)
    bart = keras_hub.models.BartSeq2SeqLM(
        backbone=keras_hub.models.BartBackbone(
            vocabulary_size=vocabulary_size,
            max_sequence_length=max(1024, table),
            dropout=0.0,
            **dims,
        ),
        preprocessor=None,
    )

    rng = np.random.default_rng(0)
    source = rng.integers(len(specials), vocabulary_size, (batch, source_length)).astype("int32")
    source[:, 0] = tokenizer.cls_token_id
    source[:, -1] = tokenizer.sep_token_id
    decoder_mask = np.zeros((batch, new_tokens + 1), bool)
    decoder_mask[:, 0] = True
    decoder_ids = np.zeros((batch, new_tokens + 1), "int32")
    unilm_inputs = {
        "encoder_token_ids": source,
        "encoder_padding_mask": np.ones_like(source, bool),
        "decoder_token_ids": decoder_ids,
        "decoder_padding_mask": decoder_mask,
    }
    bart_ids = decoder_ids.copy()
    bart_ids[:, 0] = 2  # BART's decoder start token
    bart_inputs = dict(unilm_inputs, decoder_token_ids=bart_ids)

    def to_tensors(inputs):
        return {k: keras.ops.convert_to_tensor(v) for k, v in inputs.items()}

    def timed(model, inputs, stop_token_ids):
        function = model.make_generate_function()
        inputs = to_tensors(inputs)
        times = []
        for repeat in range(args.repeats + 1):
            start = time.perf_counter()
            outputs = function(inputs, stop_token_ids=stop_token_ids)
            tokens = keras.ops.convert_to_numpy(outputs["decoder_token_ids"])
            if repeat:  # the first call compiles
                times.append(time.perf_counter() - start)
        return float(np.median(times)), tokens

    results = {"backend": keras.config.backend()}
    sep = (tokenizer.sep_token_id,)

    cached.compile(sampler="greedy")
    uncached.compile(sampler="greedy")
    cached_s, cached_tokens = timed(cached, unilm_inputs, None)
    uncached_s, uncached_tokens = timed(uncached, unilm_inputs, None)
    results["greedy"] = {
        "cached_s": cached_s,
        "uncached_s": uncached_s,
        "speedup": uncached_s / cached_s,
        "same_tokens": bool((cached_tokens[:, 1:] == uncached_tokens[:, 1:]).all()),
    }

    cached.compile(
        sampler=UniLMv2BeamSampler(num_beams=args.beams, min_length=new_tokens)
    )
    # `jit_compile=True`: on TensorFlow, BART's generation is then compiled
    # with XLA as UniLMv2's is by default (Keras turns XLA off on CPU-only
    # machines); JAX always compiles, torch runs eagerly.
    bart.compile(
        sampler=keras_hub.samplers.BeamSampler(num_beams=args.beams),
        jit_compile=keras.config.backend() != "torch",
    )
    unilm_s, _ = timed(cached, unilm_inputs, sep)
    bart_s, _ = timed(bart, bart_inputs, None)
    generated = batch * new_tokens
    results["beam"] = {
        "unilmv2_s": unilm_s,
        "bart_s": bart_s,
        "unilmv2_tokens_per_s": generated / unilm_s,
        "bart_tokens_per_s": generated / bart_s,
        "ratio": bart_s / unilm_s,
    }
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="all", help="'all' or 'current'")
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--source-length", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads per backend (0: backend default)"
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    forwarded = (
        "size", "batch", "source_length", "new_tokens", "beams", "repeats", "dtype", "threads"
    )
    return run(__file__, args, _measure, _print_row, _header(args), forwarded)


def _header(args):
    dims = SIZES[args.size]
    return (
        f"generate: {args.size} dims ({dims['num_layers']} layers, hidden "
        f"{dims['hidden_dim']}, {dims['num_heads']} heads, vocab "
        f"{_vocabulary_size(args.size)}), batch {args.batch}, source "
        f"{args.source_length}, {args.new_tokens} new tokens, beam "
        f"{args.beams}, {args.dtype}, median of {args.repeats}"
        + (f", {args.threads} CPU thread(s)" if args.threads else "")
    )


def _print_row(r):
    g, b = r["greedy"], r["beam"]
    print(
        f"{r['backend']:>10}: greedy cached {g['cached_s'] * 1e3:8.1f} ms, uncached "
        f"{g['uncached_s'] * 1e3:8.1f} ms, speedup {g['speedup']:6.1f}x"
        f"{'' if g['same_tokens'] else ' (TOKENS DIFFER)'} | beam UniLMv2 "
        f"{b['unilmv2_tokens_per_s']:8.1f} tok/s, BART {b['bart_tokens_per_s']:8.1f} "
        f"tok/s, ratio {b['ratio']:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
