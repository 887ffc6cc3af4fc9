"""The repository stands alone and its tests cannot hide an import bug behind a skip."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realdata", "theory", "simulate", "figures")
SOURCES = [p for d in (*PACKAGES, "tests", "benchmarks", "docs") for p in (ROOT / d).rglob("*")
           if p.suffix in (".py", ".md", ".sh") and p.is_file()] + [ROOT / "README.md"]


def test_no_test_skips_on_the_projects_own_modules():
    pattern = re.compile(r"importorskip\(\s*[\"'](%s)\b" % "|".join(PACKAGES))
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_ci_requires_the_reference_packages():
    assert "export CI=1" in (ROOT / ".ci" / "run").read_text()


def test_cited_documents_live_in_docs():
    for name in ("PAPER", "DESIGN", "ARCHITECTURE"):
        assert (ROOT / "docs" / f"{name}.md").is_file(), name
    outside = re.compile(r"(?<![/\w])(PAPER|DESIGN)\.md")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in SOURCES if p.parent != ROOT / "docs" or p.name == "ARCHITECTURE.md"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if outside.search(line)]
    assert offenders == [], "cite docs/PAPER.md or docs/DESIGN.md, which ship with the repository"
