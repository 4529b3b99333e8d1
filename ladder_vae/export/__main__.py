"""`python -m ladder_vae.export RUN_DIR [--out DIR] [--model FILE]`: the export's command line.

Parses the arguments and reports a failure in one line; `ladder_vae.export` does the work.
"""

import argparse
import logging
import sys

from ladder_vae import export
from ladder_vae.cli import OneLineArgumentParser
from ladder_vae.errors import ConfigError


def parse_args(argv=None):
    parser = OneLineArgumentParser(
        prog="python -m ladder_vae.export",
        description=export.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory made by train.py")
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="SavedModel directory to write (default: RUN_DIR/saved_model); an earlier export "
        "there is replaced",
    )
    parser.add_argument(
        "--model",
        dest="model_path",
        metavar="FILE",
        default=None,
        help="the .keras file to export (default: RUN_DIR/model.keras; RUN_DIR/best.keras has "
        "the lowest validation loss)",
    )
    args = parser.parse_args(argv)
    # An empty path is a mistake (an unset variable in a script), not a request for the default.
    paths = (("RUN_DIR", args.run_dir), ("--out", args.out), ("--model", args.model_path))
    for flag, value in paths:
        if value is not None and not value.strip():
            parser.error(f"{flag} {value!r}: empty path; name one, or leave the flag out")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        path = export.export_run(args.run_dir, args.out, args.model_path)
    except ConfigError as error:  # ExportError, and saving.ModelFileError for the model file.
        print(f"python -m ladder_vae.export: error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
