"""Pre-training UniLMv2 with PMLM (pseudo-masked language modeling).

UniLMv2 trains one Transformer encoder on two objectives in one forward pass:

- autoencoding (AE): conventional masks `[M]` in the corrupted text predict
  the masked tokens, as in BERT;
- partially autoregressive (PAR): for each step of a random factorization
  order over the masked blocks, pseudo masks `[P]` (placed after the text,
  reusing the masked tokens' position ids) predict the block's tokens, seeing
  the context and the original tokens of earlier steps only.

This guide
1. builds the PMLM layout of one sentence and draws it as a picture (the
   paper's Figures 2 and 3): who may attend to whom;
2. pre-trains a small model for a few steps with `UniLMv2PMLM`;
3. shows the command-line tool that built the shipped tiny preset.

Run it: `python guides/pretraining_pmlm.py` (`--quick` for a few seconds'
version, which the test suite runs).
"""

import argparse
import os
import sys

import keras
import numpy as np

import keras_unilmv2

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    parser = argparse.ArgumentParser(description="PMLM pre-training guide")
    parser.add_argument("--quick", action="store_true", help="a few steps only")
    parser.add_argument("--output-dir", default=os.path.join(HERE, "images"))
    parser.add_argument("--preset", default="unilmv2_tiny_en_uncased")
    return parser.parse_args()


# ## 1. The layout of one example
#
# The preprocessor tokenizes the text, masks about 15% of it in blocks (40%
# spans of 2-6 tokens, 60% single tokens), draws a factorization order over
# the blocks and lays out: the corrupted text, then per step `[P]`s and the
# original tokens. It ships only per-slot descriptors (the kind of every slot
# and its factorization step); the model builds the 3-D attention mask from
# them on the device, with the same function we call here to draw it.


def show_layout(tokenizer, output_dir):
    preprocessor = keras_unilmv2.UniLMv2PMLMPreprocessor(
        tokenizer, sequence_length=20, mask_rate=0.3, seed=7
    )
    text = "The list type is a mutable sequence of objects in Python."
    x, y, _ = preprocessor(text)
    x = {k: np.asarray(v) for k, v in x.items()}
    # The dense inputs `UniLMv2PMLM` builds in its graph from the descriptors.
    dense = keras_unilmv2.masks.pmlm_backbone_inputs(x)
    x.update({k: np.asarray(keras.ops.convert_to_numpy(v)) for k, v in dense.items()})
    real = x["padding_mask"].astype(bool)
    tokens = [tokenizer.id_to_token(int(i)) for i in x["token_ids"][real]]
    positions = x["position_ids"][real]
    print("slot  token      position")
    for slot, (token, position) in enumerate(zip(tokens, positions)):
        print(f"{slot:4d}  {token:10s} {position:4d}")
    mask = x["attention_mask"][real][:, real]
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "pmlm_attention_mask.png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{t} ({p})" for t, p in zip(tokens, positions)]
    fig, ax = plt.subplots(figsize=(9, 9))
    ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.4)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("key (token and position id)")
    ax.set_ylabel("query")
    context = int(np.sum(x["padding_mask"][: preprocessor.sequence_length]))
    ax.axvline(context - 0.5, color="red", lw=1)
    ax.axhline(context - 0.5, color="red", lw=1)
    ax.set_title("PMLM self-attention mask: context | [P] and originals per step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"attention-mask picture: {path}")
    return x


# ## 2. Pre-training for a few steps
#
# `UniLMv2PMLM` runs the backbone once over the layout and applies the
# pretrained, tied LM head at the `[M]` slots ("ae") and the `[P]` slots
# ("par"); the loss is L_AE + L_PAR.


def pretrain_a_little(tokenizer, quick):
    from keras_unilmv2.utils.corpus import python_docs_paragraphs

    try:
        texts = [p for _, p in python_docs_paragraphs()][:2000]
    except ValueError:  # no python3.11-doc: fall back to a few sentences
        texts = ["the list type is a mutable sequence of objects ."] * 64
    steps = 4 if quick else 200
    backbone = keras_unilmv2.UniLMv2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        intermediate_dim=128,
    )
    preprocessor = keras_unilmv2.UniLMv2PMLMPreprocessor(tokenizer, sequence_length=64, seed=0)
    pmlm = keras_unilmv2.UniLMv2PMLM(backbone, preprocessor)
    history = pmlm.fit(texts[: steps * 16], batch_size=16, epochs=1, verbose=2).history
    print(
        f"after {steps} steps: loss {history['loss'][-1]:.3f}, "
        f"AE accuracy {history['ae_accuracy'][-1]:.3f}, "
        f"PAR accuracy {history['par_accuracy'][-1]:.3f}"
    )
    return history


# ## 3. The pre-training tool
#
# For real runs use the tool: it streams the corpus with tf.data, builds a
# vocabulary, warms the learning rate up, checkpoints and resumes exactly,
# plots the curves and writes a preset. The shipped tiny preset was built by
# the command recorded in its metadata.json:


def show_tool_command(preset):
    import json

    from keras_unilmv2.utils.preset_utils import local_preset_dir

    path = local_preset_dir(preset)
    if path is None:
        print(f"preset {preset!r} is not available here")
        return
    with open(os.path.join(path, "metadata.json")) as f:
        metadata = json.load(f)
    print("rebuild command:", metadata.get("command"))
    print("held-out accuracies:", json.dumps(metadata.get("heldout"), indent=1))


def main():
    args = parse_args()
    tokenizer = keras_unilmv2.UniLMv2Tokenizer.from_preset(args.preset)
    show_layout(tokenizer, args.output_dir)
    pretrain_a_little(tokenizer, args.quick)
    show_tool_command(args.preset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
