import numpy as np
import pytest

from ladder_vae import traversal

SEED = 3


def base(latent_dims=(2, 3, 1), seed=SEED):
    """The first code of the run's noise batch, drawn here as the sample grid draws it."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.standard_normal((64, dim)).astype(np.float32)[0] for dim in latent_dims]
    )


def test_the_base_code_is_the_first_image_of_the_sample_grid():
    noise = traversal.fixed_prior_noise((2, 3, 1), 64, SEED)
    assert [level.shape for level in noise] == [(64, 2), (64, 3), (64, 1)]
    np.testing.assert_array_equal(traversal.base_code((2, 3, 1), SEED), base())
    assert not np.array_equal(traversal.base_code((2, 3, 1), SEED + 1), base())


def test_a_two_dimensional_level_is_its_manifold_with_the_other_levels_at_the_base_code():
    codes, num_columns = traversal.level_traversal_codes((2, 3, 1), 0, SEED)
    assert codes.shape == (81, 6) and codes.dtype == np.float32 and num_columns == 9
    assert np.all(codes[:, 2:] == base()[2:])
    grid = codes[:, :2].reshape(9, 9, 2)
    # z[0] grows to the right, z[1] upwards: the top-left tile is (-2, 2), the middle (0, 0).
    np.testing.assert_array_equal(grid[0, 0], [-2.0, 2.0])
    np.testing.assert_array_equal(grid[4, 4], [0.0, 0.0])
    np.testing.assert_array_equal(grid[8, 6], [1.0, -2.0])


def test_another_level_gets_one_row_per_dimension():
    codes, num_columns = traversal.level_traversal_codes((2, 3, 1), 1, SEED)
    assert codes.shape == (27, 6) and num_columns == 9
    assert np.all(codes[:, :2] == base()[:2]) and np.all(codes[:, 5] == base()[5])
    rows = codes[:, 2:5].reshape(3, 9, 3)
    for row in range(3):
        np.testing.assert_array_equal(rows[row, :, row], traversal.sweep_values())
        # The level's other dimensions keep their draw.
        others = [dim for dim in range(3) if dim != row]
        assert np.all(rows[row][:, others] == base()[2:5][others])
    codes, _ = traversal.level_traversal_codes((2, 3, 1), 2, SEED, num_steps=5, span=1.0)
    np.testing.assert_array_equal(codes[:5, 5], [-1.0, -0.5, 0.0, 0.5, 1.0])


def test_a_one_dimensional_level_gets_one_row_per_image_of_the_sample_grids_first_row():
    codes, num_columns = traversal.level_traversal_codes((2, 3, 1), 2, SEED)
    assert codes.shape == (traversal.NUM_BASE_ROWS * 9, 6) and num_columns == 9
    rows = codes.reshape(traversal.NUM_BASE_ROWS, 9, 6)
    noise = np.concatenate(traversal.fixed_prior_noise((2, 3, 1), 64, SEED), axis=1)
    for row in range(traversal.NUM_BASE_ROWS):
        # Row r is image r of the sample grid, its level swept and every other level held.
        np.testing.assert_array_equal(rows[row, :, 5], traversal.sweep_values())
        assert np.all(rows[row, :, :5] == noise[row, :5])
    # The first row is the traversal of the first image, as for every other level.
    assert np.all(rows[0, :, :5] == base()[:5])
    assert not np.array_equal(rows[0, :, :5], rows[1, :, :5])


def test_sweep_values_are_even_and_centred():
    values = traversal.sweep_values()
    assert values[0] == -traversal.SPAN and values[-1] == traversal.SPAN
    assert values[len(values) // 2] == 0.0
    np.testing.assert_allclose(np.diff(values), values[1] - values[0])


def test_dimension_sweeps_keep_the_base_code():
    base_code = np.array([0.5, -1.0, 3.0], np.float32)
    codes = traversal.dimension_sweeps(base_code, 1, 3, np.array([7.0, 8.0]))
    np.testing.assert_array_equal(
        codes, [[0.5, 7.0, 3.0], [0.5, 8.0, 3.0], [0.5, -1.0, 7.0], [0.5, -1.0, 8.0]]
    )


def test_a_level_outside_the_code_is_refused():
    with pytest.raises(ValueError, match="level=3"):
        traversal.level_traversal_codes((2, 3, 1), 3, SEED)


def test_fixed_prior_noise_is_one_reproducible_batch():
    first = traversal.fixed_prior_noise((2, 1, 3), 64, seed=7)
    again = traversal.fixed_prior_noise((2, 1, 3), 64, seed=7)
    other = traversal.fixed_prior_noise((2, 1, 3), 64, seed=8)
    assert [code.shape for code in first] == [(64, 2), (64, 1), (64, 3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.allclose(first[0], other[0])
    # Levels get different noise, and it looks like N(0, 1).
    assert not np.allclose(first[0][:, 0], first[2][:, 0])
    assert abs(np.concatenate(first, axis=1).std() - 1) < 0.2
