"""Staging: a file copied with its preamble zeroed, or one of the server's own moved."""

from __future__ import annotations

import errno
import hashlib
import io
import os

import pytest

from studies import storage

DATA = b"MZ" + b"\x90" * 126 + b"DICM" + os.urandom(3000)
EXPECTED = bytes(128) + DATA[128:]


def test_copying_zeroes_the_preamble_and_hashes_the_copy(tmp_path):
    staged = storage.stage_with_zeroed_preamble(io.BytesIO(DATA), str(tmp_path))
    assert open(staged.path, "rb").read() == EXPECTED  # noqa: SIM115
    assert (staged.sha256, staged.size) == (hashlib.sha256(EXPECTED).hexdigest(), len(DATA))


def test_moving_zeroes_the_preamble_in_place_and_moves_the_file(tmp_path):
    source = tmp_path / "request-1" / "part.dcm"
    source.parent.mkdir()
    source.write_bytes(DATA)
    staged = storage.stage_by_moving(str(source), str(tmp_path))
    assert not source.exists()
    assert os.path.dirname(staged.path) == str(tmp_path)
    assert os.path.basename(staged.path).startswith(storage.STAGED_PREFIX)
    assert open(staged.path, "rb").read() == EXPECTED  # noqa: SIM115
    assert (staged.sha256, staged.size) == (hashlib.sha256(EXPECTED).hexdigest(), len(DATA))


def test_moving_across_file_systems_copies_instead(tmp_path, monkeypatch):
    source = tmp_path / "part.dcm"
    source.write_bytes(DATA)
    staging = tmp_path / "staging"
    staging.mkdir()

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(storage.os, "replace", cross_device)
    staged = storage.stage_by_moving(str(source), str(staging))
    assert open(staged.path, "rb").read() == EXPECTED  # noqa: SIM115
    assert staged.sha256 == hashlib.sha256(EXPECTED).hexdigest()
    assert [name for name in os.listdir(staging)] == [os.path.basename(staged.path)]  # no empty leftovers


def test_moving_fails_loudly_on_other_errors_and_leaves_nothing_staged(tmp_path, monkeypatch):
    source = tmp_path / "part.dcm"
    source.write_bytes(DATA)
    staging = tmp_path / "staging"
    staging.mkdir()

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(storage.os, "replace", denied)
    with pytest.raises(PermissionError):
        storage.stage_by_moving(str(source), str(staging))
    assert os.listdir(staging) == []
