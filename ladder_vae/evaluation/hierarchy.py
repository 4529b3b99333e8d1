"""What each level of a ladder VAE controls: per-level shares of image attributes and identity.

The claim of the Variational Ladder Autoencoder (Zhao, Song & Ermon 2017, Fig. 4) is that its
levels hold factors of different abstraction: on MNIST the bottom level holds stroke width, the
middle one width and slant, the top one the digit's identity. `level_factor_shares` measures it.
For each level i it draws base codes from the prior, redraws only level i's code several times
with the other levels held, decodes, and compares how much each attribute varies within such a
group with how much it varies over fully independent prior samples:

    share_i(a) = E_groups[ Var_within(a) ] / Var_independent(a)

both variances unbiased (ddof = 1), so a level that alone decides attribute a has a share of
about 1 and a level the attribute ignores a share of about 0. With independent levels the share
is E[Var(a | z_-i)] / Var(a), the "total effect" index of global sensitivity analysis (Jansen
1999; Saltelli et al. 2010): shares of different levels need not sum to 1, as an attribute can
depend on two levels together.

Identity uses the same ratio on the predicted class: the probability that two members of a group
have different predicted classes over the probability for two independent samples (the
Gini-Simpson index within and across groups; it equals the variance share of the one-hot class
vector).

The attributes are those of `image_attributes`: stroke thickness, ink, slant, width and height.

A redraw that changes the predicted class of an ambiguous image (a 9 whose loop a thinner stroke
opens into a 7) is a different thing from one that redraws a clear digit, and the plain class
change rate counts both. Given the classifier's confidence, the rate is also reported over the
base images the classifier is sure of (`CLEAR_CONFIDENCE`), which separates the two.

Most ambiguous base images come from the top level's prior draw, not from the level redrawn: a
model trained with MMD has an almost deterministic encoder, its top codes fill N(0, I) only
in part, and a prior draw between them decodes to a digit halfway between classes. Given the
top-level codes of real digits (`top_codes`), the base codes take their top level from those
instead, which measures what the lower levels do to the model's digits apart from what the
prior's empty regions do.
"""

import dataclasses
import math

import numpy as np

from ladder_vae.evaluation.image_attributes import ATTRIBUTES, image_attributes

IDENTITY = "identity"
DEFAULT_NUM_CODES = 500
DEFAULT_REDRAWS = 8
# A base image is clear when the classifier gives its class at least this probability.
CLEAR_CONFIDENCE = 0.9


def _pair_difference(classes):
    """Probability that two distinct members of each row of `classes` [g, k] differ: [g]."""
    classes = np.asarray(classes)
    size = classes.shape[1]
    if len(classes) == 1:
        # One large set: from the class counts, not the [k, k] table of pairs.
        _, counts = np.unique(classes[0], return_counts=True)
        same = np.sum(counts * (counts - 1.0))
        return np.array([1.0 - same / (size * (size - 1.0))])
    same = (classes[:, :, None] == classes[:, None, :]).sum(axis=(1, 2)) - size
    return 1.0 - same / (size * (size - 1.0))


def _share(within, independent):
    """within / independent, NaN when the independent samples do not vary at all."""
    return float(within / independent) if independent > 0 else float("nan")


@dataclasses.dataclass
class HierarchyResult:
    """The outcome of `level_factor_shares`.

    Attributes:
        shares: float array [L, A], level (row 0 = level 1, the lowest) by attribute.
        attributes: the A column names; `identity` first when a classifier was given.
        class_change_rates: float array [L] (or None without a classifier): the fraction of
            redraws of level i whose predicted class differs from that of the base code's image.
        clear_class_change_rates: float array [L] (or None without a confidence, or with no
            clear base image): the same over the base images whose class the classifier gives
            at least `CLEAR_CONFIDENCE`.
        clear_base_fraction: the fraction of base images that are clear, or None.
        hierarchy_summary: identity share of the top level minus the largest identity share of
            any other level (None without a classifier); 1 for a perfect split, about 0 or
            below when identity is not the top level's. With one level: its identity share.
        independent_class_difference: probability that two independent prior samples have
            different predicted classes (the identity share's denominator), or None.
        latent_dims, num_codes, redraws, seed: how it was measured.
    """

    shares: np.ndarray
    attributes: tuple
    class_change_rates: np.ndarray
    clear_class_change_rates: np.ndarray
    clear_base_fraction: float
    hierarchy_summary: float
    independent_class_difference: float
    latent_dims: tuple
    num_codes: int
    redraws: int
    seed: int

    def share(self, level, attribute):
        """The share of `attribute` moved by `level` (1 = lowest)."""
        return float(self.shares[level - 1, self.attributes.index(attribute)])

    def metrics(self):
        """Flat metrics: `level_{i}_share_{attribute}`, `level_{i}_class_change_rate`,
        `level_{i}_clear_class_change_rate`, `clear_base_fraction` and `hierarchy_summary`
        (those that were measured); an undefined share (the independent samples never vary, as for a
        model that draws one image) is left out rather than written as NaN."""
        results = {}
        for level in range(1, len(self.latent_dims) + 1):
            for attribute in self.attributes:
                value = self.share(level, attribute)
                if math.isfinite(value):
                    results[f"level_{level}_share_{attribute}"] = value
            if self.class_change_rates is not None:
                results[f"level_{level}_class_change_rate"] = float(
                    self.class_change_rates[level - 1]
                )
            if self.clear_class_change_rates is not None:
                results[f"level_{level}_clear_class_change_rate"] = float(
                    self.clear_class_change_rates[level - 1]
                )
        if self.clear_base_fraction is not None:
            results["clear_base_fraction"] = float(self.clear_base_fraction)
        if self.hierarchy_summary is not None and math.isfinite(self.hierarchy_summary):
            results["hierarchy_summary"] = float(self.hierarchy_summary)
        return results


def _apply(function, inputs, batch_size, what):
    """`function` on `inputs` in batches of `batch_size`, outputs concatenated and checked to have
    one row per input."""
    outputs = []
    for start in range(0, len(inputs), batch_size):
        part = inputs[start : start + batch_size]
        output = np.asarray(function(part))
        if output.ndim < 1 or len(output) != len(part):
            raise ValueError(
                f"`{what}` must return one row per input: given {len(part)}, it returned shape "
                f"{output.shape}"
            )
        outputs.append(output)
    return np.concatenate(outputs)


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")


def level_factor_shares(
    decode,
    latent_dims,
    classify,
    num_codes=DEFAULT_NUM_CODES,
    redraws=DEFAULT_REDRAWS,
    seed=0,
    batch_size=500,
    confidence=None,
    top_codes=None,
):
    """How much of each image attribute, and of the digit's identity, each latent level moves.

    For each level i: `num_codes` base codes from the prior N(0, I) (the same base codes for
    every level), each with level i's part redrawn `redraws` times and the other levels held
    (one group of `redraws` images per base code). Each attribute's mean within-group variance
    is divided by its variance over `num_codes * redraws` fully independent prior samples (one
    set shared by all levels). See the module docstring for the estimator.

    Decodes (L + 1) * num_codes * redraws + num_codes codes in all, L the number of levels.

    Args:
        decode: function from float32 codes [n, sum(latent_dims)] (levels in order, lowest
            first) to images [n, H, W, C] in [0, 1].
        latent_dims: code size of each level, lowest first.
        classify: function from images [n, H, W, C] to predicted class ids [n], or None to
            leave identity out.
        num_codes: base codes (groups) per level.
        redraws: redraws per base code; at least 2.
        seed: the prior draws depend on this alone.
        batch_size: codes per call of `decode` and images per call of `classify`.
        confidence: function from images [n, H, W, C] to the probability [n] the classifier
            gives its predicted class, or None; given, the class change rates are also
            measured over the clear base images alone. Called on the base images only.
        top_codes: float array [m, latent_dims[-1]], or None for prior draws. Given (the top
            level's posterior means of real digits), each base code's top level is one of these
            rows, drawn without replacement while there are enough; the lower levels' parts
            and all redraws still come from the prior.

    Returns:
        A `HierarchyResult`.
    """
    try:
        latent_dims = tuple(int(dim) for dim in latent_dims)
    except (TypeError, ValueError):
        raise ValueError(
            f"`latent_dims` must be a list of positive integers. Received: {latent_dims!r}"
        ) from None
    if not latent_dims or min(latent_dims) < 1:
        raise ValueError(
            f"`latent_dims` must be a list of positive integers. Received: {latent_dims!r}"
        )
    _check_count("num_codes", num_codes, 2)
    _check_count("redraws", redraws, 2)
    _check_count("batch_size", batch_size, 1)
    total_dim = sum(latent_dims)
    offsets = np.cumsum((0,) + latent_dims)
    num_levels = len(latent_dims)
    group_size = num_codes * redraws

    # One stream per use, so that the base codes and the independent samples do not depend on the
    # number of levels measured before them.
    base_rng, independent_rng = (np.random.default_rng([seed, use]) for use in range(2))
    base_codes = base_rng.standard_normal((num_codes, total_dim)).astype(np.float32)
    if top_codes is not None:
        top_codes = np.asarray(top_codes, np.float32)
        if top_codes.ndim != 2 or top_codes.shape[1] != latent_dims[-1] or not len(top_codes):
            raise ValueError(
                f"`top_codes` must be codes [n, {latent_dims[-1]}] of the top level. "
                f"Received shape: {top_codes.shape}"
            )
        rows = np.random.default_rng([seed, 2 + num_levels]).choice(
            len(top_codes), num_codes, replace=len(top_codes) < num_codes
        )
        base_codes[:, offsets[-2] :] = top_codes[rows]
    independent_codes = independent_rng.standard_normal((group_size, total_dim)).astype(
        np.float32
    )

    def measure(codes):
        images = _apply(decode, codes, batch_size, "decode")
        if images.ndim != 4:
            raise ValueError(
                f"`decode` must return images [n, height, width, channels]. Received shape: "
                f"{images.shape}"
            )
        attributes = image_attributes(images)
        classes = None if classify is None else _apply(classify, images, batch_size, "classify")
        if classes is not None and classes.ndim != 1:
            raise ValueError(
                f"`classify` must return class ids [n], not scores. Received shape: "
                f"{classes.shape}"
            )
        return images, attributes, classes

    _, independent_attributes, independent_classes = measure(independent_codes)
    attribute_names = (() if classify is None else (IDENTITY,)) + ATTRIBUTES
    # An attribute that never varies has no share; np.var of equal values can come out a
    # rounding error above 0, hence the test on the values themselves.
    independent_variance = {
        name: np.var(values, ddof=1) if np.ptp(values) > 0 else 0.0
        for name, values in ((name, independent_attributes[name]) for name in ATTRIBUTES)
    }
    independent_difference = None
    if classify is not None:
        independent_difference = float(_pair_difference(independent_classes[None, :])[0])
        base_images, _, base_classes = measure(base_codes)
    clear = None
    if classify is not None and confidence is not None:
        clear = _apply(confidence, base_images, batch_size, "confidence") >= CLEAR_CONFIDENCE

    shares = np.zeros((num_levels, len(attribute_names)))
    change_rates = None if classify is None else np.zeros(num_levels)
    clear_rates = None if clear is None or not clear.any() else np.zeros(num_levels)
    for level in range(num_levels):
        start, stop = offsets[level], offsets[level + 1]
        level_rng = np.random.default_rng([seed, 2 + level])
        codes = np.repeat(base_codes, redraws, axis=0)
        codes[:, start:stop] = level_rng.standard_normal((group_size, stop - start))
        _, attributes, classes = measure(codes)
        for column, name in enumerate(attribute_names):
            if name == IDENTITY:
                grouped = classes.reshape(num_codes, redraws)
                within = np.mean(_pair_difference(grouped))
                shares[level, column] = _share(within, independent_difference)
                changed = grouped != base_classes[:, None]
                change_rates[level] = float(np.mean(changed))
                if clear_rates is not None:
                    clear_rates[level] = float(np.mean(changed[clear]))
            else:
                grouped = attributes[name].reshape(num_codes, redraws)
                within = np.mean(np.var(grouped, axis=1, ddof=1))
                shares[level, column] = _share(within, independent_variance[name])

    summary = None
    if classify is not None:
        identity = shares[:, 0]
        others = identity[:-1]
        summary = float(identity[-1] - (np.max(others) if len(others) else 0.0))
    return HierarchyResult(
        shares=shares,
        attributes=attribute_names,
        class_change_rates=change_rates,
        clear_class_change_rates=clear_rates,
        clear_base_fraction=None if clear is None else float(np.mean(clear)),
        hierarchy_summary=summary,
        independent_class_difference=independent_difference,
        latent_dims=latent_dims,
        num_codes=num_codes,
        redraws=redraws,
        seed=seed,
    )
