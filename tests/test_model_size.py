"""The size of a model from its hyperparameters, against the model Keras builds."""

import numpy as np
import pytest

from ladder_vae import model_size, preflight
from ladder_vae.config import TrainConfig
from ladder_vae.errors import ConfigError
from ladder_vae.hyperparameters import LEVEL_INPUTS
from ladder_vae.model import LadderVAE


@pytest.mark.parametrize("level_input", LEVEL_INPUTS)
@pytest.mark.parametrize(
    "image_shape, latent_dims, base_filters",
    [
        ((28, 28, 1), (2, 2, 4), 32),
        ((28, 28, 1), (2, 3, 1, 2), 8),
        ((7, 7, 1), (2, 2), 4),
        ((32, 20, 3), (3,), 5),
    ],
)
def test_parameter_counts_are_those_of_the_built_model(
    image_shape, latent_dims, base_filters, level_input
):
    model = LadderVAE(
        image_shape=image_shape,
        latent_dims=latent_dims,
        base_filters=base_filters,
        level_input=level_input,
    )
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    non_trainable = sum(int(np.prod(weight.shape)) for weight in model.non_trainable_weights)
    counts = model_size.parameter_counts(image_shape, latent_dims, base_filters, level_input)
    assert counts == (
        trainable,
        non_trainable,
    )
    assert model_size.feature_sizes(image_shape, len(latent_dims)) == [
        tuple(size) for size in model.feature_sizes
    ]


def test_the_most_levels_allowed_train_to_a_finite_loss_and_one_more_is_refused():
    image_shape = (28, 28, 1)
    most = model_size.max_levels(image_shape)
    assert most == 5  # 28 -> 14 -> 7 -> 4 -> 2 -> 1.
    model = LadderVAE(image_shape=image_shape, latent_dims=(1,) * most, base_filters=2)
    images = np.random.default_rng(0).uniform(size=(4, *image_shape)).astype("float32")
    assert np.isfinite(float(model.compute_loss_terms(images)["loss"]))
    preflight.check_model_size(TrainConfig(latent_dims=(1,) * most), image_shape)
    with pytest.raises(ConfigError, match="6 levels, but each level halves the images"):
        preflight.check_model_size(TrainConfig(latent_dims=(1,) * (most + 1)), image_shape)


def test_training_memory_is_refused_beyond_what_is_available():
    config = TrainConfig(base_filters=64, batch_size=256)
    need = model_size.training_memory(
        (28, 28, 1), config.latent_dims, 64, 256, config.level_input
    )
    assert need["total_bytes"] == need["parameter_bytes"] + need["activation_bytes"]
    # Four float32 copies of each trainable weight: itself, its gradient, Adam's two moments.
    assert need["parameter_bytes"] > 4 * 4 * 0.99 * need["parameters"]
    preflight.check_model_size(config, (28, 28, 1), available_bytes=need["total_bytes"])
    with pytest.raises(ConfigError, match=r"--base-filters 64 .* --batch-size 256: estimated "):
        preflight.check_model_size(config, (28, 28, 1), available_bytes=need["total_bytes"] - 1)
    assert model_size.available_memory_bytes() > 0
