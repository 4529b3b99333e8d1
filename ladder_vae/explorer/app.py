"""The explorer's web page: a Dash app over an `Explorer`.

Each level's code lives in the page: a 2-D level in a `dcc.Store` that the draggable pad of
`assets/explorer.js` writes while it is dragged, a level of any other size in one slider per
dimension (`updatemode="drag"`). Every change of a level re-decodes the image on the server, and
the traversal strips once the code rests; buttons, digits, the drawing canvas and uploads set
new codes.
"""

import logging
import os
import random

import dash
import flask
import werkzeug.exceptions
from dash import Input, Output, State, dcc, html

from ladder_vae.explorer import codes as codes_lib
from ladder_vae.explorer import pictures
from ladder_vae.explorer.exported import ExplorerError

ASSETS_DIR = os.path.join(os.path.dirname(__file__), "assets")
GALLERY_SIZE = 39
# Flask refuses larger requests outright; uploads are judged (with a message) far below this.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_RANDOM_SEED = 99_999

logger = logging.getLogger(__name__)


def level_inputs(explorer, level):
    """The (component id, property) pairs that hold level `level`'s values (1 = lowest)."""
    dim = explorer.latent_dims[level - 1]
    if dim == 2:
        return [(f"level-{level}", "data")]
    return [(f"level-{level}-dim-{index}", "value") for index in range(dim)]


def all_level_inputs(explorer):
    return [pair for level in range(1, explorer.num_levels + 1)
            for pair in level_inputs(explorer, level)]


def gather_levels(explorer, values):
    """The page's flat list of level properties as one list of values per level."""
    levels, position = [], 0
    for level in range(1, explorer.num_levels + 1):
        count = len(level_inputs(explorer, level))
        part = values[position:position + count]
        position += count
        levels.append(part[0] if count == 1 and explorer.latent_dims[level - 1] == 2 else part)
    return levels


def scatter_levels(explorer, levels):
    """One list of values per level as the page's flat list of level properties."""
    values = []
    for level, level_values in enumerate(levels, start=1):
        if explorer.latent_dims[level - 1] == 2:
            values.append(list(level_values))
        else:
            values.extend(level_values)
    return values


def _level_control(explorer, level, values):
    dim = explorer.latent_dims[level - 1]
    if dim == 2:
        return html.Div(
            [
                dcc.Store(id=f"level-{level}", data=list(values)),
                html.Div(
                    # Placed by the clientside callback `dotStyle` (assets/explorer.js), also
                    # when the page loads.
                    html.Div(id=f"pad-{level}-dot", className="pad-dot"),
                    id=f"pad-{level}",
                    className="pad",
                    tabIndex="0",
                    title=f"Drag to move level {level}'s code over [-3, 3]^2 (arrow keys: 0.1)",
                    **{"data-store": f"level-{level}", "data-limit": str(codes_lib.LIMIT)},
                ),
                html.Div(["z[0] \u2192, z[1] \u2191"], className="pad-axes"),
            ],
            className="pad-box",
        )
    limit = codes_lib.LIMIT
    return html.Div(
        [
            html.Div(
                [
                    html.Span(f"z[{index}]", className="slider-name"),
                    dcc.Slider(
                        id=f"level-{level}-dim-{index}",
                        min=-limit,
                        max=limit,
                        step=0.01,
                        value=float(value),
                        updatemode="drag",
                        marks={-limit: f"{-limit:g}", 0: "0", limit: f"{limit:g}"},
                        allow_direct_input=False,
                        included=False,
                    ),
                ],
                className="slider-row",
            )
            for index, value in enumerate(values)
        ],
        className="sliders",
    )


def _level_group(explorer, level, values, seed):
    dim = explorer.latent_dims[level - 1]
    position = "lowest" if level == 1 else "highest" if level == explorer.num_levels else ""
    title = f"Level {level}" + (f" ({position})" if position else "")
    label = explorer.labels[level - 1] if explorer.labels else None
    return html.Section(
        [
            html.H3([title, html.Span(f" \u00b7 {dim} dim" + ("s" if dim > 1 else ""),
                                      className="dims")]),
            html.P(label, className="level-label", id=f"level-{level}-label") if label else None,
            html.Div(
                [
                    _level_control(explorer, level, values),
                    html.Div(
                        [
                            html.Div(id=f"level-{level}-readout", className="readout"),
                            html.Button(f"Redraw level {level}", id=f"redraw-{level}",
                                        className="button"),
                            html.Div(f"from seed {seed}", id=f"level-{level}-seed",
                                     className="seed", title="where this level's code came from"),
                        ],
                        className="level-side",
                    ),
                    html.Div(
                        [
                            html.Div("Traversal from the current point (framed): each row "
                                     "one dimension over [-3, 3]", className="strip-caption"),
                            html.Img(id=f"strip-{level}", className="strip pixelated",
                                     alt=f"level {level} traversal"),
                        ]
                    ),
                ],
                className="level-row",
            ),
        ],
        className="level",
        id=f"level-{level}-group",
    )


def build_layout(explorer, seed):
    levels = explorer.draw(seed)
    height, width, _ = explorer.image_shape
    scale = pictures.display_scale(height)
    level_hint = (
        None
        if explorer.labels
        else html.P(
            "Run evaluate.py on this run to label the levels with what they control.",
            className="hint",
            id="labels-hint",
        )
    )
    gallery = [
        html.Img(id=f"digit-{slot}", className="thumb pixelated", n_clicks=0,
                 title="Start from this digit")
        for slot in range(min(GALLERY_SIZE, len(explorer.digits)))
    ]
    real_digit = html.Section(
        [
            html.H3("Start from a real digit"),
            html.P(f"Validation digits: {explorer.digits_source}.", className="hint"),
            html.Div(gallery, id="digit-gallery", className="gallery"),
            html.Div(
                [
                    html.Button("Other digits", id="digits-more", className="button",
                                disabled=len(explorer.digits) <= GALLERY_SIZE),
                    html.Span(id="digits-range", className="hint"),
                ]
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Canvas(id="canvas", width=280, height=280, className="canvas"),
                            html.Div(
                                [
                                    html.Span("Draw a digit (encoded when you lift the pen)",
                                              className="hint"),
                                    html.Button("Clear", id="canvas-clear", className="button"),
                                ]
                            ),
                        ]
                    ),
                    html.Div(
                        [
                            dcc.Upload(
                                html.Div(["Drop a PNG here or ", html.A("choose a file")]),
                                id="upload",
                                className="upload",
                                accept="image/*",
                                multiple=False,
                            ),
                            html.Div("What the model sees:", className="hint"),
                            html.Img(id="picture-preview", className="preview pixelated"),
                        ]
                    ),
                ],
                className="picture-row",
            ),
            dcc.Store(id="drawing"),
            # The code the strips show: the levels' values once they rest (assets/explorer.js).
            dcc.Store(id="strips-code"),
            dcc.Store(id="digit-page", data=0),
        ],
        className="real-digit",
    )
    image_column = html.Div(
        [
            html.Img(id="image", className="image pixelated", alt="decoded image",
                     style={"width": f"{width * scale}px", "height": f"{height * scale}px"}),
            html.Div(
                [
                    html.Button("Download PNG", id="download-button", className="button"),
                    dcc.Download(id="download"),
                    html.Span(
                        [dcc.Clipboard(id="copy", target_id="code-json",
                                       title="Copy the code as JSON"), " Copy code as JSON"],
                        className="copy button",
                    ),
                ],
                className="image-buttons",
            ),
            dcc.Textarea(id="code-json", readOnly=True, className="code-json"),
            html.Div(id="message", className="message", role="status"),
            html.Div(id="action-message", className="message", role="status"),
            html.Div(
                [
                    html.Label(["Seed ", dcc.Input(id="seed", type="number", value=seed, min=0,
                                                   max=codes_lib.MAX_SEED, step=1,
                                                   debounce=True, className="seed-input")]),
                    html.Button("Redraw all levels", id="redraw-all", className="button"),
                ],
                className="seed-row",
            ),
            real_digit,
        ],
        className="image-column",
    )
    level_column = html.Div(
        [level_hint]
        + [
            _level_group(explorer, level, values, seed)
            for level, values in enumerate(levels, start=1)
        ],
        className="level-column",
    )
    return html.Div(
        [
            html.Header(
                [
                    html.H1("Ladder VAE latent explorer"),
                    html.Span(explorer.name, className="model-name", id="model-name"),
                ]
            ),
            html.Main([image_column, level_column], className="columns"),
        ]
    )


def _refuse_request(error):
    """A request the page never sends (a hand-made or damaged callback request): one line in
    the log and a 400 answer instead of Flask's traceback; the server goes on serving."""
    if isinstance(error, werkzeug.exceptions.HTTPException):
        return error
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0] if text else ''}"[:300]
    logger.warning("refused a request to %s (%s)", flask.request.path, line)
    return flask.jsonify(error=f"bad request: {line}"), 400


def _message(error):
    return html.Span(str(error), className="error")


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
    level_props = all_level_inputs(explorer)
    num_levels = explorer.num_levels
    pad_levels = [level for level in range(1, num_levels + 1)
                  if explorer.latent_dims[level - 1] == 2]

    for level in pad_levels:
        app.clientside_callback(
            dash.ClientsideFunction(namespace="explorer", function_name="dotStyle"),
            Output(f"pad-{level}-dot", "style"),
            Input(f"level-{level}", "data"),
        )

    levels_range = range(1, num_levels + 1)
    slots = min(GALLERY_SIZE, len(explorer.digits))

    # Every callback lists its outputs, inputs and states as flat lists: Dash then passes
    # flat positional arguments and takes a flat list back.
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

    return app
