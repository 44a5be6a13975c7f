"""The stored-zip writer behind parallel npz: CRC combination and archive layout."""

import os
import zipfile
import zlib

import numpy as np
import pytest

from exfel_data.write.zipstore import Member, crc32_combine, layout, pwrite_all, write_headers


@pytest.mark.parametrize("n1, n2", [(0, 0), (1, 0), (0, 7), (13, 1), (1000, 65537)])
def test_crc32_combine_matches_zlib(n1, n2):
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.bytes(n1), rng.bytes(n2)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_members_written_in_pieces_read_back(tmp_path):
    rng = np.random.default_rng(0)
    pieces = [rng.bytes(n) for n in (100, 0, 5000, 3)]
    members = [Member("a/x.npy", sum(map(len, pieces))), Member("y.npy", 5)]
    end = layout(members)
    path = tmp_path / "t.zip"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, end)
        pos = members[0].data_offset
        for p in reversed(pieces):  # any order of writing; pieces are combined in order
            members[0].pieces.insert(0, (pwrite_all(fd, p, pos + sum(
                map(len, pieces[:pieces.index(p)]))), len(p)))
        members[1].pieces = [(pwrite_all(fd, b"hello", members[1].data_offset), 5)]
        write_headers(fd, members, end)
    finally:
        os.close(fd)
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert z.namelist() == ["a/x.npy", "y.npy"]
        assert z.read("a/x.npy") == b"".join(pieces)
        assert z.read("y.npy") == b"hello"


def test_missing_bytes_are_an_error():
    m = Member("x", 10, pieces=[(zlib.crc32(b"abc"), 3)])
    with pytest.raises(ValueError, match="x: 3 of 10 bytes"):
        m.crc()
