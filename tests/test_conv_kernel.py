"""The convolution kernels (plasticity_kit.kernels.conv) against their numpy references:
im2col and the fused product for strides, paddings, channels and both dtypes, and errors."""
import numpy as np
import pytest

from plasticity_kit.kernels import conv as kernel
from plasticity_kit.model.conv import Geometry, conv, conv_reference, im2col, im2col_reference

GEOMETRIES = [Geometry(7, 7, 1, 3), Geometry(8, 6, 3, 3, stride=2, padding=1), Geometry(5, 5, 2, 5, padding=2),
              Geometry(9, 9, 4, 2, stride=3), Geometry(6, 6, 1, 1)]


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_matches_reference(g, dtype):
    X = np.random.default_rng(0).normal(size=(5, g.height * g.width * g.channels)).astype(dtype)
    np.testing.assert_array_equal(im2col(X, g), im2col_reference(X, g))  # copies: exact


def test_im2col_reference_by_definition():
    """Every patch read off the definition: corner (oy·s − p, ox·s − p), (ky, kx, c) order, 0 outside."""
    g = Geometry(5, 4, 2, 3, stride=2, padding=1)
    X = np.arange(2 * 5 * 4 * 2, dtype=np.float64).reshape(2, -1)
    images = X.reshape(2, 5, 4, 2)
    assert (g.out_height, g.out_width, g.positions, g.patch_size) == (3, 2, 6, 18)
    P = im2col_reference(X, g).reshape(2, g.out_height, g.out_width, 3, 3, 2)
    for oy in range(g.out_height):
        for ox in range(g.out_width):
            for ky in range(3):
                for kx in range(3):
                    y, x = oy * 2 - 1 + ky, ox * 2 - 1 + kx
                    expected = images[:, y, x] if 0 <= y < 5 and 0 <= x < 4 else 0
                    np.testing.assert_array_equal(P[:, oy, ox, ky, kx], expected)


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_conv_forward_matches_reference(g, dtype, rtol):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, g.height * g.width * g.channels)).astype(dtype)
    W = rng.normal(size=(5, g.patch_size)).astype(dtype)
    patches = np.empty((6 * g.positions, g.patch_size), dtype)
    U = conv(X, W, g, patches)
    np.testing.assert_allclose(U, conv_reference(X, W, g), rtol=rtol, atol=rtol * 10)
    np.testing.assert_array_equal(patches, im2col_reference(X, g))


def test_geometry_errors():
    X = np.zeros((2, 16), np.float32)
    out = np.zeros((2 * 4, 9), np.float32)
    with pytest.raises(ValueError, match="rows hold 16 values, the image shape \\(5, 5, 1\\) needs 25"):
        kernel.im2col(X, 5, 5, 1, 3, 1, 0, out)
    with pytest.raises(ValueError, match="does not fit a 4×4 image"):
        kernel.im2col(X, 4, 4, 1, 5, 1, 0, out)
    with pytest.raises(ValueError, match="out must be \\(8, 9\\)"):
        kernel.im2col(X, 4, 4, 1, 3, 1, 0, np.zeros((7, 9), np.float32))
    with pytest.raises(ValueError, match="weights must be \\(F, 9\\)"):
        kernel.conv_forward(X, np.zeros((3, 8), np.float32), 4, 4, 1, 3, 1, 0, np.zeros((8, 3), np.float32), out)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("anti", [True, False])
@pytest.mark.parametrize("m,k,n", [(1960, 864, 384), (7, 25, 96), (5000, 25, 13), (300, 130, 5), (1, 3, 1)])
def test_softhebb_products_equal_numpy_and_every_thread_count(dtype, rtol, anti, m, k, n):
    """softhebb_products (U = X·Wᵀ, Y = soft_wta(U), a = Σ y⊙u, dW = Yᵀ·X, fused per fixed block
    of rows) agrees with the numpy reference (float32 to 2e-5, float64 to 1e-12 relative), and
    1, 2 and 4 threads give the same bits."""
    from plasticity_kit.kernels.conv import softhebb_products
    from plasticity_kit.rules.softhebb import soft_wta_reference

    rng = np.random.default_rng(m + k + n)
    X, W = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    outs = {}
    for nt in (1, 2, 4):
        dW, a = np.full((n, k), np.nan, dtype), np.full(n, np.nan)
        softhebb_products(X, W, 0.8, anti, dW, a, nt)
        outs[nt] = (dW, a)
    X64 = X.astype(np.float64)
    U = X64 @ W.T.astype(np.float64)
    Y = soft_wta_reference(U, 0.8, anti)
    np.testing.assert_allclose(outs[1][0], Y.T @ X64, rtol=rtol, atol=rtol * np.sqrt(m) * 10)
    np.testing.assert_allclose(outs[1][1], (Y * U).sum(axis=0), rtol=rtol, atol=rtol * np.sqrt(m) * 10)
    for nt in (2, 4):
        assert all(np.array_equal(x, y) for x, y in zip(outs[1], outs[nt]))


def test_softhebb_step_is_the_same_at_every_thread_count():
    from plasticity_kit import threads
    from plasticity_kit.testing import make_rule

    rule = make_rule("softhebb", {"inverse_temperature": 5.0}, {}, n_inputs=75, n_neurons=48, dtype="float32")
    X = np.random.default_rng(1).standard_normal((2000, 75)).astype(np.float32)
    results = []
    for nt in (1, 2, 4):
        state = rule.init_state(np.random.default_rng(2))
        with threads.using(nt):
            for s in range(4):
                rule.step(state, X[s * 500:(s + 1) * 500])
        results.append(state["weights"])
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])
