"""The layers of `LadderVAE`: its encoder blocks g_i, posterior heads and decoder blocks f_j.

Built from plain sizes: `level_filters`, the filters of each level (lowest first), and
`feature_sizes`, the (height, width) of h_0 = the image, h_1, ..., h_L. The layer names are
part of every saved model's weight paths, so they and the order in which layers are made stay
as they are.

Every hidden layer is convolution (or dense), batch normalisation, leaky ReLU, as in the
official VLAE code. Without the normalisation the unregularised posterior means grow within a
few Adam steps, the decoder's activations with them, and the output sigmoid saturates at 0 for
good: the reconstructions go all black.
"""

import keras
import tensorflow as tf

from ladder_vae.layers import ModulatedConv


def encoder_blocks(level_filters):
    """g_1, ..., g_L: each a strided Conv2D that halves the resolution, then a Conv2D."""
    return [
        keras.Sequential(
            _normalized(keras.layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False))
            + _normalized(keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)),
            name=f"encoder_{level + 1}",
        )
        for level, filters in enumerate(level_filters)
    ]


def posterior_heads(latent_dims):
    """(mean_heads, scale_heads): per level, dense maps from its flattened features to the mean
    and, through a softplus, the standard deviation of q(z_i | x)."""
    mean_heads = [
        keras.layers.Dense(dim, name=f"mean_{level + 1}") for level, dim in enumerate(latent_dims)
    ]
    scale_heads = [
        keras.layers.Dense(dim, activation="softplus", name=f"scale_{level + 1}")
        for level, dim in enumerate(latent_dims)
    ]
    return mean_heads, scale_heads


def decoder_layers(level_filters, feature_sizes, channels, level_input):
    """(latent_projections, decoder_blocks, output_block): the decoder for `level_input`.

    "concatenated" (and any model of one level): latent_projections[j] maps z_{j+1} to a feature
    map, decoder_blocks[j] is f_{j+1} (a Sequential) and output_block is f_0, the upsampling to
    the image of `channels` channels.
    "modulated-fj": one projection, of z_L; decoder_blocks[j - 1] is f_j for j < L, a list
    [modulated upsampling to feature_sizes[j], crop, modulated convolution], modulated by z_j;
    decoder_blocks[L - 1] is f_L (a Sequential) and output_block f_0, as in the concatenated
    decoder: the image's own resolution takes no code.
    "modulated": one projection, of z_L; decoder_blocks[k - 1] upsamples to feature_sizes[k], as
    in the concatenated decoder. The last two blocks are plain Sequentials, f_L and the stage
    under the top, drawn from z_L alone; each block below them, and output_block, is a list
    [modulated upsampling, crop, modulated convolution, or the output convolution for
    output_block], modulated by z_{k+1} (see `_modulated_block`).
    """
    top = len(level_filters) - 1
    if level_input == "modulated-fj" and top > 0:
        latent_projections = [_latent_projection(top, level_filters, feature_sizes)]
        decoder_blocks = [
            _modulated_block(stage, level_filters, feature_sizes, channels)
            for stage in range(1, top + 1)
        ] + [_decoder_block(top, level_filters, feature_sizes)]
        output_block = _output_block(level_filters, feature_sizes, channels)
        return latent_projections, decoder_blocks, output_block
    if level_input == "modulated" and top > 0:
        latent_projections = [_latent_projection(top, level_filters, feature_sizes)]
        decoder_blocks = [
            _modulated_block(stage, level_filters, feature_sizes, channels)
            for stage in range(1, top)
        ] + [
            _decoder_block(top - 1, level_filters, feature_sizes),
            _decoder_block(top, level_filters, feature_sizes),
        ]
        output_block = _modulated_block(0, level_filters, feature_sizes, channels)
        return latent_projections, decoder_blocks, output_block
    latent_projections = [
        _latent_projection(level, level_filters, feature_sizes)
        for level in range(len(level_filters))
    ]
    decoder_blocks = [
        _decoder_block(level, level_filters, feature_sizes) for level in range(len(level_filters))
    ]
    output_block = _output_block(level_filters, feature_sizes, channels)
    return latent_projections, decoder_blocks, output_block


def _synchronized():
    # Built under a multi-replica tf.distribute strategy, batch statistics are all-reduced
    # over the global batch, so that N replicas compute what one device would.
    return tf.distribute.get_strategy().num_replicas_in_sync > 1


def _normalized(layer):
    return [
        layer,
        keras.layers.BatchNormalization(momentum=0.9, synchronized=_synchronized()),
        keras.layers.LeakyReLU(0.2),
    ]


def _latent_projection(level, level_filters, feature_sizes):
    """Maps z_{level+1} to a feature map at the resolution of z~_{level+2} (of h_L at the top),
    where it is concatenated."""
    height, width = feature_sizes[min(level + 2, len(level_filters))]
    filters = level_filters[level]
    return keras.Sequential(
        _normalized(keras.layers.Dense(height * width * filters, use_bias=False))
        + [keras.layers.Reshape((height, width, filters))],
        name=f"latent_projection_{level + 1}",
    )


def _crop(feature_sizes, level):
    """Crops an upsampling from the resolution of h_{level+1} to that of h_level, where the
    encoder rounded an odd size up (7 -> 4 -> 8 -> 7)."""
    (height, width), (low_height, low_width) = feature_sizes[level : level + 2]
    return keras.layers.Cropping2D(((0, 2 * low_height - height), (0, 2 * low_width - width)))


def _upsample(filters, feature_sizes, level):
    """A stride-2 transposed convolution from the resolution of h_{level+1} to that of h_level."""
    return _normalized(
        keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)
    ) + [_crop(feature_sizes, level)]


def _decoder_block(level, level_filters, feature_sizes):
    """f_{level+1}: from [z~_{level+2} : projected z_{level+1}] to z~_{level+1}.

    The top level has no z~ above it: f_L is the projection of z_L and one Conv2D. The others
    upsample to their own resolution first.
    """
    filters = level_filters[level]
    top = len(level_filters) - 1
    upsample = [] if level == top else _upsample(filters, feature_sizes, level + 1)
    return keras.Sequential(
        upsample + _normalized(keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)),
        name=f"decoder_{level + 1}",
    )


def _modulated_block(stage, level_filters, feature_sizes, channels):
    """The upsampling to the resolution of h_stage (the image for 0), modulated by a code:
    under "modulated" by z_{stage+1}, at the resolution that g_{stage+1} reads z_{stage+1} from;
    under "modulated-fj" (stage >= 1) by z_stage, as f_stage, at the resolution of h_stage.

    Returns the layers in order: a modulated upsampling, its crop, then a modulated
    convolution (stage >= 1) or the output convolution (stage 0).
    """
    filters = level_filters[max(stage - 1, 0)]
    synchronized = _synchronized()
    layers = [
        ModulatedConv(
            filters, 4, strides=2, transpose=True, synchronized=synchronized,
            name=f"decoder_{stage}_upsample",
        ),
        _crop(feature_sizes, stage),
    ]
    if stage == 0:
        return layers + [_output_convolution(channels)]
    return layers + [
        ModulatedConv(filters, 3, synchronized=synchronized, name=f"decoder_{stage}_conv")
    ]


def _output_convolution(channels):
    # float32 even under mixed precision: the losses and SSIM take [0, 1] images.
    return keras.layers.Conv2D(
        channels, 3, padding="same", activation="sigmoid", dtype="float32", name="output"
    )


def _output_block(level_filters, feature_sizes, channels):
    """f_0: from z~_1 to the image mean in [0, 1]."""
    return keras.Sequential(
        _upsample(level_filters[0], feature_sizes, 0) + [_output_convolution(channels)],
        name="decoder_0",
    )
