"""Signal-to-noise ratio of weight sharing (Pogodin, Mehta, Lillicrap & Latham 2021, Eq. 6).

For N units i (the positions of a locally connected layer) each with a filter w_i of K weights,

    SNR_w = (1/K) Σ_j  (mean_i w_ij)² / var_i(w_ij)

(K = k² in the paper; here every weight of the filter, k·k·C, and every output channel, count).
A convolution (identical filters) has SNR_w = ∞; i.i.d. random filters have SNR_w ≈ 1/N.
The paper plots −log SNR_w.
"""
from __future__ import annotations

import numpy as np

from ..errors import SpecError
from ..options import Option, Schema
from .base import Metric


def weight_sharing_snr(weights: np.ndarray) -> float:
    """SNR_w of ``weights`` shaped (N, ...): units on the first axis, every other entry one weight j.

    Computed in float64 with the two-pass variance var_i = mean_i (w_ij − mean_i w_ij)².  A weight
    with zero variance across units contributes +∞ (0 when it is zero everywhere, i.e. absent).
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w.reshape(w.shape[0], -1)
    mean = w.mean(axis=0)
    var = ((w - mean) ** 2).mean(axis=0)
    m2 = mean * mean
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(var > 0, m2 / np.where(var > 0, var, 1.0), np.where(m2 > 0, np.inf, 0.0))
    return float(terms.mean())


def neg_log(snr):
    """−log SNR_w (natural log), the quantity of the paper's Fig. 4, of a number or an array;
    −∞ for perfect sharing (SNR_w = ∞)."""
    with np.errstate(divide="ignore"):
        out = -np.log(np.asarray(snr, dtype=np.float64))
    return float(out) if out.ndim == 0 else out


class WeightSharingSNR(Metric):
    """Weight-sharing SNR_w = (1/K) Σ_j (mean_i w_ij)² / var_i(w_ij) over units i (Pogodin et al. 2021, Eq. 6).

    ``field`` names the state array (units on its first axis: the positions of a locally
    connected layer's ``weights``); with ``negative_log`` the value reported is ``neg_log_snr``
    = −log SNR_w as plotted in the paper, else ``snr``.
    """

    name = "weight_sharing_snr"
    options = Schema(
        Option("field", "string", "weights", "state array whose first axis indexes the units compared"),
        Option("negative_log", "bool", False, "report −log SNR_w (key neg_log_snr) instead of SNR_w (key snr)"),
    )

    def compute(self, ctx):
        if self.field not in ctx.state:
            raise SpecError(f"{self.name}.params.field",
                            f"the rule's state has no array {self.field!r}; it has: {', '.join(sorted(ctx.state))}")
        snr = weight_sharing_snr(ctx.state[self.field])
        return {"neg_log_snr": neg_log(snr)} if self.negative_log else {"snr": snr}
