"""A trained ladder VAE seen through numpy, whatever file it comes from.

Every source becomes one interface, `VAE`, with numpy in and numpy out: `encode` gives the
posterior means (and scales where the source has them) of all levels concatenated, `decode` takes
such codes. The `.keras` model gives scales; the SavedModel's `encode` gives only means.
"""

import numpy as np
import tensorflow as tf

from ladder_vae import run_dir as run_dir_lib
from ladder_vae import saving
from ladder_vae.evaluation.loading import EvaluationError


class VAE:
    """A trained ladder VAE seen through numpy: encode and decode in batches.

    Attributes:
        latent_dims: tuple, the code size of each level, lowest first.
        image_shape: tuple (H, W, C).
        has_scales: whether `encode` returns posterior scales.
        mmd_per_level: how the model's MMD term was computed (None where unknown).
        description: where the model came from, for the report.
    """

    latent_dims = ()
    image_shape = ()
    has_scales = False
    mmd_per_level = None
    description = ""

    def encode(self, images, batch_size=500):
        """Posterior means [n, D] and scales [n, D] (None without them) of images [n, H, W, C]."""
        raise NotImplementedError

    def decode(self, codes, batch_size=500):
        """Images [n, H, W, C] in [0, 1] from codes [n, D], levels concatenated lowest first."""
        raise NotImplementedError

    def split_levels(self, codes):
        """Codes [n, D] to a list of one array [n, latent_dims[i]] per level."""
        return np.split(codes, np.cumsum(self.latent_dims)[:-1], axis=-1)


def batched(function, inputs, batch_size):
    """Applies a TensorFlow function to numpy `inputs` in batches.

    Returns:
        A tuple with one numpy array per output of `function`, the batches concatenated.
    """
    inputs = np.asarray(inputs, np.float32)
    outputs = []
    for start in range(0, len(inputs), batch_size):
        result = function(tf.constant(inputs[start : start + batch_size]))
        result = result if isinstance(result, (tuple, list)) else (result,)
        outputs.append([np.asarray(part) for part in result])
    return tuple(np.concatenate(parts, axis=0) for parts in zip(*outputs))


class KerasVAE(VAE):
    """A `LadderVAE` from a `.keras` file (or in memory)."""

    has_scales = True

    def __init__(self, model, description="LadderVAE in memory"):
        self.model = model
        self.mmd_per_level = bool(model.mmd_per_level)
        self.latent_dims = tuple(int(dim) for dim in model.latent_dims)
        self.image_shape = tuple(int(size) for size in model.image_shape)
        self.description = description
        image_spec = tf.TensorSpec((None, *self.image_shape), tf.float32)
        code_spec = tf.TensorSpec((None, sum(self.latent_dims)), tf.float32)
        # One graph per function for any batch size; eager Keras calls cost ~2x more here.
        self._encode = tf.function(self._encode_graph, input_signature=[image_spec])
        self._decode = tf.function(self._decode_graph, input_signature=[code_spec])

    def _encode_graph(self, images):
        posteriors = self.model.encode(images, training=False)
        means = tf.concat([tf.cast(mean, tf.float32) for mean, _ in posteriors], axis=-1)
        scales = tf.concat([tf.cast(scale, tf.float32) for _, scale in posteriors], axis=-1)
        return means, scales

    def _decode_graph(self, codes):
        levels = tf.split(codes, self.latent_dims, axis=-1)
        return tf.cast(self.model.decode(levels, training=False), tf.float32)

    def encode(self, images, batch_size=500):
        return batched(self._encode, np.asarray(images, np.float32), batch_size)

    def decode(self, codes, batch_size=500):
        return batched(self._decode, np.asarray(codes, np.float32), batch_size)[0]


class SavedModelVAE(VAE):
    """The SavedModel that `ladder_vae.export` writes (endpoints encode, decode, latent_dims)."""

    def __init__(self, path):
        try:
            # Kept on the instance: see `saving.load_saved_model`.
            self.loaded = saving.load_saved_model(path)
        except saving.ModelFileError as error:
            raise EvaluationError(str(error)) from None
        latent_dims = self.loaded.latent_dims
        latent_dims = latent_dims() if callable(latent_dims) else latent_dims
        self.latent_dims = tuple(int(dim) for dim in np.asarray(latent_dims).reshape(-1))
        probe = self.loaded.decode(tf.zeros((1, sum(self.latent_dims)), tf.float32))
        self.image_shape = tuple(int(size) for size in probe.shape[1:])
        self.description = f"SavedModel {path}"

    def encode(self, images, batch_size=500):
        (means,) = batched(self.loaded.encode, np.asarray(images, np.float32), batch_size)
        return means, None

    def decode(self, codes, batch_size=500):
        return batched(self.loaded.decode, np.asarray(codes, np.float32), batch_size)[0]


def load_vae(model_path):
    """A `VAE` for a `.keras` file or a SavedModel directory (as `resolve` returns them)."""
    if run_dir_lib.is_saved_model(model_path):
        return SavedModelVAE(model_path)
    try:
        model = saving.load_model(model_path)
    except saving.ModelFileError as error:
        raise EvaluationError(str(error)) from None
    return KerasVAE(model, description=model_path)
