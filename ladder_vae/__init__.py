"""ladder-vae: a variational ladder autoencoder trained with MMD and SSIM, in Keras 3."""

from ladder_vae.model import LadderVAE

__all__ = ["LadderVAE"]
__version__ = "0.1.0"
