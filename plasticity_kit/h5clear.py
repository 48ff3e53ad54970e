"""Clear the file-consistency flags a killed SWMR writer leaves in an HDF5 superblock.

An HDF5 file written with SWMR (superblock version 3) carries flags saying "open for (SWMR)
writing"; a writer that dies without closing the file leaves them set, and the HDF5 library then
refuses to open the file for writing (or for non-SWMR reading) until they are cleared.  This is
what ``h5clear -s FILE`` of the HDF5 tools does, which h5py does not ship: set the flags byte to
0 and rewrite the superblock checksum (Jenkins' lookup3 ``hashlittle``, seed 0; HDF5 File Format
Specification, "Version 2 and 3 superblock").  If the file is shorter than the end-of-file
address the superblock records (space allocated but never written), it is extended with zeros.
"""
from __future__ import annotations

import fcntl
import os
import struct

from .errors import DataError

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF
WRITE, SWMR_WRITE = 0x01, 0x04  # the superblock's flags: open for writing, in SWMR mode


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` of ``data`` (the checksum of HDF5 metadata)."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    if length == 0:
        return c
    tail = length - ((length - 1) % 12 + 1)  # the last 1..12 bytes go to the final mix
    for off in range(0, tail, 12):
        x, y, z = struct.unpack_from("<3I", data, off)
        a, b, c = (a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 4); c = (c + b) & _MASK
        b = (b - a) & _MASK; b ^= _rot(a, 6); a = (a + c) & _MASK
        c = (c - b) & _MASK; c ^= _rot(b, 8); b = (b + a) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 16); c = (c + b) & _MASK
        b = (b - a) & _MASK; b ^= _rot(a, 19); a = (a + c) & _MASK
        c = (c - b) & _MASK; c ^= _rot(b, 4); b = (b + a) & _MASK
    x, y, z = struct.unpack("<3I", data[tail:].ljust(12, b"\0"))
    a, b, c = (a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK
    c ^= b; c = (c - _rot(b, 14)) & _MASK
    a ^= c; a = (a - _rot(c, 11)) & _MASK
    b ^= a; b = (b - _rot(a, 25)) & _MASK
    c ^= b; c = (c - _rot(b, 16)) & _MASK
    a ^= c; a = (a - _rot(c, 4)) & _MASK
    b ^= a; b = (b - _rot(a, 14)) & _MASK
    c ^= b; c = (c - _rot(b, 24)) & _MASK
    return c


def status_flags(path) -> int:
    """The superblock's file-consistency flags (0 for superblock versions 0 and 1, which have none)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:8] != SIGNATURE:
        raise DataError(f"{path}: not an HDF5 file")
    return head[11] if head[8] >= 2 else 0


def clear_status_flags(path) -> bool:
    """Clear the flags of the superblock at the start of ``path``; True if there were any.

    Only for a file nobody has open: the caller makes sure its writer is gone.
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:8] != SIGNATURE:
            raise DataError(f"{path}: not an HDF5 file (no superblock at the start)")
        version, offsets = head[8], head[9]
        if version < 2 or head[11] == 0:
            return False
        size = 12 + 4 * offsets
        fh.seek(0)
        block = fh.read(size + 4)
        (stored,) = struct.unpack_from("<I", block, size)
        if lookup3(block[:size]) != stored or offsets not in (4, 8):
            raise DataError(f"{path}: unexpected HDF5 superblock; clear its flags with the HDF5 tool: h5clear -s {path}")
        eof = int.from_bytes(block[12 + 2 * offsets:12 + 3 * offsets], "little")
        patched = bytearray(block[:size])
        patched[11] = 0
        fh.seek(0)
        fh.write(bytes(patched) + struct.pack("<I", lookup3(bytes(patched))))
        fh.flush()
        os.fsync(fh.fileno())
    if os.path.getsize(path) < eof:
        os.truncate(path, eof)
    return True


def dead_plain_writer(path) -> bool:
    """Whether ``path``'s flags say "open for writing" without SWMR and no process holds the file.

    An SWMR run leaves SWMR mode for a moment to add datasets or rewrite a checkpoint; a writer
    killed then leaves these flags, and HDF5 then refuses even an SWMR read.  Outside SWMR mode a
    live writer holds HDF5's exclusive lock on the file (``flock``), so a shared lock taken here
    tells that it is gone and the flags may be cleared."""
    flags = status_flags(path)
    if not flags & WRITE or flags & SWMR_WRITE:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the lock taken
    return True


def clear_dead_plain_writer(path) -> bool:
    """Clear the flags a writer killed outside SWMR mode left (:func:`dead_plain_writer`), as
    ``h5clear -s`` would; True if it did."""
    if not dead_plain_writer(path):
        return False
    try:
        return clear_status_flags(path)
    except OSError as exc:  # a read-only file or folder
        raise DataError(f"{path}: its writer was killed with the file open; clear its flags "
                        f"(h5clear -s {path}) where it can be written: {exc.strerror}") from None
