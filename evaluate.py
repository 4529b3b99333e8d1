"""Evaluate a trained ladder VAE: numbers and figures in RUN_DIR/eval/, or several runs compared.

    python evaluate.py runs/mnist              # -> runs/mnist/eval/ (metrics.json, report.md, PNGs)
    python evaluate.py runs/mnist/saved_model  # the exported SavedModel alone
    python evaluate.py --compare runs/ssim runs/no-ssim --out runs/ablation

Sample metrics use a small MNIST classifier that this project trains on the run's training data
the first time (~20 s) and caches in $LADDER_VAE_CACHE (default ~/.cache/ladder_vae). Its
Frechet distance is not Inception-FID.
"""

import argparse
import logging
import os
import sys

from ladder_vae.cli import OneLineArgumentParser


def _integer_at_least_two(text):
    """`text` as an integer of at least 2 (a spread needs two samples, codes or redraws)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {text!r}")
    return value


def parse_args(argv=None):
    parser = OneLineArgumentParser(
        prog="evaluate.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dir",
        nargs="?",
        metavar="RUN_DIR",
        help="run directory written by train.py, a .keras file, or a SavedModel directory",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        help="compare two or more runs (evaluating those whose eval/ is missing or stale)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output directory (default: RUN_DIR/eval; with --compare: runs/compare-<timestamp>)",
    )
    parser.add_argument(
        "--checkpoint",
        choices=["auto", "final", "best", "saved_model"],
        default="auto",
        help="which model of a run directory: final (model.keras), best (best.keras), "
        "saved_model, or auto, the first of those that exists (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="IDX directory to evaluate on instead of the data recorded in the run's config.json",
    )
    parser.add_argument(
        "--tfds-data-dir",
        default=None,
        help="TFDS data directory (default: the run's, then " "$TFDS_DATA_DIR)",
    )
    parser.add_argument(
        "--dataset",
        choices=["mnist", "fashion_mnist"],
        default=None,
        help="dataset when the run does not record one (a bare SavedModel; default: mnist)",
    )
    parser.add_argument(
        "--num-samples",
        type=_integer_at_least_two,
        default=10_000,
        help="samples drawn from the prior for the sample metrics (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=_integer_at_least_two,
        default=500,
        help="images per forward pass " "(default: %(default)s)",
    )
    parser.add_argument(
        "--hierarchy-codes",
        type=_integer_at_least_two,
        default=500,
        help="base codes per level for the measure of what each level controls: each has the "
        "level's code redrawn --hierarchy-redraws times (default: %(default)s)",
    )
    parser.add_argument(
        "--hierarchy-redraws",
        type=_integer_at_least_two,
        default=8,
        help="redraws of one level's code per base code (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the prior samples (default: %(default)s)"
    )
    parser.add_argument(
        "--classifier-cache",
        default=None,
        help="directory of cached classifiers (default: $LADDER_VAE_CACHE, then "
        "~/.cache/ladder_vae)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --compare: evaluate every run again, even where its eval/ is up to date",
    )
    args = parser.parse_args(argv)
    if (args.run_dir is None) == (args.compare is None):
        parser.error("give either RUN_DIR or --compare RUN RUN [...]")
    if args.compare is not None and len(args.compare) < 2:
        parser.error("--compare needs at least two runs")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from ladder_vae.errors import ConfigError
    from ladder_vae.data import DataError
    from ladder_vae.evaluation import EvaluationError, loading
    from ladder_vae.run_dir import check_writable_directory

    try:
        # Paths, run records and IDX data are checked before TensorFlow starts: bad input is
        # reported at once, in one line.
        for path in args.compare or [args.run_dir]:
            loading.check_source(
                path, args.checkpoint, args.data_dir, args.tfds_data_dir, args.dataset
            )
        if args.out is not None:
            check_writable_directory(args.out, f"--out {args.out}")
    except (EvaluationError, DataError, ConfigError) as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2
    from ladder_vae.evaluation.compare import compare_runs
    from ladder_vae.evaluation.run import REPORT_FILE, evaluate_run

    options = dict(
        data_dir=args.data_dir,
        tfds_data_dir=args.tfds_data_dir,
        dataset=args.dataset,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        seed=args.seed,
        classifier_dir=args.classifier_cache,
        hierarchy_codes=args.hierarchy_codes,
        hierarchy_redraws=args.hierarchy_redraws,
    )
    try:
        if args.compare:
            table, out_dir = compare_runs(
                args.compare,
                out_dir=args.out,
                force=args.force,
                checkpoint=args.checkpoint,
                **options,
            )
            print(table)
            print(f"\nwritten to {out_dir}/ (comparison.md, comparison.png, comparison.json)")
        else:
            metrics, info = evaluate_run(
                args.run_dir, out_dir=args.out, checkpoint=args.checkpoint, **options
            )
            out_dir = args.out or os.path.join(info["run_dir"], "eval")
            for key in (
                "test_mse",
                "test_ssim",
                "sample_frechet_distance",
                "reference_frechet_distance_train_test",
                "sample_inception_score",
                "sample_sharpness_ratio",
                "active_dims",
                "hierarchy_summary",
            ):
                if key in metrics:
                    print(f"{key:40s} {metrics[key]:.4g}")
            print(
                f"\nwritten to {out_dir}/ ({REPORT_FILE}, metrics.json, figures) "
                f"in {info['seconds']:.1f} s"
            )
    except (EvaluationError, DataError, ConfigError) as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
