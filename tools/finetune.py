"""Fine-tune a UniLMv2 preset on standard data files and score it.

    python tools/finetune.py classify --task rte --train-file glue/RTE/train.tsv \
        --dev-file glue/RTE/dev.tsv --preset unilmv2_tiny_en_uncased --output runs/rte
    python tools/finetune.py qa --version-2 --train-file train-v2.0.json \
        --dev-file dev-v2.0.json --preset ... --output runs/squad2
    python tools/finetune.py seq2seq --train-file xsum/train.jsonl \
        --dev-file xsum/dev.jsonl --preset ... --output runs/xsum

`classify` reads GLUE task TSV files (`--task sst2|mrpc|...`), `qa` SQuAD
v1.1 JSON (`--version-2` for v2.0), `seq2seq` s2s-ft JSONL (`{"src", "tgt"}`)
or `.src` files with their `.tgt`. A checkpoint is written after every epoch;
run the same command again to resume an interrupted run (a rerun with other
settings is refused, naming what differs). At the end the dev file is
scored with the official metric (GLUE metrics, SQuAD EM/F1, ROUGE with
greedy decoding: use tools/decode.py for beam search), and `<output>` holds
`preset/` (the fine-tuned task), `dev_predictions.jsonl` and `results.json`.
Progress: a Keras progress bar on a terminal, one line per epoch otherwise.
"""

import argparse
import json
import os
import shlex
import sys

# Runnable from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Per kind: batch size, epochs, warm-up fraction, max source length.
DEFAULTS = {
    "classify": dict(batch_size=32, epochs=3, warmup_fraction=0.1,
                     max_source_length=128),
    "qa": dict(batch_size=32, epochs=2, warmup_fraction=0.1,
               max_source_length=384),
    "seq2seq": dict(batch_size=32, epochs=3, warmup_fraction=0.02,
                    max_source_length=464),
}


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="{classify,qa,seq2seq}")
    for kind, help_text in (
        ("classify", "GLUE sentence (pair) classification / regression"),
        ("qa", "SQuAD extractive question answering"),
        ("seq2seq", "s2s-ft sequence-to-sequence (summarization, question generation)"),
    ):
        sub = kinds.add_parser(kind, help=help_text)
        defaults = DEFAULTS[kind]
        sub.add_argument("--preset", required=True, help="preset name or directory")
        sub.add_argument("--train-file", required=True)
        sub.add_argument("--dev-file", required=True)
        sub.add_argument("--output", required=True, help="run directory (resumable)")
        sub.add_argument("--learning-rate", type=float, default=None,
                         help="peak learning rate (default: the tasks' default for the "
                         "backbone's width: 3e-5 large, 7e-5 base, 3e-4 for 384, 1e-3 smaller)")
        sub.add_argument("--batch-size", type=int, default=defaults["batch_size"],
                         help="(default %(default)s)")
        sub.add_argument("--epochs", type=int, default=defaults["epochs"],
                         help="(default %(default)s)")
        sub.add_argument("--warmup-fraction", type=float, default=defaults["warmup_fraction"],
                         help="share of all steps spent warming up (default %(default)s)")
        sub.add_argument(
            "--max-source-length", type=int, default=defaults["max_source_length"],
            help=("source length with [CLS]/[SEP]" if kind == "seq2seq" else
                  "sequence length with special tokens") + " (default %(default)s)",
        )
        sub.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
        sub.add_argument("--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS)
        if kind == "classify":
            sub.add_argument("--task", required=True,
                             help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, mnli-mm, qnli, rte, wnli")
        if kind == "qa":
            sub.add_argument("--version-2", action="store_true",
                             help="SQuAD 2.0 scoring (no-answer by the null-score difference)")
            sub.add_argument("--doc-stride", type=int, default=128, help="(default %(default)s)")
            sub.add_argument("--max-answer-length", type=int, default=30,
                             help="in tokens (default %(default)s)")
        if kind == "seq2seq":
            sub.add_argument("--max-target-length", type=int, default=48,
                             help="target length with the end token (default %(default)s)")
            sub.add_argument("--label-smoothing", type=float, default=0.1,
                             help="(default %(default)s)")
            sub.add_argument("--target-mask-rate", type=float, default=0.5,
                             help="s2s-ft's target_mask_prob (default %(default)s)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from keras_unilmv2.recipes import finetune

    extra = {}
    if args.kind == "classify":
        extra["task"] = args.task
    if args.kind == "qa":
        extra.update(version_2=args.version_2, doc_stride=args.doc_stride,
                     max_answer_length=args.max_answer_length)
    if args.kind == "seq2seq":
        extra.update(max_target_length=args.max_target_length,
                     label_smoothing=args.label_smoothing,
                     target_mask_rate=args.target_mask_rate)
    try:
        results = finetune(
            args.kind,
            args.preset,
            args.train_file,
            args.dev_file,
            args.output,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            epochs=args.epochs,
            warmup_fraction=args.warmup_fraction,
            max_source_length=args.max_source_length,
            seed=args.seed,
            stop_after_epochs=args.stop_after_epochs,
            command="python tools/finetune.py " + " ".join(shlex.quote(a) for a in argv),
            **extra,
        )
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if results is not None:
        print(json.dumps({"dev": results["dev"], "preset": results["preset"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
