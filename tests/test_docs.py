"""The README and the docs/ pages: their examples run, their code parses, their links and pictures exist."""

from __future__ import annotations

import ast
import doctest
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "RELIABILITY.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _ids(pages):
    return [str(p.relative_to(ROOT)) for p in pages]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_examples_run(page):
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testfile(str(page), module_relative=False, optionflags=flags, encoding="utf-8")
    assert result.failed == 0


def _signatures(code: str) -> list[tuple[str, inspect.Signature]]:
    """``tc.name(a, b=1, *, c=2)`` lines (comments allowed) read as the signatures they show."""
    code = re.sub(r"#[^\n]*", "", code)
    statements = re.split(r"(?m)^(?=tc\.)", code.strip())
    shown = []
    for statement in filter(None, statements):
        name = re.match(r"tc\.(\w+)\(", statement).group(1)
        tree = ast.parse("def " + statement.strip()[3:] + ": ...")
        namespace: dict = {}
        exec(compile(tree, "<signature>", "exec"), namespace)
        shown.append((name, inspect.signature(namespace[name])))
    return shown


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_python_blocks_parse_and_signatures_match(page):
    """A block without ``>>>`` is either Python (a sketch with the reader's own arrays) or a list
    of ``tc.`` signatures, which must be the functions' real ones."""
    import transconv as tc

    for language, code in FENCE.findall(page.read_text(encoding="utf-8")):
        if language != "python" or ">>>" in code:
            continue
        try:
            compile(code, f"{page.name} block", "exec")
        except SyntaxError:
            for name, shown in _signatures(code):
                real = inspect.signature(getattr(tc, name)).parameters.values()
                assert [(p.name, p.kind, p.default) for p in shown.parameters.values()] == [
                    (p.name, p.kind, p.default) for p in real], f"{page.name}: tc.{name} is not shown as it is"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_links_and_pictures_exist(page):
    missing = []
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text(encoding="utf-8")))  # code is not a link
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    first_section = text.split("\n## ")[0]
    assert "\n    make demo " in first_section and "\n    make test " in first_section
    assert ">>> " in text  # the worked example runs (test_examples_run)
