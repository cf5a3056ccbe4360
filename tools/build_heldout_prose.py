"""Build the held-out English prose used to measure the shipped presets.

    python tools/build_heldout_prose.py --output tests/data/heldout_prose.txt

Prose paragraphs (one per line) from the GNU info manuals installed on a
Debian system (`/usr/share/info`: coreutils, diffutils, findutils, grep,
gzip, sed, wget, gettext, ...). These manuals, the man pages and
`/usr/share/common-licenses` are this project's held-out evaluation text:
no training corpus or demo data set may contain them
(`keras_unilmv2.utils.corpus.check_not_heldout`). `python3.11.info` is left
out, since it is the Python documentation the presets were trained on.

A paragraph is kept when it is flowing prose: at least 20 words, ending
with a full stop, mostly alphabetic words, no menu, node header or code
example. At most `--per-manual` paragraphs are taken from each manual,
evenly spread; the result is deterministic.
"""

import argparse
import glob
import gzip
import os
import re

INFO_DIR = "/usr/share/info"
EXCLUDED = ("python3",)


def info_paragraphs(text):
    paragraphs, current = [], []
    for line in text.splitlines() + [""]:
        if not line.strip() or "\x1f" in line or line.startswith(("File: ", "* ")):
            if current:
                paragraphs.append(" ".join(current))
            current = []
            continue
        indent = len(line) - len(line.lstrip())
        if indent >= 8 or line.strip().startswith(("*", "$", "#", "--")):
            current = []  # an example or a list: not flowing prose
            continue
        current.append(line.strip())
    return paragraphs


def is_prose(paragraph):
    words = paragraph.split()
    if len(words) < 20 or not paragraph.endswith("."):
        return False
    alphabetic = sum(bool(re.fullmatch(r"[A-Za-z][a-z]*[,.;:]?", w)) for w in words)
    return alphabetic >= 0.8 * len(words) and "*note" not in paragraph


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--per-manual", type=int, default=20)
    args = parser.parse_args(argv)
    manuals = {}
    for path in sorted(glob.glob(os.path.join(INFO_DIR, "*.info*.gz"))):
        name = os.path.basename(path).split(".info")[0]
        if name.startswith(EXCLUDED):
            continue
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            text = f.read().replace("‘", "'").replace("’", "'")
        manuals.setdefault(name, []).extend(p for p in info_paragraphs(text) if is_prose(p))
    if not manuals:
        raise SystemExit(f"No GNU info manuals under {INFO_DIR}.")
    lines = []
    for name, paragraphs in sorted(manuals.items()):
        step = max(len(paragraphs) // args.per_manual, 1)
        lines += paragraphs[::step][: args.per_manual]
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} paragraphs from {len(manuals)} manuals -> {args.output}")


if __name__ == "__main__":
    main()
