"""One level's controls on the page, and where its values live among the page's properties.

A 2-D level's code lives in a `dcc.Store` that the draggable pad of `assets/explorer.js` writes
while it is dragged; a level of any other size lives in one slider per dimension
(`updatemode="drag"`). The callbacks read and write all levels as one flat list of those
properties; `gather_levels` and `scatter_levels` turn it into one list of values per level and
back.
"""

from dash import dcc, html

from ladder_vae.explorer import codes as codes_lib


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


def level_group(explorer, level, values, seed):
    """Level `level`'s section of the page: its pad or sliders starting at `values`, readout,
    redraw button, where its code came from (prior draw `seed`) and traversal strip."""
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
