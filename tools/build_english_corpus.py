"""Build the offline English pre-training corpus: one paragraph per line.

    python tools/build_english_corpus.py --output runs/english_corpus

Writes `<output>/<source>.txt` for each source (deduplicated paragraphs of
at least 8 words, in a deterministic order) and `<output>/sources.json`
(paragraph and word counts). It never overwrites: `--output` must not
exist; the corpus is built in `<output>.partial` and renamed when complete.
Sources, all Debian documentation packages:

- `python-docs`: the Python 3.11 documentation (reStructuredText sources);
- the HTML books of `keras_unilmv2.utils.corpus.HTML_BOOKS`:
  `debian-handbook` (The Debian Administrator's Handbook), `debian-reference`,
  `postgresql-docs` (PostgreSQL 15), `django-docs` (Django 3.2),
  `sqlite-docs`, `debian-policy`, `developers-reference`, `maint-guide`,
  `debian-faq`, `harden-doc` (Securing Debian).

Install them all with

    apt-get install python3.11-doc debian-handbook debian-reference-en \
        postgresql-doc-15 python-django-doc sqlite3-doc debian-policy \
        developers-reference maint-guide debian-faq harden-doc

(2.7M words; `--sources python-docs debian-handbook debian-reference` is the
0.7M-word corpus of the presets' first three stages).

The system's man pages, GNU info manuals and `/usr/share/common-licenses`
are held-out evaluation text and never part of it.
"""

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_unilmv2.utils import corpus  # noqa: E402

SOURCES = ("python-docs",) + tuple(corpus.HTML_BOOKS)


def paragraphs(source):
    if source == "python-docs":
        return corpus.python_docs_paragraphs()
    return corpus.html_book_paragraphs(source)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="folder to write")
    parser.add_argument(
        "--sources", nargs="+", default=list(SOURCES), choices=SOURCES, metavar="SOURCE"
    )
    args = parser.parse_args(argv)
    if os.path.exists(args.output):
        print(
            f"error: `--output` {args.output!r} exists: choose a new folder "
            "(this tool never overwrites).",
            file=sys.stderr,
        )
        return 1
    # Built in a staging folder, renamed when complete: an interrupted or
    # failed build leaves no partial corpus under `--output`.
    staging = args.output.rstrip(os.sep) + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    seen, report = set(), {}
    try:
        for source in args.sources:
            count = words = 0
            with open(os.path.join(staging, source + ".txt"), "w", encoding="utf-8") as f:
                for _, paragraph in paragraphs(source):
                    if paragraph in seen:
                        continue
                    seen.add(paragraph)
                    f.write(paragraph + "\n")
                    count += 1
                    words += len(paragraph.split())
            report[source] = {"paragraphs": count, "words": words}
            print(f"{source}: {count} paragraphs, {words} words")
        with open(os.path.join(staging, "sources.json"), "w") as f:
            json.dump(report, f, indent=2)
        os.rename(staging, args.output)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
