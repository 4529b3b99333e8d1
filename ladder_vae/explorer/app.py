"""The explorer's web app: a Dash server of `layout`'s page and `callbacks` over an `Explorer`."""

import logging
import os

import dash
import flask
import werkzeug.exceptions

from ladder_vae.explorer.callbacks import register_callbacks
from ladder_vae.explorer.layout import build_layout

ASSETS_DIR = os.path.join(os.path.dirname(__file__), "assets")
# Flask refuses larger requests outright; uploads are judged (with a message) far below this.
MAX_REQUEST_BYTES = 64 * 1024 * 1024

logger = logging.getLogger(__name__)


def _refuse_request(error):
    """A request the page never sends (a hand-made or damaged callback request): one line in
    the log and a 400 answer instead of Flask's traceback; the server goes on serving."""
    if isinstance(error, werkzeug.exceptions.HTTPException):
        return error
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0] if text else ''}"[:300]
    logger.warning("refused a request to %s (%s)", flask.request.path, line)
    return flask.jsonify(error=f"bad request: {line}"), 400


def build_app(explorer, seed=0):
    """The Dash app of `explorer`, starting from the prior draw of `seed`."""
    app = dash.Dash(
        __name__,
        assets_folder=ASSETS_DIR,
        title="ladder-vae explorer",
        update_title=None,
        serve_locally=True,
    )
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.server.register_error_handler(Exception, _refuse_request)
    app.layout = build_layout(explorer, seed)
    register_callbacks(app, explorer, seed)
    return app
