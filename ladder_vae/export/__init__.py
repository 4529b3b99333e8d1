"""A TensorFlow SavedModel of a trained `LadderVAE` that plain TensorFlow can load and serve.

    python -m ladder_vae.export RUN_DIR                 # RUN_DIR/model.keras -> RUN_DIR/saved_model
    python -m ladder_vae.export RUN_DIR --out DIR --model RUN_DIR/best.keras

The command line is `__main__.py` here. The SavedModel needs only TensorFlow, not this
project: `tf.saved_model.load(path)` gives

| endpoint      | input                                     | output                               |
|---------------|-------------------------------------------|--------------------------------------|
| `encode`      | `x` float32 [batch, H, W, C] in [0, 1]    | posterior means, float32 [batch, D]  |
| `decode`      | `z` float32 [batch, D], finite            | images, float32 [batch, H, W, C]     |
| `reconstruct` | `x` as for `encode`                       | `decode(encode(x))`                  |
| `sample`      | `num` int64 scalar, `seed` int64 scalar   | `num` images from the prior          |
| `latent_dims` | nothing                                   | int32 [L], the size of each level    |

D = sum(latent_dims); a code is the levels' codes concatenated, lowest level first, so level i
is `z[:, sum(latent_dims[:i]) : sum(latent_dims[:i + 1])]`. Every endpoint is also a signature
of the same name for TF Serving; `reconstruct` is `serving_default`. Images are in [0, 1].
"""

import glob
import logging
import os
import shutil

from ladder_vae import run_dir as run_dir_lib
from ladder_vae import saving
from ladder_vae.errors import ConfigError
from ladder_vae.resources import DiskFull, is_disk_full
from ladder_vae.run_lock import process_is_running

# Keras and TensorFlow are imported in the functions that use them: the command line
# (`__main__`) checks its arguments, paths and model file before TensorFlow starts, and reports
# bad input in one line.

# `sample` decodes this many codes at a time, so that its memory beyond the images it returns
# does not grow with `num`.
SAMPLE_CHUNK = 512
# The most bytes of images one `sample` call returns; `num` is limited to what fits.
SAMPLE_OUTPUT_LIMIT_BYTES = 2**32

logger = logging.getLogger(__name__)


class ExportError(ConfigError):
    """A run directory or output path that cannot be used; the message names it.

    A `ConfigError`, so that `train.py` reports a failed export as its other usage errors."""


def check_destination(path):
    """Raises `ExportError` unless a SavedModel can be written to `path` (see
    `run_dir.check_saved_model_destination`)."""
    try:
        run_dir_lib.check_saved_model_destination(path)
    except ConfigError as error:
        raise ExportError(str(error)) from None


def prior_codes(num, seed, latent_dims):
    """`num` codes z ~ N(0, I), concatenated over the levels: float32 [num, sum(latent_dims)].

    A function of (num, seed) alone, through `tf.random.stateless_normal`: the exported `sample`
    takes the seed as an input, so one seed gives the same images in every process and on every
    call. (A Python-int seed or a saved `SeedGenerator` would be frozen into the SavedModel.)
    Every int64 seed is its own: the seed is the first of the two int64 words of the
    stateless seed, so 2**32 and 2**40 give other codes than 0.
    """
    import tensorflow as tf

    shape = tf.stack([tf.cast(num, tf.int32), sum(latent_dims)])
    return tf.random.stateless_normal(
        shape, seed=tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    )


def build_export_archive(model):
    """A `keras.export.ExportArchive` with the endpoints listed in this module's docstring.

    Every endpoint runs the model with `training=False` (BatchNorm uses its moving statistics)
    and returns float32, also for a mixed-precision model. The input signatures fix H, W, C and
    D and leave the batch size free, so TensorFlow rejects input of another rank or size, or a
    tensor of another dtype, before the model runs. Image input outside [0, 1] (uint8 pixels
    not divided by 255, NaN) fails an assertion that says so, as do codes that are not finite
    and a `num` outside [0, max_samples(image_shape)]. `sample` decodes `SAMPLE_CHUNK` codes
    at a time: beyond the images it returns, its memory does not grow with `num`.
    """
    import keras
    import tensorflow as tf

    if not model.built:
        raise ValueError("The model must be built before export; call `model.build()` first.")
    latent_dims = [int(dim) for dim in model.latent_dims]
    image_shape = list(model.image_shape)
    image_spec = tf.TensorSpec((None, *model.image_shape), tf.float32, name="x")
    code_spec = tf.TensorSpec((None, sum(latent_dims)), tf.float32, name="z")

    def checked_images(x, endpoint):
        in_range = tf.logical_and(tf.reduce_all(x >= 0.0), tf.reduce_all(x <= 1.0))
        check = tf.debugging.Assert(
            in_range,
            [
                f"{endpoint}: x must hold values in [0, 1] (divide uint8 pixels by 255); got min",
                tf.reduce_min(x),
                "max",
                tf.reduce_max(x),
            ],
        )
        with tf.control_dependencies([check]):
            return tf.identity(x)

    def unless_empty(batch_size, compute, shape):
        # oneDNN's Conv2D returns an empty batch with the input's channels (measured, TF 2.21:
        # [0, 28, 28, 8] from 1 filter), which breaks the next layer: skip the model instead.
        return tf.cond(batch_size > 0, compute, lambda: tf.zeros((0, *shape), tf.float32))

    def encode_means(x):
        def compute():
            posteriors = model.encode(x, training=False)
            return tf.cast(tf.concat([mean for mean, _ in posteriors], axis=-1), tf.float32)

        return unless_empty(tf.shape(x)[0], compute, [sum(latent_dims)])

    def decode_codes(z):
        def compute():
            codes = tf.split(z, latent_dims, axis=-1)
            return tf.cast(model.decode(codes, training=False), tf.float32)

        return unless_empty(tf.shape(z)[0], compute, model.image_shape)

    def checked_codes(z):
        check = tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(z)),
            ["decode: z must be finite (no NaN or Inf); it holds", tf.size(z), "values, of which",
             tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(z)), tf.int32)), "are not"],
        )
        with tf.control_dependencies([check]):
            return tf.identity(z)

    def decode_in_chunks(z):
        num = tf.shape(z)[0]
        num_chunks = (num + SAMPLE_CHUNK - 1) // SAMPLE_CHUNK
        chunks = tf.TensorArray(
            tf.float32, size=num_chunks, infer_shape=False, element_shape=[None, *image_shape]
        )

        def decode_chunk(index, chunks):
            start = index * SAMPLE_CHUNK
            return index + 1, chunks.write(index, decode_codes(z[start : start + SAMPLE_CHUNK]))

        _, chunks = tf.while_loop(
            lambda index, _: index < num_chunks, decode_chunk, [tf.constant(0), chunks]
        )
        return tf.cond(
            num > 0,
            lambda: tf.ensure_shape(chunks.concat(), [None, *image_shape]),
            lambda: tf.zeros((0, *image_shape), tf.float32),
        )

    def encode(x):
        return encode_means(checked_images(x, "encode"))

    def decode(z):
        return decode_codes(checked_codes(z))

    def reconstruct(x):
        return decode_codes(encode_means(checked_images(x, "reconstruct")))

    most = max_samples(model.image_shape)

    def sample(num, seed):
        check = tf.debugging.Assert(
            tf.logical_and(num >= 0, num <= most),
            [f"sample: num must be in [0, {most}] (at most {SAMPLE_OUTPUT_LIMIT_BYTES // 2**30} "
             "GiB of images per call); got", num],
        )
        with tf.control_dependencies([check]):
            return decode_in_chunks(prior_codes(num, seed, latent_dims))

    def latent_dims_endpoint():
        return tf.constant(latent_dims, tf.int32)

    archive = keras.export.ExportArchive()
    archive.track(model)
    # The first endpoint is also `serving_default`, TF Serving's default signature.
    archive.add_endpoint("reconstruct", reconstruct, [image_spec])
    archive.add_endpoint("encode", encode, [image_spec])
    archive.add_endpoint("decode", decode, [code_spec])
    archive.add_endpoint(
        "sample",
        sample,
        # int64: an int32 input would wrap 2**31 to a negative `num` and 2**32 to seed 0
        # before the endpoint could check it.
        [tf.TensorSpec([], tf.int64, name="num"), tf.TensorSpec([], tf.int64, name="seed")],
    )
    archive.add_endpoint("latent_dims", latent_dims_endpoint, [])
    return archive


def max_samples(image_shape):
    """The largest `num` that the exported `sample` takes for images of `image_shape`: as many
    float32 images as fit in `SAMPLE_OUTPUT_LIMIT_BYTES`."""
    height, width, channels = image_shape
    return SAMPLE_OUTPUT_LIMIT_BYTES // (4 * height * width * channels)


def export_model(model, path):
    """Writes the SavedModel of `model` to `path`, replacing an earlier export there.

    The SavedModel is written to a hidden sibling directory and renamed into place, so a killed
    export leaves either the old export or the new one at `path`, never half of one. A
    directory at `path` that is not a SavedModel is not replaced.

    Returns:
        `path`.
    """
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    check_destination(path)
    _remove_stale(parent, name)

    temporary = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    previous = os.path.join(parent, f".{name}.old-{os.getpid()}")
    try:
        build_export_archive(model).write_out(temporary, verbose=False)
        if os.path.exists(path):
            os.rename(path, previous)
        os.rename(temporary, path)
    except Exception as error:
        if is_disk_full(error) and not isinstance(error, DiskFull):
            raise DiskFull(path, error) from error
        raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)
    logger.info("SavedModel written to %s", path)
    return path


def _remove_stale(parent, name):
    """Removes the temporary directories of exports to `name` that were killed midway."""
    for leftover in glob.glob(os.path.join(parent, f".{name}.tmp-*")) + glob.glob(
        os.path.join(parent, f".{name}.old-*")
    ):
        pid = leftover.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_is_running(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def export_run(run_dir, out=None, model_path=None):
    """Exports a run's model (`RUN_DIR/model.keras` by default) to `out` (`RUN_DIR/saved_model`).

    Returns:
        The path of the SavedModel.
    """
    if not os.path.exists(run_dir):
        raise ExportError(f"{run_dir}: no such run directory")
    if not os.path.isdir(run_dir):
        raise ExportError(f"{run_dir}: not a directory (expected a run directory)")
    run = run_dir_lib.RunDir(run_dir)
    model_path = model_path or run.final_model
    out = out or run.saved_model
    check_destination(out)  # Before the slow load.
    return export_model(saving.load_model(model_path), out)
