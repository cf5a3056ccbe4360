"""Pre-train a UniLMv2 model with PMLM (AE + PAR) and write a preset.

    python tools/pretrain_pmlm.py --input corpus/ --output my_preset/

Text files in (one document or sentence per line; `.rst.txt` files are read
as reStructuredText prose; folders are searched recursively), a WordPiece
vocabulary built from them unless `--vocab` is given, tf.data streaming,
a warm-up + linear-decay learning rate, a checkpoint every
`--checkpoint-every` steps under `<output>/training/checkpoints` and exact
resume: run the same command again after an interruption. At the end the
directory is a preset (`UniLMv2Backbone.from_preset(<output>)`) whose
`metadata.json` records the command, the corpus, the steps and the held-out
AE/PAR accuracies; `training/curves.png` plots loss and accuracy.

`--mesh data` trains data-parallel over all devices, `--mesh 2x4` model
parallel on a (batch, model) mesh (JAX; see guides/distributed_training.py).

Several processes (JAX, PyTorch or TensorFlow): start the same command
once per process with `--coordinator-address HOST:PORT --num-processes N
--process-id I` (process 0 listens at the address). On JAX the mesh spans
every process' devices (`--mesh data` unless given); on PyTorch the
processes train data-parallel with `torch.distributed` (gloo on CPU, NCCL
on GPU: the gradients are averaged over the processes every batch, as by
`DistributedDataParallel`); on TensorFlow with `MultiWorkerMirroredStrategy`
(worker I listens at HOST:PORT+I on one host; across machines set
`TF_CONFIG` in every process, agreeing with `--num-processes` and
`--process-id`). Each process reads its share of every global batch of
`--batch-size`; process 0 alone writes checkpoints, history and the preset
(the `--output` folder must be one all processes see). A rerun resumes in
every process from the same checkpoint, with any number of processes.
`--dropout` sets the backbone's dropout (default 0.1); PyTorch and
TensorFlow processes draw their dropout masks apart, so only with
`--dropout 0` does such a run equal a one-process run bit for bit (to
float32 rounding).

    A=127.0.0.1:9911
    python tools/pretrain_pmlm.py ... --coordinator-address $A --num-processes 2 --process-id 0 &
    python tools/pretrain_pmlm.py ... --coordinator-address $A --num-processes 2 --process-id 1

Speed and size: `--mixed-precision bfloat16` (or `float16`, with dynamic
loss scaling) computes under Keras' `mixed_*` policy, variables and the
exported preset stay float32. `--gradient-accumulation-steps N` averages
the gradients of N batches per optimizer update: the effective batch is
`--batch-size * N`, and `--steps`, `--warmup-steps` and
`--checkpoint-every` count updates (the run reads `steps * N` batches;
Keras' progress bar counts batches). Every checkpoint interval prints the
steps done, the input tokens per second (batch size x sequence length per
batch) and the losses.

Text and masking: `--cased` keeps the case (the tokenizer and a built
vocabulary do not lower-case). `--mask-rate`, `--span-probability`,
`--min-span-length`, `--max-span-length` and
`--mask-token-replacement-rates M,R,K` (e.g. 0.8,0.1,0.1: BERT-style
[MASK]/random/keep; default: always [MASK]) go to
`UniLMv2PMLMPreprocessor`.

Large corpora: `--streaming` never loads the corpus; the files (one
document per line, `.gz` allowed) are read as training consumes them and
packed into full sequences (`keras_unilmv2.pretraining.streaming`). The
vocabulary is `--vocab` or built from `--vocab-sample-lines` lines; the
held-out documents are `--heldout-file`'s lines or the first
`--heldout-lines` lines, and are dropped from the training stream.
Resuming skips exactly the batches already trained on.

A rerun with the same `--output` resumes; one with any other setting
(these flags included) is refused, naming the differences.
"""

import argparse
import json
import os
import shlex
import sys

# Runnable from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PYTHON_DOCS = "/usr/share/doc/python3.11/html/_sources"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", action="append", default=[], help="file or folder (repeatable)")
    parser.add_argument(
        "--python-docs", action="store_true", help=f"add the Python docs sources ({PYTHON_DOCS})"
    )
    parser.add_argument("--output", required=True)
    parser.add_argument("--vocab", default=None)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--intermediate-dim", type=int, default=1024)
    parser.add_argument("--max-sequence-length", type=int, default=512)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--heldout-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dropout", type=float, default=0.1,
        help="the backbone's dropout (0: runs reproducible across process counts on PyTorch)",
    )
    parser.add_argument("--mesh", default=None, help="'data' or 'BxM' (e.g. 2x4)")
    parser.add_argument(
        "--init-from", default=None, help="a preset to continue pre-training (same vocabulary)"
    )
    parser.add_argument(
        "--mixed-precision", choices=["bfloat16", "float16"], default=None,
        help="compute in bfloat16/float16 (Keras mixed_* policy); default float32",
    )
    parser.add_argument(
        "--gradient-accumulation-steps", type=int, default=1, metavar="N",
        help="batches per optimizer update (effective batch: batch size x N); "
        "--steps, --warmup-steps and --checkpoint-every count updates",
    )
    parser.add_argument(
        "--cased", action="store_true",
        help="keep the case (no lower-casing in the tokenizer and the vocabulary build)",
    )
    parser.add_argument("--mask-rate", type=float, default=0.15, help="fraction of tokens masked")
    parser.add_argument(
        "--span-probability", type=float, default=0.4, help="probability that a block is a span"
    )
    parser.add_argument("--min-span-length", type=int, default=2)
    parser.add_argument("--max-span-length", type=int, default=6)
    parser.add_argument(
        "--mask-token-replacement-rates", default=None, metavar="M,R,K",
        help="rates of [MASK], random token and unchanged for masked context tokens "
        "(e.g. 0.8,0.1,0.1); default: always [MASK]",
    )
    parser.add_argument(
        "--streaming", action="store_true",
        help="stream the training lines from the files instead of loading the corpus",
    )
    parser.add_argument(
        "--vocab-sample-lines", type=int, default=100_000,
        help="with --streaming and no --vocab: lines the vocabulary is built from",
    )
    parser.add_argument(
        "--heldout-file", default=None,
        help="with --streaming: held-out documents, one a line (default: the first "
        "--heldout-lines lines of the input)",
    )
    parser.add_argument(
        "--heldout-lines", type=int, default=1000,
        help="with --streaming and no --heldout-file: the first lines held out",
    )
    parser.add_argument(
        "--shuffle-buffer", type=int, default=10_000,
        help="with --streaming: documents held for shuffling",
    )
    parser.add_argument(
        "--coordinator-address", default=None, metavar="HOST:PORT",
        help="multi-process runs: the address of process 0 (TensorFlow: "
             "worker I listens at PORT+I, unless TF_CONFIG is set)",
    )
    parser.add_argument("--num-processes", type=int, default=1, help="processes of the run")
    parser.add_argument("--process-id", type=int, default=0, help="this process, 0..N-1")
    parser.add_argument("--stop-after-checkpoints", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    rates = None
    if args.mask_token_replacement_rates is not None:
        try:
            rates = tuple(float(v) for v in args.mask_token_replacement_rates.split(","))
        except ValueError:
            rates = ()
        if len(rates) != 3:
            parser.error(
                "--mask-token-replacement-rates must be three comma-separated numbers "
                f"M,R,K (e.g. 0.8,0.1,0.1); got {args.mask_token_replacement_rates!r}"
            )
    inputs = list(args.input) + ([PYTHON_DOCS] if args.python_docs else [])
    if not inputs:
        parser.error("give at least one --input (or --python-docs)")
    from keras_unilmv2.pretraining import pretrain

    try:
        metadata = pretrain(
            inputs=inputs,
            output_dir=args.output,
            vocabulary=args.vocab,
            vocabulary_size=args.vocab_size,
            num_layers=args.num_layers,
            num_heads=args.num_heads,
            hidden_dim=args.hidden_dim,
            intermediate_dim=args.intermediate_dim,
            max_sequence_length=args.max_sequence_length,
            sequence_length=args.sequence_length,
            batch_size=args.batch_size,
            steps=args.steps,
            warmup_steps=args.warmup_steps,
            learning_rate=args.learning_rate,
            checkpoint_every=args.checkpoint_every,
            heldout_every=args.heldout_every,
            seed=args.seed,
            dropout=args.dropout,
            data_parallel=args.mesh == "data",
            model_parallel=args.mesh if args.mesh not in (None, "data") else None,
            stop_after_checkpoints=args.stop_after_checkpoints,
            init_from=args.init_from,
            mixed_precision=args.mixed_precision,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            cased=args.cased,
            mask_rate=args.mask_rate,
            span_probability=args.span_probability,
            min_span_length=args.min_span_length,
            max_span_length=args.max_span_length,
            mask_token_replacement_rates=rates,
            streaming=args.streaming,
            vocab_sample_lines=args.vocab_sample_lines,
            heldout_file=args.heldout_file,
            heldout_lines=args.heldout_lines,
            shuffle_buffer=args.shuffle_buffer,
            coordinator_address=args.coordinator_address,
            num_processes=args.num_processes,
            process_id=args.process_id,
            command="python tools/pretrain_pmlm.py " + " ".join(shlex.quote(a) for a in argv),
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if metadata is not None:
        print(json.dumps(metadata["heldout"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
