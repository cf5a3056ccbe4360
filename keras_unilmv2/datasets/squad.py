"""SQuAD v1.1 / v2.0 JSON files -> inputs of `UniLMv2QuestionAnswerer`."""

import json
import os


def _fail(path, where, message):
    raise ValueError(f"{path}: {where}: {message}")


def read_squad(path, skip_misaligned=False):
    """Reads a SQuAD v1.1 or v2.0 JSON file.

    Args:
        path: the JSON file (`{"version": ..., "data": [{"title": ...,
            "paragraphs": [{"context": ..., "qas": [...]}]}]}`).
        skip_misaligned: bool. An answer whose `text` is not at
            `answer_start` of its context raises a `ValueError` (naming
            the file and the question) unless this is `True`, in which
            case the answer is dropped (and the question, if it has no
            answer left and is not marked impossible).

    Returns:
        A list of dicts, one per question, in file order: `id`, `title`,
        `question`, `context`, `answers` (a dict of lists `text` and
        `answer_start`, the character offsets; empty for unanswerable
        questions) and `is_impossible` (bool; `False` in v1.1 files).

    Example:
    ```python
    examples = keras_unilmv2.datasets.read_squad("dev-v2.0.json")
    x, y = keras_unilmv2.datasets.squad_fit_inputs(examples)
    ```
    """
    if not os.path.isfile(path):
        raise ValueError(f"SQuAD file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            root = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path}, line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})."
            ) from None
    if not isinstance(root, dict) or not isinstance(root.get("data"), list):
        _fail(path, "top level", 'expected an object with a "data" list (SQuAD format).')
    examples = []
    for a, article in enumerate(root["data"]):
        where = f"data[{a}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            _fail(path, where, 'expected an object with a "paragraphs" list.')
        title = article.get("title", "")
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict):
                _fail(path, where, "expected an object.")
            context = paragraph.get("context")
            qas = paragraph.get("qas")
            if not isinstance(context, str) or not isinstance(qas, list):
                _fail(path, where, 'expected a "context" string and a "qas" list.')
            for q, qa in enumerate(qas):
                example = _read_question(path, f"{where}.qas[{q}]", qa, context, skip_misaligned)
                if example is not None:
                    example["title"] = title
                    examples.append(example)
    return examples


def _read_question(path, where, qa, context, skip_misaligned):
    if not isinstance(qa, dict):
        _fail(path, where, "expected an object.")
    for key in ("id", "question"):
        if not isinstance(qa.get(key), str):
            _fail(path, where, f'expected a {key!r} string. Received: {qa.get(key)!r}')
    where = f"{where} (id {qa['id']!r})"
    is_impossible = qa.get("is_impossible", False)
    if not isinstance(is_impossible, bool):
        _fail(path, where, f'"is_impossible" must be true or false. Received: {is_impossible!r}')
    answers = qa.get("answers", [])
    if not isinstance(answers, list):
        _fail(path, where, f'"answers" must be a list. Received: {answers!r}')
    texts, starts = [], []
    for answer in answers:
        if (
            not isinstance(answer, dict)
            or not isinstance(answer.get("text"), str)
            or isinstance(answer.get("answer_start"), bool)
            or not isinstance(answer.get("answer_start"), int)
        ):
            _fail(
                path,
                where,
                'every answer needs a "text" string and an integer "answer_start". '
                f"Received: {answer!r}",
            )
        start, text = answer["answer_start"], answer["text"]
        if start < 0 or context[start : start + len(text)] != text:
            if skip_misaligned:
                continue
            _fail(
                path,
                where,
                f"the answer {text!r} is not at answer_start={start} of the context "
                f"(found {context[max(start, 0) : max(start, 0) + len(text)]!r}).",
            )
        texts.append(text)
        starts.append(start)
    if is_impossible and texts:
        _fail(path, where, "an unanswerable question (is_impossible) has answers.")
    if not is_impossible and not texts:
        if answers and skip_misaligned:
            return None
        _fail(path, where, "an answerable question has no answers (v2.0 marks "
              "unanswerable ones with \"is_impossible\": true).")
    return {
        "id": qa["id"],
        "question": qa["question"],
        "context": context,
        "answers": {"text": texts, "answer_start": starts},
        "is_impossible": is_impossible,
    }


def squad_fit_inputs(examples):
    """`(x, y)` for `UniLMv2QuestionAnswerer.fit`/`evaluate` from
    `read_squad` examples.

    `x` is `(questions, contexts)` and `y` the dict `{"answer_start": [...],
    "answer_text": [...]}` with each question's first answer (`-1` and `""`
    for unanswerable ones), as the question answerer takes them: Python
    lists, because its preprocessor splits long contexts into windows in
    Python (not inside `tf.data`).

    Example:
    ```python
    x, y = squad_fit_inputs(read_squad("train-v1.1.json"))
    question_answerer.fit(x, y, batch_size=32, epochs=2)
    ```
    """
    questions, contexts, starts, texts = [], [], [], []
    for example in examples:
        questions.append(example["question"])
        contexts.append(example["context"])
        answers = example["answers"]
        if example["is_impossible"] or not answers["text"]:
            starts.append(-1)
            texts.append("")
        else:
            starts.append(answers["answer_start"][0])
            texts.append(answers["text"][0])
    return (questions, contexts), {"answer_start": starts, "answer_text": texts}
