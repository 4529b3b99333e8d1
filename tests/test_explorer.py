"""The explorer without a browser: finding the export, level labels, value checks, pictures, and
`Explorer` on a real exported model. The page itself: tests/test_explore_browser.py."""

import base64
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import explore
from ladder_vae.explorer import codes, pictures
from ladder_vae.explorer.exported import ExplorerError, ExportedModel, find_saved_model
from ladder_vae.explorer.session import Explorer
from ladder_vae.image_grid import to_uint8
from tests.conftest import REPO_ROOT


def png_data_url(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def explorer(explorer_run, bundled_digits):
    model = ExportedModel(str(explorer_run / "saved_model"))
    return Explorer(model, bundled_digits.val_images[:50], name="test")


# Finding the export: before TensorFlow starts, one line naming the path --------------------


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda path: path, "no such directory"),
        (lambda path: path.mkdir() or path, "no exported model (no saved_model/ in it); export "
                                            "the run with `python -m ladder_vae.export"),
        (lambda path: (path / "saved_model").mkdir(parents=True) or path,
         "saved_model: not a SavedModel (no saved_model.pb)"),
        (lambda path: (path.write_text("x"), path)[1], "not a directory"),
    ],
)
def test_a_path_without_an_export_is_named(tmp_path, setup, message):
    path = setup(tmp_path / "run")
    with pytest.raises(ExplorerError, match="^" + str(path)) as error:
        find_saved_model(str(path))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_run_directory_and_its_saved_model_give_the_same_model(explorer_run):
    assert find_saved_model(str(explorer_run)) == (
        str(explorer_run / "saved_model"), str(explorer_run)
    )
    assert find_saved_model(str(explorer_run / "saved_model")) == (
        str(explorer_run / "saved_model"), str(explorer_run)
    )


@pytest.mark.parametrize(
    "argv_of, message",
    [
        (lambda run: [str(run / "nothing")], "nothing: no such directory"),
        (lambda run: [str(run), "--port", "0"], "argument --port: must be in [1, 65535]"),
        (lambda run: [str(run), "--seed", "-1"], "argument --seed: must be in [0, 2147483647]"),
        (lambda run: [str(run), "--port", "abc"], "argument --port: expected an integer"),
        (lambda run: [str(run), "--colour", "red"], "unrecognized arguments: --colour red"),
    ],
)
def test_command_line_errors_are_one_line_with_exit_code_2(tmp_path, capsys, argv_of, message):
    with pytest.raises(SystemExit) as stop:
        explore.main(argv_of(tmp_path))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("explore.py: error: ") and message in err[0]


def test_a_corrupt_export_is_one_line_at_start_up(tmp_path, capsys):
    broken = tmp_path / "run" / "saved_model"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"\x08\x01 not a protocol buffer")
    with pytest.raises(SystemExit) as stop:
        explore.main([str(tmp_path / "run"), "--port", str(_free_port())])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"explore.py: error: {broken}: cannot load the "
                                               "SavedModel (")


def test_a_port_in_use_is_one_line_before_the_model_loads(explorer_run, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit):
            explore.main([str(explorer_run), "--port", str(port)])
    err = capsys.readouterr().err.strip()
    assert err == (f"explore.py: error: --host 127.0.0.1 --port {port}: cannot listen there "
                   "(Address already in use)")


def _free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                       ("0.0.0.0", False), ("192.168.1.4", False), ("example.org", False)]
)
def test_only_loopback_hosts_count_as_this_machine(host, loopback):
    assert explore._is_loopback(host) is loopback


# Level labels -------------------------------------------------------------------------------


def test_levels_are_labelled_with_what_they_control_most():
    metrics = {
        "level_1_share_thickness": 0.5, "level_1_share_ink": 0.4, "level_1_share_slant": 0.1,
        "level_1_class_change_rate": 0.04,
        "level_2_share_slant": 0.8, "level_2_share_width": 0.1,
        "level_3_share_identity": 0.7, "level_3_share_stroke_curl": 0.6,  # any attribute name
        "level_3_share_ink": 0.65, "test_mse": 0.03,
    }
    assert codes.level_labels(metrics, 4) == [
        "mostly thickness, ink; changes the class 4% of the time",
        "mostly slant",
        "mostly identity, ink",
        "not measured",
    ]
    # With the rates around real digits (below the top level only: the top's redraw replaces
    # the real digit's code).
    metrics.update(
        level_1_class_change_rate=0.1, level_1_data_top_class_change_rate=0.04,
        level_3_class_change_rate=0.9, level_3_data_top_class_change_rate=0.9,
    )
    labels = codes.level_labels(metrics, 3)
    assert labels[0] == (
        "mostly thickness, ink; changes the class 10% of the time (4% around a real digit)"
    )
    assert labels[2] == "mostly identity, ink; changes the class 90% of the time"


@pytest.mark.parametrize("metrics", [None, {}, {"test_mse": 0.1, "level_1_dims": 2}])
def test_no_labels_without_the_shares(metrics):
    assert codes.level_labels(metrics, 3) is None


def test_metrics_json_is_read_from_the_run_and_a_broken_one_is_ignored(tmp_path):
    assert codes.read_metrics(str(tmp_path)) is None
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text("{broken")
    assert codes.read_metrics(str(tmp_path)) is None
    (tmp_path / "eval" / "metrics.json").write_text('{"level_1_share_ink": 0.3}')
    assert codes.level_labels(codes.read_metrics(str(tmp_path)), 1) == ["mostly ink"]


# Values the page sends ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, message",
    [
        ([0.0, 3.01], "level 2: value 3.01 is outside the controls' range [-3, 3]"),
        ([float("nan"), 0.0], "level 2: value nan is outside"),
        ([0.0], "level 2: expected 2 numbers, got [0.0]"),
        ("0,0", "level 2: expected 2 numbers, got '0,0'"),
        ([True, 0.0], "level 2: True is not a number"),
        ([0.0, "1"], "level 2: '1' is not a number"),
    ],
)
def test_level_values_outside_the_controls_are_refused(values, message):
    with pytest.raises(ExplorerError) as error:
        codes.check_level_values(values, 2, 2)
    assert str(error.value) == message or str(error.value).startswith(message)


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5, "7", None, float("inf")])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ExplorerError, match="seed must be an integer"):
        codes.check_seed(seed)


# Pictures -----------------------------------------------------------------------------------


def test_a_dark_digit_on_paper_becomes_a_centred_light_digit():
    paper = np.full((300, 200), 255, np.uint8)
    paper[40:140, 20:50] = 0  # a thick bar, far from the centre
    digit = pictures.as_digit(pictures.read_picture(
        pictures.decode_data_url(png_data_url(paper), "bar.png"), "bar.png"), (28, 28, 1))
    assert digit.shape == (28, 28, 1) and digit.max() > 0.9 and digit[0, 0, 0] == 0
    rows, columns = np.nonzero(digit[..., 0] > 0.5)
    # Only the bar is ink (the paper was inverted to the dark ground): 100 x 30 pixels scaled
    # into the 20-pixel box.
    assert rows.max() - rows.min() + 1 == pytest.approx(20, abs=1)
    assert columns.max() - columns.min() + 1 == pytest.approx(6, abs=1)
    weights = digit[..., 0]
    centre = [(weights.sum(axis=1) * np.arange(28)).sum() / weights.sum(),
              (weights.sum(axis=0) * np.arange(28)).sum() / weights.sum()]
    assert centre == pytest.approx([13.5, 13.5], abs=1.0)


@pytest.mark.parametrize(
    "contents, message",
    [
        ("data:text/plain;base64," + base64.b64encode(b"hello").decode(),
         "x.png: not an image PIL can read"),
        ("data:image/png;base64,@@@", "x.png: damaged upload (invalid base64)"),
        ("just text", "x.png: not a file the browser sent as a data URL"),
        ("data:image/png;base64," + "A" * (8 * 1024 * 1024), "x.png: 6.0 MB, over the 5 MB"),
        (png_data_url(np.zeros((5000, 5000), np.uint8)), "x.png: 5000x5000 pixels, over"),
        (png_data_url(np.zeros((28, 28), np.uint8)), "the picture is empty"),
    ],
)
def test_unusable_uploads_are_refused_with_one_line(explorer, contents, message):
    with pytest.raises(ExplorerError) as error:
        explorer.picture(contents, "x.png")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_strips_have_a_row_per_dimension_and_frame_the_current_value():
    images = np.zeros((2 * 9, 28, 28, 1), np.float32)
    strip = pictures.strip_picture(images, [3.0, -0.2])
    assert strip.shape == (2 * 29 - 1, 9 * 29 - 1, 3)
    framed = np.all(strip == pictures.MARK_COLOUR, axis=-1)
    assert framed[0, 8 * 29] and framed[29, 4 * 29] and not framed[0, 0]


# Explorer on the exported model -------------------------------------------------------------


def test_render_decodes_the_code_and_one_strip_per_level(explorer):
    levels = explorer.draw(3)
    main, strips = explorer.image(levels), explorer.strips(levels)
    flat = np.concatenate(levels).astype(np.float32)
    with Image.open(io.BytesIO(main)) as image:
        expected = to_uint8(explorer.model.decode(flat[None])[0])[..., 0]
        np.testing.assert_array_equal(np.asarray(image), expected)
    assert len(strips) == 3
    for strip, dim in zip(strips, (2, 2, 3)):
        with Image.open(io.BytesIO(strip)) as image:
            assert image.size == (9 * 29 - 1, dim * 29 - 1)


def test_draws_are_reproducible_and_redraw_changes_one_level(explorer):
    assert explorer.draw(11) == explorer.draw(11) != explorer.draw(12)
    assert np.allclose(np.concatenate(explorer.draw(11)), codes.prior_code(11, 7), atol=1e-6)
    levels = explorer.draw(11)
    redrawn = explorer.redraw_level(levels, 2, 99)
    assert redrawn[0] == levels[0] and redrawn[2] == levels[2]
    assert redrawn[1] == explorer.draw(99)[1] != levels[1]


def test_a_validation_digit_jumps_to_its_posterior_means(explorer, bundled_digits):
    levels, message = explorer.digit(7)
    expected = explorer.model.encode(bundled_digits.val_images[7:8] / 255.0)[0]
    np.testing.assert_allclose(np.concatenate(levels), np.clip(expected, -3, 3), atol=1e-5)
    assert message.startswith("Encoded validation digit 7")
    with pytest.raises(ExplorerError, match="digit 50: no such validation digit"):
        explorer.digit(50)


def test_a_drawing_is_encoded_as_the_digit_the_model_sees(explorer):
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[60:220, 120:160, :3] = 255  # a white "1" on black
    levels, digit_png, message = explorer.picture(png_data_url(canvas), "the drawing")
    with Image.open(io.BytesIO(digit_png)) as digit:
        seen = np.asarray(digit, np.float32)[..., None] / 255.0
    np.testing.assert_allclose(
        np.concatenate(levels), np.clip(explorer.model.encode(seen[None])[0], -3, 3), atol=1e-4
    )
    assert message == "Encoded the drawing."


def test_download_and_json_hold_the_current_code(explorer):
    levels = explorer.draw(4)
    with Image.open(io.BytesIO(explorer.download(levels))) as image:
        assert image.size == (280, 280)
        small = np.asarray(image)[::10, ::10]
    flat = np.concatenate(levels).astype(np.float32)
    np.testing.assert_array_equal(small, to_uint8(explorer.model.decode(flat[None])[0])[..., 0])
    record = json.loads(explorer.code_json(levels))
    assert record["latent_dims"] == [2, 2, 3]
    assert record["z"] == pytest.approx(flat, abs=1e-4)
    assert [len(level) for level in record["levels"]] == [2, 2, 3]


def test_layout_asks_for_an_evaluation_when_levels_are_unlabelled(explorer):
    from ladder_vae.explorer.layout import build_layout

    layout = build_layout(explorer, seed=0)
    assert "Run evaluate.py" in str(layout["labels-hint"].children)
    labelled = Explorer(explorer.model, explorer.digits, labels=["a", "b", "c"])
    layout = build_layout(labelled, seed=0)
    assert layout["level-2-label"].children == "b"
    with pytest.raises(KeyError):
        layout["labels-hint"]


def test_the_serving_path_imports_no_training_code(explorer_run):
    """The explorer must run on an export copied to a machine without the training code."""
    script = (
        "import sys, explore\n"
        "from ladder_vae.explorer.exported import ExportedModel\n"
        "from ladder_vae.explorer.session import Explorer\n"
        "from ladder_vae.explorer.app import build_app\n"
        "from ladder_vae.explorer import digits\n"
        f"model = ExportedModel({str(explorer_run / 'saved_model')!r})\n"
        f"images, _ = digits.validation_digits({str(explorer_run)!r}, model.image_shape)\n"
        "explorer = Explorer(model, images)\n"
        "explorer.image(explorer.draw(0)); explorer.digit(0); build_app(explorer)\n"
        "print(sorted(m for m in sys.modules if m.startswith('ladder_vae')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = eval(result.stdout.strip().splitlines()[-1])
    assert not [name for name in loaded if name in (
        "ladder_vae.model", "ladder_vae.training", "ladder_vae.losses", "ladder_vae.export",
        "ladder_vae.config", "ladder_vae.evaluation")], loaded


@pytest.mark.parametrize(
    "config, source",
    [
        (None, "the bundled MNIST test digits (the run directory records no data)"),
        ({"data": {"kind": "bundled"}}, "the bundled MNIST test digits (the run's data)"),
        ({"data": {"kind": "idx", "path": "/no/such/dir"}},
         "the bundled MNIST test digits (the run's idx data is not on this machine)"),
        ("{broken", "the bundled MNIST test digits ({path} is unreadable)"),
    ],
)
def test_validation_digits_fall_back_to_the_bundled_ones(tmp_path, config, source):
    from ladder_vae.explorer import digits

    path = tmp_path / "config.json"
    if config is not None:
        path.write_text(config if isinstance(config, str) else json.dumps(config))
    images, said = digits.validation_digits(str(tmp_path), (28, 28, 1))
    assert images.shape == (1000, 28, 28, 1) and said == source.format(path=path)
    images, said = digits.validation_digits(str(tmp_path), (32, 32, 3))
    assert len(images) == 0  # none of the model's shape


def test_validation_digits_of_an_idx_run_are_its_test_files(tmp_path, bundled_digits):
    from ladder_vae.explorer import digits
    from tests.idx_files import small_idx_dir

    data = small_idx_dir(tmp_path / "idx", bundled_digits, num_train=16, num_test=8)
    (tmp_path / "config.json").write_text(json.dumps({"data": {"kind": "idx", "path": str(data)}}))
    images, said = digits.validation_digits(str(tmp_path), (28, 28, 1))
    np.testing.assert_array_equal(images, bundled_digits.val_images[:8])
    assert said == f"the validation digits of {data}"
