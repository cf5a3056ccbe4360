"""The UniLMv2 WordPiece tokenizer."""

import os
import re

import keras
import tensorflow as tf
import tensorflow_text as tf_text
from keras.src.saving import serialization_lib
from keras_hub.tokenizers import WordPieceTokenizer

from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.preset_utils import PresetMixin
from keras_unilmv2.utils.text import assert_utf8_tf
from keras_unilmv2.utils.text import map_strings
from keras_unilmv2.utils.text import normalize_text
from keras_unilmv2.utils.text import normalize_text_tf

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"
REQUIRED_SPECIAL_TOKENS = (
    PAD_TOKEN,
    UNK_TOKEN,
    CLS_TOKEN,
    SEP_TOKEN,
    MASK_TOKEN,
)


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2Tokenizer(PresetMixin, WordPieceTokenizer):
    """The UniLMv2 tokenizer: BERT-style WordPiece.

    UniLMv2 checkpoints use BERT's WordPiece vocabularies (uncased or cased)
    and BERT's "basic" text pre-processing. This layer reproduces that
    pre-processing exactly and then applies greedy longest-match-first
    WordPiece with the `"##"` suffix marker; a word that cannot be covered by
    the vocabulary becomes `[UNK]`. The pre-processing steps, in order:

    1. delete NUL, U+FFFD and control/format characters (tab, newline and
       carriage return are kept as whitespace) and map every Unicode space
       separator to a plain space;
    2. if `lowercase`, lowercase with Python's `str.lower()` semantics;
    3. if `strip_accents`, decompose to NFD and drop non-spacing marks;
    4. split on whitespace, punctuation and CJK characters (punctuation and
       CJK characters are kept as words of their own).

    Unlike `keras_hub.tokenizers.WordPieceTokenizer` with `lowercase=True`,
    lowercasing here is not Unicode case folding (which also applies NFKC
    normalization and changes, e.g., "…" into "...", "ß" into "ss" and
    recomposes Hangul), so ids match the original UniLM/BERT tokenizer.
    Because of this the keras-hub base class's own `lowercase` and
    `strip_accents` steps are switched off, and this class's settings are
    stored as `do_lower_case` and `do_strip_accents` (they are saved as
    `lowercase` and `strip_accents` in `get_config()`).

    Eager calls run in pure Python and need neither TensorFlow nor
    tensorflow-text. Inside `tf.data` or a `tf.function` the layer runs on
    TensorFlow ops and needs both (`pip install tensorflow tensorflow-text`);
    both ways give the same ids.

    If the input is a batch of strings (rank > 0), the output is a list of
    id lists (eagerly) or a `tf.RaggedTensor` (inside `tf.data`). If the
    input is a scalar string, the output is a dense rank-1 tensor. With
    `sequence_length` set, outputs are padded with 0 or truncated to that
    length.

    The vocabulary must contain `"[PAD]"`, `"[UNK]"`, `"[CLS]"`, `"[SEP]"`
    and `"[MASK]"`; their ids are available as `pad_token_id`,
    `unk_token_id`, `cls_token_id`, `sep_token_id` and `mask_token_id`
    (`start_token_id` is `cls_token_id` and `end_token_id` is
    `sep_token_id`, as in other keras-hub tokenizers). UniLMv2 uses
    `"[MASK]"` both as the mask token and as the pseudo-mask token `[P]` of
    the paper.

    Args:
        vocabulary: a list of strings, or a path (`str` or `os.PathLike`) to a
            text file with one WordPiece token per line; the line number
            (0-based) is the token id. May be `None` when the vocabulary is
            set later with `set_vocabulary()` or `load_assets()`, e.g. when
            loading a preset.
        lowercase: bool. `True` (the default) for uncased checkpoints,
            `False` for cased ones.
        strip_accents: bool or `None`. Whether to remove accent marks.
            Defaults to `None`, which means the same as `lowercase`, as in
            the original BERT tokenizer.
        special_tokens_in_strings: bool. If `True`, the special tokens
            written inside input strings (e.g. `"[MASK]"`) are kept whole and
            mapped to their ids instead of being split and lowercased.
            Defaults to `False`.
        sequence_length: int >= 1 or `None` (the default, no padding).
            If set, outputs are padded with 0 or truncated to this length.
        **kwargs: other arguments of
            `keras_hub.tokenizers.WordPieceTokenizer`, such as `dtype` or
            `split`.

    Text must be valid UTF-8: a byte string that is not raises a
    `ValueError` eagerly and makes a `tf.data` pipeline fail with
    `tf.errors.InvalidArgumentError` (both say "valid UTF-8"); nothing is
    silently replaced by `[UNK]`.

    Examples:
    ```python
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += ["the", "quick", "brown", "fox", "jump", "##ed", "."]
    tokenizer = keras_unilmv2.models.UniLMv2Tokenizer(vocabulary=vocab)

    # Unbatched input: a rank-1 array of ids.
    tokenizer("The quick brown fox jumped.")  # [5, 6, 7, 8, 9, 10, 11]

    # Batched input: one id list per string.
    tokenizer(["The fox jumped.", "The quick fox."])

    # Dense, padded output.
    tokenizer = keras_unilmv2.models.UniLMv2Tokenizer(
        vocabulary=vocab, sequence_length=8
    )
    tokenizer(["The fox jumped."])  # [[5, 8, 9, 10, 11, 0, 0, 0]]

    # Special tokens written in the text.
    tokenizer = keras_unilmv2.models.UniLMv2Tokenizer(
        vocabulary=vocab, special_tokens_in_strings=True
    )
    tokenizer("The [MASK] fox.")  # [5, 4, 8, 11]

    # Back to text.
    tokenizer.detokenize([5, 6, 8, 9, 10])  # "the quick fox jumped"

    # In a tf.data pipeline (needs tensorflow and tensorflow-text).
    ds = tf.data.Dataset.from_tensor_slices(["The fox.", "The quick fox."])
    ds = ds.map(tokenizer)
    ```
    """

    def __init__(
        self,
        vocabulary=None,
        lowercase=True,
        strip_accents=None,
        special_tokens_in_strings=False,
        sequence_length=None,
        **kwargs,
    ):
        if sequence_length is not None:
            sequence_length = check_int(
                "sequence_length", sequence_length, 1, " or None"
            )
        if not isinstance(lowercase, bool):
            raise TypeError(
                "`lowercase` must be a bool (True for uncased vocabularies, "
                f"False for cased ones). Received: lowercase={lowercase!r}"
            )
        if strip_accents is None:
            strip_accents = lowercase
        if not isinstance(strip_accents, bool):
            raise TypeError(
                "`strip_accents` must be a bool or None (None follows "
                f"`lowercase`). Received: strip_accents={strip_accents!r}"
            )
        oov_token = kwargs.pop("oov_token", UNK_TOKEN)
        if oov_token != UNK_TOKEN:
            raise ValueError(
                f"`oov_token` must be {UNK_TOKEN!r} for UniLMv2Tokenizer. "
                f"Received: oov_token={oov_token!r}"
            )
        self.do_lower_case = lowercase
        self.do_strip_accents = strip_accents

        self._add_special_token(PAD_TOKEN, "pad_token")
        self._add_special_token(UNK_TOKEN, "unk_token")
        self._add_special_token(CLS_TOKEN, "cls_token")
        self._add_special_token(SEP_TOKEN, "sep_token")
        self._add_special_token(MASK_TOKEN, "mask_token")
        # keras-hub generation and packing code looks for these names.
        self._add_special_token(CLS_TOKEN, "start_token")
        self._add_special_token(SEP_TOKEN, "end_token")
        # The base class's lowercasing is NFKC case folding, not BERT's
        # `str.lower()`, so it is switched off and `tokenize()` normalizes
        # the text itself.
        super().__init__(
            vocabulary=vocabulary,
            lowercase=False,
            strip_accents=False,
            oov_token=UNK_TOKEN,
            special_tokens_in_strings=special_tokens_in_strings,
            sequence_length=sequence_length,
            **kwargs,
        )

    def set_vocabulary(self, vocabulary):
        """Set the vocabulary from a list of tokens or a file path."""
        if isinstance(vocabulary, os.PathLike):
            vocabulary = os.fspath(vocabulary)
        if vocabulary is None:
            return super().set_vocabulary(None)
        if isinstance(vocabulary, str):
            if serialization_lib.in_safe_mode():
                # Let the base class raise Keras' safe-mode error for a file
                # that lies outside a saved archive, before reading it.
                return super().set_vocabulary(vocabulary)
            if not os.path.isfile(vocabulary):
                raise ValueError(
                    "`vocabulary` must be a list of tokens or the path of an "
                    "existing vocabulary file (one token per line). "
                    f"Received: vocabulary={vocabulary!r}, which is not a "
                    "file."
                )
            source = f"file {vocabulary!r}"
            with open(vocabulary, "r", encoding="utf-8") as file:
                # Only line ends are stripped, so that a vocabulary written
                # by `save_assets()` reads back token for token.
                vocabulary = [line.rstrip("\r\n") for line in file]
        elif isinstance(vocabulary, (list, tuple)):
            source = "list"
            bad = [token for token in vocabulary if not isinstance(token, str)]
            if bad:
                raise TypeError(
                    "`vocabulary` must contain only strings. Received "
                    f"{len(bad)} non-string entries, e.g. {bad[0]!r}"
                )
        else:
            raise TypeError(
                "`vocabulary` must be a list of strings or a file path. "
                f"Received: vocabulary of type {type(vocabulary).__name__}"
            )
        present = set(vocabulary)
        missing = [t for t in REQUIRED_SPECIAL_TOKENS if t not in present]
        if missing:
            raise ValueError(
                "`vocabulary` must contain the special tokens "
                f"{list(REQUIRED_SPECIAL_TOKENS)}. Missing: {missing} "
                f"(received a {source} of {len(vocabulary)} tokens)."
            )
        super().set_vocabulary(list(vocabulary))

    def tokenize(self, inputs):
        self._check_vocabulary()
        special_tokens = self._special_tokens_for_splitting()
        if self._use_tf_workflow():
            inputs = self._normalize_tf(assert_utf8_tf(inputs), special_tokens)
        else:
            inputs = map_strings(
                inputs,
                lambda text: self._normalize_python(text, special_tokens),
            )
        return super().tokenize(inputs)

    def _normalize_python(self, text, special_tokens):
        lowercase, strip = self.do_lower_case, self.do_strip_accents
        if not special_tokens:
            return normalize_text(text, lowercase, strip)
        # Keep special tokens such as "[MASK]" out of lowercasing.
        pattern = "(" + "|".join(re.escape(t) for t in special_tokens) + ")"
        pieces = re.split(pattern, text)
        # `re.split` with one group puts the matches at odd indices.
        return "".join(
            piece if i % 2 else normalize_text(piece, lowercase, strip)
            for i, piece in enumerate(pieces)
        )

    def _normalize_tf(self, inputs, special_tokens):

        if isinstance(inputs, tf.RaggedTensor):
            return inputs.with_flat_values(
                self._normalize_tf(inputs.flat_values, special_tokens)
            )
        inputs = tf.convert_to_tensor(inputs)
        lowercase, strip = self.do_lower_case, self.do_strip_accents
        if not special_tokens:
            return normalize_text_tf(inputs, lowercase, strip)
        # Split each string into special tokens and the text between them,
        # normalize only the text, and join the pieces back.
        pattern = "|".join(re.escape(t) for t in special_tokens)
        pieces = tf_text.regex_split(
            tf.reshape(inputs, [-1]),
            delim_regex_pattern=pattern,
            keep_delim_regex_pattern=pattern,
        )
        values = pieces.flat_values
        values = tf.where(
            tf.strings.regex_full_match(values, pattern),
            values,
            normalize_text_tf(values, lowercase, strip),
        )
        joined = tf.strings.reduce_join(
            pieces.with_flat_values(values), axis=-1
        )
        return tf.reshape(joined, tf.shape(inputs))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lowercase": self.do_lower_case,
                "strip_accents": self.do_strip_accents,
            }
        )
        return config

