"""The latent explorer behind `python explore.py RUN_DIR`: a local web page with one control group
per ladder level that re-decodes the image while a level's code is dragged.

- `exported`: the run's exported SavedModel (`encode`, `decode`, `latent_dims` only), so the
  explorer works on an export copied to another machine and never imports training code.
- `codes`: the code of all levels, its range, prior draws by seed, and the level labels that
  `evaluate.py` measured.
- `pictures`: PNG encoding, traversal strips, and turning a drawing or an upload into a digit.
- `digits`: the run's validation digits to start from.
- `level_controls`, `layout`, `callbacks`, `app`: the Dash page (needs the `[explore]` extra):
  one level's controls, the whole page, what the server does when it changes, the server.
"""
