"""Codes of all ladder levels: their range on the page, prior draws by seed, level labels."""

import json
import math
import re

import numpy as np

from ladder_vae.explorer.exported import ExplorerError
from ladder_vae.run_dir import RunDir

# The controls span [-LIMIT, LIMIT] in every dimension: 3 prior standard deviations.
LIMIT = 3.0
# Seeds the page accepts and draws: numpy's generators take any int >= 0; this keeps them short.
MAX_SEED = 2**31 - 1
_SHARE_KEY = re.compile(r"^level_(\d+)_share_([a-z0-9_]+)$")
# An attribute is named in a level's label when its share is at least this part of the largest.
LABEL_FRACTION = 0.5
LABEL_MAX_NAMES = 2


def split_levels(code, latent_dims):
    """A code [D] as a list of one list of floats per level."""
    bounds = np.cumsum((0,) + tuple(latent_dims))
    return [[float(v) for v in code[start:end]] for start, end in zip(bounds[:-1], bounds[1:])]


def prior_code(seed, size):
    """`size` values z ~ N(0, 1) drawn with numpy's default generator from `seed`: the same
    values for the same seed on every machine."""
    return np.random.default_rng(seed).standard_normal(size).astype(np.float32)


def check_seed(value):
    """`value` as a seed in [0, MAX_SEED], or ExplorerError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ExplorerError(f"seed must be an integer in [0, {MAX_SEED}]; got {value!r}")
    if value != int(value) or not 0 <= value <= MAX_SEED:
        raise ExplorerError(f"seed must be an integer in [0, {MAX_SEED}]; got {value!r}")
    return int(value)


def check_level_values(values, level, dim):
    """The values of level `level` (1 = lowest) sent by the page, as floats, or ExplorerError
    naming the level: exactly `dim` finite numbers in [-LIMIT, LIMIT]."""
    if not isinstance(values, (list, tuple)) or len(values) != dim:
        raise ExplorerError(
            f"level {level}: expected {dim} numbers, got {_short(values)}"
        )
    checked = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExplorerError(f"level {level}: {_short(value)} is not a number")
        if not math.isfinite(value) or abs(value) > LIMIT:
            raise ExplorerError(
                f"level {level}: value {value!r} is outside the controls' range "
                f"[{-LIMIT:g}, {LIMIT:g}]"
            )
        checked.append(float(value))
    return checked


def clip_code(code, latent_dims):
    """A code clipped to [-LIMIT, LIMIT], and the 1-based levels whose values were clipped."""
    code = np.asarray(code, np.float32)
    clipped = np.clip(code, -LIMIT, LIMIT)
    changed = np.abs(clipped - code) > 0
    levels = [
        index + 1
        for index, part in enumerate(np.split(changed, np.cumsum(latent_dims)[:-1]))
        if part.any()
    ]
    return clipped, levels


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_metrics(run_dir):
    """`RUN_DIR/eval/metrics.json` as a dict, or None when it is missing or unreadable."""
    path = RunDir(run_dir).metrics
    try:
        with open(path) as file:
            metrics = json.load(file)
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def level_labels(metrics, num_levels):
    """What each level controls most, from the shares that `evaluate.py` measured.

    Reads every `level_{i}_share_<attribute>` key (i = 1 is the lowest level),
    `level_{i}_class_change_rate` and, below the top, `level_{i}_data_top_class_change_rate`
    (the rate around real digits, which a page that starts from an encoded test digit shows).
    Returns one string per level, e.g. "mostly thickness, ink; changes the class 10% of the time
    (4% around a real digit)", or None when `metrics` has no share of any level.
    """
    shares = [dict() for _ in range(num_levels)]
    for key, value in (metrics or {}).items():
        match = _SHARE_KEY.match(key)
        if not match or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        level = int(match.group(1))
        if 1 <= level <= num_levels and math.isfinite(value):
            shares[level - 1][match.group(2).replace("_", " ")] = float(value)
    if not any(shares):
        return None
    labels = []
    for level, level_shares in enumerate(shares, start=1):
        parts = []
        if level_shares:
            top = max(level_shares.values())
            ranked = sorted(level_shares.items(), key=lambda item: -item[1])
            names = [name for name, share in ranked if top > 0 and share >= LABEL_FRACTION * top]
            parts.append(
                "mostly " + ", ".join(names[:LABEL_MAX_NAMES]) if names else "no measured effect"
            )
        rate = _finite_metric(metrics, f"level_{level}_class_change_rate")
        if rate is not None:
            around_data = _finite_metric(metrics, f"level_{level}_data_top_class_change_rate")
            parts.append(
                f"changes the class {rate:.0%} of the time"
                + (
                    f" ({around_data:.0%} around a real digit)"
                    if around_data is not None and level < num_levels
                    else ""
                )
            )
        labels.append("; ".join(parts) if parts else "not measured")
    return labels


def _finite_metric(metrics, key):
    """metrics[key] when it is a finite number, else None."""
    value = (metrics or {}).get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
