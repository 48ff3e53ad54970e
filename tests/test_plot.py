"""view_weights: every neuron's weights in a grid on one colour scale symmetric around zero."""
import numpy as np
import pytest

from plasticity_kit.plot import view_weights, weight_mosaic


def test_mosaic_places_each_neuron_row_major_with_nan_separators():
    W = np.arange(5 * 6, dtype=float).reshape(5, 6)  # 5 neurons of 2×3 images
    m = weight_mosaic(W, (2, 3))
    assert m.shape == (2 * 3 - 1, 3 * 4 - 1)  # 2 rows × 3 (⌈√5⌉) columns of 2×3 tiles, 1-pixel gaps
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(m[3 * r:3 * r + 2, 4 * c:4 * c + 3], W[i].reshape(2, 3))
    assert np.isnan(m[2, :]).all() and np.isnan(m[:, 3]).all()
    assert np.isnan(m[3:, 8:]).all()  # the empty last tile
    assert weight_mosaic(W, (2, 3), columns=5).shape == (2, 5 * 4 - 1)


def test_view_weights_returns_a_figure_on_a_symmetric_scale(tmp_path):
    W = np.random.default_rng(0).normal(size=(7, 16))
    W[3, 5] = -4.0  # the largest magnitude sets both ends of the scale
    fig = view_weights(W, dims=(4, 4), title="t")
    image = fig.axes[0].images[0]
    np.testing.assert_array_equal(np.ma.filled(image.get_array(), np.nan), weight_mosaic(W, (4, 4)))
    assert image.get_clim() == (-4.0, 4.0)
    assert len(fig.axes) == 2  # the weights and their colour bar
    assert fig.axes[0].get_title() == "t"
    fig.savefig(tmp_path / "w.png")
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_neuron_scaling():
    W = np.array([[1.0, -2.0, 0.5, 0.0], [10.0, 20.0, -40.0, 0.0]])
    image = view_weights(W, dims=(2, 2), per_neuron=True).axes[0].images[0]
    np.testing.assert_array_equal(np.ma.filled(image.get_array(), np.nan),
                                  weight_mosaic(W / np.array([[2.0], [40.0]]), (2, 2)))
    assert image.get_clim() == (-1.0, 1.0)


def test_colour_images_and_bad_dims():
    W = np.random.default_rng(1).normal(size=(4, 2 * 2 * 3))
    fig = view_weights(W, dims=(2, 2, 3))
    rgb = fig.axes[0].images[0].get_array()
    assert rgb.shape == (3 * 2 - 1, 3 * 2 - 1, 3) and rgb.min() >= 0 and rgb.max() <= 1
    with pytest.raises(ValueError, match=r"dims=\(28, 28\): expected \(height, width\) .* holding the 12 weights"):
        view_weights(W, dims=(28, 28))
    with pytest.raises(ValueError, match="weights: expected a 2-D array"):
        view_weights(np.zeros((2, 2, 2)), dims=(2, 2))
