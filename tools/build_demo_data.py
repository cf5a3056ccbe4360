"""Rebuild the demo data sets in `guides/data/` from text available offline.

    python tools/build_demo_data.py

- `pydocs_sections_{train,test}.tsv` (classification): a paragraph of the
  Python 3.11 documentation sources (Debian package `python3.11-doc`) and
  the part of the documentation it comes from: library, reference,
  tutorial, howto, faq, c-api or whatsnew. At most 240 training and 60 test
  paragraphs per part; the split is by source file (every 5th file is test)
  so that no document is in both.
- `docstrings_{train,test}.tsv` (seq2seq): the body of a standard-library
  docstring and its summary line, from the `.py` files of the running
  Python's standard library (3.11), every 10th pair held out.

Both are deterministic: the same inputs give the same files.
"""

import argparse
import ast
import csv
import os
import sys
import sysconfig
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from keras_unilmv2.utils.corpus import PYTHON_DOCS_SOURCES  # noqa: E402
from keras_unilmv2.utils.corpus import python_docs_paragraphs  # noqa: E402

SECTIONS = ("library", "reference", "tutorial", "howto", "faq", "c-api", "whatsnew")
SKIP_DIRS = {
    "test", "tests", "idlelib", "site-packages", "lib2to3", "tkinter",
    "turtledemo", "__pycache__", "ensurepip", "distutils",
}


def _write(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)


def _stable_hash(text):
    return zlib.crc32(text.encode("utf-8"))


def section_rows(root, per_class_train=240, per_class_test=60):
    buckets = {(s, split): [] for s in SECTIONS for split in ("train", "test")}
    files = {}
    for relative, paragraph in python_docs_paragraphs(root, min_words=12):
        section = relative.split(os.sep)[0]
        if section not in SECTIONS:
            continue
        index = files.setdefault(relative, len(files))
        split = "test" if index % 5 == 0 else "train"
        buckets[(section, split)].append(paragraph)
    train, test = [], []
    for section in SECTIONS:
        for split, limit, out in (("train", per_class_train, train), ("test", per_class_test, test)):
            items = sorted(buckets[(section, split)], key=_stable_hash)[:limit]
            out += [(text, section) for text in items]
    return sorted(train, key=lambda r: _stable_hash(r[0])), sorted(test, key=lambda r: _stable_hash(r[0]))


def docstring_pairs(root):
    pairs = []
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            try:
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                doc = ast.get_docstring(node)
                if not doc or "\n\n" not in doc.strip():
                    continue
                summary, body = doc.strip().split("\n\n", 1)
                summary, body = " ".join(summary.split()), " ".join(body.split())
                if 3 <= len(summary.split()) <= 20 and 15 <= len(body.split()) <= 120:
                    pairs.append((body, summary))
    pairs = sorted(set(pairs), key=lambda p: (_stable_hash(p[0] + p[1]), p))
    test = [p for i, p in enumerate(pairs) if i % 10 == 0]
    train = [p for i, p in enumerate(pairs) if i % 10]
    return train, test


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default=PYTHON_DOCS_SOURCES)
    parser.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--output", default=os.path.join(os.path.dirname(HERE), "guides", "data"))
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    train, test = section_rows(args.docs)
    _write(os.path.join(args.output, "pydocs_sections_train.tsv"), ("text", "label"), train)
    _write(os.path.join(args.output, "pydocs_sections_test.tsv"), ("text", "label"), test)
    train, test = docstring_pairs(args.stdlib)
    _write(os.path.join(args.output, "docstrings_train.tsv"), ("body", "summary"), train)
    _write(os.path.join(args.output, "docstrings_test.tsv"), ("body", "summary"), test)
    for name in sorted(os.listdir(args.output)):
        if name.endswith(".tsv"):
            with open(os.path.join(args.output, name), encoding="utf-8") as f:
                print(f"{name}: {sum(1 for _ in f) - 1} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
