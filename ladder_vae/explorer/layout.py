"""The explorer's page: the decoded image with its buttons, the start from a real digit, and one
section per level (`level_controls`)."""

from dash import dcc, html

from ladder_vae.explorer import codes as codes_lib
from ladder_vae.explorer import pictures
from ladder_vae.explorer.level_controls import level_group

GALLERY_SIZE = 39


def build_layout(explorer, seed):
    """The page of `explorer`, every level at the prior draw of `seed`."""
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
            level_group(explorer, level, values, seed)
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
