"""Building a WordPiece vocabulary for UniLMv2 from plain text."""

import tensorflow as tf
from keras_hub.tokenizers import compute_word_piece_vocabulary

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_wordpiece_vocabulary(texts, vocabulary_size, lowercase=True, output_file=None):
    """A WordPiece vocabulary with the UniLMv2 special tokens first.

    Uses keras-hub's `compute_word_piece_vocabulary` (which needs TensorFlow
    and tensorflow-text). `[PAD]` gets id 0, then `[UNK] [CLS] [SEP] [MASK]`.

    Args:
        texts: an iterable of strings.
        vocabulary_size: int, the size of the vocabulary, special tokens
            included.
        lowercase: bool, lower-case (and strip accents) before counting.
        output_file: optional path; the vocabulary is written one token per
            line.

    Returns:
        The list of tokens.
    """
    if not isinstance(vocabulary_size, int) or vocabulary_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"`vocabulary_size` must be an integer > {len(SPECIAL_TOKENS)}. "
            f"Received: vocabulary_size={vocabulary_size!r}"
        )

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("`texts` holds no non-empty string.")
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(1024)
    vocabulary = compute_word_piece_vocabulary(
        dataset,
        vocabulary_size=vocabulary_size,
        lowercase=lowercase,
        strip_accents=lowercase,
        reserved_tokens=SPECIAL_TOKENS,
    )
    if output_file is not None:
        with open(output_file, "w", encoding="utf-8") as f:
            f.write("\n".join(vocabulary) + "\n")
    return vocabulary
