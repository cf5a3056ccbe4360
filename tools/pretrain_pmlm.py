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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    parser.add_argument("--mesh", default=None, help="'data' or 'BxM' (e.g. 2x4)")
    parser.add_argument(
        "--init-from", default=None, help="a preset to continue pre-training (same vocabulary)"
    )
    parser.add_argument("--stop-after-checkpoints", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    inputs = list(args.input) + ([PYTHON_DOCS] if args.python_docs else [])
    if not inputs:
        parser.error("give at least one --input (or --python-docs)")
    from keras_unilmv2.utils.pretraining import pretrain

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
            data_parallel=args.mesh == "data",
            model_parallel=args.mesh if args.mesh not in (None, "data") else None,
            stop_after_checkpoints=args.stop_after_checkpoints,
            init_from=args.init_from,
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
