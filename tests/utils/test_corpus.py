"""keras_unilmv2.utils.corpus and tools/build_english_corpus.py: the offline
English pre-training text, paragraphs only, never the held-out text."""

import json
import os
import sys

import pytest

from keras_unilmv2.utils import corpus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import build_english_corpus  # noqa: E402

PROSE = "This sentence has more than eight words in it, {}."


def _page(*paragraphs):
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"<html><body><h1>Title of the page</h1>{body}</body></html>"


def test_html_paragraphs_keeps_prose_drops_code_and_index_terms():
    text = (
        "<p>Use the <code>ls</code> command to list the files of a folder here.</p>"
        "<pre>for x in range(10): print(x) and more code words here</pre>"
        "<div class='para'>A DocBook paragraph <span class='indexterm'>IDX</span>"
        " with <div>nested</div> content that is long enough to keep.</div>"
        "<p>Too short to keep.</p>"
        "<script>var a = 'a script with many words in it ok';</script>"
    )
    assert corpus.html_paragraphs(text) == [
        "Use the ls command to list the files of a folder here.",
        "A DocBook paragraph with nested content that is long enough to keep.",
    ]
    assert corpus.html_paragraphs(text, min_words=3)[-1] == "Too short to keep."


def test_rst_paragraphs_drop_directives_code_and_headings():
    text = "\n".join([
        "Heading of the section",
        "======================",
        "",
        "The :func:`len` function returns the number of items of an object::",
        "",
        "    len([1, 2, 3])  # a code block that is not prose at all",
        "",
        ".. note::",
        "   A directive body that should never be part of the corpus text.",
        "",
        "A second paragraph is joined",
        "across its lines into one line of the corpus.",
    ])
    assert corpus.rst_paragraphs(text) == [
        "The len function returns the number of items of an object:",  # `::` reads `:`
        "A second paragraph is joined across its lines into one line of the corpus.",
    ]


def test_html_book_files_recursive_and_skips_sphinx_folders(tmp_path):
    (tmp_path / "topics").mkdir()
    (tmp_path / "_modules").mkdir()
    (tmp_path / "_sources").mkdir()
    for relative in ["index.html", "topics/db.html", "_modules/x.html", "_sources/y.html"]:
        (tmp_path / relative).write_text(_page(PROSE.format(relative)))
    files = corpus.html_book_files("django-docs", root=tmp_path)
    assert [os.path.relpath(f, tmp_path) for f in files] == ["index.html", "topics/db.html"]
    assert list(corpus.html_book_paragraphs("django-docs", root=tmp_path)) == [
        ("index.html", PROSE.format("index.html")),
        ("topics/db.html", PROSE.format("topics/db.html")),
    ]
    # A non-recursive book does not descend into folders.
    files = corpus.html_book_files("postgresql-docs", root=tmp_path)
    assert [os.path.basename(f) for f in files] == ["index.html"]


def test_html_book_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown book 'novel'.*debian-handbook"):
        corpus.html_book_files("novel")
    with pytest.raises(ValueError, match="apt-get install sqlite3-doc"):
        corpus.html_book_files("sqlite-docs", root=tmp_path)
    with pytest.raises(ValueError, match="apt-get install python3.11-doc"):
        corpus.python_docs_files(str(tmp_path))


def test_heldout_text_is_refused(tmp_path):
    for root in corpus.HELDOUT_ROOTS:
        with pytest.raises(ValueError, match="held-out evaluation text"):
            corpus.check_not_heldout(os.path.join(root, "gzip.info.gz"))
    corpus.check_not_heldout(str(tmp_path / "book.html"))  # anything else is fine
    # A link into the held-out text is followed, not trusted by its name.
    target = "/usr/share/common-licenses"
    link = tmp_path / "licenses"
    os.symlink(target, link)
    with pytest.raises(ValueError, match="held-out evaluation text"):
        corpus.check_not_heldout(str(link / "GPL-3"))


def test_build_english_corpus_deduplicates_across_sources(tmp_path, monkeypatch, capsys):
    policy, faq = tmp_path / "policy", tmp_path / "faq"
    policy.mkdir()
    faq.mkdir()
    shared = PROSE.format("shared by both books")
    (policy / "ch1.html").write_text(_page(PROSE.format("policy one"), shared))
    (policy / "ch2.html").write_text(_page(PROSE.format("policy two")))
    (faq / "q.en.html").write_text(_page(shared, PROSE.format("faq")))
    monkeypatch.setitem(corpus.HTML_BOOKS, "debian-policy", (str(policy), "*.html", "debian-policy"))
    monkeypatch.setitem(corpus.HTML_BOOKS, "debian-faq", (str(faq), "*.en.html", "debian-faq"))
    output = tmp_path / "corpus"
    assert build_english_corpus.main(
        ["--output", str(output), "--sources", "debian-policy", "debian-faq"]
    ) == 0
    assert (output / "debian-policy.txt").read_text().splitlines() == [
        PROSE.format("policy one"), shared, PROSE.format("policy two")
    ]
    assert (output / "debian-faq.txt").read_text().splitlines() == [PROSE.format("faq")]
    report = json.loads((output / "sources.json").read_text())

    def words(*paragraphs):
        return sum(len(p.split()) for p in paragraphs)

    assert report == {
        "debian-policy": {
            "paragraphs": 3,
            "words": words(PROSE.format("policy one"), shared, PROSE.format("policy two")),
        },
        "debian-faq": {"paragraphs": 1, "words": words(PROSE.format("faq"))},
    }
    assert "debian-faq: 1 paragraphs" in capsys.readouterr().out


def test_build_english_corpus_reports_a_missing_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(
        corpus.HTML_BOOKS, "maint-guide", (str(tmp_path / "absent"), "*.en.html", "maint-guide")
    )
    assert build_english_corpus.main(
        ["--output", str(tmp_path / "corpus"), "--sources", "maint-guide"]
    ) == 1
    assert "apt-get install maint-guide" in capsys.readouterr().err
    # Nothing half-built is left behind.
    assert sorted(os.listdir(tmp_path)) == []


def test_build_english_corpus_never_overwrites(tmp_path, capsys):
    output = tmp_path / "corpus"
    output.mkdir()
    (output / "python-docs.txt").write_text("a corpus the user built\n")
    assert build_english_corpus.main(["--output", str(output)]) == 1
    assert "exists" in capsys.readouterr().err
    assert os.listdir(output) == ["python-docs.txt"]
    assert (output / "python-docs.txt").read_text() == "a corpus the user built\n"


def test_every_default_source_is_known():
    assert set(build_english_corpus.SOURCES) == {"python-docs"} | set(corpus.HTML_BOOKS)
    for root, pattern, package in corpus.HTML_BOOKS.values():
        corpus.check_not_heldout(root)
        assert pattern.endswith(".html") and package
