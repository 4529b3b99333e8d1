"""Evaluation of trained ladder VAEs: the numbers and figures behind `python evaluate.py RUN_DIR`.

- `loading`: what evaluate.py is pointed at (run directory, `.keras` file, SavedModel), the
  run's record, data and history; `EvaluationError`.
- `numpy_vae`: `.keras` models and SavedModels behind one numpy `VAE` interface.
- `metrics`: the measures, as plain functions of arrays.
- `classifier`: the small CNN whose features and predictions judge generated digits, and its
  cache.
- `test_split`: the stage of reconstructions and posterior codes of the test digits.
- `sample_quality`: the stage of prior samples seen through the classifier.
- `hierarchy`: the stage of what each level controls (the shares of `image_attributes`).
- `figures`: sample grids, reconstructions, traversals, loss curves, the comparison figure.
- `metric_keys`: every key of metrics.json and its meaning; `report`: report.md.
- `run`: `evaluate_run`, one evaluation; `compare`: `compare_runs`, several side by side."""

from ladder_vae.evaluation.loading import EvaluationError

__all__ = ["EvaluationError"]
