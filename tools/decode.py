"""Decode a s2s file with a fine-tuned UniLMv2 seq2seq preset (beam search).

    python tools/decode.py --preset runs/xsum/preset --input xsum/test.src \
        --output runs/xsum/test.out --num-beams 8 --length-penalty 0.9 \
        --no-repeat-ngram-size 3 --ngram-ignore-token . --min-length 1 \
        --references xsum/test.tgt

The input is JSONL (`{"src": ...}` per line) or a `.src` file; the output
has one decoded text per line, or with `--nbest N` JSONL rows
`{"src": ..., "beams": [{"text": ..., "score": ...}, ...]}` with the N best
beams, best first. `--references` (a `.tgt` file or JSONL with `"tgt"`)
scores the output (the best beam) with ROUGE F1 (percent); the summary is
printed as JSON and written next to the output (`<output>.scores.json`).
"""

import argparse
import json
import os
import sys

# Runnable from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--preset", required=True, help="a UniLMv2Seq2SeqLM preset")
    parser.add_argument("--input", required=True, help="JSONL with 'src', or a .src file")
    parser.add_argument("--output", required=True)
    parser.add_argument("--num-beams", type=int, default=5, help="(default %(default)s)")
    parser.add_argument("--length-penalty", type=float, default=0.0,
                        help="GNMT exponent, 0 = off (default %(default)s)")
    parser.add_argument("--min-length", type=int, default=0,
                        help="no end token in the first N steps (default %(default)s)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="target slots with the end token (default: the preset's)")
    parser.add_argument("--max-source-length", type=int, default=None,
                        help="source length with [CLS]/[SEP] (default: the preset's)")
    parser.add_argument("--no-repeat-ngram-size", type=int, default=0,
                        help="block repeated n-grams, 0 = off (default %(default)s)")
    parser.add_argument("--ngram-ignore-token", action="append", default=[],
                        help="a token that disables n-gram blocking (repeatable), e.g. '.'")
    parser.add_argument("--nbest", type=int, default=None,
                        help="write JSONL with the N best beams and their scores")
    parser.add_argument("--batch-size", type=int, default=32, help="(default %(default)s)")
    parser.add_argument("--references", default=None,
                        help="score the output with ROUGE against these targets")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from keras_unilmv2.recipes import decode

    try:
        result = decode(
            args.preset,
            args.input,
            args.output,
            num_beams=args.num_beams,
            length_penalty=args.length_penalty,
            min_length=args.min_length,
            max_length=args.max_length,
            no_repeat_ngram_size=args.no_repeat_ngram_size,
            ngram_ignore_tokens=args.ngram_ignore_token,
            nbest=args.nbest,
            batch_size=args.batch_size,
            max_source_length=args.max_source_length,
            references=args.references,
        )
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    with open(args.output + ".scores.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
