"""Runs the viewer's JavaScript unit tests (measurement maths, windowing, multipart) under node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).resolve().parents[2] / "static" / "js" / "viewer" / "tests"


def test_viewer_javascript_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the viewer's JavaScript tests need it")
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.js"))
    assert files, f"no JavaScript tests under {JS_TESTS}"
    result = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
