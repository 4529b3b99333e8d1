"""Explore a trained ladder VAE in the browser: one control group per ladder level.

    python explore.py runs/mnist                 # then open the address it prints
    python explore.py runs/mnist/saved_model --port 8080

Uses only the run's exported SavedModel (`encode`, `decode`, `latent_dims`), so a SavedModel
copied to another machine works too. Needs the `[explore]` extra: pip install -e ".[explore]".
"""

import argparse
import ipaddress
import logging
import socket
import sys

from ladder_vae.cli import OneLineArgumentParser

PROG = "explore.py"
LOOPBACK = "127.0.0.1"


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [1, 65535], got {text!r}")
    return value


def _seed(text):
    from ladder_vae.explorer.codes import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_SEED}], got {text!r}")
    return value


def parse_args(argv=None):
    parser = OneLineArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="run directory with saved_model/, or a SavedModel"
    )
    parser.add_argument(
        "--port", type=_port, default=8050, help="port to serve on (default: %(default)s)"
    )
    parser.add_argument(
        "--host",
        default=LOOPBACK,
        help="address to bind (default: %(default)s, this machine only; 0.0.0.0 serves the "
        "explorer to the network, without authentication)",
    )
    parser.add_argument(
        "--seed", type=_seed, default=0, help="seed of the first prior draw (default: %(default)s)"
    )
    return parser.parse_args(argv)


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(parser_error, host, port):
    """Fails in one line when the address cannot be bound, before the model loads."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as error:
        parser_error(f"--host {host} --port {port}: cannot listen there ({error.strerror})")


def main(argv=None):
    args = parse_args(argv)

    def fail(message):
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(2)

    try:
        import dash  # noqa: F401
    except ImportError:
        fail('the explorer needs the [explore] extra: pip install -e ".[explore]"')
    from ladder_vae.explorer import codes, digits
    from ladder_vae.explorer.exported import ExplorerError, ExportedModel, find_saved_model

    try:
        saved_model, run_dir = find_saved_model(args.run_dir)
    except ExplorerError as error:
        fail(error)
    _check_port(fail, args.host, args.port)
    if not _is_loopback(args.host):
        print(
            f"{PROG}: warning: serving on {args.host}: anyone who can reach this machine "
            "can use the explorer (there is no authentication)",
            file=sys.stderr,
        )
    logging.basicConfig(format=f"{PROG}: %(levelname)s: %(message)s", level=logging.WARNING)
    try:
        model = ExportedModel(saved_model)
    except ExplorerError as error:
        fail(error)
    images, source = digits.validation_digits(run_dir, model.image_shape)
    labels = codes.level_labels(codes.read_metrics(run_dir), len(model.latent_dims))

    from ladder_vae.explorer.app import build_app
    from ladder_vae.explorer.session import Explorer

    explorer = Explorer(model, images, labels=labels, name=saved_model, digits_source=source)
    app = build_app(explorer, seed=args.seed)
    # One line per request would flood the terminal while a pad is dragged; the address is
    # printed below, once.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("dash.dash").setLevel(logging.WARNING)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"Exploring {saved_model} (levels {', '.join(map(str, model.latent_dims))}) at "
        f"http://{shown}:{args.port}/ (Ctrl-C to stop)",
        flush=True,
    )
    try:
        app.run(host=args.host, port=args.port, debug=False)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
