"""Evaluation of trained ladder VAEs: the numbers and figures behind `python evaluate.py RUN_DIR`.

- `metrics`: the measures, as plain functions of arrays.
- `classifier`: the small CNN whose features and predictions judge generated digits, and its
  cache.
- `loading`: run directories, `.keras` files and SavedModels behind one `VAE` interface; the
  run's data.
- `figures`: sample grids, reconstructions, traversals, loss curves, the comparison figure.
- `report`: the documented keys of metrics.json, and report.md.
- `run`: `evaluate_run`, one evaluation; `compare`: `compare_runs`, several side by side.
"""

from ladder_vae.evaluation.loading import EvaluationError

__all__ = ["EvaluationError"]
