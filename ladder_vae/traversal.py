"""What a traversal of a ladder level is: the codes whose decoded images show what one level
controls.

One convention for every traversal figure of the project, so that the training run's
`samples/traversal_level<i>_epoch_NNNN.png` and the evaluation's `traversal_level_<i>.png` of the
same model show the same images:

- level i's code is swept over `NUM_STEPS` values evenly spaced in [-SPAN, SPAN] (prior standard
  deviations), the middle value 0;
- every other level is held at one prior draw: the code of the first image of the run's sample
  grid (`base_code`, from the run's `--seed`; a 1-D level: one draw per row, below). A typical
  digit, the same in every epoch's figure and in the evaluation's; the all-zero code, the
  prior's mode, decodes to a blurred average of classes;
- a level of 2 dimensions gives its whole 2-D manifold, NUM_STEPS x NUM_STEPS: z_i[0] grows left
  to right, z_i[1] grows bottom to top, as on a plot;
- a level of 1 dimension gives one row per base: the first `NUM_BASE_ROWS` codes of the sample
  grid, each with the level swept left to right (the first row is the first image's). One row
  of one digit cannot tell a factor from that digit's quirk; eight digits that all grow bolder
  along the row can;
- a level of any other size gives one row per dimension, that dimension swept left to right and
  the level's other dimensions at their draw.

Plain numpy, no TensorFlow: the callbacks, the evaluation and the explorer all build on it.
"""

import numpy as np

NUM_STEPS = 9
SPAN = 2.0
# The noise batch whose first code holds the other levels: the size of the run's sample grid.
NUM_NOISE_SAMPLES = 64
# Rows of a one-dimensional level's grid: the first row of the 8 x 8 sample grid.
NUM_BASE_ROWS = 8


def fixed_prior_noise(latent_dims, num_samples, seed):
    """One batch of prior noise, N(0, I) per level, that depends on nothing but its arguments.

    Drawn with NumPy rather than the model's generator so that every figure of a run, a resumed
    run in a new process and the evaluation get the very same codes: the figures of epoch 5
    and of epoch 150 then show the same codes and compare frame by frame.

    Returns:
        A list with one float32 array [num_samples, dim] per level, lowest level first.
    """
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((num_samples, dim)).astype(np.float32) for dim in latent_dims]


def base_codes(latent_dims, seed, count=1):
    """The codes that hold the levels a traversal does not sweep: float32 [count,
    sum(latent_dims)], the first `count` codes of `fixed_prior_noise(latent_dims,
    NUM_NOISE_SAMPLES, seed)`, the first images of the run's sample grid."""
    noise = fixed_prior_noise(latent_dims, NUM_NOISE_SAMPLES, seed)
    return np.concatenate([level[:count] for level in noise], axis=1)


def base_code(latent_dims, seed):
    """The code of the first image of the sample grid: float32 [sum(latent_dims)]."""
    return base_codes(latent_dims, seed)[0]


def sweep_values(num_steps=NUM_STEPS, span=SPAN):
    """The values a swept dimension takes: float32 [num_steps], evenly spaced in [-span, span]."""
    return np.linspace(-span, span, num_steps, dtype=np.float32)


def dimension_sweeps(base_code, start, stop, values):
    """Codes that sweep each dimension of `base_code` in [start, stop) over `values`, one
    dimension at a time, the others at their value in `base_code`.

    Args:
        base_code: float array [D], all levels concatenated, lowest first.
        start, stop: the dimensions to sweep.
        values: float array [num_steps].

    Returns:
        float32 [(stop - start) * num_steps, D], dimension by dimension, then value by value.
    """
    base_code = np.asarray(base_code, np.float32)
    num_steps = len(values)
    codes = np.tile(base_code, ((stop - start) * num_steps, 1))
    for row, dimension in enumerate(range(start, stop)):
        codes[row * num_steps : (row + 1) * num_steps, dimension] = values
    return codes


def level_traversal_codes(latent_dims, level, seed, num_steps=NUM_STEPS, span=SPAN):
    """The codes of the traversal grid of level `level` (0-based), in the module's convention.

    Args:
        latent_dims: code size of each level, lowest first.
        level: the level to sweep, 0 = the lowest.
        seed: the run's seed, which draws the code of the other levels (`base_codes`).
        num_steps: values per swept dimension (odd, so that 0 is one of them).
        span: the sweep covers [-span, span].

    Returns:
        (codes, num_columns): float32 codes [num_images, sum(latent_dims)] in row-major order of
        the grid, and the grid's number of columns (`num_steps`).
    """
    latent_dims = [int(dim) for dim in latent_dims]
    if not 0 <= level < len(latent_dims):
        raise ValueError(
            f"`level` must index `latent_dims`. Received: level={level}, "
            f"latent_dims={latent_dims}"
        )
    values = sweep_values(num_steps, span)
    start = sum(latent_dims[:level])
    stop = start + latent_dims[level]
    if stop - start != 2:
        bases = base_codes(latent_dims, seed, NUM_BASE_ROWS if stop - start == 1 else 1)
        sweeps = [dimension_sweeps(base, start, stop, values) for base in bases]
        return np.concatenate(sweeps), num_steps
    base = base_code(latent_dims, seed)
    # Row r holds z_i[1] at its r-th value from the top (+span) down; columns sweep z_i[0].
    second, first = np.meshgrid(values[::-1], values, indexing="ij")
    codes = np.tile(base, (num_steps * num_steps, 1))
    codes[:, start] = first.ravel()
    codes[:, start + 1] = second.ravel()
    return codes, num_steps
