"""Convert a UniLMv2-format checkpoint into a keras-unilmv2 preset directory.

    python tools/convert_unilmv2_checkpoint.py \
        --checkpoint unilm2-base-uncased.bin \
        --config unilm2-base-uncased-config.json \
        --vocab unilm2-base-uncased-vocab.txt \
        --output ~/.keras/keras_unilmv2/unilmv2_base_en_uncased

Any checkpoint in the released raw layout converts the same way (fused or
split query/key/value, `.bin` or `.safetensors`). The result loads with
`UniLMv2Backbone.from_preset(DIR)`, `UniLMv2Tokenizer.from_preset(DIR)` and
every UniLMv2 task; written to the preset home under a registered name, it
also loads by that name. `--verify FILE.npz` (repeatable) compares the
converted model against reference outputs and fails on a difference above
`--atol`; the preset written is then removed. A missing input file is
reported by its flag and path before anything is written.
"""

import argparse
import json
import os
import shutil
import sys

# Runnable from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _remove_written(output, existed):
    """Removes what the conversion wrote: the directory it created, or the
    contents of the empty directory it was given."""
    if not existed:
        shutil.rmtree(output, ignore_errors=True)
        return
    for name in os.listdir(output):
        path = os.path.join(output, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help=".bin or .safetensors")
    parser.add_argument("--config", required=True, help="the checkpoint's config json")
    parser.add_argument("--vocab", required=True, help="WordPiece vocabulary file")
    parser.add_argument("--output", required=True, help="preset directory to create")
    parser.add_argument(
        "--cased", action="store_true", help="the vocabulary is cased (no lower-casing)"
    )
    parser.add_argument(
        "--allow-missing-pooler",
        action="store_true",
        help="keep a fresh pooler when the checkpoint has none (s2s-ft fine-tuned files)",
    )
    parser.add_argument(
        "--initialize-lm-head",
        action="store_true",
        help="keep a fresh MLM head when the checkpoint has none (BERT-layout encoders)",
    )
    parser.add_argument(
        "--relative-position-buckets",
        type=int,
        default=None,
        help="override the config's rel_pos_bins; for a checkpoint without a "
        "relative-position table the bias starts at zero",
    )
    parser.add_argument(
        "--verify", action="append", default=[], help="reference outputs (.npz)"
    )
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args(argv)

    # Every input is checked before anything is converted or written.
    inputs = [("--checkpoint", args.checkpoint), ("--config", args.config), ("--vocab", args.vocab)]
    inputs += [("--verify", path) for path in args.verify]
    for flag, path in inputs:
        if not os.path.isfile(os.path.expanduser(path)):
            print(f"error: the {flag} file does not exist: {path!r}", file=sys.stderr)
            return 1

    from keras_unilmv2 import conversion as checkpoint_conversion

    output = os.path.expanduser(args.output)
    existed = os.path.exists(output)
    written = False
    try:
        backbone, tokenizer, report = checkpoint_conversion.convert_checkpoint(
            checkpoint=args.checkpoint,
            config=args.config,
            vocabulary=args.vocab,
            output_dir=output,
            lowercase=not args.cased,
            allow_missing_pooler=args.allow_missing_pooler,
            initialize_lm_head=args.initialize_lm_head,
            relative_position_buckets=args.relative_position_buckets,
        )
        written = True
        results = {}
        for reference in args.verify:
            results[reference] = checkpoint_conversion.verify_against_reference(
                backbone, reference, atol=args.atol
            )
    except (ValueError, ImportError, OSError) as e:
        if written:
            # A preset that failed verification must not be left to load.
            _remove_written(output, existed)
            print(f"error: {e}\nThe preset written to {output} was removed.", file=sys.stderr)
        else:
            print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Wrote preset to {args.output} ({backbone.count_params():,} parameters).")
    print(json.dumps({"report": report, "verify": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
