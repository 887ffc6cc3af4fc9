"""theory/ depends on nothing else in the repository (docs/DESIGN.md: figures → simulate → (theory, realdata))."""
import ast
from pathlib import Path

import theory

FORBIDDEN = {"realdata", "simulate", "figures"}


def test_theory_imports_no_other_package():
    offenders = []
    for path in Path(theory.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [(path.name, n) for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders
