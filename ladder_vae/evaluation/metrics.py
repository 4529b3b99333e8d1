"""The measures of a trained model, as plain functions of arrays (numpy in, Python floats out).

Every function here has a known answer on a constructed case (see tests/test_evaluation.py):
identical feature sets are at Frechet distance 0, uniform predictions have Inception Score 1,
blurring lowers the sharpness, and so on.
"""

import numpy as np
import tensorflow as tf

from ladder_vae import losses

# Burda, Grosse & Salakhutdinov (2016): a latent unit is active when Cov_x(E[z_u | x]) > 0.01.
ACTIVE_UNIT_THRESHOLD = 0.01
# A class counts as covered when it holds at least this fraction of its uniform share of the
# predictions (10% of 1/K), so that a handful of stray predictions does not count as a class.
COVERAGE_MIN_SHARE = 0.1
# Codes per MMD estimate (its Gram matrix has (2 chunk)^2 entries), and codes used at most.
MMD_CHUNK = 1000
MMD_MAX_CODES = 5000


# Image quality -----------------------------------------------------------------------------------


def mean_squared_error(images, reconstructions):
    """Mean over images and pixels of (x - x_hat)^2, for images in [0, 1]."""
    difference = np.asarray(images, np.float64) - np.asarray(reconstructions, np.float64)
    return float(np.mean(np.square(difference)))


def mean_ssim(images, reconstructions, batch_size=1000):
    """Mean SSIM (`ladder_vae.losses.ssim`, the training term's window), in batches."""
    values = [
        losses.ssim(images[start : start + batch_size], reconstructions[start : start + batch_size])
        for start in range(0, len(images), batch_size)
    ]
    return float(tf.reduce_mean(tf.concat(values, axis=0)))


def gradient_magnitude(images):
    """Per-image mean gradient magnitude: mean over pixels of sqrt(dx^2 + dy^2).

    dx and dy are forward differences of neighbouring pixels (on the (H-1) x (W-1) pixels that
    have both), averaged over channels. Blur spreads an edge over more pixels with smaller steps,
    which lowers this; it is 0 for a constant image.

    Args:
        images: array [n, H, W, C] in [0, 1].

    Returns:
        float64 array [n].
    """
    images = np.asarray(images, np.float32)
    dx = images[:, :-1, 1:, :] - images[:, :-1, :-1, :]
    dy = images[:, 1:, :-1, :] - images[:, :-1, :-1, :]
    magnitude = np.sqrt(dx * dx + dy * dy)
    # Reshaped to rows first: numpy's mean over several trailing axes is ~5x slower.
    return magnitude.reshape(len(magnitude), -1).mean(axis=1, dtype=np.float64)


def sharpness(images):
    """Mean gradient magnitude of a set of images (see `gradient_magnitude`)."""
    return float(np.mean(gradient_magnitude(images)))


# Feature-space distances ---------------------------------------------------------------------


def gaussian_statistics(features):
    """Mean [d] and covariance [d, d] (float64) of features [n, d], the Frechet distance's input."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"`features` must be [n >= 2, d]. Received shape: {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(statistics_a, statistics_b):
    """Frechet (2-Wasserstein) distance between two Gaussians, squared, as in FID.

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))   (Dowson & Landau 1982;
    Heusel et al. 2017). Tr (S_a S_b)^(1/2) is computed as the sum of the square roots of the
    eigenvalues of the symmetric matrix S_a^(1/2) S_b S_a^(1/2), which has the same spectrum as
    S_a S_b and stays real where S_a S_b is nearly singular (ReLU features often are).

    Args:
        statistics_a, statistics_b: (mean [d], covariance [d, d]) pairs from
            `gaussian_statistics`.

    Returns:
        A float >= 0; 0 for identical statistics (to about 1e-9 relative).
    """
    mean_a, covariance_a = statistics_a
    mean_b, covariance_b = statistics_b
    eigenvalues, eigenvectors = np.linalg.eigh(covariance_a)
    root_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    product = root_a @ covariance_b @ root_a
    trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)))
    distance = (
        np.sum(np.square(mean_a - mean_b))
        + np.trace(covariance_a)
        + np.trace(covariance_b)
        - 2.0 * trace_root
    )
    return float(max(distance, 0.0))


def frechet_distance_of_features(features_a, features_b):
    """`frechet_distance` of two feature sets [n, d] and [m, d]."""
    return frechet_distance(gaussian_statistics(features_a), gaussian_statistics(features_b))


# Classifier predictions ----------------------------------------------------------------------


def inception_score(probabilities, eps=1e-12):
    """exp(E_x KL(p(y | x) || p(y))), with p(y) the mean prediction (Salimans et al. 2016).

    Between 1 (every prediction the same, or every prediction uniform) and K, the number of
    classes (confident predictions spread evenly over all classes). Computed over the whole set
    in one split, not as the mean of 10 splits.

    Args:
        probabilities: array [n, K] of class probabilities (rows sum to 1).
    """
    probabilities = np.asarray(probabilities, np.float64)
    marginal = probabilities.mean(axis=0, keepdims=True)
    kl = np.sum(probabilities * (np.log(probabilities + eps) - np.log(marginal + eps)), axis=1)
    return float(np.exp(np.mean(kl)))


def class_histogram(probabilities):
    """Fraction of the set predicted as each class (argmax of each row): array [K]."""
    probabilities = np.asarray(probabilities)
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    return counts / max(len(probabilities), 1)


def class_coverage(probabilities, min_share=COVERAGE_MIN_SHARE):
    """Fraction of the K classes that the classifier's argmax predicts for the set.

    A class counts when it receives at least `min_share / K` of the predictions, so that a few
    stray predictions do not make a class covered. 1/K for a set of one digit, 1 for all ten.
    """
    histogram = class_histogram(probabilities)
    num_classes = len(histogram)
    return float(np.mean(histogram >= min_share / num_classes))


def class_entropy(probabilities):
    """Entropy of the predicted-class histogram over log K: 1 for balanced classes, 0 for one."""
    histogram = class_histogram(probabilities)
    nonzero = histogram[histogram > 0]
    return float(-np.sum(nonzero * np.log(nonzero)) / np.log(len(histogram)))


# Latent codes --------------------------------------------------------------------------------


def active_dimensions(means, threshold=ACTIVE_UNIT_THRESHOLD):
    """Number of code dimensions u with Var_x(E[z_u | x]) > threshold (Burda et al. 2016).

    An inactive dimension has the same posterior mean for every image: the decoder ignores it.

    Args:
        means: posterior means [n, d] of one level over a data set.
    """
    return int(np.sum(np.var(np.asarray(means, np.float64), axis=0) > threshold))


def mean_spread(means):
    """Mean over dimensions of Std_x(E[z_u | x]): 1 when the means fill the N(0, 1) prior."""
    return float(np.mean(np.std(np.asarray(means, np.float64), axis=0)))


def prior_mmd(codes, seed=0, chunk=MMD_CHUNK, max_codes=MMD_MAX_CODES):
    """MMD^2 between codes [n, d] and as many draws of the prior N(0, I).

    `ladder_vae.losses.mmd` (the sum of RBF kernels and the unbiased U-statistic of training)
    on chunks of `chunk` codes, averaged: about 0 (it can be slightly negative) when the codes
    follow the prior. At most `max_codes` codes, drawn at random, are used: the cost
    grows with chunk^2 per chunk, and the estimate's standard error is already ~1e-3 there.

    The codes are shuffled first. The estimator assumes independent draws, and the codes of
    consecutive images of a data set are not: MNIST's test digits come in runs by the same
    writer, and chunks of them in file order measured 2-3x the MMD of shuffled ones.
    """
    codes = np.asarray(codes, np.float32)
    rng = np.random.default_rng(seed)
    codes = codes[rng.permutation(len(codes))[:max_codes]]
    estimates, weights = [], []
    for start in range(0, len(codes), chunk):
        part = codes[start : start + chunk]
        if len(part) < 2:
            continue
        prior = rng.standard_normal(part.shape).astype(np.float32)
        estimates.append(float(losses.mmd(part, prior)))
        weights.append(len(part))
    if not estimates:
        raise ValueError(f"`prior_mmd` needs at least 2 codes. Received shape: {codes.shape}")
    return float(np.average(estimates, weights=weights))
