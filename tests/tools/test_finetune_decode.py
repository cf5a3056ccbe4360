"""tools/finetune.py and tools/decode.py: end to end on tiny real-format
files (slow), argument errors and resume refusal (fast)."""

import importlib.util
import json
import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRESET = "unilmv2_tiny_en_uncased"


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f"tool_{name}", os.path.join(REPO, "tools", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


finetune_tool = _load_tool("finetune")
decode_tool = _load_tool("decode")


# === Tiny files in the official formats ===

PAIRS = [
    ("the cat sat on the mat .", "a cat was sitting on the mat .", 1),
    ("he reads a book in the park .", "she swims in the river .", 0),
    ("two birds flew over the house .", "two birds flew above the house .", 1),
    ("the dog ran to the park .", "the market was closed on sunday .", 0),
    ("they swim in the river every day .", "every day they swim in the river .", 1),
    ("the old man sold his car .", "a storm hit the coast at night .", 0),
]


def write_mrpc(folder):
    """GLUE MRPC `train.tsv` and `dev.tsv` (header, tab-separated, unquoted)."""
    os.makedirs(folder, exist_ok=True)
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    for name, rows in (("train.tsv", PAIRS * 2), ("dev.tsv", PAIRS[:4])):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(header)
            for i, (a, b, label) in enumerate(rows):
                f.write(f"{label}\t{2 * i}\t{2 * i + 1}\t{a}\t{b}\n")
    return os.path.join(folder, "train.tsv"), os.path.join(folder, "dev.tsv")


CONTEXTS = [
    ("The cat sat on the mat in the old house.", [("Where did the cat sit?", "on the mat")]),
    ("Two birds flew over the river at night.", [("What flew over the river?", "Two birds"),
                                                 ("Who sold the car?", None)]),
    ("The dog ran to the park every morning.", [("Where did the dog run?", "to the park")]),
]


def write_squad_v2(path):
    """A SQuAD v2.0 JSON file (one unanswerable question)."""
    paragraphs = []
    for p, (context, questions) in enumerate(CONTEXTS):
        qas = []
        for q, (question, answer) in enumerate(questions):
            qa = {"id": f"q{p}-{q}", "question": question, "is_impossible": answer is None}
            qa["answers"] = (
                [] if answer is None else [{"text": answer, "answer_start": context.index(answer)}]
            )
            qas.append(qa)
        paragraphs.append({"context": context, "qas": qas})
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": "v2.0", "data": [{"title": "t", "paragraphs": paragraphs}]}, f)
    return path


DOCS = [
    ("the cat sat on the mat in the old house and slept all day .", "a cat sleeps"),
    ("two birds flew over the river at night and sang a song .", "birds sing at night"),
    ("the dog ran to the park every morning with the old man .", "a dog runs to the park"),
    ("they swim in the river every day when the sun is out .", "they swim daily"),
]


def write_s2s(folder):
    """s2s-ft data: `train.jsonl` and a `dev.src`/`dev.tgt` pair."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "train.jsonl"), "w", encoding="utf-8") as f:
        for src, tgt in DOCS * 2:
            f.write(json.dumps({"src": src, "tgt": tgt}) + "\n")
    with open(os.path.join(folder, "dev.src"), "w", encoding="utf-8") as f:
        f.write("\n".join(src for src, _ in DOCS[:3]) + "\n")
    with open(os.path.join(folder, "dev.tgt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tgt for _, tgt in DOCS[:3]) + "\n")
    return (
        os.path.join(folder, "train.jsonl"),
        os.path.join(folder, "dev.src"),
        os.path.join(folder, "dev.tgt"),
    )


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line]


def _results(output):
    with open(os.path.join(output, "results.json"), encoding="utf-8") as f:
        return json.load(f)


def classify_args(train, dev, output, *extra):
    return [
        "classify", "--task", "mrpc", "--preset", PRESET, "--train-file", train,
        "--dev-file", dev, "--output", output, "--max-source-length", "32",
        "--batch-size", "4", *extra,
    ]


# === Slow: one end-to-end run per recipe ===


@pytest.mark.slow
def test_classify_recipe_scores_mrpc(tmp_path, capsys):
    train, dev = write_mrpc(os.path.join(tmp_path, "MRPC"))
    output = os.path.join(tmp_path, "run")
    args = classify_args(train, dev, output, "--epochs", "1", "--learning-rate", "1e-4")
    assert finetune_tool.main(args) == 0
    results = _results(output)
    assert set(results["dev"]) == {"accuracy", "f1"}
    assert all(0.0 <= v <= 1.0 for v in results["dev"].values())
    assert results["steps"] == 3  # 12 examples, batch 4
    assert results["settings"]["task"] == "mrpc"
    rows = [json.loads(line) for line in _lines(results["predictions"])]
    assert [r["index"] for r in rows] == ["2", "3", "4", "5"]  # file line numbers
    assert [r["label"] for r in rows] == [str(p[2]) for p in PAIRS[:4]]
    assert all(r["prediction"] in ("0", "1") for r in rows)
    accuracy = np.mean([r["prediction"] == r["label"] for r in rows])
    assert results["dev"]["accuracy"] == accuracy
    # The written preset is the fine-tuned classifier, without optimizer
    # state (its task weights are about the size of the backbone's).
    from keras_unilmv2 import UniLMv2TextClassifier

    restored = UniLMv2TextClassifier.from_preset(results["preset"])
    assert restored.num_classes == 2
    assert restored.preprocessor.sequence_length == 32
    backbone_weights = os.path.join(results["preset"], "model.weights.h5")
    task_weights = os.path.join(results["preset"], "task.weights.h5")
    assert os.path.getsize(task_weights) < 1.5 * os.path.getsize(backbone_weights)
    # The finished run's checkpoints are gone; its settings stay.
    checkpoints = os.listdir(os.path.join(output, "training", "checkpoints"))
    assert checkpoints == ["run.json"]
    # Finished: the same command does nothing more.
    capsys.readouterr()
    assert finetune_tool.main(args) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.slow
def test_interrupted_run_resumes_after_its_last_epoch(tmp_path, capsys):
    train, dev = write_mrpc(os.path.join(tmp_path, "MRPC"))
    output = os.path.join(tmp_path, "run")
    args = classify_args(train, dev, output, "--epochs", "2")
    assert finetune_tool.main(args + ["--stop-after-epochs", "1"]) == 0
    assert "stopped after epoch 1" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(output, "results.json"))
    assert finetune_tool.main(args) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 1 of 2" in out
    assert "Epoch 2/2" in out and "Epoch 1/2" not in out
    results = _results(output)
    assert [row["epoch"] for row in results["history"]] == [1, 2]
    assert results["steps"] == 6
    assert len(_lines(results["predictions"])) == 4


@pytest.mark.slow
def test_qa_recipe_scores_squad_v2(tmp_path):
    train = write_squad_v2(os.path.join(tmp_path, "train-v2.0.json"))
    dev = write_squad_v2(os.path.join(tmp_path, "dev-v2.0.json"))
    output = os.path.join(tmp_path, "run")
    args = [
        "qa", "--version-2", "--preset", PRESET, "--train-file", train, "--dev-file", dev,
        "--output", output, "--max-source-length", "72", "--doc-stride", "16",
        "--batch-size", "4", "--epochs", "1",
    ]
    assert finetune_tool.main(args) == 0
    results = _results(output)
    scores = results["dev"]
    assert {"exact", "f1", "total", "HasAns_exact", "NoAns_exact", "best_f1"} <= set(scores)
    assert scores["total"] == 4
    assert 0.0 <= scores["f1"] <= 100.0
    rows = [json.loads(line) for line in _lines(results["predictions"])]
    assert [r["id"] for r in rows] == ["q0-0", "q1-0", "q1-1", "q2-0"]
    for row, (context, _) in zip(rows, [CONTEXTS[0], CONTEXTS[1], CONTEXTS[1], CONTEXTS[2]]):
        assert row["prediction"] in context  # a span of its context, or ""
    assert os.path.isfile(os.path.join(results["preset"], "task.json"))


@pytest.mark.slow
def test_seq2seq_recipe_scores_rouge(tmp_path):
    train, dev_src, _ = write_s2s(os.path.join(tmp_path, "s2s"))
    output = os.path.join(tmp_path, "run")
    args = [
        "seq2seq", "--preset", PRESET, "--train-file", train, "--dev-file", dev_src,
        "--output", output, "--max-source-length", "24", "--max-target-length", "8",
        "--batch-size", "4", "--epochs", "1", "--learning-rate", "1e-4",
        "--label-smoothing", "0.1", "--target-mask-rate", "0.4",
    ]
    assert finetune_tool.main(args) == 0
    results = _results(output)
    assert set(results["dev"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert all(0.0 <= v <= 100.0 for v in results["dev"].values())
    assert results["settings"]["target_mask_rate"] == 0.4
    rows = [json.loads(line) for line in _lines(results["predictions"])]
    assert [r["reference"] for r in rows] == [t for _, t in DOCS[:3]]
    from keras_unilmv2 import UniLMv2Seq2SeqLM

    restored = UniLMv2Seq2SeqLM.from_preset(results["preset"])
    assert restored.preprocessor.decoder_sequence_length == 8
    assert restored.preprocessor.seed is None


@pytest.mark.slow
def test_decode_writes_nbest_with_scores_and_rouge(tmp_path, capsys):
    _, dev_src, dev_tgt = write_s2s(os.path.join(tmp_path, "s2s"))
    output = os.path.join(tmp_path, "dev.nbest.jsonl")
    args = [
        "--preset", PRESET, "--input", dev_src, "--output", output, "--num-beams", "3",
        "--nbest", "2", "--length-penalty", "0.9", "--no-repeat-ngram-size", "3",
        "--ngram-ignore-token", ".", "--min-length", "1", "--max-length", "6",
        "--max-source-length", "24", "--batch-size", "2", "--references", dev_tgt,
    ]
    assert decode_tool.main(args) == 0
    rows = [json.loads(line) for line in _lines(output)]
    assert [r["src"] for r in rows] == [s for s, _ in DOCS[:3]]
    for row in rows:
        assert len(row["beams"]) == 2
        scores = [b["score"] for b in row["beams"]]
        assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
    with open(output + ".scores.json", encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["examples"] == 3
    assert set(summary["rouge"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    # Plain output: one line per source, the best beam of the n-best run.
    plain = os.path.join(tmp_path, "dev.out")
    at = args.index("--nbest")
    plain_args = args[:at] + args[at + 2 :]
    plain_args[plain_args.index(output)] = plain
    assert decode_tool.main(plain_args) == 0
    lines = open(plain, encoding="utf-8").read().split("\n")
    assert lines[-1] == "" and len(lines) == 4
    assert lines[:3] == [" ".join(r["beams"][0]["text"].split()) for r in rows]


# === Fast: argument errors and resume refusal ===


def test_finetune_argument_errors(tmp_path, capsys):
    train, dev = write_mrpc(os.path.join(tmp_path, "MRPC"))
    output = os.path.join(tmp_path, "run")
    # argparse: a missing --task, a seq2seq-only flag, an unknown kind.
    for argv, message in (
        (["classify", "--preset", PRESET, "--train-file", train, "--dev-file", dev,
          "--output", output], "--task"),
        (classify_args(train, dev, output, "--label-smoothing", "0.1"),
         "unrecognized arguments: --label-smoothing"),
        (["translate"], "invalid choice: 'translate'"),
        (classify_args(train, dev, output, "--epochs", "two"), "--epochs: invalid int value"),
    ):
        with pytest.raises(SystemExit) as e:
            finetune_tool.main(argv)
        assert e.value.code == 2
        assert message in capsys.readouterr().err
    # Values: each error names the argument and the value.
    for extra, message in (
        (["--learning-rate", "-1"], "`learning_rate` must be a number > 0. Received: learning_rate=-1.0"),
        (["--warmup-fraction", "1"], "`warmup_fraction` must be a number >= 0 and < 1"),
        (["--batch-size", "0"], "`batch_size` must be an integer >= 1. Received: batch_size=0"),
        (["--epochs", "0"], "Received: epochs=0"),
    ):
        assert finetune_tool.main(classify_args(train, dev, output, *extra)) == 1
        assert message in capsys.readouterr().err
    bad_task = classify_args(train, dev, output)
    bad_task[bad_task.index("mrpc")] = "mrcp"
    assert finetune_tool.main(bad_task) == 1
    assert "Unknown GLUE task 'mrcp'" in capsys.readouterr().err
    missing = classify_args(os.path.join(tmp_path, "nope.tsv"), dev, output)
    assert finetune_tool.main(missing) == 1
    assert "`train_file` must be an existing file" in capsys.readouterr().err
    # Nothing was recorded by the failed runs.
    assert not os.path.exists(output)
    # A malformed file names the file and line.
    with open(dev, "a", encoding="utf-8") as f:
        f.write("2\t9\t9\tbad label\tline\n")
    assert finetune_tool.main(classify_args(train, dev, output)) == 1
    assert "dev.tsv, line 6: unknown mrpc label '2'" in capsys.readouterr().err


def test_finetune_refuses_a_rerun_with_other_settings(tmp_path, capsys):
    train, dev = write_mrpc(os.path.join(tmp_path, "MRPC"))
    output = os.path.join(tmp_path, "run")
    # Loads the data and the model, records the settings, stops.
    assert finetune_tool.main(classify_args(train, dev, output, "--stop-after-epochs", "0")) == 0
    assert os.path.isfile(os.path.join(output, "training", "checkpoints", "run.json"))
    capsys.readouterr()
    changed = classify_args(train, dev, output, "--learning-rate", "1e-4", "--seed", "3")
    assert finetune_tool.main(changed) == 1
    err = capsys.readouterr().err
    assert "resuming it would mix two runs" in err
    assert "learning_rate: None in the checkpoints, 0.0001 now" in err
    assert "seed: 0 in the checkpoints, 3 now" in err
    assert "batch_size" not in err
    # Other training data (same path) is another run too.
    with open(train, "a", encoding="utf-8") as f:
        f.write("1\t90\t91\tone more\tpair\n")
    assert finetune_tool.main(classify_args(train, dev, output)) == 1
    assert "train_sha256" in capsys.readouterr().err


def test_decode_argument_errors(tmp_path, capsys):
    _, dev_src, dev_tgt = write_s2s(os.path.join(tmp_path, "s2s"))
    base = ["--preset", PRESET, "--input", dev_src, "--output", os.path.join(tmp_path, "out")]
    for extra, message in (
        (["--num-beams", "2", "--nbest", "3"], "`nbest` must be an integer >= 1 and <= 2. Received: nbest=3"),
        (["--num-beams", "0"], "Received: num_beams=0"),
        (["--length-penalty", "-0.5"], "Received: length_penalty=-0.5"),
        (["--min-length", "6", "--max-length", "6"], "`min_length` (6) must be less than `max_length` (6)"),
    ):
        assert decode_tool.main(base + extra) == 1
        assert message in capsys.readouterr().err
    with open(os.path.join(tmp_path, "short.tgt"), "w") as f:
        f.write("one\n")
    assert decode_tool.main(base + ["--references", os.path.join(tmp_path, "short.tgt")]) == 1
    assert "`references` has 1 examples but `input_file` has 3" in capsys.readouterr().err
    assert decode_tool.main(base[:3] + [os.path.join(tmp_path, "x.src")] + base[4:]) == 1
    assert "`input_file` must be an existing file" in capsys.readouterr().err
    nowhere = base[:5] + [os.path.join(tmp_path, "missing", "out")]
    assert decode_tool.main(nowhere) == 1
    assert "The folder of `output_file` does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        decode_tool.main(base[2:])
    assert e.value.code == 2
    assert "--preset" in capsys.readouterr().err


def test_fixed_schedule_of_resumable_runs():
    """`default_optimizer(total_steps=...)` warms up over its fraction of
    all steps and decays to 0 at the last: one schedule across per-epoch
    `fit` calls and resumes."""
    from keras_unilmv2.models.fine_tuning import default_optimizer

    schedule = default_optimizer(1e-4, 0.1, total_steps=100)._learning_rate
    rates = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    np.testing.assert_allclose(rates, [0.0, 5e-5, 1e-4, 5e-5, 0.0], rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError, match="Received: total_steps=0"):
        default_optimizer(1e-4, 0.1, total_steps=0)
    with pytest.raises(ValueError, match="Received: warmup_fraction=1.5"):
        default_optimizer(1e-4, 1.5, total_steps=10)
