"""Keras callbacks that a ladder-VAE run needs beyond Keras's own."""

from callbacks.sample_grid import SampleGrid

__all__ = ["SampleGrid"]
