"""The three terms of the training objective, as plain functions.

total = reconstruction + mmd_weight * MMD^2(q(z) || p(z)) + ssim_weight * (1 - SSIM(x, x_hat))
        [+ sum_i level_kl_weights[i] * KL(q(z_i | x) || N(0, I)), an option]

All functions compute in float32 whatever the dtype of their inputs, so they stay exact under
mixed precision.
"""

import tensorflow as tf

# SSIM window for 28x28 digits. The usual 11x11 window (sigma 1.5) was designed for natural
# images of hundreds of pixels; on a 28x28 digit whose strokes are 2-3 pixels wide it averages
# over a third of the image and leaves an 18x18 valid map. A 7x7 window with sigma 1.0 still sees
# a whole stroke and its background, and gives a 22x22 map.
SSIM_FILTER_SIZE = 7
SSIM_FILTER_SIGMA = 1.0


def gaussian_nll(images, reconstructions, sigma=1.0):
    """Negative log-likelihood of `images` under N(reconstructions, sigma^2 I), up to a constant.

    Sum over pixels of squared error / (2 sigma^2), averaged over the batch. The constant
    `D * log(sigma * sqrt(2 pi))` is dropped: it does not depend on the model.

    Args:
        images, reconstructions: float tensors [batch, H, W, C] in [0, 1].
        sigma: the fixed observation standard deviation.

    Returns:
        A float32 scalar.
    """
    images = tf.cast(images, tf.float32)
    reconstructions = tf.cast(reconstructions, tf.float32)
    squared_error = tf.reduce_sum(tf.square(images - reconstructions), axis=[1, 2, 3])
    return tf.reduce_mean(squared_error) / (2.0 * sigma**2)


# The kernel is a sum of RBF kernels at these multiples of the base bandwidth^2. The base one
# alone saturates: once the reconstruction term has pushed the codes a few units from the prior
# (it does within the first epoch), every k(code, prior) is ~0, the MMD sits at E k(p, p') and
# its gradient vanishes, and the codes stay far out for many epochs. The wider kernels keep a
# restoring gradient at that distance and fade when q and p agree at their scale.
BANDWIDTH_SCALES = (1.0, 4.0, 16.0, 64.0)


def rbf_kernel_bandwidth(dim):
    """The RBF bandwidth rule: 2 * bandwidth^2 = dim, as in InfoVAE (Zhao et al. 2017).

    For two draws from N(0, I_dim), E||x - y||^2 = 2 dim, so the kernel of two typical prior
    samples is about exp(-2): neither saturated at 1 nor vanishing, at any latent size.
    """
    return (dim / 2.0) ** 0.5


def mmd(x, y, bandwidth=None, unbiased=True):
    """Squared maximum mean discrepancy between two samples, RBF kernels (Gretton et al. 2012).

    k(a, b) = sum over s in BANDWIDTH_SCALES of exp(-||a - b||^2 / (2 s bandwidth^2)), with
    bandwidth by `rbf_kernel_bandwidth` unless given (then one RBF kernel of that bandwidth).
    A sum of RBF kernels is characteristic like each of them, and its MMD^2 is the sum of theirs.
    The whole Gram matrix of the pooled sample [x; y] comes from one matrix product.

    Estimator. With `unbiased=True` (the default, used for training) this is the U-statistic of
    Gretton et al. (2012, eq. 3): the diagonals k(x_i, x_i) = k(y_j, y_j) (the number of
    kernels) are left out of the within-sample means, so its expectation is exactly MMD^2, 0
    when q = p. It can therefore come out slightly negative. With `unbiased=False` it is the
    V-statistic (eq. 5): always >= 0 and exactly 0 for identical samples, but biased upwards by
    about
    (2 k(x, x) - E k(x, x') - E k(y, y')) / n for two samples of one distribution. We train on
    the unbiased one because that bias is not a constant: its gradient pulls the codes of a batch
    together, a small push towards posterior collapse that the U-statistic does not have.

    Args:
        x: float tensor [n, dim], n >= 2 for the unbiased estimator.
        y: float tensor [m, dim], m >= 2 for the unbiased estimator.
        bandwidth: one RBF bandwidth; `None` for the scaled sum above.
        unbiased: U-statistic (True) or V-statistic (False).

    Returns:
        A float32 scalar.
    """
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.float32)
    if bandwidth is None:
        base = rbf_kernel_bandwidth(x.shape[-1]) ** 2
        squared_bandwidths = [scale * base for scale in BANDWIDTH_SCALES]
    else:
        squared_bandwidths = [bandwidth**2]
    n = tf.shape(x)[0]
    m = tf.shape(y)[0]
    pooled = tf.concat([x, y], axis=0)
    squared_norms = tf.reduce_sum(tf.square(pooled), axis=1)
    squared_distances = (
        squared_norms[:, None]
        + squared_norms[None, :]
        - 2.0 * tf.matmul(pooled, pooled, transpose_b=True)
    )
    squared_distances = tf.maximum(squared_distances, 0.0)
    kernel = tf.add_n([tf.exp(-squared_distances / (2.0 * h2)) for h2 in squared_bandwidths])
    diagonal = float(len(squared_bandwidths))
    k_xx = kernel[:n, :n]
    k_yy = kernel[n:, n:]
    k_xy = kernel[:n, n:]
    n_float = tf.cast(n, tf.float32)
    m_float = tf.cast(m, tf.float32)
    if unbiased:
        # The diagonal of the Gram matrix of a sum of RBF kernels is exactly their number.
        xx = (tf.reduce_sum(k_xx) - diagonal * n_float) / tf.maximum(n_float * (n_float - 1.0), 1.0)
        yy = (tf.reduce_sum(k_yy) - diagonal * m_float) / tf.maximum(m_float * (m_float - 1.0), 1.0)
    else:
        xx = tf.reduce_mean(k_xx)
        yy = tf.reduce_mean(k_yy)
    return xx + yy - 2.0 * tf.reduce_mean(k_xy)


def ssim(images, reconstructions):
    """Per-image SSIM (Wang et al. 2004) with `tf.image.ssim`, max_val 1, the window above.

    Returns:
        float32 tensor [batch], 1 for identical images.
    """
    return tf.image.ssim(
        tf.cast(images, tf.float32),
        tf.cast(reconstructions, tf.float32),
        max_val=1.0,
        filter_size=SSIM_FILTER_SIZE,
        filter_sigma=SSIM_FILTER_SIGMA,
    )


def ssim_loss(images, reconstructions):
    """1 - mean SSIM over the batch: the perceptual term of Zhao, Gallo, Frosio & Kautz (2017)."""
    return 1.0 - tf.reduce_mean(ssim(images, reconstructions))


def latent_mmd(codes, prior_codes, per_level=True, unbiased=True):
    """MMD^2 between the posterior codes of a batch and an equal batch from the prior N(0, I).

    Args:
        codes, prior_codes: lists with one float tensor [batch, dim_l] per ladder level.
        per_level: sum of one MMD per level (as the official VLAE code matches each level's
            marginal), or one MMD over the concatenated code, which also asks the levels to be
            independent of each other as they are under the factorised prior.
        unbiased: passed to `mmd`.
    """
    if per_level:
        return tf.add_n([mmd(q, p, unbiased=unbiased) for q, p in zip(codes, prior_codes)])
    return mmd(tf.concat(codes, axis=-1), tf.concat(prior_codes, axis=-1), unbiased=unbiased)


def gaussian_kl(means, scales):
    """KL(N(means, diag(scales^2)) || N(0, I)) of each image's posterior, averaged over the batch.

    The closed form, summed over the latent dimensions: 0.5 (mu^2 + sigma^2 - 1) - log sigma.
    Unlike the MMD term, which compares the codes of the whole batch with the prior, it is paid
    per image: a code that tells images apart more precisely costs more (the VAE's rate).

    Args:
        means, scales: float tensors [batch, dim], scales > 0.

    Returns:
        A float32 scalar, in nats.
    """
    means = tf.cast(means, tf.float32)
    scales = tf.cast(scales, tf.float32)
    per_dimension = 0.5 * (tf.square(means) + tf.square(scales) - 1.0) - tf.math.log(scales)
    return tf.reduce_mean(tf.reduce_sum(per_dimension, axis=-1))
