"""PMLM masked-token accuracy (AE and PAR) of a preset on held-out text.

    python tools/evaluate_pmlm.py PRESET [--texts tests/data/heldout_prose.txt]
        [--count 400] [--sequence-length 64] [--seed 0] [--output figures.json]

Masks the first `--count` lines of `--texts` (one paragraph per line) with
`UniLMv2PMLMPreprocessor` (the preset's tokenizer, default blockwise
masking, a fixed seed) and prints the PMLM's losses and accuracies as JSON,
together with what was measured. The default text is the GNU info prose
that no training corpus of this repository contains
(`tools/build_heldout_prose.py`); the README's preset figures come from
this command. `--output` also writes the JSON to a file (for
`tools/pack_preset.py --record`).
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

DEFAULT_TEXTS = os.path.join(REPO, "tests", "data", "heldout_prose.txt")


def evaluate(preset, texts_path=DEFAULT_TEXTS, count=400, sequence_length=64, seed=0):
    from keras_unilmv2 import UniLMv2Backbone
    from keras_unilmv2 import UniLMv2PMLM
    from keras_unilmv2 import UniLMv2PMLMPreprocessor

    if count < 1:
        raise ValueError(f"`count` must be >= 1. Received: {count}")
    with open(texts_path, encoding="utf-8") as f:
        texts = [line for line in f.read().splitlines() if line.strip()][:count]
    preprocessor = UniLMv2PMLMPreprocessor.from_preset(
        preset, sequence_length=sequence_length, seed=seed
    )
    pmlm = UniLMv2PMLM(UniLMv2Backbone.from_preset(preset), preprocessor=preprocessor)
    pmlm.compile()
    figures = pmlm.evaluate(texts, batch_size=32, verbose=0, return_dict=True)
    return {
        "texts": os.path.relpath(os.path.abspath(texts_path), REPO),
        "paragraphs": len(texts),
        "sequence_length": sequence_length,
        "seed": seed,
        **{name: round(float(value), 4) for name, value in sorted(figures.items())},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("preset")
    parser.add_argument("--texts", default=DEFAULT_TEXTS)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    figures = evaluate(args.preset, args.texts, args.count, args.sequence_length, args.seed)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
