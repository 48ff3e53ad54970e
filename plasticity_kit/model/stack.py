"""Layered models: a stack of learned layers (any registered rule, applied densely or
convolutionally) and non-learned stages, that the scheduler, recorder and replay see as one rule.

Spec::

    model:
      layers:
        - {stage: batch_norm}
        - {rule: {name: softhebb, params: {...}}, n_neurons: 96, conv: {kernel: 5, padding: 2}}
        - {stage: activation, params: {function: triangle, power: 0.7}}
        - {stage: max_pool, params: {size: 4, stride: 2, padding: 1}}
      training: greedy            # or simultaneous
      input_shape: [28, 28, 1]    # default: a square grey (or RGB) image of the data's size

A learned layer with ``conv`` applies its rule to every k×k×C patch (K = k·k·C inputs, ``n_neurons``
output channels, weights tied across positions): the rule steps on the batch's patches as samples
(im2col, :mod:`plasticity_kit.kernels.conv`) and its responses W·p are computed by the fused
convolution kernel; without ``conv`` the rule sees the whole (flattened) input — a locally
connected rule (``hebbian_weight_sharing``, untied filters with its sleep phase; its
``input_shape`` the maps it receives) then outputs its own positions × channels.  ``greedy`` trains
the learned layers one after the other, ``schedule.epochs`` split evenly between them, each on the
output of the frozen layers below; ``simultaneous`` steps every learned layer on every batch.

The stack's state is one flat dict, ``layers/<i>/<field>`` for layer i's arrays plus ``epoch``,
so that the run file holds every layer as an HDF5 group ``layers/<i>/…``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError
from ..options import Option, Schema, describe, unknown_key_error
from ..rules.base import COMPONENTS, Model, Rule
from .conv import Geometry, conv, im2col
from .stages import STAGES

LAYER_KEYS = ("rule", "n_neurons", "conv") + COMPONENTS
STAGE_KEYS = ("stage", "params")
MODEL_KEYS = ("layers", "training", "input_shape", "dtype")
RESOLVED_KEYS = ("rule", "n_neurons", "replicas")
"""Keys of the resolved section (``rule: {name: stack}``, the top layer's ``n_neurons``, ``replicas: 1``),
there for readers of run files that expect every model to name its rule; accepted back unchanged."""
CONV = Schema(
    Option("kernel", "integer", doc="side k of the k×k patches", low=1),
    Option("stride", "integer", 1, "step between patches", low=1),
    Option("padding", "integer", 0, "zeros added on every side of the input maps", low=0),
    Option("whiten", "number", None, "ε of the ZCA whitening of the patches, Z = U(Λ + ε)^(-1/2)Uᵀ from "
           "their covariance UΛUᵀ (SoftHebb whitens its input); none: patches as they are", low=0, low_open=True,
           nullable=True),
)
WHITENING_FIELDS = {
    "patch_sum": "Σ p over the patches the layer has learned from (float64)",
    "patch_outer": "Σ p pᵀ over the same patches (float64)",
    "patch_count": "patches and steps counted: [patches, steps]",
    "patch_mean": "m, the patches' mean when Z was last computed",
    "zca": "Z, the whitening matrix: the rule sees Z(p − m)",
}
TRAINING = ("greedy", "simultaneous")
LAYERED = Schema(
    Option("training", "choice", "greedy", "greedy: the learned layers one after the other (schedule.epochs split "
           "evenly), each on the output of the frozen layers below; simultaneous: every learned layer on every batch",
           choices=TRAINING),
    Option("input_shape", "integers", None, "[height, width, channels] of the input (default: a square grey or "
           "RGB image of the data's size)", low=1, nullable=True),
    Option("dtype", "choice", "float32", "floating type of the state", choices=("float32", "float64")),
)
"""Options of a layered ``model`` section besides ``layers``."""
N_NEURONS = Option("n_neurons", "integer", doc="output channels of a convolutional layer, units of a dense one", low=1)
STRONGEST = 16
"""Inputs of a deeper unit composed into its drawn receptive field (largest |w|), by default."""
CHUNK = 32  # images per block of the transform: the feature maps stay in cache (512 images: 15× slower)


@dataclass
class LayerConfig:
    """A validated ``model.layers[i]`` entry: a learned layer (``rule_class``) or a stage (``stage_class``)."""

    key: str
    rule_class: type | None = None
    params: dict = field(default_factory=dict)
    n_neurons: int = 0
    conv: dict | None = None
    components: dict = field(default_factory=dict)
    stage_class: type | None = None
    resolved: dict = field(default_factory=dict)


def _layer_config(entry: Any, key: str, reg, base_dir) -> LayerConfig:
    from ..spec import _build, _check_keys, _plugin_ref, _resolve_paths

    if not isinstance(entry, dict):
        raise SpecError(key, f"expected a learned layer {{rule: ..., n_neurons: ...}} or a stage {{stage: ...}}, "
                             f"got {describe(entry)}")
    if "stage" in entry:
        _check_keys(entry, STAGE_KEYS, key)
        name = entry["stage"]
        if not isinstance(name, str) or name not in STAGES:
            raise SpecError(f"{key}.stage", f"expected one of {', '.join(STAGES)}, got {describe(name)}")
        cls = STAGES[name]
        params = cls.options.validate(entry.get("params"), f"{key}.params")
        return LayerConfig(key, stage_class=cls, params=params, resolved={"stage": name, "params": params})
    _check_keys(entry, LAYER_KEYS, key)
    if "rule" not in entry:
        raise SpecError(f"{key}.rule", f"missing; expected a stage ({', '.join(STAGES)}) or one of the installed "
                                       f"rules: {', '.join(reg.rules)}")
    rule_name, rule_params = _plugin_ref(entry["rule"], f"{key}.rule")
    rule_cls = reg.rules.get(rule_name, f"{key}.rule.name" if isinstance(entry["rule"], dict) else f"{key}.rule")
    params = _resolve_paths(rule_cls.options.validate(rule_params, f"{key}.rule.params"), rule_cls.options, base_dir)
    n_neurons = N_NEURONS.coerce(entry.get("n_neurons"), f"{key}.n_neurons")
    conv_params = None if entry.get("conv") is None else CONV.validate(entry["conv"], f"{key}.conv")
    components = {}
    for comp in COMPONENTS:
        value = entry.get(comp)
        if comp not in rule_cls.uses:
            if value is not None:
                raise SpecError(f"{key}.{comp}", f"rule '{rule_name}' does not use an {comp}; remove this key")
            continue
        if value is None:
            value = rule_cls.defaults.get(comp)
            if value is None:
                raise SpecError(f"{key}.{comp}", f"missing; rule '{rule_name}' needs an {comp}")
        components[comp] = _build(getattr(reg, comp + "s"), value, f"{key}.{comp}", base_dir)
    resolved = {"rule": {"name": rule_name, "params": params}, "n_neurons": n_neurons,
                **({"conv": conv_params} if conv_params else {}),
                **{comp: obj.to_config() for comp, obj in components.items()}}
    return LayerConfig(key, rule_class=rule_cls, params=params, n_neurons=n_neurons, conv=conv_params,
                       components=components, resolved=resolved)


def resolve_layers(model_raw: dict, reg, base_dir=None) -> tuple[type, Model, dict]:
    """Validate a layered ``model`` section: the stack's rule class (fields named ``layers/<i>/…``),
    its :class:`Model` and the resolved section recorded in the run file."""
    for name in model_raw:
        if name not in MODEL_KEYS + RESOLVED_KEYS:
            raise unknown_key_error(f"model.{name}", name, MODEL_KEYS)
    rule = model_raw.get("rule", {"name": Stack.name})
    if rule not in (Stack.name, {"name": Stack.name}, {"name": Stack.name, "params": {}}):
        raise SpecError("model.rule", "not allowed beside model.layers: a layered model names its rules inside "
                                      "model.layers")
    if model_raw.get("replicas", 1) != 1:
        raise SpecError("model.replicas", f"expected 1: a layered model has no replicas, got "
                                          f"{describe(model_raw['replicas'])}")
    layers = model_raw["layers"]
    if not isinstance(layers, list) or not layers:
        raise SpecError("model.layers", f"expected a non-empty list of layers, got {describe(layers)}")
    configs = [_layer_config(entry, f"model.layers[{i}]", reg, base_dir) for i, entry in enumerate(layers)]
    learned = [c for c in configs if c.rule_class is not None]
    if not learned:
        raise SpecError("model.layers", "expected at least one learned layer (an entry with rule:)")
    options = LAYERED.validate({k: v for k, v in model_raw.items() if k in LAYERED}, "model")
    training, input_shape, dtype = options["training"], options["input_shape"], options["dtype"]
    if input_shape is not None and len(input_shape) != 3:
        raise SpecError("model.input_shape", f"expected [height, width, channels], got {describe(input_shape)}")

    fields, record = {"epoch": "epochs completed (the greedy schedule's position)"}, []
    for i, c in enumerate(configs):
        own = c.rule_class.fields if c.rule_class is not None else c.stage_class.fields
        if c.conv is not None and c.conv.get("whiten") is not None:
            own = {**own, **WHITENING_FIELDS}
        fields.update({f"layers/{i}/{k}": f"layer {i}: {v}" for k, v in own.items()})
        if c.rule_class is not None:
            record += [f"layers/{i}/{k}" for k in c.rule_class.default_record]
    cls = type("Stack", (Stack,), {"fields": fields, "default_record": tuple(record), "__doc__": Stack.__doc__})
    params = {"layers": configs, "training": training, "input_shape": input_shape}
    model = Model(n_inputs=0, n_neurons=learned[-1].n_neurons, dtype=np.dtype(dtype), params=params)
    if model_raw.get("n_neurons", learned[-1].n_neurons) != learned[-1].n_neurons:
        raise SpecError("model.n_neurons", f"expected {learned[-1].n_neurons} (the top learned layer's) or no value, "
                                           f"got {describe(model_raw['n_neurons'])}")
    resolved = {"rule": {"name": Stack.name, "params": {}}, "n_neurons": learned[-1].n_neurons, "dtype": dtype,
                "replicas": 1, "layers": [c.resolved for c in configs], "training": training,
                "input_shape": input_shape}
    return cls, model, resolved


def infer_shape(n_inputs: int) -> tuple[int, int, int]:
    """A square grey image (side² = n) or a square RGB one (3·side² = n)."""
    for channels in (1, 3):
        side = int(round(np.sqrt(n_inputs / channels)))
        if side * side * channels == n_inputs:
            return side, side, channels
    raise SpecError("model.input_shape", f"missing; the {n_inputs} inputs are not a square image, say "
                                         f"[height, width, channels]")


class Learned:
    """A rule applied to the whole input (dense) or to every k×k×C patch (conv, tied weights)."""

    def __init__(self, config: LayerConfig, in_shape, dtype, epochs):
        H, W, C = in_shape
        F = config.n_neurons
        if config.conv is not None:
            g = Geometry(H, W, C, config.conv["kernel"], config.conv["stride"], config.conv["padding"])
            if g.out_height < 1 or g.out_width < 1:
                raise SpecError(f"{config.key}.conv.kernel", f"a {g.kernel}×{g.kernel} kernel (padding {g.padding}) "
                                f"does not fit the {H}×{W} maps this layer receives")
            self.geometry, n_inputs, self.out = g, g.patch_size, (g.out_height, g.out_width, F)
        else:
            self.geometry, n_inputs, self.out = None, H * W * C, (1, 1, F)
        model = Model(n_inputs=n_inputs, n_neurons=F, dtype=dtype, params=config.params, epochs=epochs,
                      **config.components)
        self.rule = config.rule_class(model)
        local = getattr(self.rule, "geometry", None)
        self.locally_connected = isinstance(local, Geometry)  # untied filters (hebbian_weight_sharing)
        if self.locally_connected and config.conv is None:
            self.out = (local.out_height, local.out_width, F)
        self.linear = type(self.rule).transform is Rule.transform  # responses W·p: the fused kernel
        self.in_shape = tuple(in_shape)
        self.dtype = dtype
        self.whiten = config.conv.get("whiten") if config.conv is not None else None

    def out_shape(self, shape):
        return self.out

    def init_state(self, rng) -> dict:
        """The rule's state, and with ``conv.whiten`` the patch statistics and Z = I to start."""
        state = self.rule.init_state(rng)
        if self.whiten is not None:
            K = self.geometry.patch_size
            state.update({"patch_sum": np.zeros(K), "patch_outer": np.zeros((K, K)),
                          "patch_count": np.zeros(2, np.int64), "patch_mean": np.zeros(K, self.dtype),
                          "zca": np.eye(K, dtype=self.dtype)})
        return state

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """The rule's samples: the patches (n·L × K) or the flattened maps (n × H·W·C)."""
        flat = np.ascontiguousarray(x.reshape(len(x), -1))
        return im2col(flat, self.geometry) if self.geometry is not None else flat

    def whitened(self, state, patches: np.ndarray) -> np.ndarray:
        """Z(p − m) for every patch (row), in the patches' dtype."""
        return ((patches - state["patch_mean"]) @ state["zca"]).astype(patches.dtype, copy=False)

    def update_whitening(self, state, patches: np.ndarray) -> None:
        """Add the batch's patches to Σp, Σppᵀ; after steps 1, 2, 4, 8, … (a power of two) set
        m = Σp/N and the ZCA matrix Z = U(Λ + ε)^(-1/2)Uᵀ of the covariance Σppᵀ/N − mmᵀ = UΛUᵀ
        (Bell & Sejnowski 1997): the patches the layer has seen so far, whitened, with log₂(steps)
        eigendecompositions in all."""
        P = patches.astype(np.float64)
        state["patch_sum"] += P.sum(axis=0)
        state["patch_outer"] += P.T @ P
        state["patch_count"] += (len(P), 1)
        steps = int(state["patch_count"][1])
        if not steps & (steps - 1):
            self.fit_whitening(state)

    def fit_whitening(self, state) -> None:
        """m and Z from the patch sums counted so far."""
        n = float(state["patch_count"][0])
        mean = state["patch_sum"] / n
        cov = state["patch_outer"] / n - np.outer(mean, mean)
        lam, U = np.linalg.eigh((cov + cov.T) / 2)
        state["patch_mean"][...] = mean
        state["zca"][...] = (U / np.sqrt(np.maximum(lam, 0.0) + self.whiten)) @ U.T

    def effective_weights(self, state) -> np.ndarray:
        """The filters on the patches as they come: W·Z (W without whitening)."""
        W = state["weights"]
        return W if self.whiten is None else (W @ state["zca"]).astype(W.dtype)

    def learn(self, state, x):
        samples = self.inputs(x)
        if self.whiten is not None:
            self.update_whitening(state, samples)
            samples = self.whitened(state, samples)
        self.rule.step(state, samples)

    def forward(self, state, x, training=False):
        if self.geometry is not None and self.linear:
            # W·Z(p − m) = (W·Z)·p − (W·Z)·m: the fused convolution with the effective filters
            A = self.effective_weights(state)
            U = conv(np.ascontiguousarray(x.reshape(len(x), -1)), A, self.geometry)
            if self.whiten is not None:
                U -= (A @ state["patch_mean"]).astype(U.dtype)
        else:
            samples = self.inputs(x)
            if self.whiten is not None:
                samples = self.whitened(state, samples)
            U = np.asarray(self.rule.transform(state, samples), dtype=x.dtype)
        return U.reshape((len(x),) + self.out)


class Stack(Rule):
    """A stack of learned layers (registered rules, dense or convolutional) and non-learned stages
    (pooling, activation, normalisation), trained greedily or simultaneously by local rules only;
    responses are the top layer's flattened maps (e.g. SoftHebb, Journé et al. 2023)."""

    name = "stack"
    uses = ()
    defaults = {}
    options = Schema()

    def __init__(self, model: Model):
        super().__init__(model)
        p = model.params
        self.training = p["training"]
        shape = tuple(p["input_shape"]) if p["input_shape"] else infer_shape(model.n_inputs)
        if int(np.prod(shape)) != model.n_inputs:
            raise SpecError("model.input_shape", f"expected {model.n_inputs} values (the data's inputs), "
                                                 f"{list(shape)} holds {int(np.prod(shape))}")
        self.input_shape = shape
        configs = p["layers"]
        self.n_learned = sum(c.rule_class is not None for c in configs)
        epochs = model.epochs
        if self.training == "greedy" and epochs:
            if epochs % self.n_learned:
                raise SpecError("schedule.epochs", f"expected a multiple of the {self.n_learned} learned layers "
                                                   f"(greedy training gives each the same epochs), got {epochs}")
            epochs //= self.n_learned
        self.epochs_per_layer = epochs
        self.blocks, self.learned = [], []
        for i, c in enumerate(configs):
            if c.rule_class is not None:
                block = Learned(c, shape, self.dtype, epochs)
                self.learned.append(i)
            else:
                block = c.stage_class(c.params, shape, c.key)
            self.blocks.append(block)
            shape = block.out_shape(shape)
        self.output_shape = shape

    # -- state -------------------------------------------------------------------------
    def init_state(self, rng):
        state = {"epoch": np.zeros(1, dtype=np.int64)}
        for i, block in enumerate(self.blocks):
            own = block.init_state(rng) if isinstance(block, Learned) else block.init_state(self.dtype)
            state.update({f"layers/{i}/{k}": v for k, v in own.items()})
        return state

    @staticmethod
    def layer_state(state: dict, i: int) -> dict:
        """Layer i's arrays under their own names (views, not copies)."""
        prefix = f"layers/{i}/"
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    def _run(self, state: dict, i: int, method: str, *args):
        sub = self.layer_state(state, i)
        out = getattr(self.blocks[i] if method != "end_epoch" else self.blocks[i].rule, method)(sub, *args)
        for k, v in sub.items():  # a rule that rebinds an array instead of updating it in place
            if state.get(f"layers/{i}/{k}") is not v:
                state[f"layers/{i}/{k}"] = v
        return out

    # -- training ----------------------------------------------------------------------
    def active(self, epoch: int) -> list[int]:
        """Indices of the blocks that learn in the given epoch (0-based)."""
        if self.training == "simultaneous":
            return list(self.learned)
        per = self.epochs_per_layer or 1
        return [self.learned[min(epoch // per, self.n_learned - 1)]]

    def step(self, state, batch):
        active = self.active(int(state["epoch"][0]))
        x = np.asarray(batch, dtype=self.dtype).reshape((len(batch),) + self.input_shape)
        for i, block in enumerate(self.blocks):
            if i in active:
                self._run(state, i, "learn", x)
                if i == active[-1]:
                    return
            x = self._run(state, i, "forward", x, True)

    def end_epoch(self, state, epoch):
        for i in self.active(epoch - 1):
            local = epoch if self.training == "simultaneous" else epoch - self.learned.index(i) * (self.epochs_per_layer or 1)
            self._run(state, i, "end_epoch", local)
        state["epoch"][0] = epoch

    def calibrate(self, state, X, batch_size: int = 1000, limit: int = 10000):
        """Fit the statistics of the stages (batch normalisation) and of the patch whitening
        (``conv.whiten``) to the first ``limit`` inputs of ``X`` without learning: every block runs
        forward in training mode on batches of them."""
        for start in range(0, min(len(X), limit), batch_size):
            x = np.asarray(X[start:start + batch_size], dtype=self.dtype).reshape((-1,) + self.input_shape)
            for i, block in enumerate(self.blocks):
                if isinstance(block, Learned) and block.whiten is not None:
                    block.update_whitening(self.layer_state(state, i), block.inputs(x))
                x = self._run(state, i, "forward", x, True)
        for i, block in enumerate(self.blocks):
            if isinstance(block, Learned) and block.whiten is not None:
                block.fit_whitening(self.layer_state(state, i))

    # -- responses ---------------------------------------------------------------------
    def transform(self, state, x):
        """The top block's maps for every input row, flattened (n × H'·W'·C'), in blocks of images."""
        x = np.asarray(x, dtype=self.dtype)
        out = np.empty((len(x), int(np.prod(self.output_shape))), dtype=self.dtype)
        for start in range(0, len(x), CHUNK):
            h = x[start:start + CHUNK].reshape((-1,) + self.input_shape)
            for i in range(len(self.blocks)):
                h = self._run(state, i, "forward", h, False)
            out[start:start + CHUNK] = h.reshape(len(h), -1)
        return out

    @property
    def synthesized(self) -> str:
        """What :meth:`synthesize` draws, for a figure's title."""
        i = self.learned[0]
        block = self.blocks[i]
        n = block.rule.model.n_neurons
        if block.geometry is None:
            return f"layer {i}'s {n} units"
        return f"layer {i}'s {n} {block.geometry.kernel}×{block.geometry.kernel} filters"

    def synthesize(self, state):
        """The first learned layer's receptive fields as images of the input's shape: a
        convolutional layer's k×k×C filters (its rule's grey levels) drawn at the centre of a
        mid-grey image; a dense layer's weights as they are."""
        i = self.learned[0]
        block = self.blocks[i]
        own = self.layer_state(state, i)
        images = block.rule.synthesize({**own, "weights": block.effective_weights(own)})
        if images is None or block.geometry is None:
            return images
        g = block.geometry
        k = g.kernel
        H, W, C = block.in_shape
        canvas = np.full((len(images), H, W, C), 0.5)
        y0, x0 = max((H - k) // 2, 0), max((W - k) // 2, 0)
        patch = images.reshape(len(images), k, k, C)[:, :H - y0, :W - x0]
        canvas[:, y0:y0 + patch.shape[1], x0:x0 + patch.shape[2]] = patch
        return canvas.reshape(len(images), -1)

    def receptive_fields(self, state, layer: int, strongest: int | None = None) -> np.ndarray:
        """Receptive fields of learned layer ``layer``'s units in the input's space (units × H·W·C),
        grey levels 0.5 + r/(2 max|r|).  The first learned layer: its filters at the centre of the
        image (:meth:`synthesize`).  A deeper layer, by its strongest inputs: the linear
        composition r_u = Σ w_u[y, x, c]·r_c shifted by (y − y₀, x − x₀)·S over the ``strongest``
        largest |w_u| (default all), r_c the receptive fields of the layer below and S the product
        of the strides between the input and this layer (pooling and non-linearities ignored)."""
        if layer not in self.learned:
            raise ValueError(f"layer {layer} is not a learned layer; learned layers: {self.learned}")
        if not self.drawable(layer):
            raise ValueError(f"layer {layer}'s receptive fields are not drawn: a locally connected layer is at or "
                             f"below it")
        fields = self._raw_fields(state, layer, strongest)
        scale = np.abs(fields).max(axis=1, keepdims=True)
        return 0.5 + 0.5 * np.divide(fields, scale, out=np.zeros_like(fields), where=scale > 0)

    def drawable(self, layer: int) -> bool:
        """Whether :meth:`receptive_fields` draws learned layer ``layer``: it and every learned layer
        below it is convolutional or dense (not locally connected, whose filters differ by position)."""
        return not any(self.blocks[i].locally_connected for i in self.learned[:self.learned.index(layer) + 1])

    def field_box(self, layer: int) -> tuple[int, int, int, int]:
        """Rows y0:y1 and columns x0:x1 of the input that the fields of learned layer ``layer``
        (:meth:`receptive_fields`) can cover: the first layer's k×k filter at the centre, widened
        by (k' − 1)·S for each layer above (S the stride product below it), within the image."""
        H, W, _ = self.input_shape
        block = self.blocks[layer]
        position = self.learned.index(layer)
        if position == 0:
            if block.geometry is None:
                return 0, H, 0, W
            k = block.geometry.kernel
            y0, x0 = max((H - k) // 2, 0), max((W - k) // 2, 0)
            return y0, min(y0 + k, H), x0, min(x0 + k, W)
        y0, y1, x0, x1 = self.field_box(self.learned[position - 1])
        h, w, _ = block.in_shape
        ky, kx = (block.geometry.kernel,) * 2 if block.geometry is not None else (h, w)
        s = self._stride(layer)
        return (max(y0 - ky // 2 * s, 0), min(y1 + (ky - 1 - ky // 2) * s, H),
                max(x0 - kx // 2 * s, 0), min(x1 + (kx - 1 - kx // 2) * s, W))

    def field_patches(self, state, layer: int, strongest: int | None = STRONGEST) -> np.ndarray:
        """Learned layer ``layer``'s receptive fields (:meth:`receptive_fields`, grey levels) as
        image patches (units, h, w, C): the part of the input its units see (:meth:`field_box`),
        e.g. the 5×5 filters of a first convolutional layer, the whole image for a dense one."""
        y0, y1, x0, x1 = self.field_box(layer)
        images = self.receptive_fields(state, layer, strongest).reshape((-1,) + self.input_shape)
        return images[:, y0:y1, x0:x1]

    def _stride(self, layer: int) -> int:
        """Product of the strides of the blocks below ``layer`` (input pixels per step of its maps)."""
        return int(np.prod([b.geometry.stride if isinstance(b, Learned) and b.geometry is not None
                            else getattr(b, "stride", 1) for b in self.blocks[:layer]]))

    def _raw_fields(self, state, layer, strongest):
        H, W, C = self.input_shape
        block = self.blocks[layer]
        weights = np.asarray(block.effective_weights(self.layer_state(state, layer)), dtype=np.float64)
        position = self.learned.index(layer)
        if position == 0:
            if block.geometry is None:
                return weights
            k = block.geometry.kernel
            canvas = np.zeros((len(weights), H, W, C))
            y0, x0 = max((H - k) // 2, 0), max((W - k) // 2, 0)
            patch = weights.reshape(len(weights), k, k, C)[:, :H - y0, :W - x0]
            canvas[:, y0:y0 + patch.shape[1], x0:x0 + patch.shape[2]] = patch
            return canvas.reshape(len(weights), -1)
        below = self._raw_fields(state, self.learned[position - 1], None).reshape(-1, H, W, C)
        h, w, c_in = block.in_shape
        ky, kx = (block.geometry.kernel,) * 2 if block.geometry is not None else (h, w)
        stride = self._stride(layer)
        taps = weights.reshape(len(weights), ky, kx, c_in)
        out = np.zeros((len(weights), H, W, C))
        pad = max(H, W)
        padded = np.pad(below, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        for u, tap in enumerate(taps):
            flat = np.abs(tap).ravel()
            keep = np.argsort(-flat, kind="stable")[:strongest] if strongest else np.flatnonzero(flat)
            for idx in keep:
                y, x, c = np.unravel_index(idx, tap.shape)
                dy, dx = (y - ky // 2) * stride, (x - kx // 2) * stride
                if abs(dy) < pad and abs(dx) < pad:
                    out[u] += tap[y, x, c] * padded[c, pad - dy:pad - dy + H, pad - dx:pad - dx + W]
        return out.reshape(len(weights), -1)

