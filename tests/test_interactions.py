"""Interaction matrices L of y = σ((I−L)⁻¹Wx) as the reference study specifies them."""
import numpy as np
import pytest

from plasticity_kit.errors import SpecError
from plasticity_kit.interactions import Binocular, Custom, NoInteraction, Uniform, interaction_factor

STUDY_B5 = np.array([  # I − L printed by the reference study (Rondini 2023, Eq. 1)
    [1.0, 0.2, -0.3, 0.2, -0.3],
    [0.2, 1.0, -0.3, -0.3, 0.2],
    [-0.3, -0.3, 2.3, -0.3, -0.3],
    [0.2, -0.3, -0.3, 1.0, 0.2],
    [-0.3, 0.2, -0.3, 0.2, 1.0],
])


def test_binocular_reproduces_the_study_matrix_for_5_neurons():
    np.testing.assert_array_equal(np.eye(5) - Binocular().lateral(5), STUDY_B5)


@pytest.mark.parametrize("n", [3, 7, 9, 13, 21, 29])
def test_binocular_generalises_to_odd_n(n):
    L = Binocular().lateral(n)
    A = np.eye(n) - L
    m = n // 2
    assert np.array_equal(L, L.T)
    assert A[m, m] == pytest.approx(2.3)
    for i in range(n):
        for j in range(n):
            if i == j:
                if i != m:
                    assert L[i, j] == 0
            elif i == m or j == m or j == n - 1 - i:
                assert L[i, j] == pytest.approx(0.3), (i, j)
            else:
                assert L[i, j] == pytest.approx(-0.2), (i, j)
    assert interaction_factor(L) is not None  # well conditioned for the study's sizes


def test_binocular_even_n_has_couples_and_no_middle():
    L = Binocular().lateral(4)
    expected = np.array([[0, -0.2, -0.2, 0.3], [-0.2, 0, 0.3, -0.2], [-0.2, 0.3, 0, -0.2], [0.3, -0.2, -0.2, 0]])
    np.testing.assert_allclose(L, expected)


def test_binocular_values_are_configurable():
    L = Binocular(negative=-0.1, positive=0.2, middle_diagonal=1.5).lateral(5)
    assert L[0, 1] == -0.1 and L[0, 4] == 0.2 and L[2, 0] == 0.2 and 1 - L[2, 2] == 1.5


def test_uniform_is_the_study_L_matrix():
    L = Uniform().lateral(4)
    assert np.all(np.diag(L) == 0)
    assert np.all(L[~np.eye(4, dtype=bool)] == -0.5)
    assert Uniform(strength=-0.1).lateral(3)[0, 1] == -0.1


def test_none_has_no_factor():
    assert interaction_factor(NoInteraction().lateral(6)) is None


def test_factor_is_the_inverse_of_I_minus_L():
    L = Binocular().lateral(5)
    F = interaction_factor(L)
    np.testing.assert_allclose(F @ (np.eye(5) - L), np.eye(5), atol=1e-12)


def test_singular_and_ill_conditioned_matrices_are_refused():
    with pytest.raises(SpecError, match="singular or ill-conditioned"):
        interaction_factor(Uniform(strength=0.25).lateral(5))  # eigenvalue 1 − 4·0.25 = 0
    with pytest.raises(SpecError, match="condition number"):
        interaction_factor(Uniform(strength=0.2499999).lateral(5))


def test_custom_from_npy_csv_and_inline(tmp_path):
    L = Binocular().lateral(5)
    np.save(tmp_path / "L.npy", L)
    np.savetxt(tmp_path / "L.csv", L, delimiter=",")
    np.testing.assert_array_equal(Custom(path=str(tmp_path / "L.npy")).lateral(5), L)
    np.testing.assert_allclose(Custom(path=str(tmp_path / "L.csv")).lateral(5), L)
    np.testing.assert_array_equal(Custom(values=L.tolist()).lateral(5), L)


def test_custom_errors(tmp_path):
    with pytest.raises(SpecError, match="expected exactly one of 'path' or 'values'"):
        Custom()
    with pytest.raises(SpecError, match=r"expected an 3x3 matrix \(model.n_neurons = 3\), got shape \(2, 2\)"):
        Custom(values=[[0, 0], [0, 0]]).lateral(3)
    with pytest.raises(SpecError, match="file not found"):
        Custom(path=str(tmp_path / "missing.npy")).lateral(3)
    with pytest.raises(SpecError, match="list of rows of numbers"):
        Custom(values=[["a", 1], [2, 3]]).lateral(2)
