"""The model's hyperparameters: the defaults `LadderVAE()` builds and `python train.py` trains.

The defaults are what measured best on MNIST for the hierarchy (README "Choices",
docs/hierarchy.md "The default now"): three ladder levels of 1, 1 and 6
dimensions, lowest first, each lower code z_j modulating its own decoder stage f_j, and MMD
weight 10. Kept free of TensorFlow, so that `train.py` can print its help and reject bad flags
before importing it.
"""

# How the code of a level below the top enters the decoder (see `LadderVAE`).
LEVEL_INPUTS = ("modulated-fj", "modulated", "concatenated")

LATENT_DIMS = (1, 1, 6)
BASE_FILTERS = 32
RECONSTRUCTION_SIGMA = 1.0
MMD_WEIGHT = 10.0
SSIM_WEIGHT = 10.0
MMD_PER_LEVEL = False
LEVEL_INPUT = "modulated-fj"
LEVEL_RESAMPLE = 0.0
