"""Read a recorded run: :class:`Trajectory` (``plasticity_kit.open(path)``).

A lazy h5py-backed view of one run file (the contract is in :mod:`plasticity_kit.recording`):
nothing but the small axes is read until asked, ``t[field]`` slices read only the frames asked
for, and :meth:`Trajectory.frames` holds one frame at a time, so a file of any size is iterated
in the memory of one frame.  It opens complete, interrupted and killed files, and files still
being written (see :func:`~plasticity_kit.recording.open_for_reading`; call
:meth:`Trajectory.refresh` to see new frames)::

    import plasticity_kit as pk
    with pk.open("runs/olivetti/run.h5") as t:
        theta = t["theta"][:]                      # (frames, neurons)
        state = t.at(t.steps[-1])                  # a state the rule accepts
        Y = state.transform(X)                     # = t.rule.transform(state, X)
        for step, W in t.frames("weights", every=10):
            ...
"""
from __future__ import annotations

import copy
from pathlib import Path

import h5py
import numpy as np
from .errors import DataError, SpecError
from .recording import AXES, read_checkpoint, writer_alive
from .runfile_check import MalformedRunFile, open_checked, read, reading


class State(dict):
    """A rule state rebuilt from a run file at one recorded step: ``{field: array}`` with the
    recorded fields (cast to the model's dtype) — every state array when the file holds the full
    state of that step (the end of the run or the last checkpoint).  ``transform(x)`` and
    ``synthesize()`` call the run's rule on it."""

    def __init__(self, arrays: dict, *, rule, step: int, epoch: int, time: float):
        super().__init__(arrays)
        self.rule, self.step, self.epoch, self.time = rule, step, epoch, time

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Responses of the neurons to inputs ``x`` (n × n_inputs) → (n × n_neurons)."""
        return self.rule.transform(self, x)

    def synthesize(self) -> np.ndarray | None:
        """Each neuron's weights as grey levels in [0, 1] (the rule's ``synthesize``)."""
        return self.rule.synthesize(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {v.shape}" for k, v in self.items())
        return f"State(step {self.step}, epoch {self.epoch}; {fields})"


class Field:
    """A recorded field, read lazily: ``f[i]``, ``f[a:b]``, ``len(f)``, ``f.shape`` (frames first).
    It always reads the file's current handle, so it stays valid across :meth:`Trajectory.refresh`."""

    def __init__(self, trajectory: "Trajectory", name: str):
        self._t, self.name = trajectory, name

    @property
    def dataset(self):
        return self._t.file["trajectory"][self.name]

    @property
    def shape(self) -> tuple:
        return (len(self),) + self.dataset.shape[1:]

    @property
    def dtype(self) -> np.dtype:
        return self.dataset.dtype

    def __len__(self) -> int:
        return len(self._t)

    def __getitem__(self, index):
        """Frames ``index`` (an int, a slice, or a tuple starting with one); MalformedRunFile if they
        would take more than the read cap (:data:`~plasticity_kit.runfile_check.READ_CAP`) in memory."""
        n = len(self)
        if isinstance(index, tuple):
            first, rest = index[0], index[1:]
        else:
            first, rest = index, ()
        count = 1
        if isinstance(first, slice):
            first = slice(*first.indices(n))
            count = len(range(first.start, first.stop, first.step))
        elif isinstance(first, (int, np.integer)):
            if not -n <= first < n:
                raise IndexError(f"frame {first} out of range: {n} frames")
            first = int(first) % n
        else:
            count = n
        return read(self._t.path, self.dataset, (first,) + rest, frames=count,
                    what=f"{count} frame{'s' if count != 1 else ''} of '{self.name}'")

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"<Field {self.name!r} {self.shape} {self.dtype}>"


class Trajectory:
    """A run file opened for reading (also a context manager)."""

    def __init__(self, path):
        self.path = Path(path)
        self.file, self._info = open_checked(self.path)  # MalformedRunFile unless it is a sound run file
        self._rule = None

    # -- file ------------------------------------------------------------------------------
    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()

    def __enter__(self) -> "Trajectory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def refresh(self) -> "Trajectory":
        """See what a live writer added since opening (reopens the file; :class:`Field` objects stay valid)."""
        self.close()
        self.file, self._info = open_checked(self.path)
        return self

    @property
    def live(self) -> bool:
        """True while the file says ``running`` and its writer process is (or may be) alive."""
        return self.status == "running" and writer_alive(self.file.attrs) is not False

    def __repr__(self) -> str:
        return f"<Trajectory {str(self.path)!r}: {self.status}, {len(self)} frames of {', '.join(self.fields)}>"

    # -- what the run was ------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        return dict(self.file.attrs)

    @property
    def status(self) -> str:
        return str(self.file.attrs["status"])

    @property
    def message(self) -> str:
        return str(self.file.attrs.get("message", ""))

    @property
    def spec_text(self) -> str:
        text = self.file["spec"][()]
        return text.decode() if isinstance(text, bytes) else str(text)

    @property
    def spec(self) -> dict:
        """The fully resolved spec of the run, as a mapping (a copy: changing it changes nothing)."""
        return copy.deepcopy(self._info["spec"])

    @property
    def data_info(self) -> dict:
        """The ``data`` group's attributes (name, source, checksum, n_samples, n_inputs, image_shape)."""
        return dict(self.file["data"].attrs)

    @property
    def image_shape(self) -> tuple | None:
        shape = tuple(int(s) for s in self.file["data"].attrs.get("image_shape", ()))
        return shape or None

    @property
    def rule(self):
        """The run's rule, rebuilt from the recorded spec (the rule plugin must be installed)."""
        if self._rule is None:
            from .spec import resolve

            try:
                self._rule = resolve(self.spec, f"{self.path}:spec").build_rule(self._info["n_inputs"])
            except SpecError as exc:
                raise DataError(f"cannot rebuild the rule of {self.path} from its recorded spec: {exc}") from None
        return self._rule

    # -- layers of a layered model ----------------------------------------------------------
    def learned_layer(self, layer: int, key: str = "--layer") -> int:
        """``layer`` if it is a learned layer of this run's ``model.layers``; SpecError naming
        ``key`` and the learned layers otherwise (no such layer, a stage, a model without layers)."""
        layers = self._info["spec"]["model"].get("layers")
        if not layers:
            raise SpecError(key, f"{self.path}: rule '{self._info['spec']['model']['rule']['name']}' is not a "
                                 f"layered model (model.layers); there is no layer {layer}")
        learned = [i for i, entry in enumerate(layers) if "rule" in entry]
        names = ", ".join(map(str, learned))
        if not 0 <= layer < len(layers):
            raise SpecError(key, f"{self.path} has no layer {layer}: its model has {len(layers)} layers "
                                 f"(0 to {len(layers) - 1}); learned layers: {names}")
        if layer not in learned:
            raise SpecError(key, f"layer {layer} of {self.path} is a stage ({layers[layer].get('stage')}), not a "
                                 f"learned layer; learned layers: {names}")
        return layer

    def layer_patches(self, layer: int, frame: int, strongest: int | None = None, key: str = "--layer") -> np.ndarray:
        """Learned layer ``layer``'s receptive fields at frame ``frame`` as image patches (units, h, w, C)
        of grey levels in [0, 1] (:meth:`~plasticity_kit.model.stack.Stack.field_patches`: a first
        convolutional layer's k×k×C filters; a deeper layer by its ``strongest`` inputs, default
        :data:`~plasticity_kit.model.stack.STRONGEST`), from the recorded weights of it and the layers below."""
        from .model.stack import STRONGEST

        rule = self.rule
        self.learned_layer(layer, key)
        if not rule.drawable(layer):
            raise SpecError(key, f"layer {layer} of {self.path}: receptive fields are drawn for convolutional and "
                                 f"dense layers; a locally connected layer is at or below it")
        names = [f"layers/{i}/weights" for i in rule.learned[:rule.learned.index(layer) + 1]]
        missing = [name for name in names if name not in self]
        if missing:
            raise SpecError(key, f"{self.path}: layer {layer}'s receptive fields are drawn from {', '.join(names)}; "
                                 f"not recorded: {', '.join(missing)} (record.fields)")
        state = {name: np.asarray(self[name][frame], dtype=np.float64) for name in names}
        return rule.field_patches(state, layer, strongest or STRONGEST)

    # -- frames ----------------------------------------------------------------------------
    @property
    def fields(self) -> list[str]:
        axes = {name for name, _ in AXES}
        names: list = []  # nested too: a layered model records layers/<i>/<field>
        self.file["trajectory"].visititems(lambda k, obj: names.append(k) if isinstance(obj, h5py.Dataset) else None)
        return [k for k in names if k not in axes]

    def __len__(self) -> int:
        """Number of complete frames (a live writer may be halfway through the next one)."""
        return self._info["length"]  # counted when the file was opened (or refreshed)

    def _axis(self, name: str) -> np.ndarray:
        return read(self.path, self.file["trajectory"][name], slice(0, len(self)), what=f"'trajectory/{name}'")

    @property
    def steps(self) -> np.ndarray:
        """Training step of every frame."""
        return self._axis("step")

    @property
    def epochs(self) -> np.ndarray:
        """Completed epochs at every frame."""
        return self._axis("epoch")

    @property
    def times(self) -> np.ndarray:
        """Seconds of training at every frame."""
        return self._axis("time")

    def __getitem__(self, field: str) -> Field:
        if field not in self.fields:
            raise KeyError(f"{self.path}: no recorded field {field!r}; recorded: {', '.join(self.fields)}")
        return Field(self, field)

    def __contains__(self, field: str) -> bool:
        return field in self.fields

    def index(self, step: int) -> int:
        """Frame number of training step ``step``; DataError naming the nearest recorded steps if none."""
        steps = self.steps
        i = int(np.searchsorted(steps, step))
        if i < len(steps) and steps[i] == step:
            return i
        near = sorted({int(steps[j]) for j in (i - 1, i) if 0 <= j < len(steps)})
        hint = f"nearest recorded: {', '.join(map(str, near))}" if near else "no frame recorded yet"
        raise DataError(f"{self.path}: step {step} was not recorded ({hint})")

    def at(self, step: int) -> State:
        """The state at recorded training step ``step``, usable by the rule (``t.rule.transform(state, x)``
        or ``state.transform(x)``)."""
        i = self.index(step)
        rule = self.rule
        expected = self._state_shapes()
        for name in self.fields:
            frame = tuple(self.file["trajectory"][name].shape[1:])
            if name in expected and frame != expected[name]:
                raise MalformedRunFile(self.path, f"'trajectory/{name}' has frames of shape {frame}; the recorded spec's "
                                              f"rule makes {expected[name]}")
        arrays = {name: np.ascontiguousarray(self[name][i]) for name in self.fields}
        arrays = {k: v.astype(rule.dtype) if v.dtype.kind == "f" else v for k, v in arrays.items()}
        full = self._full_state(step)
        if full is not None:
            arrays = {**full, **{k: v for k, v in arrays.items() if k not in full}}
        return State(arrays, rule=rule, step=int(step), epoch=int(self.epochs[i]), time=float(self.times[i]))

    def _state_shapes(self) -> dict:
        """Shape of every state array the recorded spec's rule makes (from a fresh state)."""
        if getattr(self, "_shapes", None) is None:
            with reading(self.path, "the state of the recorded rule"):
                state = self.rule.init_state(np.random.default_rng(0))
            self._shapes = {k: tuple(v.shape) for k, v in state.items()}
        return self._shapes

    def _full_state(self, step: int) -> dict | None:
        """Every state array at ``step`` if the file holds them: the end of the run or the last checkpoint."""
        f = self.file
        if "final" in f and self.status != "running" and int(f.attrs.get("steps", -1)) == step:
            final = {k: v for k, v in self.final.items() if k != "synthetic_images"}
            return {k: np.asarray(v) for k, v in final.items()}
        checkpoint = read_checkpoint(f, with_state=False)
        if checkpoint is not None and checkpoint.position.step == step:
            with reading(self.path, "the checkpoint"):
                state = read_checkpoint(f).state
            expected = self._state_shapes()
            for key, value in state.items():
                if key in expected and value.shape != expected[key]:
                    raise MalformedRunFile(self.path, f"checkpoint array '{key}' has shape {value.shape}; the recorded "
                                                  f"spec's rule makes {expected[key]}")
            return state
        return None

    def frames(self, field: str, every: int = 1, start: int = 0):
        """Iterate ``(step, array)`` over every ``every``-th frame of ``field`` from frame ``start``,
        reading one frame at a time (the last frame is always included)."""
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        ds = self[field]
        n = len(self)
        steps = self.steps
        indices = list(range(start, n, every))
        if n and indices and indices[-1] != n - 1:
            indices.append(n - 1)
        for i in indices:
            yield int(steps[i]), ds[i]  # one frame at a time (Field checks the read cap)

    # -- metrics and end state ---------------------------------------------------------------
    @property
    def metrics(self) -> dict[str, dict[str, np.ndarray]]:
        """``{metric: {"step": steps, value_name: values}}`` for every metric recorded over time."""
        out = {}
        for name, g in self.file.get("metrics", {}).items():
            n = min(g[k].shape[0] for k in g)
            out[name] = {k: read(self.path, g[k], slice(0, n), what=f"'metrics/{name}/{k}'") for k in g}
        return out

    @property
    def final(self) -> dict[str, np.ndarray]:
        """The ``final/`` group (every state array at the end, synthetic images), empty while running."""
        out = {}
        if "final" in self.file:
            self.file["final"].visititems(
                lambda k, o: out.__setitem__(k, read(self.path, o, what=f"'final/{k}'")) if hasattr(o, "shape") else None)
        return out

    @property
    def final_keys(self) -> list[str]:
        """Names of the arrays in ``final/`` (without reading them)."""
        keys = []
        if "final" in self.file:
            self.file["final"].visititems(lambda k, o: keys.append(k) if hasattr(o, "shape") else None)
        return keys

    def total_steps(self) -> int:
        """Steps the spec asks for: epochs × ⌈n_samples / batch_size⌉."""
        sched = self._info["spec"]["schedule"]
        n = self._info["n_samples"]
        return int(sched["epochs"]) * -(-n // int(sched["batch_size"]))


def open(path) -> Trajectory:  # noqa: A001 - mirrors h5py.File / builtins.open on purpose
    """Open the run file at ``path``: ``with plasticity_kit.open(path) as t: ...``."""
    return Trajectory(path)
