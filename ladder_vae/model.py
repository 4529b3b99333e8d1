"""The variational ladder autoencoder (Zhao, Song & Ermon, ICML 2017), trained with MMD and SSIM."""

import math

import keras
import tensorflow as tf

from ladder_vae import blocks, hyperparameters, model_size
from ladder_vae.distribute.replicas import draw_rows
from ladder_vae.objective import LadderObjective

# The smallest posterior standard deviation, so that log-densities and gradients stay finite.
MIN_SCALE = 1e-4


@keras.saving.register_keras_serializable(package="ladder_vae")
class LadderVAE(LadderObjective, keras.Model):
    """A variational ladder autoencoder with an MMD prior term and an SSIM reconstruction term.

    Inference, with h_0 = x and one ladder level per entry of `latent_dims`:
        h_i = g_i(h_{i-1}),  q(z_i | x) = N(mu_i(h_i), sigma_i(h_i)),
    where g_i is two Conv2D blocks (the first halves the resolution) with
    `base_filters * 2**(i - 1)` filters, so higher, more abstract levels get more capacity.
    Generation, with the prior p(z_i) = N(0, I):
        z~_L = f_L(z_L),  z~_j = f_j([z~_{j+1} : z_j]),  x_mean = f_0(z~_1)  in [0, 1].
    Each f_j mirrors g_j with a transposed convolution. The top code z_L enters through a dense
    projection to the feature map of h_L: it lays out the digit. A lower code z_j enters f_j by
    `level_input`:
    - "modulated-fj" (default): z_j scales and shifts every channel (`ModulatedConv`, FiLM)
      of both layers of f_j, the upsampling into the resolution of h_j and the convolution
      there, the same at every position; f_0, the upsampling to the image, takes no code, as
      in the paper's x_mean = f_0(z~_1). A code that restyles features can change how every
      stroke is drawn but cannot draw new ones, so identity stays at the top; with the default
      sizes the bottom level is a stroke-thickness level (docs/hierarchy.md, "The default
      now").
    - "modulated": the same modulation one stage lower, in the upsampling into the resolution
      of h_{j-1}, the input g_j reads z_j's evidence from (z_1 at the image's resolution); the
      stage under the top is drawn from z_L alone. The default before "modulated-fj": its
      bottom level holds less of stroke thickness and, with training, more identity.
    - "concatenated": z_j goes through a dense projection to a feature map that is concatenated
      with z~_{j+1}, as in the official VLAE code's merge of each level. A dense map can draw a
      whole digit from z_j, so the levels share identity.

    The model owns its objective (`LadderObjective`, see `ladder_vae.losses`):
        reconstruction_sigma -> Gaussian NLL, mmd_weight * MMD^2(q(z) || p(z)),
        ssim_weight * (1 - SSIM(x, x_mean)), optionally level_kl_weights[i] * KL per level,
    computed once in `compute_loss_terms` for both `train_step` and `test_step`.

    Args:
        image_shape: (height, width, channels) of the images, e.g. (28, 28, 1).
        latent_dims: size of z_i for each level, lowest level first; its length is L.
        base_filters: filters of the lowest level's convolutions; doubled at each level.
        reconstruction_sigma: standard deviation of the Gaussian likelihood p(x | z).
        mmd_weight: weight of the MMD term.
        ssim_weight: weight of the (1 - SSIM) term; 0 gives the model without SSIM.
        mmd_per_level: one MMD per level (True, as the official VLAE code) or one over the
            concatenated code (False, the default: it also asks the levels to be independent,
            as under the factorised prior, and measured better; see README "Choices").
        level_input: "modulated-fj", "modulated" or "concatenated", see above.
        level_resample: probability with which, in each training step, each image's code of
            each level below the top is replaced by a fresh prior draw before decoding (see
            `resample_levels`); 0 turns it off.
        level_kl_weights: one weight per level (lowest first) of KL(q(z_i | x) || N(0, I)),
            an information cost paid per image, added to the MMD term as in InfoVAE's full
            objective; None (the default) or all zeros leaves it out. See README "Choices" for
            what it measured.
        seed: seed of the reparameterisation and prior noise drawn during training.
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        latent_dims=hyperparameters.LATENT_DIMS,
        base_filters=hyperparameters.BASE_FILTERS,
        reconstruction_sigma=hyperparameters.RECONSTRUCTION_SIGMA,
        mmd_weight=hyperparameters.MMD_WEIGHT,
        ssim_weight=hyperparameters.SSIM_WEIGHT,
        mmd_per_level=hyperparameters.MMD_PER_LEVEL,
        level_input=hyperparameters.LEVEL_INPUT,
        level_resample=hyperparameters.LEVEL_RESAMPLE,
        level_kl_weights=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        image_shape = tuple(int(size) for size in image_shape)
        latent_dims = tuple(int(dim) for dim in latent_dims)
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(
                "`image_shape` must be (height, width, channels). "
                f"Received: image_shape={image_shape}"
            )
        if not latent_dims or min(latent_dims) < 1:
            raise ValueError(
                "`latent_dims` must list at least one positive size per level. "
                f"Received: latent_dims={latent_dims}"
            )
        if level_input not in hyperparameters.LEVEL_INPUTS:
            raise ValueError(
                f"`level_input` must be one of {hyperparameters.LEVEL_INPUTS}. "
                f"Received: level_input={level_input!r}"
            )
        self.image_shape = image_shape
        self.latent_dims = latent_dims
        self.base_filters = int(base_filters)
        self.reconstruction_sigma = float(reconstruction_sigma)
        self.mmd_weight = float(mmd_weight)
        self.ssim_weight = float(ssim_weight)
        self.mmd_per_level = bool(mmd_per_level)
        self.level_input = level_input
        self.level_resample = float(level_resample)
        if not 0.0 <= self.level_resample < 1.0:
            raise ValueError(
                "`level_resample` must be a probability in [0, 1). "
                f"Received: level_resample={level_resample!r}"
            )
        kl_weights = (0.0,) * len(latent_dims) if level_kl_weights is None else level_kl_weights
        self.level_kl_weights = tuple(float(weight) for weight in kl_weights)
        if len(self.level_kl_weights) != len(latent_dims) or not all(
            math.isfinite(weight) and weight >= 0 for weight in self.level_kl_weights
        ):
            raise ValueError(
                "`level_kl_weights` must hold one finite weight >= 0 per level "
                f"({len(latent_dims)}). Received: level_kl_weights={level_kl_weights!r}"
            )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

        # Resolution of h_i: h_0 is the image, each level halves it (rounding up).
        self.feature_sizes = model_size.feature_sizes(image_shape, self.num_levels)
        self.level_filters = [self.base_filters * 2**level for level in range(self.num_levels)]

        self.encoder_blocks = blocks.encoder_blocks(self.level_filters)
        self.flatten = keras.layers.Flatten()
        self.mean_heads, self.scale_heads = blocks.posterior_heads(latent_dims)
        self.latent_projections, self.decoder_blocks, self.output_block = blocks.decoder_layers(
            self.level_filters, self.feature_sizes, image_shape[-1], self.level_input
        )

        self._create_trackers()
        # Built at once, so that a model is always complete: saved before any call, it still
        # restores its weights and optimizer state.
        self.build()

    @property
    def num_levels(self):
        return len(self.latent_dims)

    def build(self, input_shape=None):
        """Creates every weight by running one image through the encoder and the decoder."""
        if self.built:
            return
        self.call(keras.ops.zeros((1, *self.image_shape)), training=False)
        self.built = True

    # Inference and generation ----------------------------------------------------------------

    def encode(self, images, training=False):
        """Posterior parameters of every level.

        Args:
            images: float tensor [batch, H, W, C] in [0, 1].

        Returns:
            A list with one (mean, scale) pair of tensors [batch, latent_dims[i]] per level,
            lowest level first.
        """
        features = images
        posteriors = []
        for level in range(self.num_levels):
            features = self.encoder_blocks[level](features, training=training)
            flat = self.flatten(features)
            mean = self.mean_heads[level](flat)
            scale = self.scale_heads[level](flat) + MIN_SCALE
            posteriors.append((mean, scale))
        return posteriors

    def decode(self, codes, training=False):
        """Image means from one code per level.

        Args:
            codes: a list of tensors [batch, latent_dims[i]], lowest level first.

        Returns:
            float tensor [batch, H, W, C] in [0, 1].
        """
        if len(codes) != self.num_levels:
            raise ValueError(
                f"`decode` needs one code per level ({self.num_levels}). "
                f"Received: {len(codes)} codes"
            )
        top = self.num_levels - 1
        features = self.decoder_blocks[top](
            self.latent_projections[-1](codes[top], training=training), training=training
        )
        if self.level_input == "modulated-fj" and top > 0:
            for level in reversed(range(top)):
                upsample, crop, convolution = self.decoder_blocks[level]
                features = crop(upsample(features, codes[level], training=training))
                features = convolution(features, codes[level], training=training)
            return self.output_block(features, training=training)
        if self.level_input == "concatenated" or top == 0:
            for level in reversed(range(top)):
                projected = self.latent_projections[level](codes[level], training=training)
                features = keras.ops.concatenate([features, projected], axis=-1)
                features = self.decoder_blocks[level](features, training=training)
            return self.output_block(features, training=training)
        features = self.decoder_blocks[top - 1](features, training=training)
        for stage in reversed(range(top)):
            upsample, crop, convolution = (
                self.output_block if stage == 0 else self.decoder_blocks[stage - 1]
            )
            features = crop(upsample(features, codes[stage], training=training))
            if stage == 0:
                return convolution(features)
            features = convolution(features, codes[stage], training=training)

    def reparameterize(self, posteriors, seed=None):
        """One draw z_i = mu_i + sigma_i * eps per level, eps ~ N(0, I).

        The noise of all levels is one draw, split per level: with an int seed, separate draws
        would give levels of equal size the same eps.
        """
        means = keras.ops.concatenate([mean for mean, _ in posteriors], axis=-1)
        scales = keras.ops.concatenate([scale for _, scale in posteriors], axis=-1)
        batch_size, width = keras.ops.shape(means)[0], means.shape[-1]
        noise = self._draw_rows(keras.random.normal, batch_size, width, means.dtype, seed)
        return self.split_levels(means + scales * noise)

    def resample_levels(self, codes, seed=None):
        """Each image's code of each level below the top, replaced by a prior draw with
        probability `level_resample`; the top level's code is kept.

        This is the information cost that makes each level hold its own kind of factor. The MMD
        term matches q(z) to p(z) but costs nothing per image, so a lower level may carry the
        digit's identity as well as the top one does. When a lower code is redrawn, whatever it
        carried is lost: a lower level holding identity makes the decoder draw the wrong digit
        (a large reconstruction error), one holding style makes it draw the right digit in
        another style (a small one). So identity moves to the top, and the decoder learns to
        draw the same digit for any lower code, which is what a traversal of a lower level shows.
        Used in training steps only; the MMD term sees the codes before resampling.
        """
        if self.level_resample == 0.0 or self.num_levels == 1:
            return codes
        batch_size = keras.ops.shape(codes[0])[0]
        dtype = codes[0].dtype
        lower_levels = self.num_levels - 1
        replace = (
            self._draw_rows(keras.random.uniform, batch_size, lower_levels, dtype, seed)
            < self.level_resample
        )
        prior = self.split_levels(
            self._draw_rows(keras.random.normal, batch_size, sum(self.latent_dims), dtype, seed)
        )
        return [
            keras.ops.where(replace[:, level : level + 1], prior[level], codes[level])
            for level in range(lower_levels)
        ] + [codes[-1]]

    def _draw_rows(self, sampler, batch_size, width, dtype, seed=None):
        """`draw_rows`, each replica's rows of one draw, from the model's seed generator
        unless `seed` is given."""
        seed = self.seed_generator if seed is None else seed
        return draw_rows(sampler, batch_size, width, dtype, seed)

    def prior_sample(self, num_samples, seed=None, dtype="float32"):
        """A list of `num_samples` draws from p(z_i) = N(0, I), one tensor per level.

        One draw of the concatenated code, split per level, as the exported `sample` does.
        """
        seed = self.seed_generator if seed is None else seed
        codes = keras.random.normal((num_samples, sum(self.latent_dims)), seed=seed, dtype=dtype)
        return self.split_levels(codes)

    def split_levels(self, codes):
        """Splits concatenated codes [batch, sum(latent_dims)] into one tensor per level."""
        return tf.split(codes, list(self.latent_dims), axis=-1)

    def sample(self, num_samples, seed=None):
        """`num_samples` image means decoded from the prior; the same images for one int seed."""
        return self.decode(self.prior_sample(num_samples, seed=seed))

    def call(self, images, training=False):
        """Reconstructions: decoded posterior means (a posterior sample while training)."""
        posteriors = self.encode(images, training=training)
        if training:
            codes = self.reparameterize(posteriors)
        else:
            codes = [mean for mean, _ in posteriors]
        return self.decode(codes, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": list(self.image_shape),
                "latent_dims": list(self.latent_dims),
                "base_filters": self.base_filters,
                "reconstruction_sigma": self.reconstruction_sigma,
                "mmd_weight": self.mmd_weight,
                "ssim_weight": self.ssim_weight,
                "mmd_per_level": self.mmd_per_level,
                "level_input": self.level_input,
                "level_resample": self.level_resample,
                "level_kl_weights": list(self.level_kl_weights),
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Models saved before these options existed were all "concatenated", without resampling.
        config = {"level_input": "concatenated", "level_resample": 0.0, **config}
        return cls(**config)
