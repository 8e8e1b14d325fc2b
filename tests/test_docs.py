"""README and docs/: short enough, links that resolve, and a benchmarks page that matches the results."""

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_README_LINES = 250
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def _pages():
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _without_code(page):
    return re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)


def _relative_links(page):
    """Yields (file, anchor) of each link to a file of the repository ("" for none)."""
    for target in _LINK.findall(_without_code(page)):
        if not _EXTERNAL.match(target):
            path, _, anchor = target.partition("#")
            yield path, anchor


def _anchors(page):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", _without_code(page), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move details to docs/"


def test_relative_links_point_to_existing_files():
    broken = []
    for page in _pages():
        for path, anchor in _relative_links(page):
            target = (page.parent / path) if path else page
            if not target.exists():
                broken.append(f"{page.relative_to(REPO)}: {path} does not exist")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{page.relative_to(REPO)}: no heading #{anchor} in {path or page.name}")
    assert not broken, broken


def test_the_link_check_sees_links():
    # Guards the regexes: README links the notebooks and a docs page's heading.
    links = set(_relative_links(REPO / "README.md"))
    assert ("colab/01_prune_keras_model.ipynb", "") in links, links
    assert ("docs/design.md", "pruning-kcompresspruning") in links, links
    assert "pruning-kcompresspruning" in _anchors(REPO / "docs" / "design.md")


def test_benchmarks_page_is_generated_from_the_results():
    spec = importlib.util.spec_from_file_location("build_docs", REPO / "benchmarks" / "build_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run `python benchmarks/build_docs.py` and commit docs/benchmarks.md"
    page = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for result in sorted((REPO / "benchmarks" / "results").glob("*.md")):
        assert f"## {result.stem}\n" in page, result.name
