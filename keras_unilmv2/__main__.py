"""`python -m keras_unilmv2`: the library's main job on the shipped tiny preset.

Loads `unilmv2_tiny_en_uncased` (pre-trained here with PMLM on the Python
documentation), tokenizes a sentence, runs the backbone, prints the output
shapes, and fills in a `[MASK]` with the pretrained LM head.
"""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="unilmv2_tiny_en_uncased")
    parser.add_argument(
        "--text", default="The list type is a mutable sequence of [MASK] in Python."
    )
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from keras_unilmv2 import UniLMv2Backbone
    from keras_unilmv2 import UniLMv2Tokenizer

    tokenizer = UniLMv2Tokenizer.from_preset(args.preset, special_tokens_in_strings=True)
    backbone = UniLMv2Backbone.from_preset(args.preset)
    ids = [tokenizer.cls_token_id] + list(np.asarray(tokenizer(args.text))) + [tokenizer.sep_token_id]
    token_ids = np.array([ids], "int32")
    inputs = {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": np.ones_like(token_ids),
    }
    outputs = backbone(inputs)
    print(f"backend: {keras.config.backend()}, preset: {args.preset}")
    print(f"text: {args.text!r}")
    print(f"tokens: {[tokenizer.id_to_token(int(i)) for i in ids]}")
    for name, value in outputs.items():
        print(f"{name}: shape {tuple(value.shape)}")
    masked = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    if masked:
        logits = keras.ops.convert_to_numpy(
            backbone.lm_head(outputs["sequence_output"], positions=np.array([masked]))
        )[0]
        for slot, row in zip(masked, logits):
            top = np.argsort(-row)[:5]
            print(f"[MASK] at {slot}: {[tokenizer.id_to_token(int(t)) for t in top]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
