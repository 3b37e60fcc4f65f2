"""Staging: a file copied with its preamble zeroed, or one of the server's own staged where it lies."""

from __future__ import annotations

import hashlib
import io
import os

from studies import storage

DATA = b"MZ" + b"\x90" * 126 + b"DICM" + os.urandom(3000)
EXPECTED = bytes(128) + DATA[128:]


def test_copying_zeroes_the_preamble_and_hashes_the_copy(tmp_path):
    staged = storage.stage_with_zeroed_preamble(io.BytesIO(DATA), str(tmp_path))
    assert open(staged.path, "rb").read() == EXPECTED  # noqa: SIM115
    assert (staged.sha256, staged.size) == (hashlib.sha256(EXPECTED).hexdigest(), len(DATA))


def test_staging_in_place_zeroes_the_preamble_where_the_file_lies_and_hashes_it(tmp_path):
    source = tmp_path / "request-1" / "part.dcm"
    source.parent.mkdir()
    source.write_bytes(DATA)
    staged = storage.stage_in_place(str(source))
    assert staged.path == str(source)
    assert source.read_bytes() == EXPECTED
    assert (staged.sha256, staged.size) == (hashlib.sha256(EXPECTED).hexdigest(), len(DATA))
    # Again (a check made anew after its checking process died): the same file, the same hash.
    again = storage.stage_in_place(str(source))
    assert (again.path, again.sha256, again.size) == (staged.path, staged.sha256, staged.size)
    assert source.read_bytes() == EXPECTED


def test_a_file_staged_in_place_is_stored_by_moving_it(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    with storage.request_dir() as directory:
        assert os.path.dirname(directory) == storage.staging_dir()
        source = os.path.join(directory, "part.dcm")
        with open(source, "wb") as out:
            out.write(DATA)
        stored = storage.store(storage.stage_in_place(source))
        assert not os.path.exists(source)
    assert open(tmp_path / "media" / stored.name, "rb").read() == EXPECTED  # noqa: SIM115
    assert os.listdir(storage.staging_dir()) == []
