"""The HDF5 trajectory writer.  The file contract, readable with plain h5py:

* root attributes: ``format = "plasticity-kit/trajectory"``, ``format_version``, ``status``
  (``running | completed | interrupted | diverged``), ``message`` (how it ended, in words),
  ``plasticity_kit_version``, ``name``, ``seed``, ``created``, ``ended`` (ISO times),
  ``steps`` and ``epochs_completed`` (when it ended);
* dataset ``spec``: the fully resolved spec as YAML text;
* group ``versions``: attributes with the versions of Python, numpy, h5py, scipy, pluggy, yaml;
* group ``seeds``: the entropy of each random stream (``data``, ``init``, ``shuffle``);
* group ``data``: attributes ``name``, ``source``, ``checksum`` (sha256), ``n_samples``,
  ``n_inputs``, ``image_shape``; datasets ``indices`` (rows of the full data set used) and
  ``labels`` when known;
* group ``trajectory``: ``step``, ``epoch`` (int64), ``time`` (seconds since training began) and
  one resizable chunked dataset per recorded field, first axis matching ``step``;
* group ``metrics/<name>``: ``step`` (int64) and one dataset per value the metric reports,
  first axis matching its ``step``;
* group ``final``: every state array at the end (``weights``, ``theta``, ``optimizer/...``) and
  ``synthetic_images`` when the rule maps weights to images.

Each record is flushed, so a killed process leaves a readable file.
"""
from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path

import h5py
import numpy as np

from ._version import __version__

FORMAT = "plasticity-kit/trajectory"
FORMAT_VERSION = 1
STATUSES = ("running", "completed", "interrupted", "diverged")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict:
    import pluggy
    import scipy
    import yaml

    return {
        "plasticity_kit": __version__, "python": platform.python_version(), "numpy": np.__version__,
        "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version, "scipy": scipy.__version__,
        "pluggy": pluggy.__version__, "pyyaml": yaml.__version__,
    }


class Recorder:
    """Writes one run file.  ``record`` appends a frame, ``finish`` stores the end state and status."""

    def __init__(self, path, *, name: str, spec_yaml: str, seed: int, seeds: dict, data, state: dict,
                 fields, compression: str = "gzip"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = list(fields)
        self.file = h5py.File(self.path, "w")
        f = self.file
        f.attrs.update({
            "format": FORMAT, "format_version": FORMAT_VERSION, "status": "running", "message": "",
            "plasticity_kit_version": __version__, "name": name, "seed": seed, "created": _now(),
            "steps": 0, "epochs_completed": 0,
        })
        f.create_dataset("spec", data=spec_yaml, dtype=h5py.string_dtype("utf-8"))
        f.create_group("versions").attrs.update(_versions())
        f.create_group("seeds").attrs.update({k: str(v) for k, v in seeds.items()})
        g = f.create_group("data")
        g.attrs.update({
            "name": data.name, "source": data.source, "checksum": data.checksum,
            "n_samples": data.X.shape[0], "n_inputs": data.X.shape[1],
            "image_shape": np.asarray(data.image_shape or (), dtype=np.int64),
        })
        g.create_dataset("indices", data=np.asarray(data.indices, dtype=np.int64))
        if data.labels is not None:
            g.create_dataset("labels", data=np.asarray(data.labels))
        t = f.create_group("trajectory")
        opts = {} if compression == "none" else {"compression": compression}
        for axis, dtype in (("step", np.int64), ("epoch", np.int64), ("time", np.float64)):
            t.create_dataset(axis, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1024,))
        for field in self.fields:
            arr = state[field]
            t.create_dataset(field, shape=(0,) + arr.shape, maxshape=(None,) + arr.shape, dtype=arr.dtype,
                             chunks=(1,) + arr.shape, **opts)
        self.n_frames = 0
        f.flush()

    def record(self, step: int, epoch: int, elapsed: float, state: dict) -> None:
        t = self.file["trajectory"]
        n = self.n_frames
        for axis, value in (("step", step), ("epoch", epoch), ("time", elapsed)):
            t[axis].resize((n + 1,))
            t[axis][n] = value
        for field in self.fields:
            ds = t[field]
            ds.resize((n + 1,) + ds.shape[1:])
            ds[n] = state[field]
        self.n_frames = n + 1
        self.file.attrs["steps"] = step
        self.file.flush()

    def record_metric(self, name: str, step: int, values: dict) -> None:
        """Append one evaluation of metric ``name`` (scalars or arrays of a fixed shape)."""
        g = self.file.require_group("metrics").require_group(name)
        if "step" not in g:
            g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
        n = g["step"].shape[0]
        g["step"].resize((n + 1,))
        g["step"][n] = step
        for key, value in values.items():
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf":
                continue
            if key not in g:
                g.create_dataset(key, shape=(n,) + arr.shape, maxshape=(None,) + arr.shape, dtype=arr.dtype,
                                 chunks=(max(1, 4096 // max(arr.size, 1)),) + arr.shape)
            ds = g[key]
            ds.resize((n + 1,) + ds.shape[1:])
            ds[n] = arr
        self.file.flush()

    def finish(self, status: str, message: str, state: dict, *, steps: int, epochs_completed: int,
               synthetic: np.ndarray | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        f = self.file
        final = f.require_group("final")
        for key, value in state.items():
            if key in final:
                del final[key]
            final.create_dataset(key, data=value)
        if synthetic is not None:
            final.create_dataset("synthetic_images", data=synthetic.astype(np.float32))
        f.attrs.update({"status": status, "message": message, "ended": _now(), "steps": steps,
                        "epochs_completed": epochs_completed})
        f.flush()

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()
