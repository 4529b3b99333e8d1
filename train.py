"""Train a variational ladder autoencoder with MMD and SSIM losses.

    python train.py                                  # MNIST through TFDS, 200 epochs
    python train.py --data-dir ~/data/mnist --epochs 20 --run-dir runs/mnist  # IDX files

Running the same command again with the same --run-dir after an interruption resumes the run.
"""

import argparse
import logging
import os
import sys

from ladder_vae import hyperparameters
from ladder_vae.cli import OneLineArgumentParser
from ladder_vae.config import TrainConfig
from ladder_vae.run_dir import RunDir

DEFAULTS = TrainConfig()
# Exit status when a loss became NaN or Inf (2 is for usage errors).
EXIT_NON_FINITE_LOSS = 3
# Exit status when another worker of a --strategy multiworker run stopped answering.
EXIT_PEER_LOST = 4


def latent_dims(text):
    """`2,2,4` (or `2 2 4` given as one argument) to (2, 2, 4); `TrainConfig.validate` judges
    the sizes."""
    # Commas separate the levels; `2,,2` is a typo that would drop a level, not `2,2`.
    parts = text.split(",") if "," in text else text.split()
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError:
        dims = ()
    if not dims:
        raise argparse.ArgumentTypeError(
            f"expected one integer per level, e.g. 2,2,4; got {text!r}"
        )
    return dims


def level_weights(text):
    """`1,0,0` to (1.0, 0.0, 0.0); `TrainConfig.validate` checks one weight per level."""
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError:
        weights = ()
    if not weights:
        raise argparse.ArgumentTypeError(
            f"expected one number per level, e.g. 0.1,0,0; got {text!r}"
        )
    return weights


def parse_args(argv=None):
    parser = OneLineArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # `--epoch 3` must not pass for `--epochs 3`: a typo'd flag is an error, not a guess.
        allow_abbrev=False,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default=DEFAULTS.dataset,
        choices=["mnist", "fashion_mnist"],
        help="TFDS dataset, or what --data-dir holds (default: %(default)s)",
    )
    data.add_argument(
        "--data-dir",
        default=None,
        help="directory of IDX files (train-images-idx3-ubyte[.gz], labels, t10k-*) to use "
        "instead of TFDS, e.g. ~/data/mnist",
    )
    data.add_argument(
        "--tfds-data-dir",
        default=None,
        help="TFDS data directory (default: $TFDS_DATA_DIR, then ~/tensorflow_datasets)",
    )

    model = parser.add_argument_group("model and loss")
    model.add_argument(
        "--latent-dims",
        type=latent_dims,
        default=DEFAULTS.latent_dims,
        help="latent size of each ladder level, lowest first; its length is the number of "
        f"levels (default: {','.join(map(str, DEFAULTS.latent_dims))})",
    )
    model.add_argument(
        "--base-filters",
        type=int,
        default=DEFAULTS.base_filters,
        help="filters of the lowest level, doubled per level (default: %(default)s)",
    )
    model.add_argument(
        "--mmd-weight",
        type=float,
        default=DEFAULTS.mmd_weight,
        help="weight of MMD(q(z) || p(z)) (default: %(default)s)",
    )
    model.add_argument(
        "--ssim-weight",
        type=float,
        default=DEFAULTS.ssim_weight,
        help="weight of 1 - SSIM; 0 trains the model without SSIM (default: %(default)s)",
    )
    model.add_argument(
        "--reconstruction-sigma",
        type=float,
        default=DEFAULTS.reconstruction_sigma,
        help="standard deviation of the Gaussian likelihood (default: %(default)s)",
    )
    model.add_argument(
        "--mmd-per-level",
        action="store_true",
        help="one MMD per ladder level, as the official VLAE code, instead of one over the "
        "concatenated code",
    )
    model.add_argument(
        "--level-input",
        choices=list(hyperparameters.LEVEL_INPUTS),
        default=DEFAULTS.level_input,
        help="how a level below the top enters the decoder: 'modulated-fj' scales and shifts "
        "the channels of f_j, the decoder stage at the resolution of h_j (each level keeps its "
        "own kind of factor), 'modulated' those of the stage one resolution lower, "
        "'concatenated' adds a feature map projected from the code, as in the official VLAE "
        "code (default: %(default)s)",
    )
    model.add_argument(
        "--level-resample",
        type=float,
        default=DEFAULTS.level_resample,
        help="probability of replacing, in a training step, an image's code of a level below "
        "the top by a prior draw, so that identity moves to the top level and each lower level "
        "keeps to style; 0 turns it off (default: %(default)s)",
    )

    model.add_argument(
        "--level-kl-weights",
        type=level_weights,
        default=DEFAULTS.level_kl_weights,
        help="weights of KL(q(z_i|x) || N(0, I)) per level, lowest first, e.g. 0.1,0,0: an "
        "information cost paid per image, beside the MMD term, as in InfoVAE's full objective "
        "(default: none)",
    )

    training = parser.add_argument_group("training")
    training.add_argument(
        "--epochs",
        type=int,
        default=DEFAULTS.epochs,
        help="maximum number of epochs (default: %(default)s)",
    )
    training.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULTS.batch_size,
        help="images per step (default: %(default)s)",
    )
    training.add_argument(
        "--learning-rate",
        type=float,
        default=DEFAULTS.learning_rate,
        help="Adam learning rate, the peak of the cosine schedule (default: %(default)s)",
    )
    training.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help="seed of weights, shuffling, noise and sample grids (default: %(default)s)",
    )
    training.add_argument(
        "--run-dir",
        default=None,
        help="run directory (default: runs/<timestamp>); an unfinished run there is resumed",
    )

    schedule = parser.add_argument_group("stopping and learning-rate schedule")
    schedule.add_argument(
        "--patience",
        dest="early_stopping_patience",
        type=int,
        default=DEFAULTS.early_stopping_patience,
        help="epochs without val_loss improvement before stopping (default: %(default)s)",
    )
    schedule.add_argument(
        "--min-delta",
        dest="early_stopping_min_delta",
        type=float,
        default=DEFAULTS.early_stopping_min_delta,
        help="smallest val_loss decrease that counts as improvement (default: %(default)s)",
    )
    schedule.add_argument(
        "--lr-schedule",
        choices=["plateau", "cosine"],
        default=DEFAULTS.lr_schedule,
        help="plateau: halve the LR when val_loss stalls; cosine: linear warm-up, then cosine "
        "decay over the epochs (default: %(default)s)",
    )
    schedule.add_argument(
        "--lr-patience",
        type=int,
        default=DEFAULTS.lr_patience,
        help="plateau: epochs without improvement before the LR is reduced (default: %(default)s)",
    )
    schedule.add_argument(
        "--lr-factor",
        type=float,
        default=DEFAULTS.lr_factor,
        help="plateau: factor applied to the LR on a plateau (default: %(default)s)",
    )
    schedule.add_argument(
        "--min-learning-rate",
        type=float,
        default=DEFAULTS.min_learning_rate,
        help="plateau: lowest LR (default: %(default)s)",
    )
    schedule.add_argument(
        "--warmup-epochs",
        type=int,
        default=DEFAULTS.warmup_epochs,
        help="cosine: epochs of linear warm-up (default: %(default)s)",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--sample-every",
        type=int,
        default=DEFAULTS.sample_every,
        help="write sample images every this many epochs (default: %(default)s)",
    )
    output.add_argument(
        "--no-export",
        dest="export",
        action="store_false",
        help="skip the SavedModel export at the end of training",
    )

    speed = parser.add_argument_group("speed")
    speed.add_argument(
        "--jit-compile",
        action="store_true",
        help="compile the train step with XLA (slower on small CPUs, faster on GPUs)",
    )
    speed.add_argument(
        "--mixed-precision",
        action="store_true",
        help="float16 compute on GPUs (losses and SSIM stay float32)",
    )
    speed.add_argument(
        "--strategy",
        choices=["default", "mirrored", "multiworker"],
        default=DEFAULTS.strategy,
        help="tf.distribute strategy; multiworker trains over the processes that TF_CONFIG "
        "lists (see README, Several machines) (default: %(default)s)",
    )
    speed.add_argument(
        "--peer-timeout",
        type=float,
        default=DEFAULTS.peer_timeout,
        metavar="SECONDS",
        help="multiworker: how long to wait for the other workers to start, and without "
        "heartbeats from one before stopping with an error that names it; one exchange waits "
        "at most 5 times this (default: %(default)s)",
    )
    args = parser.parse_args(_attach_negative_numbers(sys.argv[1:] if argv is None else argv))
    return TrainConfig(**vars(args))


def _attach_negative_numbers(argv):
    """`--flag -1e-3` as `--flag=-1e-3`. Before Python 3.13 argparse takes a negative number
    in exponent form for a flag and reports "expected one argument"; attached, the value
    reaches `TrainConfig.validate`, which says what is wrong with it."""
    argv, joined = list(argv), []
    while argv:
        token = argv.pop(0)
        if token.startswith("--") and "=" not in token and argv and argv[0].startswith("-"):
            try:
                float(argv[0])
            except ValueError:
                pass
            else:
                token = f"{token}={argv.pop(0)}"
        joined.append(token)
    return joined


def non_finite_message(error, run_dir):
    """What a NaN or Inf loss stopped, and what of the run is kept."""
    run = RunDir(run_dir)
    kept = [
        f"{path} ({what})"
        for path, what in ((run.best_model, "best epoch"), (run.backup, "last finished epoch"))
        if os.path.exists(path)
    ]
    state = f"kept the last good state: {' and '.join(kept)}" if kept else "no epoch had finished"
    # A new run: resuming under the plateau schedule restores the optimizer's learning rate.
    return (
        f"training stopped: {error}; {state}. Retry in a new --run-dir with a lower "
        "--learning-rate (or, if you changed them, loss weights and --reconstruction-sigma "
        "nearer their defaults)"
    )


def main(argv=None):
    global _skip_finalizers
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    # Under multiworker TensorFlow's C++ code also logs an error for every collective that a
    # lost peer aborts; train.py reports the loss in one line. Set it to 0 to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if config.strategy == "multiworker" else "2")

    from ladder_vae import preflight
    from ladder_vae.errors import ConfigError
    from ladder_vae.distribute import PeerLostError
    from ladder_vae.data import DataError
    from ladder_vae.resources import ResourceExhausted

    try:
        # Settings, run directory and IDX data are checked before TensorFlow starts: bad input
        # is reported at once, in one line, and leaves nothing behind.
        data = preflight.check_run(config)
        from callbacks import DamagedBackupError, NonFiniteLossError, for_run
        from ladder_vae.training import train_checked

        try:
            train_checked(config, data, for_run, command=sys.argv)
        except DamagedBackupError as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 2
        except NonFiniteLossError as error:
            print(
                f"\ntrain.py: error: {non_finite_message(error, config.run_dir)}", file=sys.stderr
            )
            return EXIT_NON_FINITE_LOSS
        except PeerLostError as error:
            print(f"\ntrain.py: error: {error}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            # Now, not through the interpreter's exit: TensorFlow's exit handler would wait
            # --peer-timeout more at its shutdown barrier for the peer that is gone. The kernel
            # drops the run lock with the process.
            os._exit(EXIT_PEER_LOST)
    except ResourceExhausted as error:
        # On a line of its own: the progress bar of the interrupted epoch has none.
        print(f"\ntrain.py: error: {error}", file=sys.stderr)
        _skip_finalizers = True
        return 2
    except (ConfigError, DataError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        run = RunDir(config.run_dir) if config.run_dir else None
        then = (
            "run the same command again to resume from the last finished epoch"
            if run is not None and run.finished_an_epoch()
            else "no epoch had finished; the same command starts the run over"
        )
        print(f"train.py: interrupted; {then}", file=sys.stderr)
        return 130
    return 0


# Set when memory or disk space ran out: a writer out of space may still hold an HDF5 file it
# cannot flush, and a normal shutdown would try again, print its errors and crash in HDF5's
# clean-up (SIGSEGV, measured). What the run keeps is renamed into place by then, and the kernel
# drops the run lock, so the process ends without running finalizers.
_skip_finalizers = False

if __name__ == "__main__":
    status = main()
    if _skip_finalizers:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
