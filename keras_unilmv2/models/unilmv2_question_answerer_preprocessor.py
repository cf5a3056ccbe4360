"""Preprocessing for UniLMv2 extractive question answering (SQuAD style).

Long contexts are split into overlapping windows, so one example becomes a
variable number of model rows. That cannot be expressed as a `tf.data` map,
and answers need character offsets that keras-hub's `WordPieceTokenizer`
does not give; this preprocessor therefore runs in Python (NumPy outputs)
and computes the offsets itself (see `WordPieceOffsetTokenizer`).
"""

import numbers

import keras
import numpy as np
from keras_hub.layers import MultiSegmentPacker
from keras_hub.models import Preprocessor
from keras_hub.src.utils.tensor_utils import convert_to_numpy
from keras_hub.src.utils.tensor_utils import no_convert_scope

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_offset_tokenizer import (
    WordPieceOffsetTokenizer,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from keras_unilmv2.utils.checks import check_int
from keras_unilmv2.utils.preprocessing import SegmentTupleCallMixin
from keras_unilmv2.utils.preprocessing import as_text_list
from keras_unilmv2.utils.preprocessing import in_tf_graph
from keras_unilmv2.utils.preset_utils import PresetMixin

MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask", "span_mask")
_OWNER = "UniLMv2QuestionAnswererPreprocessor"


def _as_texts(value, name):
    """A string or a batch of strings -> `(list of str, batched)`."""
    texts = as_text_list(value)
    if texts is None:
        raise ValueError(
            f"`{name}` must be a string or a rank-1 batch of strings. "
            f"Received: {name}={value!r}"
        )
    return texts


def _as_list(value, length, name):
    if value is None:
        return None
    if keras.ops.is_tensor(value) or not isinstance(
        value, (list, tuple, np.ndarray, str, numbers.Number)
    ):
        value = convert_to_numpy(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        value = [value]
    value = list(value)
    if len(value) != length:
        raise ValueError(
            f"`{name}` must have one entry per example ({length}). "
            f"Received {len(value)} entries."
        )
    return value


@keras.saving.register_keras_serializable(package="keras_unilmv2")
class UniLMv2QuestionAnswererPreprocessor(
    PresetMixin, SegmentTupleCallMixin, Preprocessor
):
    """UniLMv2 preprocessing for extractive (SQuAD-style) question answering.

    Every `(question, context)` example is packed as
    `[CLS] question [SEP] context [SEP]` (segment ids 0 up to the first
    `[SEP]`, 1 after it), padded to `sequence_length`. The question is cut
    to `max_question_length` tokens. A context longer than the room left
    (`sequence_length - 3 - question tokens`) is split into several
    windows: window k starts `k * doc_stride` context tokens after the
    first one (the original BERT `doc_stride`: the step between window
    starts, so consecutive windows overlap by `room - doc_stride` tokens),
    until the last context token is covered. Each window becomes one model
    row.

    Each row records, for every context token, its character span in the
    context (`token_offsets`), and `span_mask` marks the slots an answer may
    start or end on: the context tokens and `[CLS]` (slot 0, the "no
    answer" of SQuAD 2.0). The offsets come from
    `WordPieceOffsetTokenizer`, which follows the tokenizer's lowercasing
    and accent stripping; they are code point indices into the original
    context string.

    Training labels are the slots `(start, end)` of the answer's first and
    last token in each window. A window that does not contain the whole
    answer, and an example without an answer, get `(0, 0)` (`[CLS]`).

    This preprocessor runs in Python, not inside `tf.data`: one example can
    become several rows. Preprocess first, then feed the arrays (or a
    `tf.data.Dataset` made from them) to the model; the task's `fit()`,
    `evaluate()` and `predict()` do this for raw text.

    Args:
        tokenizer: a `keras_unilmv2.models.UniLMv2Tokenizer`.
        sequence_length: int, the packed length. Defaults to 384.
        doc_stride: int >= 1, the step, in context tokens, between the
            starts of consecutive windows. Defaults to 128.
        max_question_length: int >= 1, questions are cut to this many
            tokens. `sequence_length` must be at least
            `max_question_length + 4`, so that every window holds at least
            one context token. Defaults to 64.

    Call arguments:
        x: a pair `(questions, contexts)`: two strings, or two equally long
            batches of strings.
        y: optional answers: a dict with `"answer_start"` (the character
            offset of the answer in the context, -1 for no answer) and
            `"answer_text"` (the answer string, `""` for no answer), one
            entry per example (scalars for one unbatched example).
            `context[answer_start:answer_start + len(answer_text)]` must
            equal `answer_text`.
        sample_weight: optional, one weight per example; every window of
            an example gets its weight.

    Returns:
        `x`, or `(x, y)` / `(x, y, sample_weight)` with answers, as NumPy
        arrays with one row per window: `x` is a dict of `token_ids`,
        `segment_ids`, `padding_mask` and `span_mask` (int32
        `[windows, sequence_length]`); `y` is int32 `[windows, 2]` (start
        and end slot). Use `encode()` to also get the window metadata that
        `postprocess()` needs.

    Examples:
    ```python
    preprocessor = (
        keras_unilmv2.models.UniLMv2QuestionAnswererPreprocessor(
            tokenizer, sequence_length=384, doc_stride=128
        )
    )
    questions = ["Who sat?"]
    contexts = ["The cat sat on the mat."]
    answers = {"answer_start": [0], "answer_text": ["The cat"]}
    x, y = preprocessor((questions, contexts), answers)

    features = preprocessor.encode(questions, contexts)
    logits = question_answerer.predict(features)
    preprocessor.postprocess(logits, features, contexts)
    # [{"text": "The cat", "start": 0, "end": 7, "score": ..., ...}]
    ```
    """

    backbone_cls = UniLMv2Backbone
    tokenizer_cls = UniLMv2Tokenizer

    def __init__(
        self,
        tokenizer,
        sequence_length=384,
        doc_stride=128,
        max_question_length=64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.max_question_length = check_int(
            "max_question_length", max_question_length, 1
        )
        self.sequence_length = sequence_length
        self.doc_stride = check_int("doc_stride", doc_stride, 1)
        self._offset_tokenizer = None

    @property
    def sequence_length(self):
        """The packed length of every window (settable, checked)."""
        return self._sequence_length

    @sequence_length.setter
    def sequence_length(self, value):
        # `[CLS] question [SEP] context [SEP]` needs room for the longest
        # question plus at least one context token.
        self._sequence_length = check_int(
            "sequence_length", value, self.max_question_length + 4
        )

    def _offsets(self):
        """The offset tokenizer, rebuilt when the vocabulary changes."""
        current = self._offset_tokenizer
        if current is None or current.vocabulary is not self.tokenizer.vocabulary:
            if self.tokenizer.vocabulary is None:
                raise ValueError(
                    "The tokenizer has no vocabulary yet. Pass `vocabulary=` "
                    "or load the preprocessor with `from_preset`."
                )
            current = WordPieceOffsetTokenizer(self.tokenizer)
            self._offset_tokenizer = current
        return current

    # --- inputs -------------------------------------------------------------

    @staticmethod
    def _standardize_x(x):
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError(
                f"{_OWNER} takes `x = (questions, contexts)`: a pair of "
                "strings or of two equally long batches of strings. Received: "
                f"{type(x).__name__}"
                + (f" of length {len(x)}" if isinstance(x, (tuple, list)) else "")
            )
        questions, q_batched = _as_texts(x[0], "questions")
        contexts, c_batched = _as_texts(x[1], "contexts")
        if not questions or not contexts:
            raise ValueError(
                f"{_OWNER} received an empty batch: {len(questions)} "
                f"question(s) and {len(contexts)} context(s). It needs at "
                "least one example."
            )
        if q_batched != c_batched or len(questions) != len(contexts):
            raise ValueError(
                "`questions` and `contexts` must both be strings or two "
                f"batches of the same length. Received {len(questions)} "
                f"question(s) and {len(contexts)} context(s)."
            )
        return questions, contexts, q_batched

    @staticmethod
    def _standardize_answers(answers, contexts, batched):
        if answers is None:
            return None
        if not isinstance(answers, dict) or set(answers) != {
            "answer_start",
            "answer_text",
        }:
            raise ValueError(
                "`y` (answers) must be a dict with the keys 'answer_start' "
                "(character offset, -1 for no answer) and 'answer_text' "
                "('' for no answer). Received: "
                + (
                    f"a dict with keys {sorted(answers)}"
                    if isinstance(answers, dict)
                    else f"{type(answers).__name__}"
                )
            )
        n = len(contexts)
        starts = _as_list(answers["answer_start"], n, "answer_start")
        if batched:
            texts, _ = _as_texts(answers["answer_text"], "answer_text")
            if len(texts) != n:
                raise ValueError(
                    f"`answer_text` must have one entry per example ({n}). "
                    f"Received {len(texts)} entries."
                )
        else:
            texts, _ = _as_texts(answers["answer_text"], "answer_text")
        spans = []
        for i, (start, text, context) in enumerate(zip(starts, texts, contexts)):
            if isinstance(start, bool) or not isinstance(
                start, numbers.Integral
            ):
                raise ValueError(
                    f"`answer_start` must hold integers. Example {i} has "
                    f"answer_start={start!r}."
                )
            start = int(start)
            if start < 0 or not text:
                spans.append(None)
                continue
            end = start + len(text)
            if end > len(context) or context[start:end] != text:
                raise ValueError(
                    f"Example {i}: `answer_text` {text!r} is not at "
                    f"answer_start={start} of its context (the context has "
                    f"{len(context)} characters; context[{start}:{end}] = "
                    f"{context[start:end]!r})."
                )
            spans.append((start, end))
        return spans

    # --- windows ------------------------------------------------------------

    def encode(self, questions, contexts, answers=None, sample_weight=None):
        """Tokenizes, packs and windows `(question, context)` examples.

        Args:
            questions: a string or a batch of strings.
            contexts: a string or a batch of strings (as many as questions).
            answers: optional, as `y` of `call()`.
            sample_weight: optional, one weight per example.

        Returns:
            A dict of NumPy arrays with one row per window: the model inputs
            `token_ids`, `segment_ids`, `padding_mask`, `span_mask` (int32
            `[windows, sequence_length]`), and `example_index` (int32
            `[windows]`, the example each window belongs to),
            `token_offsets` (int32 `[windows, sequence_length, 2]`: the
            character `[start, end)` of each context token in its context,
            -1 elsewhere); with answers also `labels` (int32 `[windows, 2]`)
            and with weights `sample_weight` (float32 `[windows]`).
        """
        questions, contexts, batched = self._standardize_x((questions, contexts))
        spans = self._standardize_answers(answers, contexts, batched)
        weights = _as_list(sample_weight, len(contexts), "sample_weight")
        offsets = self._offsets()
        room_for_context = self.sequence_length - 3  # minus [CLS] [SEP] [SEP]

        # One entry per window (model row).
        question_rows, context_rows, offset_rows = [], [], []
        example_index, labels, window_weights = [], [], []
        for example, (question, context) in enumerate(zip(questions, contexts)):
            question_ids = offsets(question)[0][: self.max_question_length]
            context_ids, starts, ends = offsets(context)
            answer_tokens = None
            if spans is not None and spans[example] is not None:
                first, last = spans[example]
                covered = [
                    i
                    for i in range(len(context_ids))
                    if starts[i] < last and ends[i] > first
                ]
                if covered:
                    answer_tokens = (covered[0], covered[-1])
            room = room_for_context - len(question_ids)
            base = len(question_ids) + 2  # slot of the first context token
            window_start = 0
            while True:
                count = min(room, len(context_ids) - window_start)
                window = slice(window_start, window_start + count)
                question_rows.append(question_ids)
                context_rows.append(context_ids[window])
                offset_rows.append((starts[window], ends[window]))
                label = (0, 0)
                if answer_tokens is not None and (
                    window_start <= answer_tokens[0]
                    and answer_tokens[1] < window_start + count
                ):
                    label = (
                        base + answer_tokens[0] - window_start,
                        base + answer_tokens[1] - window_start,
                    )
                labels.append(label)
                example_index.append(example)
                if weights is not None:
                    window_weights.append(weights[example])
                if window_start + count >= len(context_ids):
                    break
                window_start += min(count, self.doc_stride)

        features = self._pack(question_rows, context_rows, offset_rows)
        features["example_index"] = np.asarray(example_index, "int32")
        if spans is not None:
            features["labels"] = np.asarray(labels, "int32")
        if weights is not None:
            features["sample_weight"] = np.asarray(window_weights, "float32")
        return features

    def _pack(self, question_rows, context_rows, offset_rows):
        """Model inputs and `token_offsets` of windows, `[windows, L, ...]`.

        keras-hub's `MultiSegmentPacker` packs `[CLS] question [SEP] context
        [SEP]`, pads it and gives the segment ids (0 up to the first `[SEP]`,
        1 after). Every window already fits (`encode` cut it), so the packer
        never truncates. What a packer cannot express is placed here: the
        span mask and the character offsets of the context tokens, per slot,
        and the padding mask, from the lengths (a `[PAD]` written in the text
        stays a real token).
        """
        length, tokenizer = self.sequence_length, self.tokenizer
        # Built per call (cheap): `sequence_length` and the vocabulary may
        # change between calls.
        packer = MultiSegmentPacker(
            sequence_length=length,
            start_value=int(tokenizer.cls_token_id),
            end_value=int(tokenizer.sep_token_id),
            pad_value=int(tokenizer.pad_token_id),
        )
        with no_convert_scope():  # NumPy outputs on every backend
            token_ids, segment_ids = packer((question_rows, context_rows))
        slots = np.arange(length)[None, :]
        base = np.asarray([len(ids) + 2 for ids in question_rows])[:, None]
        end = base + np.asarray([len(ids) for ids in context_rows])[:, None]
        is_context = (slots >= base) & (slots < end)
        token_offsets = np.full(is_context.shape + (2,), -1, "int32")
        # Boolean indexing walks the rows in order, as the lists are joined.
        token_offsets[is_context, 0] = [i for row in offset_rows for i in row[0]]
        token_offsets[is_context, 1] = [i for row in offset_rows for i in row[1]]
        return {
            "token_ids": np.asarray(token_ids, "int32"),
            "segment_ids": np.asarray(segment_ids, "int32"),
            # Through the final [SEP], which is at slot `end`.
            "padding_mask": (slots <= end).astype("int32"),
            "span_mask": (is_context | (slots == 0)).astype("int32"),
            "token_offsets": token_offsets,
        }

    def call(self, x, y=None, sample_weight=None):
        if in_tf_graph():
            raise ValueError(
                f"{_OWNER} runs in Python and cannot run inside `tf.data` or "
                "a `tf.function`: a long context becomes several windows, "
                "which changes the number of rows. Preprocess first "
                "(`preprocessor((questions, contexts), answers)` or "
                "`preprocessor.encode(...)`), then build the dataset from "
                "the arrays."
            )
        questions, contexts, batched = self._standardize_x(x)
        if not batched:
            questions, contexts = questions[0], contexts[0]
        features = self.encode(questions, contexts, y, sample_weight)
        inputs = {name: features[name] for name in MODEL_INPUTS}
        return keras.utils.pack_x_y_sample_weight(
            inputs, features.get("labels"), features.get("sample_weight")
        )

    # --- answers ------------------------------------------------------------

    def postprocess(
        self,
        logits,
        features,
        contexts,
        max_answer_length=30,
        null_score_threshold=0.0,
    ):
        """Turns span logits of windows into answer strings.

        For every example, over all its windows, the best span is the pair
        of context tokens `i <= j` with `j - i < max_answer_length` that
        maximizes `start_logit[i] + end_logit[j]`. The null score is
        `start_logit[CLS] + end_logit[CLS]`, the smallest over the
        example's windows (as in the reference SQuAD 2.0 scripts). The
        answer is empty ("no answer") when
        `null_score - best_span_score > null_score_threshold`, or when no
        window has a context token.

        Args:
            logits: `[windows, 2, sequence_length]` start/end logits (the
                task's output), an array or a tensor.
            features: the dict returned by `encode()` for these windows
                (`example_index` and `token_offsets` are used).
            contexts: the context strings passed to `encode()` (a string
                for one unbatched example).
            max_answer_length: int >= 1, the longest answer in tokens.
            null_score_threshold: float, or `None` to never answer "no
                answer" when a span exists (SQuAD 1.1).

        Returns:
            One dict per example (a single dict for one unbatched
            context): `text` (the answer, `context[start:end]`, or `""`),
            `start` and `end` (character offsets into the context, -1 for
            no answer), `score` (the chosen span's score, or the null score
            for no answer) and `null_score`.
        """
        max_answer_length = check_int("max_answer_length", max_answer_length, 1)
        if null_score_threshold is not None and (
            isinstance(null_score_threshold, bool)
            or not isinstance(null_score_threshold, numbers.Real)
        ):
            raise ValueError(
                "`null_score_threshold` must be a number or None. Received: "
                f"null_score_threshold={null_score_threshold!r}"
            )
        context_list, batched = _as_texts(contexts, "contexts")
        logits = np.asarray(convert_to_numpy(logits), "float64")
        example_index = np.asarray(features["example_index"])
        token_offsets = np.asarray(features["token_offsets"])
        if logits.ndim != 3 or logits.shape[:2] != (len(example_index), 2):
            raise ValueError(
                "`logits` must have shape [windows, 2, sequence_length] with "
                f"{len(example_index)} windows (one per row of `features`). "
                f"Received shape {logits.shape}."
            )
        if example_index.size and example_index.max() >= len(context_list):
            raise ValueError(
                f"`features` has windows of {example_index.max() + 1} "
                f"examples but {len(context_list)} context(s) were given."
            )
        length = logits.shape[-1]
        band = np.triu(np.ones((length, length), bool)) & ~np.triu(
            np.ones((length, length), bool), k=max_answer_length
        )
        results = []
        for example, context in enumerate(context_list):
            best = None  # (score, window, i, j)
            null_score = None
            for window in np.flatnonzero(example_index == example):
                start_logits, end_logits = logits[window]
                window_null = start_logits[0] + end_logits[0]
                if null_score is None or window_null < null_score:
                    null_score = window_null
                is_context = token_offsets[window, :, 0] >= 0
                if not is_context.any():
                    continue
                valid = band & is_context[:, None] & is_context[None, :]
                scores = np.where(
                    valid, start_logits[:, None] + end_logits[None, :], -np.inf
                )
                i, j = np.unravel_index(np.argmax(scores), scores.shape)
                if best is None or scores[i, j] > best[0]:
                    best = (scores[i, j], window, i, j)
            no_answer = best is None or (
                null_score_threshold is not None
                and null_score - best[0] > null_score_threshold
            )
            null_value = None if null_score is None else float(null_score)
            if no_answer:
                results.append(
                    {
                        "text": "",
                        "start": -1,
                        "end": -1,
                        "score": null_value,
                        "null_score": null_value,
                    }
                )
                continue
            score, window, i, j = best
            start = int(token_offsets[window, i, 0])
            end = int(token_offsets[window, j, 1])
            results.append(
                {
                    "text": context[start:end],
                    "start": start,
                    "end": end,
                    "score": float(score),
                    "null_score": null_value,
                }
            )
        return results if batched else results[0]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "doc_stride": self.doc_stride,
                "max_question_length": self.max_question_length,
            }
        )
        return config
