"""The SavedModel export: plain TensorFlow loads it and gets what the Keras model computes."""

import json
import os
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import callbacks as lvae_callbacks
from ladder_vae import export, training
from ladder_vae.export import __main__ as export_cli
from ladder_vae.config import TrainConfig
from ladder_vae.model import LadderVAE
from tests.idx_files import small_idx_dir
from tests.processes import refusal_line, run_successfully

LATENT_DIMS = (2, 3, 1)
# The export runs the same float32 kernels as Keras, in another process; measured: identical.
ATOL = 1e-5

# Run in a fresh interpreter (-I: no PYTHONPATH, no user site, not the repository on sys.path),
# with this project made unimportable: what a user without the project installed has.
CLIENT = r"""
import json, sys

class NoProject:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ladder_vae", "callbacks"):
            raise ImportError(f"the export must not need {name}")

sys.meta_path.insert(0, NoProject())
import numpy as np
import tensorflow as tf

saved_model, io_dir = sys.argv[1:]
inputs = np.load(f"{io_dir}/inputs.npz")
model = tf.saved_model.load(saved_model)
out = {"latent_dims": model.latent_dims().numpy()}
for size in (1, 37):
    x, z = inputs[f"x{size}"], inputs[f"z{size}"]
    out[f"encode{size}"] = model.encode(x).numpy()
    out[f"decode{size}"] = model.decode(z).numpy()
    out[f"reconstruct{size}"] = model.reconstruct(x).numpy()
    out[f"serving_default{size}"] = model.signatures["serving_default"](x=tf.constant(x))[
        "output_0"].numpy()
out["sample_37_seed_11"] = model.sample(num=37, seed=11).numpy()
out["sample_37_seed_11_again"] = model.sample(37, 11).numpy()
out["sample_37_seed_12"] = model.sample(37, 12).numpy()
out["sample_0"] = model.sample(0, 11).numpy()
# More codes than one chunk of the decoder, and seeds past the int32 range.
out["sample_chunks"] = model.sample(num=int(inputs["chunked"]), seed=5).numpy()
for seed in (0, 2**32, 2**40, -1):
    out[f"sample_seed_{seed}"] = model.sample(num=2, seed=seed).numpy()
out["encode_0"] = model.encode(np.zeros((0, 28, 28, 1), np.float32)).numpy()
out["reconstruct_0"] = model.reconstruct(np.zeros((0, 28, 28, 1), np.float32)).numpy()

x = inputs["x1"]
bad_calls = {
    "wrong_size": lambda: model.encode(np.zeros((2, 27, 28, 1), np.float32)),
    "wrong_rank": lambda: model.reconstruct(x[0]),
    "wrong_dtype": lambda: model.encode(tf.constant(x, tf.float64)),
    "wrong_code_size": lambda: model.decode(np.zeros((2, 7), np.float32)),
    "uint8_pixels": lambda: model.encode((x * 255).astype(np.uint8)),
    "negative_num": lambda: model.sample(-1, 0),
    "num_2**31": lambda: model.sample(num=2**31, seed=0),
    "nan_code": lambda: model.decode(np.full((1, 6), np.nan, np.float32)),
}
errors = {}
for name, call in bad_calls.items():
    try:
        call()
        errors[name] = None
    except Exception as error:
        errors[name] = [type(error).__name__, str(error)]
with open(f"{io_dir}/errors.json", "w") as file:
    json.dump(errors, file)
assert "ladder_vae" not in sys.modules
np.savez(f"{io_dir}/outputs.npz", **out)
"""


def keras_model():
    """A small model with random weights and non-trivial BatchNorm statistics, so that an export
    that ran BatchNorm in training mode (batch statistics) would not match."""
    model = LadderVAE(latent_dims=LATENT_DIMS, base_filters=8, seed=3)
    model.build((None, 28, 28, 1))
    rng = np.random.default_rng(0)
    for variable in model.non_trainable_variables:
        if "moving_mean" in variable.path:
            variable.assign(rng.normal(0.0, 0.2, variable.shape).astype(np.float32))
        elif "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run directory whose model.keras was exported by the command line, over an old export
    and next to the leftover of an export killed earlier (pid 999999999 cannot be running)."""
    run_dir = tmp_path_factory.mktemp("run")
    model = keras_model()
    model.save(str(run_dir / "model.keras"))
    old = run_dir / "saved_model"
    old.mkdir()
    (old / "saved_model.pb").write_bytes(b"an older export")
    (run_dir / ".saved_model.tmp-999999999").mkdir()
    assert export_cli.main([str(run_dir)]) == 0
    return model, run_dir


def test_export_replaces_the_old_export_and_leaves_no_temporary_directory(exported):
    _, run_dir = exported
    assert sorted(os.listdir(run_dir)) == ["model.keras", "saved_model"]
    assert (run_dir / "saved_model" / "saved_model.pb").read_bytes() != b"an older export"


@pytest.mark.slow
def test_plain_tensorflow_client_matches_the_keras_model(exported, digit_batch, tmp_path):
    model, run_dir = exported
    dims = list(LATENT_DIMS)
    inputs = {}
    for size, x in ((1, digit_batch[37:38]), (37, digit_batch[:37])):
        inputs[f"x{size}"] = x
        # Codes of other images than x, so that decode is not only checked on encode's output.
        inputs[f"z{size}"] = np.random.default_rng(size).normal(size=(size, sum(dims)))
        inputs[f"z{size}"] = inputs[f"z{size}"].astype(np.float32)
    chunked = 2 * export.SAMPLE_CHUNK + 3
    np.savez(tmp_path / "inputs.npz", chunked=chunked, **inputs)

    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run_successfully(
        [sys.executable, "-I", "-c", CLIENT, str(run_dir / "saved_model"), str(tmp_path)],
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    out = dict(np.load(tmp_path / "outputs.npz"))
    errors = json.loads((tmp_path / "errors.json").read_text())

    np.testing.assert_array_equal(out["latent_dims"], dims)
    for size in (1, 37):
        x, z = inputs[f"x{size}"], inputs[f"z{size}"]
        means = np.concatenate([mean for mean, _ in model.encode(x, training=False)], axis=-1)
        assert out[f"encode{size}"].shape == (size, sum(dims))
        np.testing.assert_allclose(out[f"encode{size}"], means, atol=ATOL)
        decoded = model.decode(np.split(z, np.cumsum(dims)[:-1], axis=-1), training=False)
        assert out[f"decode{size}"].shape == (size, 28, 28, 1)
        np.testing.assert_allclose(out[f"decode{size}"], decoded, atol=ATOL)
        reconstructed = model(x, training=False)
        np.testing.assert_allclose(out[f"reconstruct{size}"], reconstructed, atol=ATOL)
        np.testing.assert_allclose(out[f"serving_default{size}"], reconstructed, atol=ATOL)

    # The client's samples are the Keras decoder's images of the documented prior draw,
    # tf.random.stateless_normal(seed=[seed, 0]), made here: a seed gives the same images in
    # every process.
    codes = tf.random.stateless_normal([37, sum(dims)], seed=[11, 0])
    expected = model.decode(tf.split(codes, dims, axis=-1), training=False)
    np.testing.assert_allclose(out["sample_37_seed_11"], expected, atol=ATOL)
    # Decoded in chunks inside the endpoint, the same images as one batch through Keras.
    codes = export.prior_codes(chunked, 5, dims)
    expected = model.decode(tf.split(codes, dims, axis=-1), training=False)
    assert out["sample_chunks"].shape == (chunked, 28, 28, 1)
    np.testing.assert_allclose(out["sample_chunks"], expected, atol=ATOL)
    # Every int64 seed is its own: none wraps to another (one seed gives identical images).
    seeds = [out[f"sample_seed_{seed}"] for seed in (0, 2**32, 2**40, -1)]
    for i, first in enumerate(seeds):
        for second in seeds[i + 1 :]:
            assert not np.array_equal(first, second)
    np.testing.assert_array_equal(out["sample_37_seed_11"], out["sample_37_seed_11_again"])
    assert np.abs(out["sample_37_seed_11"] - out["sample_37_seed_12"]).mean() > 1e-3
    # An empty batch gives empty outputs of the right shape.
    assert out["sample_0"].shape == out["reconstruct_0"].shape == (0, 28, 28, 1)
    assert out["encode_0"].shape == (0, sum(dims))
    for name in ("encode1", "decode37", "reconstruct37", "sample_37_seed_11"):
        assert out[name].dtype == np.float32
    for name in ("decode37", "reconstruct37", "sample_37_seed_11"):
        assert 0.0 <= out[name].min() and out[name].max() <= 1.0

    # Wrong input fails before the model runs; the first line says what was expected.
    signature_errors = {
        "wrong_size": "TensorSpec(shape=(2, 27, 28, 1), dtype=tf.float32",
        "wrong_rank": "TensorSpec(shape=(28, 28, 1), dtype=tf.float32",
        "wrong_dtype": "TensorSpec(shape=(1, 28, 28, 1), dtype=tf.float64",
        "wrong_code_size": "TensorSpec(shape=(2, 7), dtype=tf.float32",
    }
    for name, received in signature_errors.items():
        kind, message = errors[name]
        first_line = message.splitlines()[0]
        assert kind == "TypeError", (name, message[:500])
        assert f"Can not cast {received}" in first_line, (name, first_line)
    assert "to TensorSpec(shape=(None, 28, 28, 1), dtype=tf.float32" in (
        errors["wrong_size"][1].splitlines()[0]
    )
    assert "to TensorSpec(shape=(None, 6), dtype=tf.float32" in (
        errors["wrong_code_size"][1].splitlines()[0]
    )
    kind, message = errors["uint8_pixels"]
    assert kind == "InvalidArgumentError"
    assert "encode: x must hold values in [0, 1] (divide uint8 pixels by 255)" in message
    most = export.max_samples((28, 28, 1))
    for name, got in (("negative_num", -1), ("num_2**31", 2**31)):
        kind, message = errors[name]
        assert kind == "InvalidArgumentError"
        assert f"sample: num must be in [0, {most}] (at most 4 GiB of images per call)" in message
        assert f"got] [{got}]" in message, message[:300]
    kind, message = errors["nan_code"]
    assert kind == "InvalidArgumentError" and "decode: z must be finite" in message


@pytest.mark.slow
def test_training_ends_with_an_export_of_the_final_model(tmp_path, bundled_digits, digit_batch):
    # 256 + 64 real digits: 4 steps and a short validation, so the test is mostly the export.
    data_dir = small_idx_dir(tmp_path / "digits", bundled_digits)
    config = TrainConfig(
        data_dir=str(data_dir),
        run_dir=str(tmp_path / "run"),
        epochs=1,
        batch_size=64,
        latent_dims=LATENT_DIMS,
        base_filters=8,
    )
    model, _ = training.train(config, lvae_callbacks.for_run, verbose=0)
    loaded = tf.saved_model.load(str(tmp_path / "run" / "saved_model"))
    np.testing.assert_array_equal(loaded.latent_dims(), LATENT_DIMS)
    x = digit_batch[:8]
    np.testing.assert_allclose(loaded.reconstruct(x), model(x, training=False), atol=ATOL)


def test_prior_codes_are_standard_normal_and_a_function_of_the_seed():
    codes = export.prior_codes(20000, 5, [2, 3, 1]).numpy()
    # The draw that README documents for `sample`, so that any TensorFlow program can repeat it.
    np.testing.assert_array_equal(codes, tf.random.stateless_normal([20000, 6], seed=[5, 0]))
    assert codes.shape == (20000, 6)
    np.testing.assert_allclose(codes.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(codes.std(axis=0), 1.0, atol=0.03)
    np.testing.assert_array_equal(export.prior_codes(3, 5, [2, 3, 1]), codes[:3])
    assert not np.allclose(export.prior_codes(3, 6, [2, 3, 1]), codes[:3])


def test_a_failed_export_keeps_the_old_one_and_removes_its_half(tmp_path, monkeypatch):
    path = tmp_path / "saved_model"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"the old export")

    class FailingArchive:
        def write_out(self, filepath, verbose=True):
            os.makedirs(filepath)
            open(os.path.join(filepath, "saved_model.pb"), "wb").close()
            raise OSError("disk full")

    monkeypatch.setattr(export, "build_export_archive", lambda model: FailingArchive())
    with pytest.raises(OSError, match="disk full"):
        export.export_model(object(), str(path))
    assert (path / "saved_model.pb").read_bytes() == b"the old export"
    assert os.listdir(tmp_path) == ["saved_model"]


def test_export_does_not_replace_a_directory_that_is_not_a_saved_model(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(export.ExportError, match="exists and is not a SavedModel"):
        export.export_model(object(), str(tmp_path))
    assert os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        (None, ["{tmp}/missing"], "{tmp}/missing: no such run directory"),
        (None, ["{tmp}"], "{tmp}/model.keras: no such model file"),
        ("corrupt", ["{tmp}"], "{tmp}/model.keras: not a .keras file"),
        ("bad_zip", ["{tmp}"], "{tmp}/model.keras: cannot load the model ("),
        ("file_out", ["{tmp}", "--out", "{tmp}/out"], "exists and is not a directory"),
    ],
)
def test_command_line_errors_are_one_line_with_exit_code_2(tmp_path, capsys, setup, argv, message):
    if setup == "corrupt":
        (tmp_path / "model.keras").write_bytes(b"not a zip file")
    if setup == "bad_zip":
        with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
            archive.writestr("config.json", "{")
    if setup == "file_out":
        (tmp_path / "out").write_text("a file")
    assert export_cli.main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m ladder_vae.export: error: ")
    assert message.format(tmp=tmp_path) in error
    assert error.count("\n") == 1


def _model_file(path, config_json):
    """A zip archive at `path` holding `config_json` as its config.json, as .keras files do."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config_json)
    return path


# Each case: (what to put in the run directory {tmp}; the arguments; the error line).
EXPORT_CASES = {
    "no arguments": (None, [], "the following arguments are required: RUN_DIR"),
    "unknown option": (None, ["{tmp}", "--output", "x"], "unrecognized arguments: --output x"),
    "missing run directory": (None, ["{tmp}/missing"], "{tmp}/missing: no such run directory"),
    "run directory is a file": (
        "out file",
        ["{tmp}/model.keras"],
        "{tmp}/model.keras: not a directory (expected a run directory)",
    ),
    "empty output path": (None, ["{tmp}", "--out", ""], "--out '': empty path"),
    "no model file": (None, ["{tmp}"], "{tmp}/model.keras: no such model file"),
    "missing --model": (None, ["{tmp}", "--model", "{tmp}/b.keras"], "{tmp}/b.keras: no such"),
    "not a zip archive": ("not zip", ["{tmp}"], "{tmp}/model.keras: not a .keras file"),
    "unreadable config.json": ("{", ["{tmp}"], "{tmp}/model.keras: cannot load the model ("),
    "another model class": (
        '{"class_name": "Sequential"}',
        ["{tmp}"],
        "{tmp}/model.keras: holds a Sequential, not a LadderVAE",
    ),
    "output is a file": (
        "out file",
        ["{tmp}", "--out", "{tmp}/model.keras"],
        "{tmp}/model.keras: exists and is not a directory",
    ),
    "output is another directory": (
        "out dir",
        ["{tmp}", "--out", "{tmp}/notes"],
        "{tmp}/notes: exists and is not a SavedModel; choose an empty or new directory",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_export_command_bad_input_is_one_line_with_exit_code_2(tmp_path, case):
    """`python -m ladder_vae.export` in a real process: one stderr line and exit status 2, before
    TensorFlow starts (which would print lines of its own)."""
    content, argv, message = EXPORT_CASES[case]
    if content in ("out file", "out dir"):
        _model_file(tmp_path / "model.keras", '{"class_name": "LadderVAE"}')
        (tmp_path / "notes").mkdir()
        (tmp_path / "notes" / "mine.txt").write_text("mine")
    elif content == "not zip":
        (tmp_path / "model.keras").write_text("not a zip archive")
    elif content is not None:
        _model_file(tmp_path / "model.keras", content)
    line = refusal_line(
        [sys.executable, "-m", "ladder_vae.export", *(arg.format(tmp=tmp_path) for arg in argv)],
        "python -m ladder_vae.export: error: ",
        tmp_path,
    )
    assert message.format(tmp=tmp_path) in line
