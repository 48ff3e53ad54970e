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
    """One patch read off the definition: corner (oy·s − p, ox·s − p), (ky, kx, c) order, 0 outside."""
    g = Geometry(5, 4, 2, 3, stride=2, padding=1)
    X = np.arange(2 * 5 * 4 * 2, dtype=np.float64).reshape(2, -1)
    image = X[1].reshape(5, 4, 2)
    P = im2col_reference(X, g).reshape(2, g.out_height, g.out_width, 3, 3, 2)
    oy, ox = 1, 1
    for ky in range(3):
        for kx in range(3):
            y, x = oy * 2 - 1 + ky, ox * 2 - 1 + kx
            expected = image[y, x] if 0 <= y < 5 and 0 <= x < 4 else 0
            np.testing.assert_array_equal(P[1, oy, ox, ky, kx], expected)
    assert (g.out_height, g.out_width) == (3, 2)


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
