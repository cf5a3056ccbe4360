"""Token ids with the character span of every token, for extractive QA.

keras-hub's `WordPieceTokenizer` returns ids only; SQuAD-style answers need
the characters each token came from. `WordPieceOffsetTokenizer` repeats the
`UniLMv2Tokenizer` steps in Python and keeps those offsets.

Private keras-hub dependency: the word splitting must be exactly the
tokenizer's, so this module reuses the regular expressions (and the
100-byte word limit) of `keras_hub.src.tokenizers.word_piece_tokenizer`.
They are not public API; they are imported here, and only here, so that a
keras-hub change that moves them breaks this one module (the tests compare
the ids with `tokenizer(text)` on cased, accented, punctuated, CJK and
unknown-word text, so a change in their content is caught too).
"""

import re

import regex
from keras_hub.src.tokenizers.word_piece_tokenizer import MAX_BYTES_PER_WORD
from keras_hub.src.tokenizers.word_piece_tokenizer import PY_CJK_REGEX
from keras_hub.src.tokenizers.word_piece_tokenizer import PY_PUNCTUATION_REGEX
from keras_hub.src.tokenizers.word_piece_tokenizer import PY_WHITESPACE_REGEX

from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils.text import DELETED_CHARS
from keras_unilmv2.utils.text import normalize_text


class WordPieceOffsetTokenizer:
    """`UniLMv2Tokenizer` ids plus the character span of every token.

    keras-hub's `WordPieceTokenizer` returns ids only. This class repeats
    the tokenizer's steps in Python while keeping, for every character of
    the normalized text, the span of original characters it came from:

    1. text cleaning, lowercasing and accent stripping exactly as
       `UniLMv2Tokenizer` does them (the same function), applied to each
       whitespace-delimited chunk of the text. Per character, a character
       maps to the normalized characters it produces: "É" -> "e" keeps its
       own span; a character that is deleted (controls, accents removed by
       stripping) produces nothing. If a chunk normalizes to a different
       length than its characters one by one (context-dependent
       lowercasing, which is rare), every normalized character of the chunk
       gets the span of the whole chunk;
    2. splitting into words on whitespace, punctuation and CJK characters
       with the keras-hub patterns (special tokens are kept whole when the
       tokenizer has `special_tokens_in_strings=True`);
    3. greedy longest-match-first WordPiece on each word (`"##"` suffix
       marker; a word that cannot be covered, or longer than 100 UTF-8
       bytes, becomes `[UNK]` spanning the whole word).

    Offsets are Python string indices (Unicode code points) into the
    original text, end exclusive: `text[start:end]` is the original text
    of a token ("Jumped" for the pieces `jump` + `##ed` together). The ids
    equal `tokenizer(text)`; the tests check this on cased, accented,
    punctuated, CJK and unknown-word text.

    Args:
        tokenizer: a `keras_unilmv2.models.UniLMv2Tokenizer` with its
            vocabulary set.
    """

    def __init__(self, tokenizer):
        if not isinstance(tokenizer, UniLMv2Tokenizer):
            raise TypeError(
                "`tokenizer` must be a `UniLMv2Tokenizer` (character offsets "
                "follow its normalization). Received: "
                f"{type(tokenizer).__name__}"
            )
        if not tokenizer.split:
            raise ValueError(
                "Character offsets need a tokenizer that splits words "
                "(`split=True`). Received a tokenizer with split=False."
            )
        vocabulary = tokenizer.get_vocabulary()
        self.vocabulary = tokenizer.vocabulary
        self._token_to_id = {token: i for i, token in enumerate(vocabulary)}
        self._unk_id = int(tokenizer.unk_token_id)
        self._suffix = tokenizer.suffix_indicator
        self._lowercase = tokenizer.do_lower_case
        self._strip_accents = tokenizer.do_strip_accents
        special = tokenizer._special_tokens_for_splitting() or []
        self._special_tokens = tuple(special)
        parts = [PY_WHITESPACE_REGEX, PY_PUNCTUATION_REGEX]
        keep = [PY_PUNCTUATION_REGEX]
        if tokenizer.split_on_cjk:
            parts.append(PY_CJK_REGEX)
            keep.append(PY_CJK_REGEX)
        if special:
            pattern = "|".join(regex.escape(t) for t in special)
            parts.insert(0, pattern)
            keep.insert(0, pattern)
            self._special_split = re.compile(
                "(" + "|".join(re.escape(t) for t in special) + ")"
            )
        else:
            self._special_split = None
        self._split = regex.compile("|".join(parts))
        self._keep = regex.compile("|".join(keep))

    # --- normalization with a character map ---------------------------------

    def _normalize_chunk(self, chunk, base, chars, spans):
        lower, strip = self._lowercase, self._strip_accents
        normalized = normalize_text(chunk, lower, strip)
        if chunk.isascii():
            origins = [j for j, ch in enumerate(chunk) if ch not in DELETED_CHARS]
        else:
            origins = []
            for j, ch in enumerate(chunk):
                count = len(normalize_text(ch, lower, strip))
                origins.extend([j] * count)
        chars.append(normalized)
        if len(origins) == len(normalized):
            spans.extend((base + j, base + j + 1) for j in origins)
        else:
            spans.extend([(base, base + len(chunk))] * len(normalized))

    def _normalize(self, text):
        """Normalized text and the original span of each of its characters."""
        chars, spans = [], []
        pieces = [text]
        if self._special_split is not None:
            pieces = self._special_split.split(text)
        base = 0
        for index, piece in enumerate(pieces):
            if index % 2:  # a special token: kept verbatim
                chars.append(piece)
                spans.extend([(base, base + len(piece))] * len(piece))
            else:
                for match in re.finditer(r"\s+|\S+", piece):
                    self._normalize_chunk(
                        match.group(), base + match.start(), chars, spans
                    )
            base += len(piece)
        return "".join(chars), spans

    # --- WordPiece ----------------------------------------------------------

    def _word_pieces(self, word):
        """`[(id, start, end)]` of a word; start/end index into the word."""
        if len(word.encode("utf-8")) > MAX_BYTES_PER_WORD:
            return [(self._unk_id, 0, len(word))]
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end]
                if start > 0:
                    piece = self._suffix + piece
                found = self._token_to_id.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [(self._unk_id, 0, len(word))]
            pieces.append((found, start, end))
            start = end
        return pieces

    def __call__(self, text):
        """Returns `(ids, starts, ends)`, three lists of ints."""
        normalized, spans = self._normalize(text)
        words = []
        position = 0
        for match in self._split.finditer(normalized):
            if match.start() > position:
                words.append((position, match.start()))
            if self._keep.fullmatch(match.group()):
                words.append((match.start(), match.end()))
            position = match.end()
        if position < len(normalized):
            words.append((position, len(normalized)))
        ids, starts, ends = [], [], []
        for word_start, word_end in words:
            word = normalized[word_start:word_end]
            for token_id, start, end in self._word_pieces(word):
                ids.append(token_id)
                starts.append(spans[word_start + start][0])
                ends.append(spans[word_start + end - 1][1])
        return ids, starts, ends
