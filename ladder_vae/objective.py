"""The objective `LadderVAE` trains on, its trackers, and the train and test steps that share it.

The training side of the model, kept apart as Keras keeps its `Trainer` apart from `Layer`: a
base class of `LadderVAE`, so the model still owns its trackers, lists them in `metrics` and
returns their results from `train_step` and `test_step` (keras.io's VAE pattern).
"""

import keras
import tensorflow as tf

from ladder_vae import losses
from ladder_vae.distribute.replicas import gather_replicas, step_logs


class LadderObjective:
    """The objective of `LadderVAE` (see `ladder_vae.losses`):

        reconstruction_sigma -> Gaussian NLL, mmd_weight * MMD^2(q(z) || p(z)),
        ssim_weight * (1 - SSIM(x, x_mean)),
        and, where `level_kl_weights` has a weight > 0, sum_i weight_i * KL(q(z_i | x) || p(z_i)),

    computed once in `compute_loss_terms` for both `train_step` and `test_step`.

    Uses the model's `encode`, `reparameterize`, `resample_levels`, `decode`, `split_levels`
    and `prior_sample`, and its `reconstruction_sigma`, `mmd_weight`, `ssim_weight`,
    `mmd_per_level` and `level_kl_weights`; the model calls `_create_trackers` in its
    constructor.
    """

    def _create_trackers(self):
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.mmd_tracker = keras.metrics.Mean(name="mmd")
        self.ssim_loss_tracker = keras.metrics.Mean(name="ssim_loss")
        self.ssim_tracker = keras.metrics.Mean(name="ssim")
        # Logged only by models that pay it, so that other runs' logs keep their columns.
        self.kl_tracker = keras.metrics.Mean(name="kl") if self._pays_kl else None

    @property
    def _pays_kl(self):
        return any(weight > 0 for weight in self.level_kl_weights)

    @property
    def metrics(self):
        trackers = [
            self.loss_tracker,
            self.reconstruction_tracker,
            self.mmd_tracker,
            self.ssim_loss_tracker,
            self.ssim_tracker,
        ]
        return trackers + ([self.kl_tracker] if self.kl_tracker is not None else [])

    def compute_loss_terms(self, images, training=False):
        """Every term of the objective for one batch, shared by `train_step` and `test_step`.

        Returns:
            A dict of float32 scalars: `loss` (the total), `reconstruction`, `mmd`, `ssim_loss`
            (1 - SSIM, the term), `ssim` (mean SSIM, for monitoring) and, for a model that pays
            a KL term, `kl` (the weighted sum over levels, as added to the loss).
        """
        posteriors = self.encode(images, training=training)
        codes = self.reparameterize(posteriors)
        decoded_codes = self.resample_levels(codes) if training else codes
        reconstructions = self.decode(decoded_codes, training=training)
        # MMD compares two samples, and one replica's share of the batch is a noisier sample of
        # q(z): under tf.distribute the codes of all replicas are gathered (the gather sends each
        # replica the exact gradient of its rows) and compared with one prior draw of the global
        # batch size, the same on every replica since they share the seed.
        global_codes = self.split_levels(gather_replicas(keras.ops.concatenate(codes, axis=-1)))
        prior_codes = self.prior_sample(
            keras.ops.shape(global_codes[0])[0], dtype=global_codes[0].dtype
        )

        reconstruction = losses.gaussian_nll(images, reconstructions, self.reconstruction_sigma)
        mmd = losses.latent_mmd(global_codes, prior_codes, per_level=self.mmd_per_level)
        ssim_loss = losses.ssim_loss(images, reconstructions)
        mean_ssim = 1.0 - ssim_loss
        total = reconstruction + self.mmd_weight * mmd + self.ssim_weight * ssim_loss
        terms = {
            "reconstruction": reconstruction,
            "mmd": mmd,
            "ssim_loss": ssim_loss,
            "ssim": mean_ssim,
        }
        if self._pays_kl:
            terms["kl"] = tf.add_n(
                [
                    weight * losses.gaussian_kl(mean, scale)
                    for weight, (mean, scale) in zip(self.level_kl_weights, posteriors)
                    if weight > 0
                ]
            )
            total = total + terms["kl"]
        return {"loss": total, **terms}

    def _update_trackers(self, terms):
        for tracker in self.metrics:
            tracker.update_state(terms[tracker.name])
        return step_logs({tracker.name: tracker.result() for tracker in self.metrics})

    def train_step(self, data):
        images = _images_of(data)
        with tf.GradientTape() as tape:
            terms = self.compute_loss_terms(images, training=True)
            # Gradients are summed over replicas under tf.distribute, so each replica
            # contributes its share of the mean.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled_loss = self.optimizer.scale_loss(terms["loss"] / replicas)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._update_trackers(terms)

    def test_step(self, data):
        return self._update_trackers(self.compute_loss_terms(_images_of(data), training=False))


def _images_of(data):
    """The images of a batch that is either images or (images, labels)."""
    if isinstance(data, (tuple, list)):
        return data[0]
    return data
