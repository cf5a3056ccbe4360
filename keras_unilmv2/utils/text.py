"""Text helpers shared by the tokenizer and the preprocessors.

The BERT / UniLM "basic tokenizer" cleaning, in Python and in TensorFlow,
and a mapper over the strings of a nested eager input.
"""

import unicodedata

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

# Text cleaning of the original BERT / UniLM "basic tokenizer", which the
# keras-hub pre-tokenizer does not do: NUL, U+FFFD and control or format
# characters (other than tab, newline and carriage return) are deleted, and
# every Unicode space separator becomes a plain space. Line and paragraph
# separators (U+2028, U+2029) also become a space, because the reference
# splits words with Python's `str.split()`, which treats them as whitespace.
# Category Cc without \t \n \r, plus U+FFFD (category Cf is handled apart).
_DELETED_CODEPOINTS = (
    list(range(0x00, 0x09))
    + [0x0B, 0x0C]
    + list(range(0x0E, 0x20))
    + list(range(0x7F, 0xA0))
    + [0xFFFD]
)
DELETED_CHARS = frozenset(chr(cp) for cp in _DELETED_CODEPOINTS)
_DELETE_TABLE = dict.fromkeys(_DELETED_CODEPOINTS)  # for `str.translate`
_RE2_DELETE_PATTERN = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\x{FFFD}]|\p{Cf}"
_RE2_SPACE_PATTERN = r"[\p{Zs}\x{2028}\x{2029}]"


def normalize_text(text, lowercase, strip_accents):
    """Clean, lowercase and strip accents from one Python string.

    The steps, in order, follow the reference BERT basic tokenizer: delete
    control and format characters, map space separators to `" "`, lowercase
    with `str.lower()` (not Unicode case folding, which would also apply NFKC
    and turn e.g. "…" into "..."), then decompose to NFD and drop the
    non-spacing marks (category Mn).
    """
    if text.isascii():
        text = text.translate(_DELETE_TABLE)
        return text.lower() if lowercase else text
    chars = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf" or char in DELETED_CHARS:
            continue
        if category in ("Zs", "Zl", "Zp"):
            char = " "
        chars.append(char)
    text = "".join(chars)
    if lowercase:
        text = text.lower()
    if strip_accents:
        text = unicodedata.normalize("NFD", text)
        text = "".join(
            char for char in text if unicodedata.category(char) != "Mn"
        )
    return text


def normalize_text_tf(text, lowercase, strip_accents):
    """The same steps as `normalize_text` on a string tensor."""

    text = tf.strings.regex_replace(text, _RE2_DELETE_PATTERN, "")
    text = tf.strings.regex_replace(text, _RE2_SPACE_PATTERN, " ")
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    if strip_accents:
        text = tf_text.normalize_utf8(text, "NFD")
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
    return text


def decode_utf8(value):
    """`bytes` -> `str`, or a `ValueError` if `value` is not valid UTF-8.

    Inputs must be UTF-8 text: eagerly and inside `tf.data` alike (see
    `assert_utf8_tf`), invalid bytes are an error, never silently replaced.
    """
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            "Text inputs must be valid UTF-8. Received a byte string with "
            f"an invalid byte at position {e.start}: {value[:80]!r}"
            f"{'...' if len(value) > 80 else ''}. Decode your text first, "
            "e.g. `data.decode('latin-1')`, or drop such examples."
        ) from None


UTF8_ERROR = (
    "Text inputs must be valid UTF-8; the batch holds an invalid byte "
    "string. Decode your text first or drop such examples."
)


def assert_utf8_tf(inputs):
    """A string tensor checked to be valid UTF-8 (graph mode).

    The returned tensor fails at run time with
    `tf.errors.InvalidArgumentError` (message `UTF8_ERROR`) when a string
    is not valid UTF-8, the graph counterpart of `decode_utf8`.
    """

    if isinstance(inputs, tf.RaggedTensor):
        return inputs.with_flat_values(assert_utf8_tf(inputs.flat_values))
    inputs = tf.convert_to_tensor(inputs)
    repaired = tf.strings.unicode_transcode(
        inputs, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    valid = tf.reduce_all(tf.equal(repaired, inputs))
    check = tf.debugging.Assert(valid, [UTF8_ERROR])
    with tf.control_dependencies([check]):
        return tf.identity(inputs)


def map_strings(inputs, fn):
    """Apply `fn` to every string of a (nested) eager input.

    Strings, bytes, lists, tuples, NumPy arrays and eager TensorFlow tensors
    come back as Python strings in nested lists of the same structure;
    anything else is returned unchanged for the base class to reject.
    Byte strings that are not valid UTF-8 raise a `ValueError`.
    """
    if isinstance(inputs, bytes):
        return fn(decode_utf8(inputs))
    if isinstance(inputs, str):
        return fn(inputs)
    if isinstance(inputs, tf.RaggedTensor):
        inputs = inputs.to_list()
    elif isinstance(inputs, tf.Tensor):
        inputs = inputs.numpy()  # bytes for a scalar, else an array
    if isinstance(inputs, np.ndarray):
        if inputs.dtype.kind not in "SUO":
            return inputs
        inputs = inputs.tolist()  # a scalar for a rank-0 array
    if isinstance(inputs, (str, bytes)):
        return map_strings(inputs, fn)
    if isinstance(inputs, (list, tuple)):
        return [map_strings(item, fn) for item in inputs]
    return inputs
