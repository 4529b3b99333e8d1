"""ladder-vae: a variational ladder autoencoder trained with MMD and SSIM, in Keras 3."""

__all__ = ["LadderVAE"]
__version__ = "0.1.0"


def __getattr__(name):
    # `LadderVAE` is imported on first use, not with the package: importing the model starts
    # TensorFlow (seconds, and a screen of log lines), which `train.py` must not pay just to
    # report a bad flag. `import ladder_vae.model` registers the class for `load_model`.
    if name == "LadderVAE":
        from ladder_vae.model import LadderVAE

        return LadderVAE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
