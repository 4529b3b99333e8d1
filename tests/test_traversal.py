import numpy as np
import pytest

from ladder_vae import traversal


def test_a_two_dimensional_level_is_its_manifold_with_the_other_levels_at_zero():
    codes, num_columns = traversal.level_traversal_codes((2, 3, 1), 0)
    assert codes.shape == (81, 6) and codes.dtype == np.float32 and num_columns == 9
    assert np.all(codes[:, 2:] == 0)
    grid = codes[:, :2].reshape(9, 9, 2)
    # z[0] grows to the right, z[1] upwards: the top-left tile is (-2, 2), the middle (0, 0).
    np.testing.assert_array_equal(grid[0, 0], [-2.0, 2.0])
    np.testing.assert_array_equal(grid[4, 4], [0.0, 0.0])
    np.testing.assert_array_equal(grid[8, 6], [1.0, -2.0])


def test_another_level_gets_one_row_per_dimension():
    codes, num_columns = traversal.level_traversal_codes((2, 3, 1), 1)
    assert codes.shape == (27, 6) and num_columns == 9
    assert np.all(codes[:, :2] == 0) and np.all(codes[:, 5] == 0)
    rows = codes[:, 2:5].reshape(3, 9, 3)
    for row in range(3):
        np.testing.assert_array_equal(rows[row, :, row], traversal.sweep_values())
        assert np.all(np.delete(rows[row], row, axis=1) == 0)
    codes, _ = traversal.level_traversal_codes((2, 3, 1), 2, num_steps=5, span=1.0)
    np.testing.assert_array_equal(codes[:, 5], [-1.0, -0.5, 0.0, 0.5, 1.0])


def test_sweep_values_are_even_and_centred():
    values = traversal.sweep_values()
    assert values[0] == -traversal.SPAN and values[-1] == traversal.SPAN
    assert values[len(values) // 2] == 0.0
    np.testing.assert_allclose(np.diff(values), values[1] - values[0])


def test_dimension_sweeps_keep_the_base_code():
    base = np.array([0.5, -1.0, 3.0], np.float32)
    codes = traversal.dimension_sweeps(base, 1, 3, np.array([7.0, 8.0]))
    np.testing.assert_array_equal(
        codes, [[0.5, 7.0, 3.0], [0.5, 8.0, 3.0], [0.5, -1.0, 7.0], [0.5, -1.0, 8.0]]
    )


def test_a_level_outside_the_code_is_refused():
    with pytest.raises(ValueError, match="level=3"):
        traversal.level_traversal_codes((2, 3, 1), 3)
