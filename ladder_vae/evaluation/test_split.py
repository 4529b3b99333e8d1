"""What the test split says about a model: how well it reconstructs the test digits, and how
their posterior codes fill the prior, level by level."""

import numpy as np

from ladder_vae.evaluation import metrics


def reconstruction_metrics(test_images, reconstructions):
    """`test_mse` and `test_ssim` of the reconstructions [n, H, W, C] of the test digits."""
    return {
        "test_mse": metrics.mean_squared_error(test_images, reconstructions),
        "test_ssim": metrics.mean_ssim(test_images, reconstructions),
    }


def latent_metrics(vae, means, scales, noise_rng, seed):
    """The metrics of the test digits' posterior codes: per level, over all levels, and the
    model's own MMD term on posterior samples.

    Args:
        vae: the `numpy_vae.VAE` that encoded them (for its level sizes and its MMD setting).
        means, scales: posterior means and scales [n, D]; scales None (a SavedModel) leaves
            out the keys that need them.
        noise_rng: numpy generator of the noise of the posterior samples.
        seed: base seed of the prior draws of the MMD estimates.

    Returns:
        dict: `level_{i}_*`, `active_dims`, `latent_mmd`, `latent_mmd_joint` and, with scales,
        `latent_mmd_sampled`.
    """
    results = {}
    level_means = vae.split_levels(means)
    level_scales = vae.split_levels(scales) if scales is not None else [None] * len(level_means)
    sampled_codes = []
    for level, (level_mean, level_scale) in enumerate(zip(level_means, level_scales), 1):
        results[f"level_{level}_dims"] = int(level_mean.shape[1])
        results[f"level_{level}_active_dims"] = metrics.active_dimensions(level_mean)
        results[f"level_{level}_mean_spread"] = metrics.mean_spread(level_mean)
        results[f"level_{level}_mmd"] = metrics.prior_mmd(level_mean, seed=seed + level)
        if level_scale is not None:
            results[f"level_{level}_posterior_scale"] = float(np.mean(level_scale))
            noise = noise_rng.standard_normal(level_mean.shape).astype(np.float32)
            sampled_codes.append(level_mean + level_scale * noise)
    levels = range(1, len(level_means) + 1)
    results["active_dims"] = sum(results[f"level_{level}_active_dims"] for level in levels)
    results["latent_mmd"] = sum(results[f"level_{level}_mmd"] for level in levels)
    results["latent_mmd_joint"] = metrics.prior_mmd(means, seed=seed)
    if sampled_codes:
        # The model's own MMD term: per level or over the whole code, as it was trained.
        if vae.mmd_per_level:
            results["latent_mmd_sampled"] = sum(
                metrics.prior_mmd(codes, seed=seed + 100 + level)
                for level, codes in enumerate(sampled_codes, 1)
            )
        else:
            results["latent_mmd_sampled"] = metrics.prior_mmd(
                np.concatenate(sampled_codes, axis=1), seed=seed + 100
            )
    return results
