"""What the server does when the page changes.

Every change of a level re-decodes the image, and the traversal strips once the code rests;
buttons, digits, the drawing canvas and uploads set new codes. Errors are shown on the page and
the server goes on serving.
"""

import logging
import os
import random

import dash
from dash import Input, Output, State, dcc, html

from ladder_vae.explorer import codes as codes_lib
from ladder_vae.explorer import pictures
from ladder_vae.explorer.exported import ExplorerError
from ladder_vae.explorer.layout import GALLERY_SIZE
from ladder_vae.explorer.level_controls import all_level_inputs, gather_levels, scatter_levels

MAX_RANDOM_SEED = 99_999

logger = logging.getLogger(__name__)


def _message(error):
    return html.Span(str(error), className="error")


def register_callbacks(app, explorer, seed):
    """Attaches the page's callbacks to `app`; "Redraw" draws its seeds from a generator seeded
    by the start `seed`."""
    # Every callback lists its outputs, inputs and states as flat lists: Dash then passes
    # flat positional arguments and takes a flat list back.
    _register_rendering(app, explorer)
    _register_gallery(app, explorer)
    _register_code_setting(app, explorer, seed)
    _register_download(app, explorer)


def _register_rendering(app, explorer):
    """The pads' points, the image and readouts, the traversal strips."""
    level_props = all_level_inputs(explorer)
    num_levels = explorer.num_levels
    levels_range = range(1, num_levels + 1)
    pad_levels = [level for level in levels_range if explorer.latent_dims[level - 1] == 2]

    for level in pad_levels:
        app.clientside_callback(
            dash.ClientsideFunction(namespace="explorer", function_name="dotStyle"),
            Output(f"pad-{level}-dot", "style"),
            Input(f"level-{level}", "data"),
        )

    # The image and the strips are two callbacks, so two requests: the image (one decode)
    # follows every change; the strips (a decode of 9 codes per code dimension) follow the
    # code once it has rested (assets/explorer.js, `settle`): computed for every step of a
    # drag, they took the CPU from the image (docs/explorer.md, Latency).
    @app.callback(
        [Output("image", "src")]
        + [Output(f"level-{level}-readout", "children") for level in levels_range]
        + [Output("code-json", "value"), Output("message", "children")],
        [Input(component, prop) for component, prop in level_props],
    )
    def render_image(*values):
        unchanged = [dash.no_update] * (num_levels + 2)
        try:
            levels = gather_levels(explorer, list(values))
            main = explorer.image(levels)
            text = explorer.code_json(levels)
        except ExplorerError as error:
            return unchanged + [_message(error)]
        except Exception as error:  # Reported on the page; the server keeps serving.
            logger.error("render failed: %s: %s", type(error).__name__, error)
            return unchanged + [_message(f"could not decode: {type(error).__name__}")]
        readouts = [
            "(" + ", ".join(f"{value:+.2f}" for value in level) + ")" for level in levels
        ]
        return [pictures.data_url(main)] + readouts + [text, ""]

    app.clientside_callback(
        dash.ClientsideFunction(namespace="explorer", function_name="settle"),
        Output("strips-code", "data"),
        [Input(component, prop) for component, prop in level_props],
    )

    @app.callback(
        [Output(f"strip-{level}", "src") for level in levels_range],
        [Input("strips-code", "data")],
        prevent_initial_call=True,
    )
    def render_strips(values):
        try:
            strips = explorer.strips(gather_levels(explorer, list(values or [])))
        except ExplorerError:
            return [dash.no_update] * num_levels  # render_image shows the message
        except Exception as error:
            logger.error("strips failed: %s: %s", type(error).__name__, error)
            return [dash.no_update] * num_levels
        return [pictures.data_url(strip) for strip in strips]


def _register_gallery(app, explorer):
    """The real digits to start from, `GALLERY_SIZE` per page."""
    slots = min(GALLERY_SIZE, len(explorer.digits))

    @app.callback(
        [Output(f"digit-{slot}", "src") for slot in range(slots)]
        + [Output("digits-range", "children")],
        [Input("digit-page", "data")],
    )
    def show_digits(page):
        count = slots
        start = (page or 0) * GALLERY_SIZE
        sources = [
            pictures.data_url(explorer.digit_thumbnail((start + slot) % len(explorer.digits)))
            for slot in range(count)
        ]
        last = min(start + count, len(explorer.digits)) - 1
        return sources + [f" digits {start} to {last} of {len(explorer.digits)}" if count
                          else " none"]

    @app.callback(
        Output("digit-page", "data"),
        Input("digits-more", "n_clicks"),
        State("digit-page", "data"),
        prevent_initial_call=True,
    )
    def next_digits(_, page):
        pages = max(1, -(-len(explorer.digits) // GALLERY_SIZE))
        return ((page or 0) + 1) % pages


def _register_code_setting(app, explorer, seed):
    """The controls that set a new code: the seed, the redraw buttons, a gallery digit, the
    drawing and an upload."""
    level_props = all_level_inputs(explorer)
    num_levels = explorer.num_levels
    levels_range = range(1, num_levels + 1)
    slots = min(GALLERY_SIZE, len(explorer.digits))
    # The seeds of "Redraw": random, from a generator seeded by the start seed.
    rng = random.Random(seed)

    @app.callback(
        [Output(component, prop) for component, prop in level_props]
        + [Output("seed", "value")]
        + [Output(f"level-{level}-seed", "children") for level in levels_range]
        + [Output("action-message", "children"), Output("picture-preview", "src")],
        [Input("redraw-all", "n_clicks"), Input("seed", "value")]
        + [Input(f"redraw-{level}", "n_clicks") for level in levels_range]
        + [Input(f"digit-{slot}", "n_clicks") for slot in range(slots)]
        + [Input("drawing", "data"), Input("upload", "contents")],
        [State("upload", "filename"), State("digit-page", "data")]
        + [State(component, prop) for component, prop in level_props],
        prevent_initial_call=True,
    )
    def set_code(_, seed_value, *args):
        # args: the level and digit buttons' clicks, then drawing, upload, filename, page,
        # then the levels' current values.
        drawing, upload, filename, page = args[num_levels + slots:num_levels + slots + 4]
        current = list(args[num_levels + slots + 4:])
        trigger = dash.ctx.triggered_id
        keep_levels = [dash.no_update] * len(level_props)
        keep_seeds = [dash.no_update] * num_levels
        try:
            preview = dash.no_update
            if trigger in ("redraw-all", "seed"):
                if trigger == "redraw-all":
                    seed_value = rng.randint(0, MAX_RANDOM_SEED)
                seed_value = codes_lib.check_seed(seed_value)
                levels = explorer.draw(seed_value)
                return (scatter_levels(explorer, levels) + [seed_value]
                        + [f"from seed {seed_value}"] * num_levels
                        + [f"Drew every level with seed {seed_value}.", preview])
            if trigger.startswith("redraw-"):
                level = int(trigger.split("-")[1])
                level_seed = rng.randint(0, MAX_RANDOM_SEED)
                levels = explorer.redraw_level(gather_levels(explorer, current), level,
                                               level_seed)
                seeds = list(keep_seeds)
                seeds[level - 1] = f"from seed {level_seed}"
                return (scatter_levels(explorer, levels) + [dash.no_update] + seeds
                        + [f"Redrew level {level} with seed {level_seed}.", preview])
            if trigger.startswith("digit-"):
                index = ((page or 0) * GALLERY_SIZE + int(trigger.split("-")[1])) % max(
                    1, len(explorer.digits))
                levels, message = explorer.digit(index)
                preview = pictures.data_url(explorer.digit_thumbnail(index))
                origin = f"from digit {index}"
            elif trigger == "drawing":
                levels, digit, message = explorer.picture(drawing, "the drawing")
                preview = pictures.data_url(digit)
                origin = "from the drawing"
            elif trigger == "upload":
                what = os.path.basename(str(filename or "the upload"))[:80]
                levels, digit, message = explorer.picture(upload, what)
                preview = pictures.data_url(digit)
                origin = f"from {what}"
            else:
                raise ExplorerError(f"unknown control {trigger!r}")
            return (scatter_levels(explorer, levels) + [dash.no_update]
                    + [origin] * num_levels + [message, preview])
        except ExplorerError as error:
            return keep_levels + [dash.no_update] + keep_seeds + [
                _message(error), dash.no_update]
        except Exception as error:  # Reported on the page; the server keeps serving.
            logger.error("%s failed: %s: %s", trigger, type(error).__name__, error)
            return keep_levels + [dash.no_update] + keep_seeds + [
                _message(f"{trigger}: failed ({type(error).__name__})"), dash.no_update]


def _register_download(app, explorer):
    """The decoded image as a PNG file."""
    level_props = all_level_inputs(explorer)

    @app.callback(
        [Output("download", "data")],
        [Input("download-button", "n_clicks")],
        [State(component, prop) for component, prop in level_props],
        prevent_initial_call=True,
    )
    def download(_, *values):
        try:
            png = explorer.download(gather_levels(explorer, list(values)))
        except ExplorerError:
            return [dash.no_update]
        return [dcc.send_bytes(png, "ladder-vae.png")]
