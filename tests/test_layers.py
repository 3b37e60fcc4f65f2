"""Apps depend one way: accounts <- studies <- consultations (docs/architecture.md). An app lower
down reaches the ones above only through the registries they fill (studies.panels,
studies.sharing.reports), never by importing them, even inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ABOVE = {"accounts": {"studies", "consultations"}, "studies": {"consultations"}}


def imported_apps(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("app", sorted(ABOVE))
def test_an_app_imports_nothing_from_the_apps_above_it(app):
    offending = []
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        wrong = imported_apps(path) & ABOVE[app]
        if wrong:
            offending.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(wrong))}")
    assert offending == []
