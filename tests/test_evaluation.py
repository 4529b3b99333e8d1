import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from ladder_vae.evaluation import classifier as classifier_lib
from ladder_vae import data as data_lib
from ladder_vae.config import write_json
from ladder_vae.evaluation import (
    compare,
    figures,
    hierarchy,
    loading,
    metric_keys,
    metrics,
    numpy_vae,
)
from ladder_vae.evaluation.loading import EvaluationError
from ladder_vae.evaluation.run import evaluate_run
from ladder_vae.model import LadderVAE

from tests import ssim_reference
from tests.idx_files import write_idx
from tests.processes import refusal_line

from .conftest import REPO_ROOT

RNG = np.random.default_rng(0)
NUM_SAMPLES = 300
# A small measure of what each level controls: (base codes, redraws).
HIERARCHY = dict(hierarchy_codes=40, hierarchy_redraws=3)


# Metrics on cases with known answers ----------------------------------------------------------


def test_frechet_distance_of_identical_sets_is_zero():
    features = RNG.standard_normal((2000, 16)) * RNG.random(16) + RNG.standard_normal(16)
    assert metrics.frechet_distance_of_features(features, features.copy()) < 1e-9
    # Rank-deficient covariances, as ReLU features give: still finite and about 0.
    features[:, :4] = 0.0
    assert metrics.frechet_distance_of_features(features, features.copy()) < 1e-9


def test_frechet_distance_of_gaussians_has_its_closed_form():
    dim = 8
    identity = (np.zeros(dim), np.eye(dim))
    shifted = (np.full(dim, 0.5), np.eye(dim))
    wider = (np.zeros(dim), 4.0 * np.eye(dim))
    assert metrics.frechet_distance(identity, shifted) == pytest.approx(dim * 0.25)
    # Tr(I + 4I - 2 (4I)^(1/2)) = dim (1 + 4 - 4).
    assert metrics.frechet_distance(identity, wider) == pytest.approx(dim)
    assert metrics.frechet_distance(wider, identity) == pytest.approx(dim)


def test_frechet_distance_grows_with_a_shift_of_samples():
    features = RNG.standard_normal((3000, 10))
    other = RNG.standard_normal((3000, 10))
    same = metrics.frechet_distance_of_features(features, other)
    moved = metrics.frechet_distance_of_features(features, other + 1.0)
    assert same < 0.1
    assert moved == pytest.approx(10.0, rel=0.1)


def test_inception_score_bounds():
    uniform = np.full((100, 10), 0.1)
    assert metrics.inception_score(uniform) == pytest.approx(1.0)
    confident_balanced = np.eye(10)[np.arange(1000) % 10]
    assert metrics.inception_score(confident_balanced) == pytest.approx(10.0, rel=1e-6)
    confident_one_class = np.eye(10)[np.zeros(1000, int)]
    assert metrics.inception_score(confident_one_class) == pytest.approx(1.0)
    confident_five = np.eye(10)[np.arange(1000) % 5]
    assert metrics.inception_score(confident_five) == pytest.approx(5.0, rel=1e-6)


def test_class_coverage_and_entropy():
    one_class = np.eye(10)[np.full(500, 3)]
    assert metrics.class_coverage(one_class) == pytest.approx(0.1)
    assert metrics.class_entropy(one_class) == pytest.approx(0.0)
    balanced = np.eye(10)[np.arange(1000) % 10]
    assert metrics.class_coverage(balanced) == pytest.approx(1.0)
    assert metrics.class_entropy(balanced) == pytest.approx(1.0)
    # 2 stray predictions of 1,000 (0.2% < 1% of the set) do not cover a class.
    labels = np.full(1000, 3)
    labels[:2] = 7
    assert metrics.class_coverage(np.eye(10)[labels]) == pytest.approx(0.1)
    labels[:20] = 7
    assert metrics.class_coverage(np.eye(10)[labels]) == pytest.approx(0.2)


def test_sharpness_of_a_step_edge_and_of_blurred_digits(digit_batch):
    step = np.zeros((1, 4, 4, 1), np.float32)
    step[:, :, 2:] = 1.0
    # One of the 3 columns of forward differences crosses the edge: 3 of 9 pixels at 1.
    assert metrics.sharpness(step) == pytest.approx(1.0 / 3.0)
    assert metrics.sharpness(np.full((2, 8, 8, 1), 0.7)) == 0.0
    kernel = np.ones((3, 3, 1, 1), np.float32) / 9.0
    import tensorflow as tf

    blurred = tf.nn.conv2d(digit_batch, kernel, strides=1, padding="SAME").numpy()
    assert metrics.sharpness(blurred) < 0.8 * metrics.sharpness(digit_batch)


def test_reconstruction_metrics(digit_batch):
    assert metrics.mean_squared_error(digit_batch, digit_batch) == 0.0
    assert metrics.mean_squared_error(np.zeros((2, 3, 3, 1)), np.full((2, 3, 3, 1), 0.5)) == 0.25
    assert metrics.mean_ssim(digit_batch, digit_batch, batch_size=10) == pytest.approx(1.0)
    noisy = np.clip(digit_batch + RNG.normal(0, 0.3, digit_batch.shape), 0, 1).astype(np.float32)
    assert metrics.mean_ssim(digit_batch, noisy) < 0.5


def test_latent_statistics():
    means = np.stack([RNG.standard_normal(4000), 0.05 * RNG.standard_normal(4000)], axis=1)
    assert metrics.active_dimensions(means) == 1
    assert metrics.active_dimensions(means, threshold=1e-4) == 2
    assert metrics.mean_spread(RNG.standard_normal((4000, 3))) == pytest.approx(1.0, abs=0.03)
    prior = RNG.standard_normal((5000, 2))
    assert abs(metrics.prior_mmd(prior)) < 0.005
    assert metrics.prior_mmd(prior + 2.0) > 0.3
    assert metrics.prior_mmd(0.1 * prior) > 0.1
    # Draws of the prior in sorted order are still the prior: the estimate must not see order.
    assert abs(metrics.prior_mmd(prior[np.argsort(prior[:, 0])])) < 0.005


def test_loss_curves_have_one_panel_per_logged_term(tmp_path):
    history = {key: np.array([3.0, 2.0]) for key in ("epoch", "loss", "mmd", "val_loss")}
    widths = []
    for extra in ({}, {"kl": np.array([0.5, 0.4]), "val_kl": np.array([0.6, 0.5])}):
        path = figures.loss_curves({**history, **extra}, str(tmp_path / f"{len(extra)}.png"))
        widths.append(Image.open(path).size[0])
    assert widths == [2 * 400, 3 * 400]  # 4 inches at 100 dpi per panel.


def test_loss_curves_of_one_epoch_label_that_epoch_alone():
    history = {"epoch": np.array([0]), "loss": np.array([3.0]), "val_loss": np.array([2.5])}
    for axes in figures.loss_figure(history).axes:
        assert list(axes.get_xticks()) == [1]


def test_readme_documents_every_metric():
    with open(os.path.join(REPO_ROOT, "README.md")) as file:
        readme = file.read()
    section = readme[readme.index("## Evaluate a run") :]
    for key, _, _ in metric_keys.METRICS:
        assert f"| `{key}` |" in section, key


# Loading --------------------------------------------------------------------------------------


def test_resolve_fails_clearly_on_what_is_not_a_run(tmp_path):
    with pytest.raises(EvaluationError, match="no such file or directory"):
        loading.resolve(str(tmp_path / "missing"))
    with pytest.raises(EvaluationError, match="not a run directory: no model.keras"):
        loading.resolve(str(tmp_path))
    (tmp_path / "backup").mkdir()
    with pytest.raises(EvaluationError, match="unfinished run"):
        loading.resolve(str(tmp_path))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EvaluationError, match="not a run directory, .keras file or SavedModel"):
        loading.resolve(str(tmp_path / "notes.txt"))


def test_resolve_prefers_the_final_model(tmp_path):
    for name in ("model.keras", "best.keras"):
        zipfile.ZipFile(tmp_path / name, "w").close()  # An empty archive: a .keras in form.
    assert loading.resolve(str(tmp_path)) == (str(tmp_path / "model.keras"), str(tmp_path))
    assert loading.resolve(str(tmp_path), "best")[0] == str(tmp_path / "best.keras")
    with pytest.raises(EvaluationError, match="no saved_model/"):
        loading.resolve(str(tmp_path), "saved_model")
    # The file it prefers is judged, not passed over for the next one.
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(EvaluationError, match="model.keras: not a .keras file"):
        loading.resolve(str(tmp_path))


def test_load_vae_rejects_other_and_broken_files(tmp_path):
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(EvaluationError, match="not a LadderVAE"):
        numpy_vae.load_vae(str(tmp_path / "other.keras"))
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(EvaluationError, match="broken.keras: not a .keras file"):
        numpy_vae.load_vae(str(tmp_path / "broken.keras"))


def test_load_eval_data_follows_the_run_record(tmp_path):
    data = loading.load_eval_data({"data": {"kind": "bundled", "dataset": "mnist"}})
    assert data.source["kind"] == "bundled" and len(data.val_images) == 1000
    missing = {"data": {"kind": "idx", "path": str(tmp_path / "gone"), "dataset": "mnist"}}
    with pytest.raises(EvaluationError, match="pass --data-dir"):
        loading.load_eval_data(missing)
    overridden = loading.load_eval_data(missing, data_dir=data_lib.BUNDLED_MNIST_DIR)
    assert len(overridden.train_images) == 3000
    # Evaluation never downloads: a TFDS run whose data is not prepared is an error at once.
    tfds_run = {"data": {"kind": "tfds", "name": "mnist", "dataset": "mnist"}}
    with pytest.raises(EvaluationError, match="not prepared under .*--tfds-data-dir"):
        loading.load_eval_data(tfds_run, tfds_data_dir=str(tmp_path))


def test_hierarchy_figure_puts_the_top_level_on_top(tmp_path):
    shares = np.array([[0.0, 0.9, 0.1], [0.05, 0.2, 0.7], [1.0, 0.3, float("nan")]])
    figure = figures.hierarchy_figure(
        shares, ("identity", "thickness", "slant"), np.array([0.01, 0.1, 0.9]), 0.95
    )
    axes = figure.axes[0]
    np.testing.assert_array_equal(axes.images[0].get_array(), np.nan_to_num(shares[::-1]))
    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert labels == ["level 3 (top)", "level 2", "level 1 (lowest)"]
    assert [label.get_text() for label in axes.get_xticklabels()] == [
        "identity",
        "thickness",
        "slant",
    ]
    texts = [text.get_text() for text in axes.texts]
    assert texts[:3] == ["1.00", "0.30", "n/a"] and "0.90" in texts
    assert "class changes\nin 90.0% of redraws" in texts
    assert "hierarchy summary 0.95" in figure._suptitle.get_text()
    path = figures.hierarchy_heatmap(shares, ("identity", "thickness", "slant"), tmp_path / "h.png")
    assert Image.open(path).size[0] > 400


# A whole evaluation on a tiny run -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_classifier(bundled_digits):
    """One epoch on 1,000 digits (~80% accuracy): enough to exercise every metric quickly."""
    return classifier_lib.train_classifier(
        bundled_digits.train_images[:1000],
        bundled_digits.train_labels[:1000],
        epochs=1,
        batch_size=32,
    )


def make_run(run_dir, ssim_weight=10.0):
    """A minimal run directory as train.py writes it: an untrained tiny model, config, history."""
    os.makedirs(run_dir, exist_ok=True)
    model = LadderVAE(latent_dims=(2, 3), base_filters=8, ssim_weight=ssim_weight, seed=1)
    model.build()
    model.save(os.path.join(run_dir, "model.keras"))
    write_json(
        os.path.join(run_dir, "config.json"),
        {
            "config": {"ssim_weight": ssim_weight, "latent_dims": [2, 3], "base_filters": 8},
            "data": {"kind": "bundled", "dataset": "mnist"},
        },
    )
    with open(os.path.join(run_dir, "history.csv"), "w") as file:
        file.write("epoch,loss,mmd,ssim,val_loss,val_mmd,val_ssim\n")
        file.write("0,40.0,0.1,0.3,35.0,0.1,0.4\n1,30.0,0.05,0.5,31.0,0.06,0.5\n")
    return run_dir


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, tiny_classifier):
    run_dir = make_run(str(tmp_path_factory.mktemp("run")))
    results, info = evaluate_run(
        run_dir, num_samples=NUM_SAMPLES, classifier=tiny_classifier, **HIERARCHY
    )
    return run_dir, results, info


def test_evaluate_run_writes_every_file(evaluated_run):
    run_dir, results, info = evaluated_run
    eval_dir = os.path.join(run_dir, "eval")
    expected = [
        "metrics.json",
        "info.json",
        "report.md",
        "samples.png",
        "reconstructions.png",
        "traversal_level_1.png",
        "traversal_level_2.png",
        "hierarchy.png",
        "loss_curves.png",
    ]
    for name in expected:
        assert os.path.getsize(os.path.join(eval_dir, name)) > 0, name
    with open(os.path.join(eval_dir, "report.md")) as file:
        text = file.read()
    for name in expected[3:]:
        assert f"]({name})" in text
    assert "not** Inception-FID" in text
    assert "## What each level controls" in text
    assert "| level 2 (top) | " in text and "| level 1 (lowest) | " in text
    assert "(40 base codes from the prior, each with the level's code redrawn 3 times)" in text
    assert info["hierarchy"]["num_codes"] == 40 and len(info["hierarchy"]["shares"]) == 2
    assert "what each level controls" in [name for name, _, _ in info["stages"]]
    # 100 samples in 10 columns of 28 + 2 pixels, plus the border, twice enlarged.
    assert Image.open(os.path.join(eval_dir, "samples.png")).size == (604, 604)
    assert info["model_kind"] == "keras" and info["epochs_trained"] == 2


def test_metrics_json_is_flat_numeric_and_documented(evaluated_run):
    run_dir, results, _ = evaluated_run
    with open(os.path.join(run_dir, "eval", "metrics.json")) as file:
        written = json.load(file)
    assert written == pytest.approx(results)
    for key, value in written.items():
        assert isinstance(value, (int, float)) and np.isfinite(value), key
        assert metric_keys.describe(key)[1], f"{key} is not documented in metric_keys.METRICS"
    assert written["level_1_dims"] == 2 and written["level_2_dims"] == 3
    assert written["num_samples"] == NUM_SAMPLES and written["num_test_images"] == 1000
    assert 0 <= written["test_mse"] <= 1 and -1 <= written["test_ssim"] <= 1
    assert 0 <= written["sample_class_coverage"] <= 1
    assert 1 <= written["sample_inception_score"] <= 10
    assert written["level_1_posterior_scale"] > 0
    # Grey blobs from an untrained decoder are far from digits; real digits are not.
    assert written["reference_frechet_distance_train_test"] < written["sample_frechet_distance"]
    assert written["sample_sharpness_ratio"] < 0.5
    for level in (1, 2):
        for name in ("thickness", "ink", "slant", "width", "height"):
            assert written[f"level_{level}_share_{name}"] >= 0
        assert 0 <= written[f"level_{level}_class_change_rate"] <= 1


# Evaluation wiring, on a model whose right answers are known by construction -----------------

# A vertical step edge: 0 left of column 14, 1 from there. Its forward differences are 1 in
# one column of the 27 x 27 pixels that have both neighbours, 0 elsewhere: sharpness 1/27.
STEP_EDGE = np.zeros((28, 28, 1), np.float32)
STEP_EDGE[:, 14:] = 1.0
# Level 1 (2 dims) follows the prior; level 2 (3 dims) is shifted by 3 and its last dimension
# is the same for every image (inactive). Posterior scales are 0.1 and 0.2.
SHIFT = np.array([0.0, 0.0, 3.0, 3.0, 3.0], np.float32)
ACTIVE = np.array([1.0, 1.0, 1.0, 1.0, 0.0], np.float32)
SCALES = np.array([0.1, 0.1, 0.2, 0.2, 0.2], np.float32)


def known_code(image):
    """A code per image: a standard normal draw seeded by the image's bytes, then shifted and
    masked as above. Equal images get equal codes, so encoding anything but the test digits
    (the reconstructions, say) would show in the statistics."""
    seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()[:8])
    return np.random.default_rng(seed).standard_normal(5).astype(np.float32) * ACTIVE + SHIFT


class KnownVAE(numpy_vae.VAE):
    """The `VAE` interface of evaluate_run: codes from `known_code`, and a decoder that returns
    the step edge whatever the code."""

    latent_dims = (2, 3)
    image_shape = (28, 28, 1)
    has_scales = True
    mmd_per_level = False
    description = "a model with known answers"

    def encode(self, images, batch_size=500):
        means = np.stack([known_code(image) for image in np.asarray(images, np.float32)])
        return means, np.broadcast_to(SCALES, means.shape).copy()

    def decode(self, codes, batch_size=500):
        assert np.shape(codes)[1] == 5
        return np.broadcast_to(STEP_EDGE, (len(codes), 28, 28, 1)).copy()


def documented_metric_keys(levels):
    """The keys of README's metrics.json table, `{i}` spelled out for each level."""
    with open(os.path.join(REPO_ROOT, "README.md")) as file:
        section = file.read().split("## Evaluate a run", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for key in re.findall(r"^\| `([a-z_{}0-9]+)` \|", section, flags=re.MULTILINE):
        keys.update(key.replace("{i}", str(level)) for level in range(1, levels + 1))
    return keys


def sharpness_by_hand(images):
    """Mean over images and pixels of sqrt(dx^2 + dy^2), forward differences (README)."""
    images = np.asarray(images, np.float64)[..., 0]
    dx = images[:, :-1, 1:] - images[:, :-1, :-1]
    dy = images[:, 1:, :-1] - images[:, :-1, :-1]
    return float(np.mean(np.sqrt(dx**2 + dy**2)))


def test_evaluate_run_computes_each_metric_from_the_right_inputs(
    tmp_path, monkeypatch, tiny_classifier, bundled_digits
):
    run_dir = make_run(str(tmp_path / "run"))
    monkeypatch.setattr(numpy_vae, "load_vae", lambda path: KnownVAE())
    top_codes_given = []
    measure = hierarchy.level_factor_shares

    def measure_and_record(*args, top_codes=None, **kwargs):
        top_codes_given.append(top_codes)
        return measure(*args, top_codes=top_codes, **kwargs)

    monkeypatch.setattr(hierarchy, "level_factor_shares", measure_and_record)
    results, _ = evaluate_run(run_dir, num_samples=NUM_SAMPLES, classifier=tiny_classifier)

    # The decoder draws one image whatever the code, so no attribute varies and no share of it
    # is defined: the hierarchy measure leaves those keys out rather than writing NaN.
    undefined = {key for key in documented_metric_keys(levels=2) if "_share_" in key}
    # Its one image is clear to the classifier or not; if not, no clear change rate is defined.
    assert results["clear_base_fraction"] in (0.0, 1.0)
    if results["clear_base_fraction"] == 0.0:
        undefined |= {key for key in documented_metric_keys(levels=2) if "_clear_class" in key}
    else:
        assert results["level_1_clear_class_change_rate"] == 0.0
    assert set(results) == documented_metric_keys(levels=2) - undefined - {"hierarchy_summary"}
    assert results["level_1_class_change_rate"] == results["level_2_class_change_rate"] == 0.0
    test_images = bundled_digits.val_images.astype(np.float64) / 255.0
    edges = np.broadcast_to(STEP_EDGE, test_images.shape)
    codes = np.stack([known_code(image) for image in test_images.astype(np.float32)])
    # The hierarchy is measured from prior draws, then with the top level of the test digits.
    assert len(top_codes_given) == 2 and top_codes_given[0] is None
    np.testing.assert_array_equal(top_codes_given[1], codes[:, 2:])

    # Reconstructions are the step edge: their errors and SSIM against the test digits.
    assert results["test_mse"] == pytest.approx(np.mean((test_images - edges) ** 2), rel=1e-6)
    expected_ssim = ssim_reference.ssim(test_images, edges, size=7, sigma=1.0).mean()
    assert results["test_ssim"] == pytest.approx(expected_ssim, abs=1e-4)
    reference = sharpness_by_hand(test_images)
    assert results["reference_sharpness_test"] == pytest.approx(reference, rel=1e-5)
    assert results["sample_sharpness"] == pytest.approx(1 / 27, rel=1e-5)
    assert results["sample_sharpness_ratio"] == pytest.approx(1 / 27 / reference, rel=1e-5)
    assert results["test_reconstruction_sharpness_ratio"] == pytest.approx(
        1 / 27 / reference, rel=1e-5
    )
    # Samples and reconstructions are the same image, hence the same distance to the test set.
    assert results["test_reconstruction_frechet_distance"] == pytest.approx(
        results["sample_frechet_distance"], rel=1e-6
    )
    assert results["reference_frechet_distance_train_test"] < results["sample_frechet_distance"]

    # Every level counts: level 1 matches the prior, level 2 is 3 units away, one dim inactive.
    assert (results["level_1_dims"], results["level_2_dims"]) == (2, 3)
    assert (results["level_1_active_dims"], results["level_2_active_dims"]) == (2, 2)
    assert results["active_dims"] == 4
    assert results["level_1_mean_spread"] == pytest.approx(codes[:, :2].std(axis=0).mean())
    assert results["level_2_mean_spread"] == pytest.approx(codes[:, 2:].std(axis=0).mean())
    assert results["level_1_posterior_scale"] == pytest.approx(0.1)
    assert results["level_2_posterior_scale"] == pytest.approx(0.2)
    assert abs(results["level_1_mmd"]) < 0.02 and results["level_2_mmd"] > 0.5
    assert results["latent_mmd"] == pytest.approx(
        results["level_1_mmd"] + results["level_2_mmd"], abs=1e-9
    )
    assert results["latent_mmd_joint"] > 0.5
    # Posterior samples lie within 0.2 of the means: about the same MMD as the means.
    assert results["latent_mmd_sampled"] == pytest.approx(results["latent_mmd_joint"], rel=0.2)

    # Every sample is the same image: one class, no spread; the test digits cover the classes.
    assert results["sample_class_coverage"] == pytest.approx(0.1)
    assert results["sample_class_entropy"] == pytest.approx(0.0, abs=1e-9)
    assert results["sample_inception_score"] == pytest.approx(1.0, abs=1e-6)
    assert results["reference_class_entropy_test"] > 0.5
    assert results["reference_inception_score_test"] > 2.0
    predictions = np.argmax(tiny_classifier.predict(test_images, verbose=0), axis=-1)
    accuracy = np.mean(predictions == bundled_digits.val_labels)
    assert results["classifier_test_accuracy"] == pytest.approx(accuracy)
    assert (results["num_test_images"], results["num_samples"]) == (1000, NUM_SAMPLES)


@pytest.mark.slow  # The export alone takes several seconds.
def test_a_saved_model_alone_gives_the_same_samples(evaluated_run, tiny_classifier, tmp_path):
    export = pytest.importorskip("ladder_vae.export")
    run_dir, results, _ = evaluated_run
    saved_model = export.export_model(
        keras.models.load_model(os.path.join(run_dir, "model.keras")),
        str(tmp_path / "exported"),
    )
    saved, info = evaluate_run(
        saved_model,
        out_dir=str(tmp_path / "eval"),
        num_samples=NUM_SAMPLES,
        classifier=tiny_classifier,
    )
    assert info["model_kind"] == "saved_model"
    assert "latent_mmd_sampled" not in saved and "level_1_posterior_scale" not in saved
    for key in ("test_mse", "sample_frechet_distance", "sample_sharpness", "level_2_mean_spread"):
        assert saved[key] == pytest.approx(results[key], rel=1e-3), key
    assert os.path.isfile(tmp_path / "eval" / "report.md")


def test_compare_runs_writes_a_table_and_a_figure(evaluated_run, tiny_classifier, tmp_path):
    run_dir, _, _ = evaluated_run
    other = make_run(str(tmp_path / "no-ssim"), ssim_weight=0.0)
    out_dir = str(tmp_path / "comparison")
    table, written_to = compare.compare_runs(
        [run_dir, other],
        out_dir=out_dir,
        num_samples=NUM_SAMPLES,
        classifier=tiny_classifier,
        **HIERARCHY,
    )
    assert written_to == out_dir
    header = table.splitlines()[0]
    assert os.path.basename(run_dir) in header and "no-ssim" in header
    assert "| config: `ssim_weight` | 10.0 | 0.0 |" in table
    assert "`sample_frechet_distance` (lower)" in table
    assert "| `level_2_share_slant` | " in table
    # The untrained models' grey blobs may all get one class, which leaves identity undefined.
    summaries = compare.comparison_table(
        ["a", "b"], [{"hierarchy_summary": 0.5}, {"hierarchy_summary": -0.25}], [{}, {}]
    )
    assert "| `hierarchy_summary` (higher) | 0.5 | -0.25 |" in summaries
    for name in ("comparison.md", "comparison.png", "comparison.json"):
        assert os.path.getsize(os.path.join(out_dir, name)) > 0
    # An up-to-date eval/ is reused, not recomputed.
    metrics_path = os.path.join(other, "eval", "metrics.json")
    before = os.path.getmtime(metrics_path)
    compare.compare_runs(
        [run_dir, other],
        out_dir=out_dir,
        num_samples=NUM_SAMPLES,
        classifier=tiny_classifier,
        **HIERARCHY,
    )
    assert os.path.getmtime(metrics_path) == before
    model_path = os.path.join(other, "model.keras")
    eval_dir = os.path.join(other, "eval")
    assert compare._up_to_date(eval_dir, model_path, NUM_SAMPLES, 0, 40, 3)
    assert not compare._up_to_date(eval_dir, model_path, 10_000, 0, 40, 3)
    assert not compare._up_to_date(eval_dir, model_path, NUM_SAMPLES, 1, 40, 3)
    assert not compare._up_to_date(eval_dir, model_path, NUM_SAMPLES, 0, 500, 3)
    assert not compare._up_to_date(eval_dir, model_path, NUM_SAMPLES, 0, 40, 8)
    with pytest.raises(EvaluationError, match="at least two runs"):
        compare.compare_runs([run_dir])


@pytest.mark.slow
def test_evaluate_py_end_to_end(tmp_path, tiny_classifier, bundled_digits):
    run_dir = make_run(str(tmp_path / "run"))
    # The classifier the command will look for, put in its cache beforehand: no training here.
    cache = tmp_path / "cache"
    model_path, info_path = classifier_lib.cache_paths(
        "mnist", bundled_digits.train_images, bundled_digits.train_labels, directory=str(cache)
    )
    os.makedirs(cache)
    tiny_classifier.save(model_path)
    write_json(info_path, {"test_accuracy": 0.8, "epochs": 1, "train_examples": 1000})
    env = dict(os.environ, LADDER_VAE_CACHE=str(cache), TF_CPP_MIN_LOG_LEVEL="3")

    def evaluate(*args):
        return subprocess.run(
            [sys.executable, os.path.join(REPO_ROOT, "evaluate.py"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=str(tmp_path),
            timeout=300,
        )

    done = evaluate(run_dir, "--num-samples", "200", "--hierarchy-codes", "20")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sample_frechet_distance" in done.stdout
    with open(os.path.join(run_dir, "eval", "metrics.json")) as file:
        assert json.load(file)["num_samples"] == 200
    with open(os.path.join(run_dir, "eval", "info.json")) as file:
        assert json.load(file)["hierarchy"]["num_codes"] == 20


def test_evaluate_py_says_what_is_wrong_in_one_line(tmp_path, capsys):
    sys.path.insert(0, REPO_ROOT)
    try:
        import evaluate
    finally:
        sys.path.remove(REPO_ROOT)
    assert evaluate.main([str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert (
        error[-1] == f"evaluate.py: error: {tmp_path}: not a run directory: no model.keras, "
        "best.keras or saved_model/ in it"
    )
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--compare", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--compare needs at least two runs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main([])
    assert "give either RUN_DIR or --compare" in capsys.readouterr().err


# evaluate.py in a real process: bad input is one line, before TensorFlow starts ---------------


def fake_run(run_dir, data=None, model="model.keras"):
    """A run directory whose model file is a zip archive as .keras files are (never loaded: every
    case below fails before that) and whose config.json records `data`."""
    run_dir.mkdir(parents=True)
    with zipfile.ZipFile(run_dir / model, "w") as archive:
        archive.writestr("config.json", '{"class_name": "LadderVAE"}')
    record = {"config": {"latent_dims": [2]}, "data": data or {"kind": "bundled"}}
    (run_dir / "config.json").write_text(json.dumps(record))
    return run_dir


def truncated_idx_dir(directory):
    directory.mkdir()
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((8, 28, 28), np.uint8))
    write_idx(directory / "train-labels-idx1-ubyte", np.zeros(8, np.uint8))
    path = directory / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    return directory


# Each case: (the arguments, given tmp_path; the error line, "{tmp}" standing for tmp_path).
EVALUATE_CASES = {
    "no arguments": (
        lambda tmp: [],
        "give either RUN_DIR or --compare RUN RUN [...] (see evaluate.py --help)",
    ),
    "num samples below 2": (
        lambda tmp: [str(fake_run(tmp / "run")), "--num-samples", "1"],
        "argument --num-samples: must be at least 2, got '1' (see evaluate.py --help)",
    ),
    "unknown checkpoint": (
        lambda tmp: [str(fake_run(tmp / "run")), "--checkpoint", "last"],
        "argument --checkpoint: invalid choice: 'last'",
    ),
    "missing path": (
        lambda tmp: [str(tmp / "missing")],
        "{tmp}/missing: no such file or directory",
    ),
    "directory without a model": (
        lambda tmp: [str(tmp)],
        "{tmp}: not a run directory: no model.keras, best.keras or saved_model/ in it",
    ),
    "another kind of file": (
        lambda tmp: [str(fake_run(tmp / "run") / "config.json")],
        "{tmp}/run/config.json: not a run directory, .keras file or SavedModel directory",
    ),
    "a .keras file that is not a zip archive": (
        lambda tmp: [str(_write(tmp / "model.keras", "not a zip archive"))],
        "{tmp}/model.keras: not a .keras file (a .keras file is a zip archive)",
    ),
    "checkpoint missing from the run": (
        lambda tmp: [str(fake_run(tmp / "run")), "--checkpoint", "best"],
        "{tmp}/run: not a run directory: no best.keras in it",
    ),
    "corrupt config.json": (
        lambda tmp: [str(_corrupt_config(fake_run(tmp / "run")))],
        "{tmp}/run/config.json: cannot read it (",
    ),
    "data dir without images": (
        lambda tmp: [str(fake_run(tmp / "run")), "--data-dir", str(tmp)],
        "--data-dir {tmp}: no training images",
    ),
    "truncated images": (
        lambda tmp: [str(fake_run(tmp / "run")), "--data-dir", str(truncated_idx_dir(tmp / "d"))],
        "{tmp}/d/train-images-idx3-ubyte: truncated",
    ),
    "the run's IDX data gone": (
        lambda tmp: [str(fake_run(tmp / "run", {"kind": "idx", "path": str(tmp / "gone")}))],
        "the run was trained on IDX files in {tmp}/gone, which is gone; pass --data-dir",
    ),
    "output is a file": (
        lambda tmp: [str(fake_run(tmp / "run")), "--out", str(_write(tmp / "notes", "text"))],
        "--out {tmp}/notes: exists and is not a directory",
    ),
    "compare one run": (
        lambda tmp: ["--compare", str(fake_run(tmp / "run"))],
        "--compare needs at least two runs (see evaluate.py --help)",
    ),
    "compare with a run that is not one": (
        lambda tmp: ["--compare", str(fake_run(tmp / "run")), str(tmp / "missing")],
        "{tmp}/missing: no such file or directory",
    ),
}


def _corrupt_config(run_dir):
    _write(run_dir / "config.json", '{"data": ')
    return run_dir


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_evaluate_py_bad_input_is_one_line_with_exit_code_2(tmp_path, case):
    make_args, message = EVALUATE_CASES[case]
    # Run from tmp_path, so that nothing is written to the current directory either.
    refusal_line(
        [sys.executable, os.path.join(REPO_ROOT, "evaluate.py"), *make_args(tmp_path)],
        "evaluate.py: error: " + message.format(tmp=tmp_path),
        tmp_path,
        cwd=tmp_path,
    )
