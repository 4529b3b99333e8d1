"""The keys of `metrics.json`, what each means, and the markdown that presents them."""

import math
import re

from ladder_vae.atomic import atomic_path

# Every key of metrics.json: (key, better, meaning). `{i}` stands for a ladder level, 1 = lowest.
# better: "lower", "higher", "1" (closest to 1 is best) or "" (a count or a reference value).
METRICS = (
    # Test split: reconstructions from the posterior means.
    ("test_mse", "lower", "mean squared error per pixel of the reconstructions (pixels in [0, 1])"),
    (
        "test_ssim",
        "higher",
        "mean SSIM of the reconstructions (7x7 Gaussian window, as in training)",
    ),
    (
        "test_reconstruction_frechet_distance",
        "lower",
        "classifier-feature Frechet distance of the reconstructions to the test digits",
    ),
    (
        "test_reconstruction_sharpness_ratio",
        "1",
        "mean gradient magnitude of the reconstructions over that of the test digits",
    ),
    # Latent codes of the test split.
    (
        "latent_mmd",
        "lower",
        "sum over levels of MMD^2 between the posterior means E[z_i|x] and N(0, I) (RBF kernel, "
        "unbiased; ~0 when they match, can be slightly negative)",
    ),
    (
        "latent_mmd_joint",
        "lower",
        "MMD^2 between the concatenated posterior means of all levels and N(0, I): also sees "
        "dependence between levels",
    ),
    (
        "latent_mmd_sampled",
        "lower",
        "the model's MMD term (per level or joint, as it was trained) on posterior samples "
        "z ~ q(z|x) (.keras models only)",
    ),
    ("active_dims", "higher", "active code dimensions over all levels (Var_x E[z|x] > 0.01)"),
    ("level_{i}_dims", "", "code size of level i"),
    ("level_{i}_active_dims", "higher", "active dimensions of level i (Var_x E[z_i|x] > 0.01)"),
    (
        "level_{i}_mean_spread",
        "1",
        "mean over dimensions of Std_x E[z_i|x]; 1 when the means alone fill the prior",
    ),
    (
        "level_{i}_posterior_scale",
        "",
        "mean posterior standard deviation of level i (.keras models only)",
    ),
    ("level_{i}_mmd", "lower", "MMD^2 between level i's posterior means and N(0, I)"),
    # What each level controls (ladder_vae/evaluation/hierarchy.py).
    (
        "level_{i}_share_identity",
        "",
        "probability that two images differing only in level i's code are classified as "
        "different digits, over that probability for two independent prior samples",
    ),
    (
        "level_{i}_share_thickness",
        "",
        "mean variance of the stroke thickness (2 mass / total variation, pixels) when only "
        "level i's code is redrawn, over its variance across independent prior samples",
    ),
    (
        "level_{i}_share_ink",
        "",
        "the same share for the ink (sum of pixel intensities)",
    ),
    (
        "level_{i}_share_slant",
        "",
        "the same share for the slant (-mu11/mu02 of the image moments; > 0 leans right)",
    ),
    (
        "level_{i}_share_width",
        "",
        "the same share for the width once the slant is removed (from the image moments)",
    ),
    ("level_{i}_share_height", "", "the same share for the height (from the image moments)"),
    (
        "level_{i}_class_change_rate",
        "",
        "fraction of redraws of level i alone that change the predicted class of the image",
    ),
    (
        "hierarchy_summary",
        "higher",
        "identity share of the top level minus the largest identity share of any other level: "
        "1 when only the top level decides the digit",
    ),
    # Samples from the prior.
    (
        "sample_frechet_distance",
        "lower",
        "classifier-feature Frechet distance of the prior samples to the test digits "
        "(NOT Inception-FID)",
    ),
    (
        "sample_inception_score",
        "higher",
        "exp E KL(p(y|x) || p(y)) of the classifier on the samples: 1 to the number of classes",
    ),
    (
        "sample_class_coverage",
        "higher",
        "fraction of the classes that the classifier predicts for at least a tenth of their "
        "uniform share of the samples (1% each for 10 classes)",
    ),
    (
        "sample_class_entropy",
        "higher",
        "entropy of the samples' predicted-class histogram / log(classes): 1 = balanced",
    ),
    ("sample_sharpness", "", "mean gradient magnitude of the samples"),
    (
        "sample_sharpness_ratio",
        "1",
        "sample_sharpness over the test digits' (below 1: blurrier than real digits)",
    ),
    # References from real data, to read the numbers above against.
    (
        "reference_frechet_distance_train_test",
        "",
        "classifier-feature Frechet distance of as many real training digits to the test "
        "digits: the floor a perfect generator would reach",
    ),
    ("reference_inception_score_test", "", "Inception Score of the test digits"),
    ("reference_class_entropy_test", "", "class entropy of the test digits' predictions"),
    ("reference_sharpness_test", "", "mean gradient magnitude of the test digits"),
    ("classifier_test_accuracy", "higher", "the classifier's accuracy on the test digits"),
    ("num_test_images", "", "test digits evaluated"),
    ("num_samples", "", "samples drawn from the prior"),
)

# The metrics of a `--compare` table, in its order; per-level keys follow them.
HEADLINE = (
    "test_mse",
    "test_ssim",
    "test_reconstruction_sharpness_ratio",
    "latent_mmd",
    "latent_mmd_joint",
    "active_dims",
    "sample_frechet_distance",
    "reference_frechet_distance_train_test",
    "sample_inception_score",
    "sample_class_coverage",
    "sample_class_entropy",
    "sample_sharpness_ratio",
    "classifier_test_accuracy",
    "hierarchy_summary",
)


def describe(key):
    """(better, meaning) of a metrics.json key, per-level keys included; ("", "") if unknown."""
    parts = key.split("_")
    if len(parts) > 2 and parts[0] == "level" and parts[1].isdigit():
        key = "level_{i}_" + "_".join(parts[2:])
    for name, better, meaning in METRICS:
        if name == key:
            return better, meaning
    return "", ""


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
    # hierarchy.py's order: identity, then the image attributes.
    order = ("identity", "thickness", "ink", "slant", "width", "height")
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
        rate = metrics.get(f"level_{level}_class_change_rate")
        rows.append([name] + cells + ["n/a" if rate is None else f"{rate:.1%}"])
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
        "that probability for two independent samples. The last column is how often a redraw "
        "changes the predicted class of the image it started from. A clean ladder (Zhao et "
        "al. 2017, Fig. 4) has identity on the top level alone and stroke thickness on the "
        "lowest.",
        "",
        markdown_table(
            ["level"] + [f"{name} share" for name in attributes] + ["class changes"], rows
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
