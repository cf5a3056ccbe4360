"""PMLM masked-token accuracy (AE and PAR) of a preset on held-out text.

    python tools/evaluate_pmlm.py PRESET [--texts tests/data/heldout_prose.txt]
        [--count 400] [--sequence-length 64] [--seed 0] [--output figures.json]

Masks the first `--count` lines of `--texts` (one paragraph per line) with
`UniLMv2PMLMPreprocessor` (the preset's tokenizer, default blockwise
masking, a fixed seed) and prints the PMLM's losses and accuracies as JSON,
together with what was measured. The default text is the GNU info prose
that no training corpus of this repository contains
(`tools/build_heldout_prose.py`); the README's preset figures come from
this command. `--output` also writes the JSON to a new file (for
`tools/pack_preset.py --record`; an existing file is refused).
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from keras_unilmv2.pretraining.checkpoints import write_json_atomically  # noqa: E402

DEFAULT_TEXTS = os.path.join(REPO, "tests", "data", "heldout_prose.txt")


def pmlm_figures(preset, texts, backbone=None, sequence_length=64, seed=0):
    """The PMLM's losses and accuracies on `texts`, masked by the preset's
    `UniLMv2PMLMPreprocessor` with `seed`; `backbone` defaults to the
    preset's (pass another, e.g. untrained, to compare)."""
    from keras_unilmv2 import UniLMv2Backbone
    from keras_unilmv2 import UniLMv2PMLM
    from keras_unilmv2 import UniLMv2PMLMPreprocessor

    preprocessor = UniLMv2PMLMPreprocessor.from_preset(
        preset, sequence_length=sequence_length, seed=seed
    )
    if backbone is None:
        backbone = UniLMv2Backbone.from_preset(preset)
    pmlm = UniLMv2PMLM(backbone, preprocessor=preprocessor)
    pmlm.compile()
    return pmlm.evaluate(texts, batch_size=32, verbose=0, return_dict=True)


def evaluate(preset, texts_path=DEFAULT_TEXTS, count=400, sequence_length=64, seed=0):
    """`pmlm_figures` on the first `count` lines of `texts_path`, with what
    was measured (the record `tools/pack_preset.py --record` stores)."""
    if count < 1:
        raise ValueError(f"`count` must be >= 1. Received: {count}")
    with open(texts_path, encoding="utf-8") as f:
        texts = [line for line in f.read().splitlines() if line.strip()][:count]
    figures = pmlm_figures(preset, texts, sequence_length=sequence_length, seed=seed)
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
    if args.output and os.path.exists(args.output):
        raise ValueError(
            f"`--output` {args.output!r} exists: choose a new file (this tool never overwrites)."
        )
    figures = evaluate(args.preset, args.texts, args.count, args.sequence_length, args.seed)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.output:
        write_json_atomically(args.output, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
