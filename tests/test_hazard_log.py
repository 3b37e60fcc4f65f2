"""docs/clinical-safety.md names, for each hazard, the tests that prove its mitigations: each named
test exists, and each hazard names at least one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "docs" / "clinical-safety.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")
REQUIRED = [
    "Wrong patient",
    "Wrong study",
    "Lossy pixels taken for lossless",
    "Missed STAT",
    "Lost measurement",
    "Report reaching the wrong person",
    "Stale report version",
    "Time-zone confusion",
    "Mismatched template",
    "A calibration-free display used for primary reads",
]


def hazards() -> dict[str, str]:
    sections = re.split(r"^## ", LOG.read_text(), flags=re.M)[1:]
    return {section.splitlines()[0].split(" ", 1)[1].strip(): section for section in sections}


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_required_hazard_is_logged():
    assert list(hazards()) == REQUIRED


def test_every_hazard_names_tests_and_every_named_test_exists():
    missing = []
    for title, text in hazards().items():
        named = TEST_ID.findall(text)
        assert named, f"{title} names no test"
        for path, name in named:
            file = ROOT / path
            if not file.exists() or name not in functions_in(file):
                missing.append(f"{title}: {path}::{name}")
    assert missing == []
