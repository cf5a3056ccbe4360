"""`python -m keras_unilmv2`: the library's main job on the shipped English preset.

Loads `unilmv2_small_en_uncased` (all-MiniLM-L6-v2 converted into a
`UniLMv2Backbone` and continued with PMLM pre-training, see the README's
"Presets"), tokenizes a sentence, runs the backbone, prints the output
shapes, and fills in each `[MASK]` with the pretrained LM head.
"""

import argparse
import sys

DEFAULT_PRESET = "unilmv2_small_en_uncased"
DEFAULT_TEXT = "The list type is a mutable sequence of [MASK] in Python."


def _encode(preset, text):
    import numpy as np

    from keras_unilmv2 import UniLMv2Backbone
    from keras_unilmv2 import UniLMv2Tokenizer

    tokenizer = UniLMv2Tokenizer.from_preset(preset, special_tokens_in_strings=True)
    backbone = UniLMv2Backbone.from_preset(preset)
    ids = [tokenizer.cls_token_id] + list(np.asarray(tokenizer(text))) + [tokenizer.sep_token_id]
    token_ids = np.array([ids], "int32")
    inputs = {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": np.ones_like(token_ids),
    }
    return tokenizer, backbone, ids, backbone(inputs)


def _top_tokens(tokenizer, backbone, ids, outputs, k):
    import keras
    import numpy as np

    masked = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    if not masked:
        return masked, []
    logits = keras.ops.convert_to_numpy(
        backbone.lm_head(outputs["sequence_output"], positions=np.array([masked]))
    )[0]
    return masked, [[tokenizer.id_to_token(int(t)) for t in np.argsort(-row)[:k]] for row in logits]


def fill_in(preset=DEFAULT_PRESET, text=DEFAULT_TEXT, k=5):
    """The `k` most likely tokens for each `[MASK]` of `text`, in order.

    Example:

    >>> fill_in("unilmv2_small_en_uncased", "a list is a sequence of [MASK].")  # doctest: +SKIP
    [['items', 'elements', 'objects', 'values', 'lists']]
    """
    if "[MASK]" not in text:
        raise ValueError(f"`text` must contain at least one [MASK]. Received: {text!r}")
    return _top_tokens(*_encode(preset, text), k)[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--text", default=DEFAULT_TEXT)
    args = parser.parse_args(argv)

    import keras

    tokenizer, backbone, ids, outputs = _encode(args.preset, args.text)
    print(f"backend: {keras.config.backend()}, preset: {args.preset}")
    print(f"text: {args.text!r}")
    print(f"tokens: {[tokenizer.id_to_token(int(i)) for i in ids]}")
    for name, value in outputs.items():
        print(f"{name}: shape {tuple(value.shape)}")
    for slot, top in zip(*_top_tokens(tokenizer, backbone, ids, outputs, 5)):
        print(f"[MASK] at {slot}: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
