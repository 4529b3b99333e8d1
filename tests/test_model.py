import io
import zipfile

import h5py
import keras
import numpy as np
import pytest

from ladder_vae import hyperparameters, saving
from ladder_vae.config import TrainConfig
from ladder_vae.hyperparameters import LEVEL_INPUTS
from ladder_vae.layers import ModulatedConv
from ladder_vae.model import LadderVAE
from tests import ssim_reference

SMALL = dict(base_filters=8, seed=1)


@pytest.mark.parametrize(
    "image_shape, latent_dims",
    [((28, 28, 1), (2, 2, 2)), ((28, 28, 1), (3, 5)), ((32, 32, 3), (4, 4, 4, 4))],
)
def test_shapes(image_shape, latent_dims):
    model = LadderVAE(image_shape=image_shape, latent_dims=latent_dims, **SMALL)
    images = np.random.default_rng(0).random((5, *image_shape)).astype(np.float32)
    reconstructions = keras.ops.convert_to_numpy(model(images))
    assert reconstructions.shape == (5, *image_shape)
    assert reconstructions.min() >= 0.0 and reconstructions.max() <= 1.0
    posteriors = model.encode(images)
    assert [tuple(mean.shape) for mean, _ in posteriors] == [(5, dim) for dim in latent_dims]
    assert all(float(keras.ops.min(scale)) > 0 for _, scale in posteriors)
    assert model.sample(3, seed=0).shape == (3, *image_shape)
    assert model.decode(model.prior_sample(2, seed=0)).shape == (2, *image_shape)


def test_higher_levels_have_at_least_the_capacity_of_lower_ones():
    model = LadderVAE(**SMALL)
    model.build()
    sizes = [block.count_params() for block in model.encoder_blocks]
    assert sizes == sorted(sizes)


def test_sample_is_deterministic_per_seed():
    model = LadderVAE(**SMALL)
    first = keras.ops.convert_to_numpy(model.sample(4, seed=7))
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(model.sample(4, seed=7)))
    assert not np.allclose(first, keras.ops.convert_to_numpy(model.sample(4, seed=8)))


def test_decode_rejects_the_wrong_number_of_codes():
    model = LadderVAE(**SMALL)
    with pytest.raises(ValueError, match="one code per level"):
        model.decode(model.prior_sample(2)[:2])


def test_invalid_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="latent_dims"):
        LadderVAE(latent_dims=(2, 0))
    with pytest.raises(ValueError, match="image_shape"):
        LadderVAE(image_shape=(28, 28))


def test_train_steps_lower_the_loss_on_a_fixed_batch(digit_batch):
    keras.utils.set_random_seed(0)
    model = LadderVAE(**SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    # Evaluated in training mode, so the measure is the objective the steps minimise.
    before = float(model.compute_loss_terms(digit_batch, training=True)["loss"])
    for _ in range(30):
        logs = model.train_on_batch(digit_batch, return_dict=True)
    after = float(model.compute_loss_terms(digit_batch, training=True)["loss"])
    assert set(logs) == {"loss", "reconstruction", "mmd", "ssim_loss", "ssim"}
    assert after < 0.7 * before


def test_test_step_reports_every_term(digit_batch):
    model = LadderVAE(**SMALL)
    model.compile(optimizer="adam")
    logs = model.evaluate(digit_batch, batch_size=32, return_dict=True, verbose=0)
    assert set(logs) == {"loss", "reconstruction", "mmd", "ssim_loss", "ssim"}
    expected = (
        logs["reconstruction"]
        + model.mmd_weight * logs["mmd"]
        + model.ssim_weight * logs["ssim_loss"]
    )
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    assert logs["ssim"] == pytest.approx(1.0 - logs["ssim_loss"], abs=1e-6)


def test_loss_terms_compare_the_images_with_their_reconstructions(digit_batch):
    """With a decoder that returns known images (the digits shifted and dimmed), every image
    term is what its formula gives for (images, those reconstructions), computed here."""
    images = digit_batch[:16]
    reconstructions = np.roll(images, 2, axis=1) * 0.7 + 0.1
    model = LadderVAE(reconstruction_sigma=0.5, mmd_weight=3.0, ssim_weight=2.0, **SMALL)
    model.decode = lambda codes, training=False: keras.ops.convert_to_tensor(reconstructions)
    terms = {name: float(value) for name, value in model.compute_loss_terms(images).items()}

    squared_error = np.square(images - reconstructions).sum(axis=(1, 2, 3)).mean()
    assert terms["reconstruction"] == pytest.approx(squared_error / (2 * 0.5**2), rel=1e-5)
    mean_ssim = ssim_reference.ssim(images, reconstructions, size=7, sigma=1.0).mean()
    assert mean_ssim < 0.9  # Far from the 1 of an image compared with itself.
    assert terms["ssim"] == pytest.approx(mean_ssim, abs=1e-4)
    assert terms["ssim_loss"] == pytest.approx(1.0 - mean_ssim, abs=1e-4)
    expected = terms["reconstruction"] + 3.0 * terms["mmd"] + 2.0 * (1.0 - mean_ssim)
    assert terms["loss"] == pytest.approx(expected, rel=1e-5)


def test_the_default_model_is_the_one_train_py_trains():
    """`LadderVAE()` and a run without model flags build the same model, so that what README
    measures for `python train.py` holds for the class used on its own."""
    config = TrainConfig()
    built_by_train_py = LadderVAE(**config.model_kwargs((28, 28, 1))).get_config()
    built_alone = LadderVAE(seed=config.seed).get_config()
    for model_config in (built_by_train_py, built_alone):
        del model_config["name"]  # unique per instance
    assert built_alone == built_by_train_py


def test_config_round_trip():
    model = LadderVAE(
        image_shape=(32, 32, 3),
        latent_dims=(3, 4),
        base_filters=8,
        reconstruction_sigma=0.5,
        mmd_weight=2.5,
        ssim_weight=0.0,
        mmd_per_level=False,
        level_input="concatenated",
        seed=3,
    )
    config = model.get_config()
    restored = LadderVAE.from_config(config)
    assert restored.get_config() == config
    for name in ("image_shape", "latent_dims", "base_filters", "reconstruction_sigma"):
        assert getattr(restored, name) == getattr(model, name)
    assert (restored.mmd_weight, restored.ssim_weight, restored.mmd_per_level) == (2.5, 0.0, False)
    assert restored.level_input == "concatenated"


def test_kl_weights_add_each_levels_weighted_kl_to_the_loss(digit_batch):
    model = LadderVAE(level_kl_weights=(0.5, 0.0, 2.0), **SMALL)
    images = digit_batch[:16]
    terms = {name: float(value) for name, value in model.compute_loss_terms(images).items()}
    posteriors = [
        (keras.ops.convert_to_numpy(mean), keras.ops.convert_to_numpy(scale))
        for mean, scale in model.encode(images)
    ]

    def kl(level):
        mean, scale = posteriors[level]
        return (0.5 * (mean**2 + scale**2 - 1) - np.log(scale)).sum(axis=-1).mean()

    assert terms["kl"] == pytest.approx(0.5 * kl(0) + 2.0 * kl(2), rel=1e-4)
    assert kl(1) > 0.1  # Level 2 would have added to the term had its weight counted.
    expected = (
        terms["reconstruction"]
        + model.mmd_weight * terms["mmd"]
        + model.ssim_weight * terms["ssim_loss"]
        + terms["kl"]
    )
    assert terms["loss"] == pytest.approx(expected, rel=1e-5)
    logs = model.test_step(images)
    assert set(logs) == {"loss", "reconstruction", "mmd", "ssim_loss", "ssim", "kl"}
    # Zero weights leave the term, and its log, out.
    assert "kl" not in LadderVAE(level_kl_weights=(0.0, 0.0, 0.0), **SMALL).compute_loss_terms(
        images
    )


def test_kl_weights_are_one_weight_at_least_0_per_level():
    for weights in ((1.0, 0.0), (1.0, -0.1, 0.0), (float("nan"), 0.0, 0.0)):
        with pytest.raises(ValueError, match="level_kl_weights"):
            LadderVAE(level_kl_weights=weights, **SMALL)
    config = LadderVAE(level_kl_weights=(0.1, 0, 0), **SMALL).get_config()
    assert LadderVAE.from_config(config).level_kl_weights == (0.1, 0.0, 0.0)
    del config["level_kl_weights"]  # Saved before the option existed.
    assert LadderVAE.from_config(config).level_kl_weights == (0.0, 0.0, 0.0)


def test_models_saved_before_level_input_existed_load_as_concatenated():
    config = LadderVAE(**SMALL).get_config()
    del config["level_input"]
    assert LadderVAE.from_config(config).level_input == "concatenated"
    assert LadderVAE(**SMALL).level_input == hyperparameters.LEVEL_INPUT != "concatenated"
    with pytest.raises(ValueError, match="level_input"):
        LadderVAE(level_input="gated", **SMALL)


@pytest.mark.parametrize("level_input", LEVEL_INPUTS)
def test_every_level_reaches_the_image(level_input):
    model = LadderVAE(level_input=level_input, **SMALL)
    codes = [keras.ops.convert_to_numpy(z) for z in model.prior_sample(4, seed=0)]
    base = keras.ops.convert_to_numpy(model.decode(codes))
    for level in range(model.num_levels):
        moved = list(codes)
        moved[level] = moved[level] + 3.0
        changed = keras.ops.convert_to_numpy(model.decode(moved))
        assert np.abs(changed - base).max() > 1e-5, f"level {level + 1} does not reach the image"


@pytest.mark.parametrize(
    "level_input, modulated_sizes",
    [
        # f_j itself, at the resolution of h_j; the image's resolution takes no code. (8: the
        # upsampling from 4x4, before its crop to 7x7.)
        ("modulated-fj", {2: {14}, 3: {8, 7}}),
        # One stage lower: z_1 at the image's resolution, z_2 at h_1's, nothing at h_2's.
        ("modulated", {2: {28}, 3: {14}}),
    ],
)
def test_each_lower_code_modulates_the_resolution_its_layout_names(
    monkeypatch, level_input, modulated_sizes
):
    # Levels of 2, 3 and 4 dimensions: the width of the code a layer reads names its level.
    model = LadderVAE(latent_dims=(2, 3, 4), level_input=level_input, **SMALL)
    seen = {}
    plain_call = ModulatedConv.call

    def recording_call(self, features, code, training=False):
        outputs = plain_call(self, features, code, training=training)
        seen.setdefault(int(code.shape[-1]), set()).add(int(outputs.shape[1]))
        return outputs

    monkeypatch.setattr(ModulatedConv, "call", recording_call)
    model.decode([np.zeros((1, dim), np.float32) for dim in model.latent_dims])
    assert seen == modulated_sizes


def test_modulation_scales_and_shifts_each_channel_alike_at_every_position():
    layer = ModulatedConv(3, 3, name="modulated")
    features = np.random.default_rng(0).normal(size=(2, 5, 5, 4)).astype(np.float32)
    codes = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    layer(features, codes)
    # Code (1, 0) gives scale (1 + [0.5, -1, 2]) and shift [0.1, 0.2, -0.3]; code 0 gives none.
    kernel = np.zeros((2, 6), np.float32)
    kernel[0] = [0.5, -1.0, 2.0, 0.1, 0.2, -0.3]
    layer.modulation.set_weights([kernel, np.zeros(6, np.float32)])
    plain = layer.normalization(layer.convolution(features), training=False)
    plain = keras.ops.convert_to_numpy(plain)
    outputs = keras.ops.convert_to_numpy(layer(features, codes))
    leaky = keras.ops.convert_to_numpy(keras.layers.LeakyReLU(0.2)(plain[0]))
    np.testing.assert_allclose(outputs[0], leaky, atol=1e-6)
    modulated = plain[1] * np.array([1.5, 0.0, 3.0]) + np.array([0.1, 0.2, -0.3])
    expected = keras.ops.convert_to_numpy(keras.layers.LeakyReLU(0.2)(modulated))
    np.testing.assert_allclose(outputs[1], expected, atol=1e-5)


@pytest.mark.parametrize("level_input", LEVEL_INPUTS)
def test_keras_save_and_load_give_identical_outputs(tmp_path, digit_batch, level_input):
    model = LadderVAE(latent_dims=(2, 3), mmd_weight=2.5, level_input=level_input, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.train_on_batch(digit_batch)  # Moves the BatchNorm statistics off their initial values.
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, LadderVAE)
    assert restored.mmd_weight == 2.5
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(digit_batch)),
        keras.ops.convert_to_numpy(model(digit_batch)),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored.sample(4, seed=2)),
        keras.ops.convert_to_numpy(model.sample(4, seed=2)),
        atol=1e-6,
    )
    restored.train_on_batch(digit_batch)  # The optimizer came back too: training goes on.


def test_a_file_with_weights_the_model_does_not_run_is_refused(tmp_path, digit_batch):
    """A file saved by code whose decoder has one more layer: Keras would load the layers its
    config names and pass over the extra one, and the model would decode noise."""
    model = LadderVAE(**SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.train_on_batch(digit_batch)  # The file then holds optimizer state too.
    path = str(tmp_path / "model.keras")
    saving.save_model_atomically(model, path)
    assert isinstance(saving.load_model(path), LadderVAE)

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = io.BytesIO(members[saving.WEIGHTS_FILE])
    with h5py.File(weights, "a") as file:
        file.create_dataset("layers/modulated_conv_9/convolution/vars/0", data=np.zeros((3, 3)))
    members[saving.WEIGHTS_FILE] = weights.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    expected = len(model.weights)
    with pytest.raises(saving.ModelFileError) as error:
        saving.load_model(path)
    assert str(error.value) == (
        f"{path}: holds {expected + 1} model weights, but the LadderVAE its config describes "
        f"has {expected}: it was saved by other code than this version of ladder_vae (another "
        "decoder, say); load it with the code that trained it"
    )


def test_levels_of_equal_size_get_independent_noise():
    model = LadderVAE(latent_dims=(2, 2, 2), **SMALL)
    first, second, third = (keras.ops.convert_to_numpy(z) for z in model.prior_sample(500, seed=3))
    assert not np.allclose(first, second) and not np.allclose(second, third)
    assert abs(np.corrcoef(first[:, 0], second[:, 0])[0, 1]) < 0.2
    mean = np.zeros((500, 2), np.float32)
    codes = model.reparameterize([(mean, mean + 1.0)] * 3, seed=4)
    assert not np.allclose(
        keras.ops.convert_to_numpy(codes[0]), keras.ops.convert_to_numpy(codes[1])
    )


def test_resampling_redraws_lower_levels_at_its_rate_and_keeps_the_top():
    model = LadderVAE(level_resample=0.3, **SMALL)
    codes = [np.full((4000, dim), 10.0, np.float32) for dim in model.latent_dims]
    resampled = [keras.ops.convert_to_numpy(z) for z in model.resample_levels(codes, seed=5)]
    np.testing.assert_array_equal(resampled[-1], codes[-1])
    for level in range(model.num_levels - 1):
        replaced = np.any(resampled[level] != 10.0, axis=1)
        assert replaced.mean() == pytest.approx(0.3, abs=0.03)
        # A replaced code is a whole prior draw, never a mix with the encoder's code.
        assert np.all(resampled[level][replaced] != 10.0)
        assert abs(resampled[level][replaced].mean()) < 0.1
        assert resampled[level][replaced].std() == pytest.approx(1.0, abs=0.1)
    # Levels are redrawn independently of each other.
    first, second = (np.any(z != 10.0, axis=1) for z in resampled[:2])
    assert (first & second).mean() == pytest.approx(0.09, abs=0.02)


def test_no_resampling_when_turned_off():
    model = LadderVAE(level_resample=0.0, **SMALL)
    codes = model.prior_sample(16, seed=0)
    assert model.resample_levels(codes) is codes
    with pytest.raises(ValueError, match="level_resample"):
        LadderVAE(level_resample=1.0, **SMALL)
