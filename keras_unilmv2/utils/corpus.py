"""Offline English text corpora from Debian documentation packages.

- Debian's `python3.11-doc` package installs the sources of the Python
  documentation (`/usr/share/doc/python3.11/html/_sources/**/*.rst.txt`,
  about 11 MB of English). `python_docs_paragraphs` turns them into
  plain-text paragraphs, deterministically, for pre-training and for the
  demo data sets.
- Other documentation packages install HTML books (`HTML_BOOKS`: The
  Debian Administrator's Handbook, the Debian Reference, the PostgreSQL 15
  and Django manuals, the SQLite documentation, Debian's policy, developers'
  reference, new maintainers' guide, FAQ and securing manual);
  `html_paragraphs` extracts their prose (`<p>` elements).

The system's man pages, GNU info manuals and `/usr/share/common-licenses`
are held-out evaluation text of this project: `check_not_heldout` refuses
them as training input.
"""

import glob
import html.parser
import os
import re

HELDOUT_ROOTS = ("/usr/share/man", "/usr/share/info", "/usr/share/common-licenses")

DEBIAN_HANDBOOK_HTML = "/usr/share/doc/debian-handbook/html/en-US"
DEBIAN_REFERENCE_HTML = "/usr/share/debian-reference"

# name -> (folder, file pattern (recursive `**` allowed), Debian package)
HTML_BOOKS = {
    "debian-handbook": (DEBIAN_HANDBOOK_HTML, "*.html", "debian-handbook"),
    "debian-reference": (DEBIAN_REFERENCE_HTML, "*.en.html", "debian-reference-en"),
    "postgresql-docs": (
        "/usr/share/doc/postgresql-doc-15/html", "*.html", "postgresql-doc-15"
    ),
    "django-docs": (
        "/usr/share/doc/python-django-doc/html", "**/*.html", "python-django-doc"
    ),
    "sqlite-docs": ("/usr/share/doc/sqlite3", "**/*.html", "sqlite3-doc"),
    "debian-policy": (
        "/usr/share/doc/debian-policy/policy.html", "*.html", "debian-policy"
    ),
    "developers-reference": (
        "/usr/share/developers-reference", "*.html", "developers-reference"
    ),
    "maint-guide": ("/usr/share/doc/maint-guide/html", "*.en.html", "maint-guide"),
    "debian-faq": ("/usr/share/doc/debian/FAQ", "*.en.html", "debian-faq"),
    "harden-doc": ("/usr/share/doc/harden-doc/html/en-US", "*.html", "harden-doc"),
}

# Sphinx build folders that hold no prose of the book (highlighted source
# code, assets).
_SKIPPED_FOLDERS = frozenset({"_modules", "_sources", "_static", "_images"})


def check_not_heldout(path):
    """Raises ValueError for a path inside the held-out evaluation text."""
    real = os.path.realpath(os.fspath(path))
    for root in HELDOUT_ROOTS:
        if real == root or real.startswith(root + os.sep):
            raise ValueError(
                f"{os.fspath(path)!r} is held-out evaluation text ({root}: the "
                "man pages, GNU info manuals and common licenses are never "
                "training data in this project)."
            )

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
    for path in files:
        check_not_heldout(path)
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


class _ParagraphParser(html.parser.HTMLParser):
    """Collects the text of paragraphs (`<p>`, and DocBook's
    `<div class="para">`), skipping code blocks, scripts and index terms."""

    _SKIP = {"pre", "script", "style"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs = []
        self._current = None
        self._skip = []  # open tags whose content is dropped
        self._div_depth = 0  # open divs inside a `div.para` paragraph

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.append(tag)
            return
        if tag in self._SKIP or "indexterm" in classes:
            self._skip.append(tag)
            if self._current is not None:
                self._current.append(" ")
        elif tag == "p" and not self._div_depth:
            self._flush()
            self._current = []
        elif tag == "div":
            if self._div_depth:
                self._div_depth += 1
            elif "para" in classes:
                self._flush()
                self._current = []
                self._div_depth = 1

    def handle_endtag(self, tag):
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag == "p" and not self._div_depth:
            self._flush()
        elif tag == "div" and self._div_depth:
            self._div_depth -= 1
            if not self._div_depth:
                self._flush()

    def handle_data(self, data):
        if self._current is not None and not self._skip:
            self._current.append(data)

    def _flush(self):
        if self._current is not None:
            self.paragraphs.append(" ".join("".join(self._current).split()))
        self._current = None

    def close(self):
        super().close()
        self._flush()


def html_paragraphs(text, min_words=8):
    """Plain-text paragraphs (the `<p>` elements) of one HTML document.

    Code blocks (`<pre>`) are dropped, inline code kept; paragraphs shorter
    than `min_words` words are skipped.
    """
    parser = _ParagraphParser()
    parser.feed(text)
    parser.close()
    return [p for p in parser.paragraphs if len(p.split()) >= min_words]


def _book(name, root=None):
    """`(root, pattern, package)` of a book of `HTML_BOOKS`; `root`, when
    given, replaces the installed folder."""
    if name not in HTML_BOOKS:
        raise ValueError(
            f"Unknown book {name!r}; expected one of {sorted(HTML_BOOKS)}."
        )
    default_root, pattern, package = HTML_BOOKS[name]
    return (default_root if root is None else os.fspath(root)), pattern, package


def html_book_files(name, root=None):
    """Sorted files of an HTML book of `HTML_BOOKS` (an error if none).

    `root` replaces the book's installed folder (tests, other installs).
    """
    root, pattern, package = _book(name, root)
    files = sorted(
        path
        for path in glob.glob(os.path.join(root, pattern), recursive=True)
        if _SKIPPED_FOLDERS.isdisjoint(os.path.relpath(path, root).split(os.sep)[:-1])
    )
    if not files:
        raise ValueError(
            f"No {pattern} files under {root!r}. Install the book with "
            f"`apt-get install {package}`."
        )
    for path in files:
        check_not_heldout(path)
    return files


def html_book_paragraphs(name, min_words=8, root=None):
    """Yields `(relative_path, paragraph)` for an HTML book of `HTML_BOOKS`."""
    root = _book(name, root)[0]
    for path in html_book_files(name, root=root):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        relative = os.path.relpath(path, root)
        for paragraph in html_paragraphs(text, min_words=min_words):
            yield relative, paragraph
