"""Writing an uncompressed (stored) zip archive whose member data is written elsewhere.

Parallel ``--to npz`` preallocates the archive: every member's position is known in
advance (fixed-size ZIP64 local headers), worker processes write their rows straight
into it, and the parent writes the headers and central directory afterwards. The CRC-32
of a member is combined from the CRCs of its pieces with :func:`crc32_combine`, so no
byte is read twice.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from dataclasses import dataclass, field

_ZIP64_EXTRA_LOCAL = 20  # id, size, uncompressed size, compressed size
_VERSION = 45  # ZIP64
_MAX32 = 0xFFFFFFFF


def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, m) for m in mat]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (as zlib's)."""
    if len2 <= 0:
        return crc1
    op = [0xEDB88320] + [1 << n for n in range(31)]  # appends one zero bit
    for _ in range(3):
        op = _gf2_square(op)  # 2, 4, then 8 zero bits: one zero byte
    while len2:  # append len2 zero bytes to crc1, one bit of len2 at a time
        if len2 & 1:
            crc1 = _gf2_times(op, crc1)
        len2 >>= 1
        if len2:
            op = _gf2_square(op)
    return crc1 ^ crc2


@dataclass
class Member:
    """One stored member: its name, size and where its local header starts."""

    name: str
    size: int
    offset: int = 0
    #: (crc32, length) of consecutive pieces of the data, combined on close.
    pieces: list[tuple[int, int]] = field(default_factory=list)

    @property
    def data_offset(self) -> int:
        return self.offset + local_header_size(self.name)

    def crc(self) -> int:
        crc, total = 0, 0
        for piece_crc, length in self.pieces:
            crc = crc32_combine(crc, piece_crc, length)
            total += length
        if total != self.size:
            raise ValueError(f"zip member {self.name}: {total} of {self.size} bytes written")
        return crc


def local_header_size(name: str) -> int:
    return 30 + len(name.encode()) + _ZIP64_EXTRA_LOCAL


def layout(members: list[Member]) -> int:
    """Place the members one after the other; return where the central directory goes."""
    pos = 0
    for m in members:
        m.offset = pos
        pos = m.data_offset + m.size
    return pos


def _dos_time() -> tuple[int, int]:
    t = time.localtime()
    return ((t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
            ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday)


def write_headers(fd: int, members: list[Member], cd_offset: int) -> None:
    """Write every member's local header, then the central directory and end records."""
    tm, dt = _dos_time()
    central = []
    for m in members:
        name = m.name.encode()
        crc = m.crc()
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, _VERSION, 0, 0, tm, dt, crc,
                            _MAX32, _MAX32, len(name), _ZIP64_EXTRA_LOCAL)
        local += name + struct.pack("<HHQQ", 1, 16, m.size, m.size)
        pwrite_all(fd, local, m.offset)
        extra = struct.pack("<HHQQQ", 1, 24, m.size, m.size, m.offset)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | _VERSION,
                                   _VERSION, 0, 0, tm, dt, crc, _MAX32, _MAX32, len(name),
                                   len(extra), 0, 0, 0, 0o644 << 16, _MAX32) + name + extra)
    cd = b"".join(central)
    n = len(members)
    eocd64_offset = cd_offset + len(cd)
    tail = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | _VERSION, _VERSION, 0, 0,
                       n, n, len(cd), cd_offset)
    tail += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
    tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                        _MAX32, _MAX32, 0)
    pwrite_all(fd, cd + tail, cd_offset)


def pwrite_all(fd: int, data, offset: int, crc: int = 0) -> int:
    """Write all of ``data`` (bytes-like) at ``offset``; return the CRC-32 continued
    from ``crc`` over it."""
    view = memoryview(data).cast("B")
    crc = zlib.crc32(view, crc)
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
    return crc
