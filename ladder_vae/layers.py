"""The decoder layer through which a lower ladder level restyles what the levels above drew."""

import keras


@keras.saving.register_keras_serializable(package="ladder_vae")
class ModulatedConv(keras.layers.Layer):
    """Convolution, batch normalisation, a per-channel scale and shift from a code, leaky ReLU.

    The code enters as feature-wise linear modulation (FiLM; Perez et al., AAAI 2018), the
    conditional normalisation of AdaIN and StyleGAN:

        y = LeakyReLU(BN(conv(x)) * (1 + gamma(z)) + beta(z)),   gamma, beta: dense maps of z.

    The same gamma and beta apply at every position, so the code can change how every stroke is
    drawn (thicker, more slanted, wider) but cannot draw a stroke anywhere on its own: what a
    digit is stays with the levels above, whose codes lay out the feature map. This is the
    structural reason a lower level of the ladder holds style rather than identity.

    Args:
        filters: output channels.
        kernel_size: convolution window.
        strides: 2 with `transpose=True` doubles the resolution.
        transpose: a transposed convolution (upsampling) instead of a convolution.
        synchronized: batch statistics all-reduced across replicas (under tf.distribute).
    """

    def __init__(
        self, filters, kernel_size, strides=1, transpose=False, synchronized=False, **kwargs
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = kernel_size
        self.strides = strides
        self.transpose = bool(transpose)
        self.synchronized = bool(synchronized)
        convolution = keras.layers.Conv2DTranspose if self.transpose else keras.layers.Conv2D
        self.convolution = convolution(
            self.filters, kernel_size, strides=strides, padding="same", use_bias=False
        )
        # The code's scale and shift replace the normalisation's own.
        self.normalization = keras.layers.BatchNormalization(
            momentum=0.9, center=False, scale=False, synchronized=self.synchronized
        )
        # Starts as the identity modulation (scale 1, shift 0) and learns from there; small
        # random weights rather than zeros, so the code gets a gradient from the first step.
        self.modulation = keras.layers.Dense(
            2 * self.filters, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01)
        )
        self.activation = keras.layers.LeakyReLU(0.2)

    def build(self, features_shape, code_shape):
        self.convolution.build(features_shape)
        output_shape = self.convolution.compute_output_shape(features_shape)
        self.normalization.build(output_shape)
        self.modulation.build(code_shape)
        self.built = True

    def call(self, features, code, training=False):
        features = self.normalization(self.convolution(features), training=training)
        modulation = keras.ops.cast(self.modulation(code), features.dtype)
        scale = modulation[:, None, None, : self.filters]
        shift = modulation[:, None, None, self.filters :]
        return self.activation(features * (1.0 + scale) + shift)

    def compute_output_shape(self, features_shape, code_shape):
        return self.convolution.compute_output_shape(features_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "transpose": self.transpose,
                "synchronized": self.synchronized,
            }
        )
        return config
