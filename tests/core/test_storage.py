"""`core.storage`: files saved with rows are removed when the write fails; names, scratch, hashes."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from core.storage import file_sha256, media_name, scratch_directory, scratch_file, stored_files


def test_files_saved_in_a_failed_block_are_deleted():
    # given
    names: list[str] = []
    # when
    with pytest.raises(RuntimeError), stored_files() as files:
        names.append(files.save("t/a.bin", b"first"))
        names.append(files.save("t/b.bin", io.BytesIO(b"second")))
        raise RuntimeError("the row could not be written")
    # then
    assert len(names) == 2
    assert not any(default_storage.exists(name) for name in names)


def test_files_of_a_successful_block_stay():
    # when
    with stored_files() as files:
        name = files.save("t/kept.bin", b"kept")
    # then
    with default_storage.open(name, "rb") as handle:
        assert handle.read() == b"kept"


def test_an_adopted_file_is_deleted_with_the_block():
    # given
    name = default_storage.save("t/earlier.bin", io.BytesIO(b"x"))
    # when
    with pytest.raises(ValueError), stored_files() as files:
        files.adopt(name)
        raise ValueError
    # then
    assert not default_storage.exists(name)


def test_media_names_are_per_org_dated_and_unguessable():
    # when
    first = media_name(org_id=7, domain="traffic", folder="images", suffix="JPG")
    second = media_name(org_id=7, domain="traffic", folder="images", suffix=".jpg")
    # then
    assert re.fullmatch(r"traffic/org-7/images/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.jpg", first)
    assert first != second


def test_scratch_directories_are_private_and_removed(settings, tmp_path):
    # given
    settings.SCRATCH_DIR = tmp_path / "scratch-root"
    # when
    with scratch_directory() as folder:
        (folder / "f").write_text("x")
        inside = folder
    # then
    assert inside.parent == Path(settings.SCRATCH_DIR)
    assert not inside.exists()


def test_scratch_file_holds_the_chunks_then_disappears():
    # when
    with scratch_file([b"ab", b"cd"], suffix=".zip") as path:
        content = path.read_bytes()
        suffix = path.suffix
    # then
    assert content == b"abcd"
    assert suffix == ".zip"
    assert not path.exists()


def test_sha256_of_a_path_a_handle_and_chunks_agree(tmp_path):
    # given
    data = b"tessera" * 100_000
    expected = hashlib.sha256(data).hexdigest()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    handle = io.BytesIO(data)
    handle.seek(0)
    upload = SimpleUploadedFile("f.bin", data)
    # then
    assert file_sha256(path) == expected
    assert file_sha256(handle) == expected
    assert handle.tell() == 0  # rewound for the caller
    assert file_sha256(upload.chunks()) == expected
