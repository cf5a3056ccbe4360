"""keras_unilmv2.datasets on small files written here: SQuAD JSON, GLUE TSVs,
s2s-ft JSONL and .src/.tgt pairs, and their outputs fed to the tasks'
preprocessors."""

import json

import numpy as np
import pytest

from keras_unilmv2 import datasets
from keras_unilmv2.models.unilmv2_question_answerer_preprocessor import (
    UniLMv2QuestionAnswererPreprocessor,
)
from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_text_classifier_preprocessor import (
    UniLMv2TextClassifierPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
from unilmv2_test_utils import fixture_path

CONTEXT = "The cat sat on the mat. The dog ran to the park."
SQUAD_V2 = {
    "version": "v2.0",
    "data": [
        {
            "title": "Pets",
            "paragraphs": [
                {
                    "context": CONTEXT,
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Who sat?",
                            "answers": [
                                {"text": "The cat", "answer_start": 0},
                                {"text": "cat", "answer_start": 4},
                            ],
                            "is_impossible": False,
                        },
                        {
                            "id": "q2",
                            "question": "Who flew?",
                            "answers": [],
                            "plausible_answers": [{"text": "The dog", "answer_start": 24}],
                            "is_impossible": True,
                        },
                    ],
                }
            ],
        },
        {
            "title": "Park",
            "paragraphs": [
                {
                    "context": CONTEXT,
                    "qas": [
                        {
                            "id": "q3",
                            "question": "Where did the dog run?",
                            "answers": [{"text": "the park", "answer_start": 39}],
                            "is_impossible": False,
                        }
                    ],
                }
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- SQuAD ---------------------------------------------------------------------


def test_read_squad_v2(tmp_path, tokenizer):
    path = _write(tmp_path / "dev-v2.0.json", json.dumps(SQUAD_V2))
    examples = datasets.read_squad(path)
    assert [e["id"] for e in examples] == ["q1", "q2", "q3"]
    assert examples[0] == {
        "id": "q1",
        "title": "Pets",
        "question": "Who sat?",
        "context": CONTEXT,
        "answers": {"text": ["The cat", "cat"], "answer_start": [0, 4]},
        "is_impossible": False,
    }
    assert examples[1]["is_impossible"] and examples[1]["answers"]["text"] == []
    assert examples[2]["title"] == "Park"
    x, y = datasets.squad_fit_inputs(examples)
    assert x == (["Who sat?", "Who flew?", "Where did the dog run?"], [CONTEXT] * 3)
    assert y == {"answer_start": [0, -1, 39], "answer_text": ["The cat", "", "the park"]}
    # The question answerer's preprocessor takes them as they are.
    preprocessor = UniLMv2QuestionAnswererPreprocessor(
        tokenizer, sequence_length=32, max_question_length=8
    )
    _, labels = preprocessor(x, y)
    assert labels.shape == (3, 2)
    assert labels[1].tolist() == [0, 0]  # unanswerable -> [CLS]
    assert labels[0, 0] > 0 and labels[2, 0] > 0


def test_read_squad_v1_without_is_impossible(tmp_path):
    data = json.loads(json.dumps(SQUAD_V2))
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = [q for q in paragraph["qas"] if not q["is_impossible"]]
            for q in paragraph["qas"]:
                del q["is_impossible"]
    path = _write(tmp_path / "dev-v1.1.json", json.dumps(data))
    examples = datasets.read_squad(path)
    assert [e["id"] for e in examples] == ["q1", "q3"]
    assert not any(e["is_impossible"] for e in examples)


def test_malformed_squad_files(tmp_path):
    bad_json = _write(tmp_path / "a.json", '{"data": [\n  {"title": "x",\n  }]}')
    with pytest.raises(ValueError, match=r"a\.json, line 3"):
        datasets.read_squad(bad_json)
    with pytest.raises(ValueError, match='"data" list'):
        datasets.read_squad(_write(tmp_path / "b.json", "[]"))
    data = json.loads(json.dumps(SQUAD_V2))
    data["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 5
    path = _write(tmp_path / "c.json", json.dumps(data))
    with pytest.raises(ValueError, match=r"c\.json: data\[1\]\.paragraphs\[0\]\.qas\[0\] \(id 'q3'\).*not at answer_start=5"):
        datasets.read_squad(path)
    # Skipping drops the question left without answers.
    assert [e["id"] for e in datasets.read_squad(path, skip_misaligned=True)] == ["q1", "q2"]
    data = json.loads(json.dumps(SQUAD_V2))
    del data["data"][0]["paragraphs"][0]["qas"][1]["question"]
    with pytest.raises(ValueError, match="'question' string"):
        datasets.read_squad(_write(tmp_path / "d.json", json.dumps(data)))
    data = json.loads(json.dumps(SQUAD_V2))
    data["data"][0]["paragraphs"][0]["qas"][1]["answers"] = [{"text": "cat", "answer_start": 4}]
    with pytest.raises(ValueError, match="is_impossible"):
        datasets.read_squad(_write(tmp_path / "e.json", json.dumps(data)))
    with pytest.raises(ValueError, match="not found"):
        datasets.read_squad(str(tmp_path / "missing.json"))


# --- GLUE -------------------------------------------------------------------------

MNLI_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2"
)


def _mnli_row(i, s1, s2, label=None):
    cells = [str(i), "1", f"{i}e", "fiction", "( a )", "( b )", "(ROOT a)", "(ROOT b)", s1, s2]
    if label is not None:
        cells += [label, label]
    return "\t".join(cells)


def test_glue_single_sentence_tasks(tmp_path):
    cola = tmp_path / "CoLA"
    cola.mkdir()
    _write(cola / "train.tsv", "gj04\t1\t\tThe cat sat.\ngj04\t0\t*\tCat the sat.\n")
    _write(cola / "test.tsv", "index\tsentence\n0\tA dog ran.\n1\tRan dog a.\n")
    columns = datasets.read_glue("cola", str(cola / "train.tsv"))
    assert columns == {"text": ["The cat sat.", "Cat the sat."], "label": [1, 0], "index": ["1", "2"]}
    train = list(datasets.load_glue("CoLA", str(cola), "train").as_numpy_iterator())
    assert train == [(b"The cat sat.", 1), (b"Cat the sat.", 0)]
    test = list(datasets.load_glue("cola", str(cola), "test").as_numpy_iterator())
    assert test == [b"A dog ran.", b"Ran dog a."]

    sst = tmp_path / "SST-2"
    sst.mkdir()
    _write(sst / "dev.tsv", 'sentence\tlabel\nit \'s a "great" film \t1\nboring\t0\n')
    dev = list(datasets.load_glue("sst2", str(sst), "dev").as_numpy_iterator())
    assert dev == [(b'it \'s a "great" film ', 1), (b"boring", 0)]


def test_glue_pair_tasks(tmp_path, tokenizer):
    mrpc = tmp_path / "MRPC"
    mrpc.mkdir()
    _write(
        mrpc / "train.tsv",
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t11\t12\tThe cat sat.\tA cat sat.\n0\t13\t14\tThe dog ran.\tIt rained.\n",
    )
    elements = list(datasets.load_glue("mrpc", str(mrpc)).as_numpy_iterator())
    assert elements == [((b"The cat sat.", b"A cat sat."), 1), ((b"The dog ran.", b"It rained."), 0)]

    stsb = tmp_path / "STS-B"
    stsb.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    _write(
        stsb / "dev.tsv",
        header + "\tscore\n0\tnews\tf\t2012\t1\ts\ts\tA man runs.\tA man is running.\t4.75\n",
    )
    _write(stsb / "test.tsv", header + "\n0\tnews\tf\t2012\t1\ts\ts\tA b.\tC d.\n")
    ((pair, score),) = list(datasets.load_glue("sts-b", str(stsb), "dev").as_numpy_iterator())
    assert pair == (b"A man runs.", b"A man is running.")
    assert score.dtype == np.float32 and score == pytest.approx(4.75)
    assert datasets.get_glue_task("stsb").num_classes == 1
    assert list(datasets.load_glue("sts-b", str(stsb), "test").as_numpy_iterator()) == [(b"A b.", b"C d.")]

    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    labelled = MNLI_HEADER + "\tlabel1\tgold_label\n"
    _write(mnli / "dev_matched.tsv", labelled + _mnli_row(0, "A.", "B.", "neutral") + "\n")
    _write(mnli / "dev_mismatched.tsv", labelled + _mnli_row(7, "C.", "D.", "contradiction") + "\n")
    _write(mnli / "test_mismatched.tsv", MNLI_HEADER + "\n" + _mnli_row(9, "E.", "F.") + "\n")
    assert list(datasets.load_glue("mnli", str(mnli), "dev").as_numpy_iterator()) == [((b"A.", b"B."), 2)]
    assert list(datasets.load_glue("mnli-mm", str(mnli), "dev").as_numpy_iterator()) == [((b"C.", b"D."), 0)]
    columns = datasets.read_glue("mnli-mm", str(mnli / "test_mismatched.tsv"))
    assert columns == {"text": ["E."], "text_pair": ["F."], "index": ["9"]}
    assert datasets.get_glue_task("mnli-m").label_names == ("contradiction", "entailment", "neutral")

    for name, first, second in (("qnli", "question", "sentence"), ("rte", "sentence1", "sentence2")):
        folder = tmp_path / name
        folder.mkdir()
        _write(
            folder / "train.tsv",
            f"index\t{first}\t{second}\tlabel\n0\tIs it red?\tIt is red.\tentailment\n"
            "1\tIs it big?\tIt is red.\tnot_entailment\n",
        )
        ds = datasets.load_glue(name, str(folder))
        assert [int(y) for _, y in ds.as_numpy_iterator()] == [0, 1]
    wnli = tmp_path / "WNLI"
    wnli.mkdir()
    _write(wnli / "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta b\tc d\t1\n")
    assert list(datasets.load_glue("wnli", str(wnli)).as_numpy_iterator()) == [((b"a b", b"c d"), 1)]
    qqp = tmp_path / "QQP"
    qqp.mkdir()
    _write(qqp / "train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n5\t1\t2\tq a\tq b\t1\n")
    assert datasets.read_glue("qqp", str(qqp / "train.tsv"))["index"] == ["5"]

    # The classifier's preprocessor maps the batched dataset.
    preprocessor = UniLMv2TextClassifierPreprocessor(tokenizer, sequence_length=16)
    x, y = next(iter(datasets.load_glue("mrpc", str(mrpc)).batch(2).map(preprocessor)))
    assert tuple(x["token_ids"].shape) == (2, 16) and y.numpy().tolist() == [1, 0]


def test_malformed_glue_files(tmp_path):
    path = _write(
        tmp_path / "train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly one column\n",
    )
    with pytest.raises(ValueError, match=r"train\.tsv, line 3: expected at least 4"):
        datasets.read_glue("rte", path)
    assert datasets.read_glue("rte", path, skip_malformed=True)["label"] == [0]
    path = _write(tmp_path / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match=r"dev\.tsv, line 2: unknown rte label 'maybe'"):
        datasets.read_glue("rte", path)
    path = _write(tmp_path / "stsb.tsv", "sentence1\tsentence2\tscore\na\tb\thigh\n")
    with pytest.raises(ValueError, match=r"line 2: the sts-b label must be a number"):
        datasets.read_glue("sts-b", path, split="dev")
    path = _write(tmp_path / "wrong.tsv", "idx\ttext\tlabel\n0\ta\t1\n")
    with pytest.raises(ValueError, match=r"line 1: the header has no column\(s\) \['sentence'\]"):
        datasets.read_glue("sst-2", path)
    with pytest.raises(ValueError, match="Unknown GLUE task 'imdb'"):
        datasets.load_glue("imdb", str(tmp_path))
    with pytest.raises(ValueError, match="split"):
        datasets.load_glue("rte", str(tmp_path), split="validation")
    with pytest.raises(ValueError, match="not found"):
        datasets.load_glue("rte", str(tmp_path / "nowhere"), split="dev")


# --- s2s-ft -------------------------------------------------------------------------


def test_seq2seq_jsonl_and_line_pairs(tmp_path, tokenizer):
    jsonl = _write(
        tmp_path / "train.jsonl",
        json.dumps({"src": "the cat sat on the mat", "tgt": "cat sat"}) + "\n\n"
        + json.dumps({"src": ["the", "dog", "ran"], "tgt": ["dog", "ran"]}) + "\n",
    )
    assert datasets.read_seq2seq(jsonl) == (
        ["the cat sat on the mat", "the dog ran"],
        ["cat sat", "dog ran"],
    )
    elements = list(datasets.load_seq2seq(jsonl).as_numpy_iterator())
    assert elements[1] == {"encoder_text": b"the dog ran", "decoder_text": b"dog ran"}
    sources = list(datasets.load_seq2seq(jsonl, with_target=False).as_numpy_iterator())
    assert sources == [b"the cat sat on the mat", b"the dog ran"]

    src = _write(tmp_path / "dev.src", "the cat sat on the mat\nthe dog ran\n")
    _write(tmp_path / "dev.tgt", "cat sat\ndog ran\n")
    assert datasets.read_seq2seq(src) == (
        ["the cat sat on the mat", "the dog ran"],
        ["cat sat", "dog ran"],
    )
    # The seq2seq preprocessor maps the batched dataset (what `fit` does).
    preprocessor = UniLMv2Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=12, decoder_sequence_length=6
    )
    x, y, weights = next(iter(datasets.load_seq2seq(src).batch(2).map(preprocessor)))
    assert tuple(y.shape) == (2, 6) and weights.numpy().sum() == 3 + 3  # 2 tokens + [SEP] each
    # Sources only, for `generate`.
    assert datasets.read_seq2seq(src, with_target=False) == (
        ["the cat sat on the mat", "the dog ran"],
        None,
    )


def test_malformed_seq2seq_files(tmp_path):
    path = _write(tmp_path / "a.jsonl", '{"src": "a", "tgt": "b"}\n{"src": "a", "tgt": \n')
    with pytest.raises(ValueError, match=r"a\.jsonl, line 2: not valid JSON"):
        datasets.read_seq2seq(path)
    path = _write(tmp_path / "b.jsonl", '{"src": "a", "tgt": "b"}\n{"src": "c"}\n')
    with pytest.raises(ValueError, match=r'b\.jsonl, line 2: the record has no "tgt"'):
        datasets.read_seq2seq(path)
    assert datasets.read_seq2seq(path, with_target=False) == (["a", "c"], None)
    path = _write(tmp_path / "c.jsonl", '{"source": "a"}\n')
    with pytest.raises(ValueError, match=r'c\.jsonl, line 1: expected an object with "src"'):
        datasets.read_seq2seq(path)
    path = _write(tmp_path / "d.jsonl", '{"src": 3, "tgt": "b"}\n')
    with pytest.raises(ValueError, match=r"d\.jsonl, line 1: 'src' must be a string"):
        datasets.read_seq2seq(path)
    src = _write(tmp_path / "e.src", "a\nb\nc\n")
    _write(tmp_path / "e.tgt", "x\ny\n")
    with pytest.raises(ValueError, match=r"e\.src has 3 lines but .*e\.tgt has 2"):
        datasets.read_seq2seq(src)
    src = _write(tmp_path / "f.src", "a\n\nc\n")
    with pytest.raises(ValueError, match=r"f\.src, line 2: empty source line"):
        datasets.read_seq2seq(src, with_target=False)
    src = _write(tmp_path / "g.src", "a\n")
    with pytest.raises(ValueError, match="No target file"):
        datasets.read_seq2seq(src)
