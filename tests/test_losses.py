import numpy as np
import pytest
import tensorflow as tf

from ladder_vae import losses
from tests import ssim_reference


def normal(n, dim, seed, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32) + shift


def test_mmd_of_a_sample_with_itself_is_about_zero():
    x = normal(500, 2, seed=0)
    assert abs(float(losses.mmd(x, x))) < 5e-3
    assert float(losses.mmd(x, x, unbiased=False)) == pytest.approx(0.0, abs=1e-6)


def test_mmd_detects_a_shift():
    x, y = normal(500, 2, seed=0), normal(500, 2, seed=1, shift=1.0)
    same = float(losses.mmd(x, normal(500, 2, seed=2)))
    shifted = float(losses.mmd(x, y))
    assert shifted > 0.1
    assert shifted > 20 * abs(same)


def test_unbiased_mmd_has_zero_mean_and_biased_is_positive_for_equal_distributions():
    """The documented bias: over many pairs of samples of one distribution the U-statistic
    averages to 0 while the V-statistic is always positive, by about (2 - 2 E k) / n."""
    n, dim = 16, 2
    unbiased, biased = [], []
    for draw in range(300):
        x, y = normal(n, dim, seed=2 * draw), normal(n, dim, seed=2 * draw + 1)
        unbiased.append(float(losses.mmd(x, y)))
        biased.append(float(losses.mmd(x, y, unbiased=False)))
    unbiased, biased = np.array(unbiased), np.array(biased)
    standard_error = unbiased.std() / np.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 3 * standard_error
    assert (biased >= 0).all()
    assert biased.mean() > 10 * standard_error
    # For x, x' ~ N(0, I_d) and one RBF kernel of bandwidth h, E k(x, x') = (1 + 2 / h^2)^(-d/2);
    # here d = 2 and h^2 = s for each scale s of the kernel sum, so E k = s / (s + 2).
    expected = sum(2 - 2 * s / (s + 2) for s in losses.BANDWIDTH_SCALES) / n
    assert biased.mean() == pytest.approx(expected, rel=0.2)


def test_the_kernel_sum_keeps_a_gradient_for_codes_far_from_the_prior():
    """One RBF kernel of the base bandwidth saturates: codes 10 units away get no pull back."""
    prior = tf.constant(normal(256, 6, seed=0))
    codes = tf.Variable(normal(256, 6, seed=1, shift=10.0))
    for kwargs, pulls_back in ((dict(bandwidth=losses.rbf_kernel_bandwidth(6)), False), ({}, True)):
        with tf.GradientTape() as tape:
            value = losses.mmd(codes, prior, **kwargs)
        # Summed over the codes, the repulsion between codes cancels: what is left is the pull.
        pull = float(tf.norm(tf.reduce_sum(tape.gradient(value, codes), axis=0)))
        assert (pull > 1e-3) == pulls_back, (kwargs, pull)


def test_mmd_grows_with_the_shift():
    x = normal(300, 4, seed=0)
    values = [float(losses.mmd(x, normal(300, 4, seed=1, shift=s))) for s in (0.25, 0.5, 1.0)]
    assert values == sorted(values)


def test_latent_mmd_per_level_and_joint():
    codes = [tf.constant(normal(200, 2, seed=level)) for level in range(3)]
    prior = [tf.constant(normal(200, 2, seed=10 + level)) for level in range(3)]
    per_level = float(losses.latent_mmd(codes, prior))
    expected = sum(float(losses.mmd(q, p)) for q, p in zip(codes, prior))
    assert per_level == pytest.approx(expected, abs=1e-6)
    shifted = [codes[0] + 2.0] + codes[1:]
    assert float(losses.latent_mmd(shifted, prior, per_level=False)) > 0.1


def test_ssim_loss_is_zero_for_identical_images_and_positive_otherwise(digit_batch):
    assert float(losses.ssim_loss(digit_batch, digit_batch)) == pytest.approx(0.0, abs=1e-6)
    blurred = tf.nn.avg_pool2d(digit_batch, 3, 1, "SAME")
    assert float(losses.ssim_loss(digit_batch, blurred)) > 0.05


def test_ssim_is_the_documented_one_7x7_window_sigma_1(digit_batch):
    """Per-image SSIM equals the definition computed in numpy with README's window (7x7,
    sigma 1), and another sigma would be told apart by far more than the tolerance."""
    others = np.roll(digit_batch, 1, axis=2) * 0.8 + 0.1
    expected = ssim_reference.ssim(digit_batch, others, size=7, sigma=1.0)
    np.testing.assert_allclose(losses.ssim(digit_batch, others), expected, atol=1e-4)
    other_sigma = ssim_reference.ssim(digit_batch, others, size=7, sigma=1.5)
    assert np.abs(other_sigma - expected).max() > 100 * 1e-4
    assert float(losses.ssim_loss(digit_batch, others)) == pytest.approx(
        1.0 - expected.mean(), abs=1e-4
    )


def test_gaussian_nll_is_half_the_squared_error_over_sigma_squared():
    images = np.zeros((2, 4, 4, 1), np.float32)
    reconstructions = np.full((2, 4, 4, 1), 0.5, np.float32)
    # 16 pixels * 0.25 = 4 per image; / (2 * 0.5^2) = 8.
    assert float(losses.gaussian_nll(images, reconstructions, sigma=0.5)) == pytest.approx(8.0)


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    """E_q[log q(z) - log p(z)] over many draws, per image, then the batch mean."""
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [1.5, -0.5], [0.2, 2.0]], np.float32)
    scales = np.array([[1.0, 1.0], [0.3, 2.0], [0.05, 0.8]], np.float32)
    draws = means + scales * rng.standard_normal((200_000, *means.shape)).astype(np.float32)
    log_q = -0.5 * np.square((draws - means) / scales) - np.log(scales)
    log_p = -0.5 * np.square(draws)
    per_image = (log_q - log_p).sum(axis=-1).mean(axis=0)
    assert per_image[0] == pytest.approx(0.0, abs=1e-2)
    assert float(losses.gaussian_kl(means, scales)) == pytest.approx(per_image.mean(), rel=1e-2)
    assert float(losses.gaussian_kl(means[:1], scales[:1])) == pytest.approx(0.0, abs=1e-7)
