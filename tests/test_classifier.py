import os

import numpy as np
import pytest

from ladder_vae.evaluation import classifier as classifier_lib


@pytest.fixture(scope="module")
def small_split(bundled_digits):
    """1,000 training and 500 test digits: enough for a classifier far above chance in 1 epoch."""
    return (
        bundled_digits.train_images[:1000],
        bundled_digits.train_labels[:1000],
        bundled_digits.val_images[:500],
        bundled_digits.val_labels[:500],
    )


def test_features_and_probabilities_have_the_documented_shapes():
    model = classifier_lib.build_classifier((28, 28, 1))
    features, probabilities = classifier_lib.feature_model(model)(np.zeros((3, 28, 28, 1)))
    assert tuple(features.shape) == (3, 128)
    assert tuple(probabilities.shape) == (3, 10)
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)


def test_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LADDER_VAE_CACHE", str(tmp_path))
    assert classifier_lib.cache_dir() == str(tmp_path)
    monkeypatch.delenv("LADDER_VAE_CACHE")
    assert classifier_lib.cache_dir() == os.path.join(
        os.path.expanduser("~"), ".cache", "ladder_vae"
    )


def test_fingerprint_depends_on_data_and_settings(small_split):
    images, labels = small_split[:2]
    base = classifier_lib.fingerprint(images, labels)
    assert base == classifier_lib.fingerprint(images.copy(), labels.copy())
    changed = images.copy()
    changed[0, 0, 0, 0] ^= 1
    assert classifier_lib.fingerprint(changed, labels) != base
    assert classifier_lib.fingerprint(images, labels, epochs=1) != base
    assert classifier_lib.fingerprint(images, labels, batch_size=32) != base
    assert classifier_lib.fingerprint(images[:-1], labels[:-1]) != base


def test_trains_once_then_loads_from_the_cache(small_split, tmp_path):
    first, info = classifier_lib.load_or_train(
        "mnist", *small_split, epochs=1, batch_size=32, directory=str(tmp_path)
    )
    assert info["trained_now"]
    assert os.path.basename(info["path"]).startswith("classifier-mnist-")
    assert info["path"].endswith(".keras") and os.path.isfile(info["path"])
    assert os.path.isfile(info["path"][: -len(".keras")] + ".json")
    # One epoch on 1,000 digits: far above the 10% of chance, far below a trained network.
    assert 0.5 < info["test_accuracy"] <= 1.0
    assert info["train_examples"] == 1000 and info["num_classes"] == 10

    second, cached = classifier_lib.load_or_train(
        "mnist", *small_split, epochs=1, batch_size=32, directory=str(tmp_path)
    )
    assert not cached["trained_now"]
    assert cached["test_accuracy"] == info["test_accuracy"]
    images = small_split[2][:20].astype(np.float32) / 255.0
    np.testing.assert_allclose(
        first.predict(images, verbose=0), second.predict(images, verbose=0), atol=1e-6
    )
    assert classifier_lib.accuracy(second, *small_split[2:]) == pytest.approx(info["test_accuracy"])
