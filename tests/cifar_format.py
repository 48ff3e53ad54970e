"""CIFAR-10 python batches as the real files are made, and crafted ones that try to run code.

The distributed batches were written by Python 2's ``cPickle.dump(dict, f, 2)``: every Python 2
``str`` (the dict's keys, the batch label, the file names, numpy's dtype codes and the array's raw
bytes) is a ``SHORT_BINSTRING``/``BINSTRING`` opcode, which Python 3 reads back as ``bytes`` with
``encoding="bytes"``; the array is rebuilt by ``numpy.core.multiarray._reconstruct`` from
``numpy.ndarray`` and ``numpy.dtype`` — the only three globals in the files.  :func:`py2_batch`
writes the same opcodes with Python 3's pure-Python pickler.
"""
from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct

import numpy as np

REAL_GLOBALS = {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote it: text and bytes as (SHORT_)BINSTRING, numpy under
    its numpy 1 module names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None)
        name = name or obj.__qualname__
        if module == "numpy._core.multiarray" or module == "numpy.core.multiarray":
            module = "numpy.core.multiarray"
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[type] = save_global


def py2_batch(data: np.ndarray, labels, label: str = "training batch 1 of 5") -> bytes:
    """A batch file's bytes in the real format: {'batch_label', 'labels', 'data', 'filenames'}."""
    batch = {"batch_label": label, "labels": [int(v) for v in labels], "data": np.ascontiguousarray(data, np.uint8),
             "filenames": [f"image_{i}.png" for i in range(len(data))]}
    out = io.BytesIO()
    _Py2Pickler(out, protocol=2).dump(batch)
    return out.getvalue()


def globals_of(raw: bytes) -> set[str]:
    """'module name' of every GLOBAL / STACK_GLOBAL a pickle references."""
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(raw):
        if op.name == "GLOBAL":
            found.add(arg)
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            found.add(" ".join(strings[-2:]))
    return found


def write_batches(folder, names, n: int = 10, seed: int = 0) -> dict:
    """Real-format batches ``names`` of n random images each in ``folder``; name → (images HWC, labels)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    truth = {}
    for i, name in enumerate(names):
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = (np.arange(n) + i) % 10
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(py2_batch(images.transpose(0, 3, 1, 2).reshape(n, 3072), labels))
        truth[name] = (images, labels)
    return truth


class _Payload:
    """Unpickling this object calls ``func(*args)`` (the classic pickle exploit)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def crafted_batches(marker: str) -> dict[str, bytes]:
    """Batches whose unpickling would create the file ``marker``: name of the trick → bytes."""
    import builtins
    import subprocess

    command = f"touch {marker}"
    code = f"open({marker!r}, 'w').close()"
    honest = np.zeros((1, 3072), np.uint8)
    return {
        "os.system as the batch": pickle.dumps(_Payload(os.system, command), protocol=2),
        "builtins.exec inside the data": pickle.dumps(
            {b"data": _Payload(builtins.exec, code), b"labels": [0]}, protocol=2),
        "subprocess.call among the labels": pickle.dumps(
            {b"data": honest, b"labels": [_Payload(subprocess.call, ["touch", marker])]}, protocol=2),
        "builtins.eval, protocol 5": pickle.dumps(
            {b"data": honest, b"labels": [0], b"x": _Payload(builtins.eval, code)}, protocol=5),
        "posix.system, Python 2 opcodes": (b"\x80\x02cposix\nsystem\nq\x00U" + bytes([len(command)])
                                           + command.encode() + b"\x85R."),
    }
