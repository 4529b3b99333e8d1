"""Every key of `metrics.json`: which way is better and what it means.

One table for report.md, `--compare` and README's table of keys (a test checks that README
documents each of them).
"""

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
        "level_{i}_clear_class_change_rate",
        "",
        "the same over the base images whose class the classifier gives at least 0.9: a clear "
        "digit redrawn as another, rather than an ambiguous one tipped (left out when no base "
        "image is clear)",
    ),
    (
        "clear_base_fraction",
        "",
        "fraction of the hierarchy measure's base images (prior samples) whose class the "
        "classifier gives at least 0.9",
    ),
    (
        "level_{i}_data_top_class_change_rate",
        "",
        "level_{i}_class_change_rate with each base code's top level taken from a test digit "
        "(its posterior mean) instead of the prior: without the ambiguous digits that prior "
        "draws between the top level's codes make",
    ),
    (
        "data_top_clear_base_fraction",
        "",
        "clear_base_fraction of those base images (top level from test digits)",
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
