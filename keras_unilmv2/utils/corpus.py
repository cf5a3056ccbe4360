"""Offline text corpora: the Python documentation's reStructuredText sources.

Debian's `python3.11-doc` package installs the sources of the Python
documentation (`/usr/share/doc/python3.11/html/_sources/**/*.rst.txt`,
about 11 MB of English). `python_docs_paragraphs` turns them into plain-text
paragraphs, deterministically, for pre-training and for the demo data sets.
"""

import glob
import os
import re

PYTHON_DOCS_SOURCES = "/usr/share/doc/python3.11/html/_sources"

_DIRECTIVE = re.compile(r"^\s*\.\. ")
_UNDERLINE = re.compile(r"^\s*([=\-~^\"'`#*+<>_:.])\1{2,}\s*$")
_ROLE = re.compile(r":[a-zA-Z:]+:`~?!?([^`<]*?)(?:\s*<[^>]*>)?`")
_MARKUP = re.compile(r"``|\*\*|`_*|\|")


def python_docs_files(root=PYTHON_DOCS_SOURCES):
    """Sorted `.rst.txt` files under `root` (an error if there are none)."""
    files = sorted(glob.glob(os.path.join(root, "**", "*.rst.txt"), recursive=True))
    if not files:
        raise ValueError(
            f"No `.rst.txt` files under {root!r}. Install the Python "
            "documentation sources with `apt-get install python3.11-doc`, or "
            "pass another folder."
        )
    return files


def clean_rst_line(line):
    """Strips inline reStructuredText markup, keeping the words."""
    line = _ROLE.sub(r"\1", line)
    line = _MARKUP.sub("", line)
    return " ".join(line.split())


def rst_paragraphs(text, min_words=8):
    """Plain-text paragraphs of one reStructuredText document.

    Directives with their indented bodies, code blocks (after `::`),
    section underlines, tables and field lists are dropped; the lines of a
    paragraph are joined with spaces; paragraphs shorter than `min_words`
    words are skipped.
    """
    paragraphs, current = [], []
    skip_indent = None
    code_next = False

    def flush():
        if current:
            paragraph = " ".join(current)
            if len(paragraph.split()) >= min_words:
                paragraphs.append(paragraph)
            current.clear()

    for raw in text.splitlines():
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if not stripped:
            flush()
            continue
        if _DIRECTIVE.match(raw) or code_next and indent > 0:
            flush()
            skip_indent = indent
            code_next = False
            continue
        if _UNDERLINE.match(raw) or stripped.startswith(("+--", "|", ":")):
            current.clear()  # a heading's text or a table row: not prose
            continue
        code_next = stripped.endswith("::")
        line = clean_rst_line(stripped[:-1] if code_next else stripped)
        if line:
            current.append(line)
    flush()
    return paragraphs


def python_docs_paragraphs(root=PYTHON_DOCS_SOURCES, min_words=8):
    """Yields `(relative_path, paragraph)` for every document, in order."""
    for path in python_docs_files(root):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        relative = os.path.relpath(path, root)
        for paragraph in rst_paragraphs(text, min_words=min_words):
            yield relative, paragraph
