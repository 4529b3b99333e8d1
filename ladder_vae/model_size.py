"""What a `LadderVAE` costs before it is built: its levels' resolutions, its parameter count and
a lower bound on the memory that training it takes, from its hyperparameters alone.

Nothing here imports TensorFlow, so that `train.py` can refuse a model that cannot fit before
TensorFlow starts. The counts mirror the layers of `ladder_vae.model.LadderVAE` (a test pins
them to `count_params()` of built models).
"""

import math
import os

from ladder_vae import hyperparameters

FLOAT_BYTES = 4
GIB = 2**30
# Adam keeps two moments per trainable weight, and a step holds one gradient per weight.
TRAINING_COPIES_PER_TRAINABLE_WEIGHT = 4
# Each convolution (or dense) block keeps three tensors of its output's size for the backward
# pass: the convolution's output, the batch normalisation's and the leaky ReLU's.
KEPT_TENSORS_PER_BLOCK = 3


def feature_sizes(image_shape, num_levels):
    """(height, width) of h_0 = the image, h_1, ..., h_L: each level halves, rounding up."""
    sizes = [tuple(image_shape[:2])]
    for _ in range(num_levels):
        height, width = sizes[-1]
        sizes.append((math.ceil(height / 2), math.ceil(width / 2)))
    return sizes


def max_levels(image_shape):
    """The most ladder levels images of `image_shape` support: a level's strided convolution
    halves its input, and once that is 1x1 a further level halves nothing (28x28: 14, 7, 4, 2,
    1, so 5 levels)."""
    side = max(image_shape[:2])
    levels = 0
    while side > 1:
        side = math.ceil(side / 2)
        levels += 1
    return max(levels, 1)


def parameter_counts(
    image_shape, latent_dims, base_filters, level_input=hyperparameters.LEVEL_INPUT
):
    """(trainable, non-trainable) weights of `LadderVAE(image_shape, latent_dims, base_filters,
    level_input=level_input)`.

    Non-trainable are the batch normalisations' moving means and variances.
    """
    channels = image_shape[2]
    num_levels = len(latent_dims)
    top = num_levels - 1
    sizes = feature_sizes(image_shape, num_levels)
    filters = [base_filters * 2**level for level in range(num_levels)]
    modulated = level_input == "modulated" and top > 0
    at_f = level_input == "modulated-fj" and top > 0
    trainable = 0
    normalized = 0  # Features that a batch normalisation follows (2 trainable, 2 moving each).
    moving = 0  # Features of a modulated normalisation (2 moving each, its scale and shift
    # come from the code).

    def area(level):
        return sizes[level][0] * sizes[level][1]

    inputs = channels
    for level, dim in enumerate(latent_dims):
        width = filters[level]
        # Encoder: 4x4 strided convolution, 3x3 convolution (no biases); mean and scale heads.
        trainable += 16 * inputs * width + 9 * width * width
        normalized += 2 * width
        trainable += 2 * (area(level + 1) * width * dim + dim)
        inputs = width
    for level, dim in enumerate(latent_dims):
        width = filters[level]
        if at_f and level < top:
            # f_{level+1}: a modulated 4x4 transposed convolution from the level above's
            # width, then a modulated 3x3 convolution.
            trainable += _modulated_layer(16, filters[level + 1], width, dim)
            trainable += _modulated_layer(9, width, width, dim)
            moving += 2 * width
            continue
        if modulated and level < top:
            continue
        # The projection of z to the feature map where it enters (concatenated below the top).
        projected = area(min(level + 2, num_levels)) * width
        trainable += dim * projected
        normalized += projected
        # Decoder: below the top, a 4x4 transposed convolution of [z~ above : projection].
        if level < top:
            trainable += 16 * (filters[level + 1] + width) * width
            normalized += width
        trainable += 9 * width * width
        normalized += width
    if not modulated:
        # Output: a 4x4 transposed convolution to full size, then a 3x3 convolution with biases.
        trainable += 16 * filters[0] * filters[0] + 9 * filters[0] * channels + channels
        normalized += filters[0]
        return trainable + 2 * normalized, 2 * (normalized + moving)
    # The plain upsampling under the top: 4x4 transposed convolution, then 3x3 convolution.
    width = filters[top - 1]
    trainable += 16 * filters[top] * width + 9 * width * width
    normalized += 2 * width
    # Each stage below takes z of its level through a dense map to a scale and a shift per
    # channel of its (transposed) convolutions.
    for stage in range(top - 1, -1, -1):
        width = filters[max(stage - 1, 0)]
        dim = latent_dims[stage]
        trainable += _modulated_layer(16, filters[stage], width, dim)
        moving += width
        if stage > 0:
            trainable += _modulated_layer(9, width, width, dim)
            moving += width
    trainable += 9 * filters[0] * channels + channels
    return trainable + 2 * normalized, 2 * (normalized + moving)


def _modulated_layer(kernel_area, inputs, width, dim):
    """Trainable weights of one `ModulatedConv`: its kernel (no bias) and the dense map of a
    `dim`-dimensional code to a scale and a shift per channel."""
    return kernel_area * inputs * width + (dim + 1) * 2 * width


def activation_floats_per_image(
    image_shape, latent_dims, base_filters, level_input=hyperparameters.LEVEL_INPUT
):
    """A lower bound on the floats one image's forward pass keeps for the backward pass."""
    num_levels = len(latent_dims)
    top = num_levels - 1
    modulated = level_input == "modulated" and top > 0
    at_f = level_input == "modulated-fj" and top > 0
    sizes = feature_sizes(image_shape, num_levels)
    filters = [base_filters * 2**level for level in range(num_levels)]
    blocks = 0  # Output elements of every convolution (or dense) block.
    for level in range(num_levels):
        at_level = sizes[level + 1][0] * sizes[level + 1][1] * filters[level]
        blocks += 2 * at_level  # The encoder's two blocks.
        if at_f and level < top:
            blocks += 2 * at_level  # f_{level+1}: two modulated blocks, no projection.
            continue
        if modulated and level < top:
            # The stage of this level's resolution: two blocks of the level below's width.
            below = sizes[level][0] * sizes[level][1] * filters[max(level - 1, 0)]
            blocks += (2 if level > 0 else 1) * below
            continue
        projected = sizes[min(level + 2, num_levels)]
        blocks += projected[0] * projected[1] * filters[level]
        blocks += (2 if level < top else 1) * at_level  # The decoder's.
    if not modulated:
        blocks += sizes[0][0] * sizes[0][1] * filters[0]  # The output's upsampling.
    return KEPT_TENSORS_PER_BLOCK * blocks


def training_memory(
    image_shape, latent_dims, base_filters, batch_size, level_input=hyperparameters.LEVEL_INPUT
):
    """A lower bound on the bytes that training takes, as a dict: `parameters` (count),
    `parameter_bytes` (weights, gradients and Adam's moments), `activation_bytes` (one batch's
    activations kept for the backward pass) and `total_bytes`."""
    trainable, non_trainable = parameter_counts(
        image_shape, latent_dims, base_filters, level_input
    )
    parameter_bytes = FLOAT_BYTES * (TRAINING_COPIES_PER_TRAINABLE_WEIGHT * trainable)
    parameter_bytes += FLOAT_BYTES * non_trainable
    activation_bytes = FLOAT_BYTES * batch_size * activation_floats_per_image(
        image_shape, latent_dims, base_filters, level_input
    )
    return {
        "parameters": trainable + non_trainable,
        "parameter_bytes": parameter_bytes,
        "activation_bytes": activation_bytes,
        "total_bytes": parameter_bytes + activation_bytes,
    }


def available_memory_bytes():
    """Memory this process can still take: `MemAvailable` of /proc/meminfo, lowered to what a
    cgroup (v2) memory limit leaves; None where neither can be read."""
    available = None
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as file:
            limit = file.read().strip()
        with open("/sys/fs/cgroup/memory.current") as file:
            current = int(file.read().strip())
        if limit != "max":
            left = max(int(limit) - current, 0)
            available = left if available is None else min(available, left)
    except (OSError, ValueError):
        pass
    if available is None and hasattr(os, "sysconf"):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            pass
    return available
