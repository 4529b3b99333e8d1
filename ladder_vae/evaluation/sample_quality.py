"""How generated digits compare with real ones in the eyes of the evaluation classifier: the
classifier made ready, its outputs on real and generated images, and the sample metrics."""

import numpy as np
import tensorflow as tf

from ladder_vae.evaluation import classifier as classifier_lib
from ladder_vae.evaluation import metrics
from ladder_vae.evaluation.numpy_vae import batched


def classifier_function(classifier):
    """A function from images [n, H, W, C] in [0, 1] to the classifier's (features [n, 128],
    probabilities [n, K]) as numpy arrays, in batches, through one traced graph."""
    feature_model = classifier_lib.feature_model(classifier)
    spec = tf.TensorSpec((None, *feature_model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: tuple(feature_model(x, training=False)), input_signature=[spec])

    def outputs(images, batch_size=1000):
        return batched(graph, images, batch_size)

    return outputs


def ready_classifier(classifier, data, dataset_name, directory=None):
    """The evaluation classifier as a `classifier_function`, and what info.json says of it.

    Args:
        classifier: a trained Keras classifier to use as it is (its test accuracy is measured
            here), or None for the cached one of this training data, trained first if there is
            none (`classifier.load_or_train`).
        data: the run's `ImageData`.
        dataset_name: the name of its cache entry.
        directory: the classifier cache, or None for the default.

    Returns:
        (apply_classifier, info): the function, and a dict with at least `path` and
        `test_accuracy`.
    """
    if classifier is None:
        classifier, info = classifier_lib.load_or_train(
            dataset_name,
            data.train_images,
            data.train_labels,
            data.val_images,
            data.val_labels,
            directory=directory,
        )
    else:
        info = {
            "path": "given in memory",
            "test_accuracy": classifier_lib.accuracy(classifier, data.val_images, data.val_labels),
        }
    return classifier_function(classifier), info


def prior_samples(vae, num_samples, rng, batch_size):
    """`num_samples` images [n, H, W, C] decoded from codes z ~ N(0, I) drawn with `rng`."""
    codes = rng.standard_normal((num_samples, sum(vae.latent_dims))).astype(np.float32)
    return vae.decode(codes, batch_size)


def reference_images(train_images, count, rng):
    """`count` real training digits (at most all of them), chosen with `rng`, in their order in
    the training set, as float32 in [0, 1]: the real set that a perfect generator would match."""
    count = min(count, len(train_images))
    chosen = rng.choice(len(train_images), count, replace=False)
    return train_images[np.sort(chosen)].astype(np.float32) / 255.0


def classifier_outputs(apply_classifier, test_images, train_images, samples, reconstructions):
    """The classifier's (features, probabilities) of each image set, under the names `test`,
    `train`, `samples` and `reconstructions`; `apply_classifier` is a `classifier_function`."""
    return {
        "test": apply_classifier(test_images),
        "train": apply_classifier(train_images),
        "samples": apply_classifier(samples),
        "reconstructions": apply_classifier(reconstructions),
    }


def sample_metrics(outputs, test_images, samples, reconstructions):
    """The metrics of the samples and of the reconstructions that need the classifier or the real
    digits, and their real-data references.

    Args:
        outputs: `classifier_outputs` of these images.
        test_images, samples, reconstructions: images [n, H, W, C] in [0, 1].

    Returns:
        dict: `sample_*`, `test_reconstruction_frechet_distance`,
        `test_reconstruction_sharpness_ratio` and `reference_*`.
    """
    test_features, test_probabilities = outputs["test"]
    sample_features, sample_probabilities = outputs["samples"]
    test_statistics = metrics.gaussian_statistics(test_features)
    reference_sharpness = metrics.sharpness(test_images)
    sample_sharpness = metrics.sharpness(samples)
    return {
        "test_reconstruction_frechet_distance": metrics.frechet_distance(
            metrics.gaussian_statistics(outputs["reconstructions"][0]), test_statistics
        ),
        "test_reconstruction_sharpness_ratio": (
            metrics.sharpness(reconstructions) / reference_sharpness
        ),
        "sample_frechet_distance": metrics.frechet_distance(
            metrics.gaussian_statistics(sample_features), test_statistics
        ),
        "sample_inception_score": metrics.inception_score(sample_probabilities),
        "sample_class_coverage": metrics.class_coverage(sample_probabilities),
        "sample_class_entropy": metrics.class_entropy(sample_probabilities),
        "sample_sharpness": sample_sharpness,
        "sample_sharpness_ratio": sample_sharpness / reference_sharpness,
        "reference_frechet_distance_train_test": metrics.frechet_distance(
            metrics.gaussian_statistics(outputs["train"][0]), test_statistics
        ),
        "reference_inception_score_test": metrics.inception_score(test_probabilities),
        "reference_class_entropy_test": metrics.class_entropy(test_probabilities),
        "reference_sharpness_test": reference_sharpness,
    }
