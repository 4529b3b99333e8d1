"""report.md: the numbers of one evaluation in tables, with their meaning, and its figures; the
markdown helpers that `--compare` shares."""

import math
import re

from ladder_vae.atomic import atomic_path
from ladder_vae.evaluation.hierarchy import IDENTITY
from ladder_vae.evaluation.image_attributes import ATTRIBUTES
from ladder_vae.evaluation.metric_keys import describe


def format_value(value):
    """A metric as text: integers plainly, floats with 4 significant digits."""
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) < 1e6
    ):
        return str(int(value))
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def markdown_table(header, rows):
    """A GitHub-flavoured markdown table; cells are strings."""

    def line(cells):
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    lines = [line(header), "|" + "|".join(" --- " for _ in header) + "|"]
    lines += [line(row) for row in rows]
    return "\n".join(lines)


def _metric_rows(metrics, keys):
    rows = []
    for key in keys:
        if key in metrics:
            better, meaning = describe(key)
            arrow = {"lower": "lower", "higher": "higher", "1": "near 1"}.get(better, "")
            rows.append((f"`{key}`", format_value(metrics[key]), arrow, meaning))
    return rows


def _hierarchy_section(metrics, num_levels, settings):
    """Lines of the report's level x attribute table of shares (`hierarchy.py`), or a line that
    says the evaluation has none."""
    attributes = []
    for key in metrics:
        match = re.fullmatch(r"level_1_share_(\w+)", key)
        if match:
            attributes.append(match.group(1))
    if not attributes:
        return ["(not measured in this evaluation)", ""]
    order = (IDENTITY,) + ATTRIBUTES  # hierarchy.py's order
    attributes.sort(key=lambda name: order.index(name) if name in order else len(order))
    rows = []
    for level in range(num_levels, 0, -1):
        name = f"level {level}" + (
            " (top)" if level == num_levels else " (lowest)" if level == 1 else ""
        )
        # Two decimals: the shares' spread between seeds is about 0.01-0.06 at the default size.
        cells = [
            f"{metrics[f'level_{level}_share_{attribute}']:.2f}"
            if f"level_{level}_share_{attribute}" in metrics
            else "n/a"
            for attribute in attributes
        ]
        rates = [
            metrics.get(f"level_{level}_{kind}class_change_rate") for kind in ("", "clear_")
        ]
        rows.append([name] + cells + ["n/a" if rate is None else f"{rate:.1%}" for rate in rates])
    how = (
        f" ({settings['num_codes']} base codes from the prior, each with the level's code "
        f"redrawn {settings['redraws']} times)"
        if "num_codes" in settings
        else ""
    )
    lines = [
        "Each cell is the share of an attribute's variation that redrawing one level's code "
        f"alone, the other levels held, moves{how}: the mean variance within such groups over "
        "the variance across as many independent prior samples. 0 = the level does not move "
        "the attribute, 1 = it moves it as much as drawing a whole new sample; shares of "
        "different levels need not add up to 1. Identity is the share of class disagreement: "
        "the probability that two images of a group are classified as different digits, over "
        "that probability for two independent samples. The last columns are how often a "
        "redraw changes the predicted class of the image it started from, over all base images "
        "and over the clear ones, those the classifier gives at least 90% (a change there "
        "redraws a clear digit; elsewhere it may tip an ambiguous one). A clean ladder (Zhao et "
        "al. 2017, Fig. 4) has identity on the top level alone and stroke thickness on the "
        "lowest.",
        "",
        markdown_table(
            ["level"]
            + [f"{name} share" for name in attributes]
            + ["class changes", "class changes, clear digits"],
            rows,
        ),
        "",
    ]
    if "hierarchy_summary" in metrics:
        lines += [
            f"`hierarchy_summary` = {format_value(metrics['hierarchy_summary'])}: identity "
            "share of the top level minus the largest of the other levels (1 = only the top "
            "level decides the digit).",
            "",
        ]
    if "clear_base_fraction" in metrics:
        lines += [f"{metrics['clear_base_fraction']:.0%} of the base images are clear digits.", ""]
    data_top = [
        metrics.get(f"level_{level}_data_top_class_change_rate")
        for level in range(1, num_levels + 1)
    ]
    if None not in data_top:
        clear = metrics.get("data_top_clear_base_fraction")
        lines += [
            "With each base code's top level taken from a test digit instead of the prior, "
            "redraws change the class "
            + " / ".join(f"{rate:.1%}" for rate in data_top)
            + f" of the time (levels 1 to {num_levels})"
            + ("" if clear is None else f", and {clear:.0%} of the base images are clear")
            + ": the difference from the class changes above is what prior draws of the top "
            "level between the codes of real digits add.",
            "",
        ]
    return lines


def write_report(path, metrics, info, figures):
    """Writes `report.md`: where the numbers come from, tables of metrics, the figures.

    Args:
        metrics: the flat dict of metrics.json.
        info: dict with `model`, `data`, `classifier` (dict), `seconds` (total).
        figures: list of (file name relative to the report, caption).
    """
    classifier = info["classifier"]
    num_levels = sum(1 for key in metrics if re.fullmatch(r"level_\d+_dims", key))
    lines = [
        f"# Evaluation of `{info['run_dir']}`",
        "",
        f"- model: `{info['model']}`",
        f"- data: {info['data']}",
        f"- classifier: `{classifier.get('path', 'given in memory')}`, trained on "
        f"{classifier.get('train_examples', '?')} training digits for "
        f"{classifier.get('epochs', '?')} epochs, test accuracy "
        f"{metrics.get('classifier_test_accuracy', float('nan')):.2%}",
        f"- evaluated in {info['seconds']:.1f} s",
        "",
        "The Frechet distances below are measured in the 128-dimensional penultimate layer of that "
        "small CNN, which this project trains on the run's own training digits. They are **not** "
        "Inception-FID: compare them only between runs evaluated with the same classifier, and "
        "against `reference_frechet_distance_train_test`, the distance between real training and "
        "test digits. The Inception Score here is that classifier's score, on the same footing.",
        "",
        f"## Test split ({metrics['num_test_images']} digits)",
        "",
        markdown_table(
            ("metric", "value", "better", "meaning"),
            _metric_rows(
                metrics,
                [
                    "test_mse",
                    "test_ssim",
                    "test_reconstruction_frechet_distance",
                    "test_reconstruction_sharpness_ratio",
                    "latent_mmd",
                    "latent_mmd_joint",
                    "latent_mmd_sampled",
                    "active_dims",
                ],
            ),
        ),
        "",
        "### Per level (1 = lowest, closest to the pixels)",
        "",
    ]
    level_rows = []
    for level in range(1, num_levels + 1):
        row = [str(level)]
        for name in ("dims", "active_dims", "mean_spread", "posterior_scale", "mmd"):
            value = metrics.get(f"level_{level}_{name}")
            row.append("n/a" if value is None else format_value(value))
        level_rows.append(row)
    lines += [
        markdown_table(
            ("level", "dims", "active dims", "Std E[z|x]", "posterior scale", "MMD^2 to prior"),
            level_rows,
        ),
        "",
        f"## {metrics['num_samples']} samples from the prior",
        "",
        markdown_table(
            ("metric", "value", "better", "meaning"),
            _metric_rows(
                metrics,
                [
                    "sample_frechet_distance",
                    "sample_inception_score",
                    "sample_class_coverage",
                    "sample_class_entropy",
                    "sample_sharpness",
                    "sample_sharpness_ratio",
                ],
            ),
        ),
        "",
        "## What each level controls",
        "",
        *_hierarchy_section(metrics, num_levels, info.get("hierarchy") or {}),
        "## Real-data references",
        "",
        markdown_table(
            ("metric", "value", "better", "meaning"),
            _metric_rows(
                metrics,
                [
                    "reference_frechet_distance_train_test",
                    "reference_inception_score_test",
                    "reference_class_entropy_test",
                    "reference_sharpness_test",
                    "classifier_test_accuracy",
                ],
            ),
        ),
        "",
        "## Figures",
        "",
    ]
    for name, caption in figures:
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    with atomic_path(path) as temporary, open(temporary, "w") as file:
        file.write("\n".join(lines))
    return path
