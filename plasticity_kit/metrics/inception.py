"""Inception-v3 features of images, as pytorch-fid computes them (optional extra ``[fid]``).

Heusel et al. 2017 define FID on the activations of the TensorFlow Inception-v3 of 2015-12-05;
pytorch-fid (Seitzer, v0.3.0) ports that network.  :func:`inception_features` runs pytorch-fid's
``InceptionV3`` on images in [0, 1]: grey images are replicated to 3 channels, the network
resizes them to 299×299 (bilinear) and scales them to [−1, 1]; the output block for ``dims``
(64: first max-pool, 192: second max-pool, 768: pre-aux, 2048: final average pool) is averaged
over space when it is not already 1×1 — exactly pytorch-fid's ``get_activations``.

Weights: the ``weights`` file when given, else torch hub's cache
(``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``), downloaded there by
torch when missing and the network allows.  When neither works, :class:`MetricUnavailable`
says where to put the file.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys
from contextlib import contextmanager

import numpy as np

from .base import MetricUnavailable

DIMS = (64, 192, 768, 2048)
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
INSTALL_HINT = 'install the optional extra: pip install -e ".[fid]" in the plasticity-kit source folder'

_MODELS: dict = {}


def _declare_torchvision_ops_if_unloadable(torch) -> None:
    """Let ``import torchvision`` succeed when its compiled ops cannot load.

    A torchvision wheel built for another torch variant (a CUDA build next to CPU torch) fails to
    load ``torchvision/_C``; ``import torchvision`` then dies registering fake kernels for
    ``torchvision::nms``.  pytorch-fid needs only torchvision's pure-Python model code, so the two
    missing operator schemas are declared.  When ``_C`` loads (matching builds) nothing happens.
    """
    spec = importlib.util.find_spec("torchvision")
    if hasattr(_declare_torchvision_ops_if_unloadable, "library") or spec is None or not spec.submodule_search_locations:
        return
    libs = [p for d in spec.submodule_search_locations for p in glob.glob(os.path.join(d, "_C.*"))
            if p.endswith((".so", ".pyd", ".dylib"))]
    if not libs:
        return
    try:
        torch.ops.load_library(libs[0])
        return
    except (OSError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _declare_torchvision_ops_if_unloadable.library = lib  # keep the registration alive


def load_pytorch_fid():
    """``(torch, pytorch_fid.inception)``, or MetricUnavailable saying how to install them."""
    try:
        import torch
    except ImportError:
        raise MetricUnavailable(f"PyTorch is not installed; {INSTALL_HINT}") from None
    if "torchvision" not in sys.modules:
        _declare_torchvision_ops_if_unloadable(torch)
    try:
        from pytorch_fid import inception
    except (ImportError, RuntimeError, OSError) as exc:  # missing, or a torchvision that does not fit torch
        raise MetricUnavailable(f"pytorch-fid cannot be imported ({type(exc).__name__}: {exc}); {INSTALL_HINT}") from None
    return torch, inception


def hub_weights_path(torch) -> str:
    """Where torch hub caches (and looks for) the FID Inception weights."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", WEIGHTS_FILE)


def _missing_weights(torch, why: str) -> MetricUnavailable:
    return MetricUnavailable(
        f"the FID Inception weights are not available ({why}). Download {WEIGHTS_URL} and put it at "
        f"{hub_weights_path(torch)} (torch hub's cache; $TORCH_HOME moves it), or give its path "
        f"as the metric's 'weights' parameter"
    )


@contextmanager
def _weights_from(inception, torch, path: str | None):
    """Make pytorch-fid read its state dict from ``path`` instead of downloading it."""
    if path is None:
        yield
        return
    original = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *a, **k: torch.load(path, map_location="cpu", weights_only=True)
    try:
        yield
    finally:
        inception.load_state_dict_from_url = original


def resolve_device(torch, device: str = "auto"):
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MetricUnavailable("device 'cuda' was asked for but PyTorch sees no CUDA device")
    return torch.device(device)


def inception_model(dims: int, weights: str | None = None, device: str = "auto"):
    """pytorch-fid's ``InceptionV3`` returning the block for ``dims``; built once per process."""
    if dims not in DIMS:
        raise ValueError(f"dims must be one of {DIMS}, got {dims}")
    torch, inception = load_pytorch_fid()
    dev = resolve_device(torch, device)
    key = (dims, weights, str(dev))
    if key in _MODELS:
        return _MODELS[key]
    if weights is not None:
        if not os.path.isfile(weights):
            raise MetricUnavailable(f"params.weights: FID Inception weights file not found: {weights}")
        path = weights
    else:
        path = hub_weights_path(torch)
        if not os.path.isfile(path):
            path = None  # let torch hub download it
    try:
        with _weights_from(inception, torch, path):
            model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    except MetricUnavailable:
        raise
    except Exception as exc:  # no network, a truncated download, a foreign file
        raise _missing_weights(torch, f"{type(exc).__name__}: {exc}") from None
    model = model.to(dev).eval()
    _MODELS[key] = model
    return model


def to_nchw(images: np.ndarray) -> np.ndarray:
    """(n, H, W) grey or (n, H, W, C) images → float32 (n, 3, H, W); grey is replicated to 3 channels."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"expected images (n, H, W) or (n, H, W, C), got shape {x.shape}")
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    if x.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
    return np.ascontiguousarray(x)


def inception_features(images: np.ndarray, dims: int = 2048, *, weights: str | None = None,
                       device: str = "auto", batch_size: int = 50) -> np.ndarray:
    """Inception-v3 activations (n, dims), float64, of ``images`` in [0, 1] ((n, H, W) or (n, H, W, C))."""
    x = to_nchw(images)
    if x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(f"images must lie in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]")
    torch, _ = load_pytorch_fid()
    model = inception_model(dims, weights, device)
    dev = next(model.parameters()).device
    out = np.empty((len(x), dims), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(x[start:start + batch_size]).to(dev)
            pred = model(batch)[0]
            if pred.shape[2] != 1 or pred.shape[3] != 1:
                pred = torch.nn.functional.adaptive_avg_pool2d(pred, output_size=(1, 1))
            out[start:start + len(batch)] = pred[:, :, 0, 0].cpu().numpy()
    return out
