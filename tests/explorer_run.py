"""A small run directory for the explorer's tests: an exported SavedModel, the `config.json`
record of its data (the bundled digits) and, optionally, evaluation metrics."""

import json

import numpy as np

from ladder_vae import export
from ladder_vae.model import LadderVAE

# Two 2-D levels (pads) and a 3-D level (sliders): both kinds of control.
LATENT_DIMS = (2, 2, 3)


def make_run(directory, latent_dims=LATENT_DIMS, metrics=None):
    """Writes the run into `directory` (created) and returns it.

    The model is untrained: training it costs more than the explorer's tests together. Its
    decoder's BatchNorm variances are set small instead, which amplifies the decoder's
    activations, so that its images span grey levels and visibly change with every level (an
    untrained decoder gives ~0.5 everywhere whatever the code).
    """
    directory.mkdir(parents=True, exist_ok=True)
    model = LadderVAE(latent_dims=latent_dims, base_filters=8, seed=3)
    model.build((None, 28, 28, 1))
    rng = np.random.default_rng(0)
    for variable in model.non_trainable_variables:
        if "decoder" in variable.path and "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.05, 0.2, variable.shape).astype(np.float32))
    export.export_model(model, str(directory / "saved_model"))
    config = {"data": {"kind": "bundled", "dataset": "mnist"}}
    (directory / "config.json").write_text(json.dumps(config))
    if metrics is not None:
        (directory / "eval").mkdir()
        (directory / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return directory
