"""Tests of ladder_vae/evaluation/hierarchy.py, and of image_attributes.py, whose attributes it
measures, on images and decoders whose factors are known.

The hand-built decoder draws a real digit (one bundled example per class) and has one factor per
level: level 1 only sets the stroke width, level 2 only shears the digit, level 3 only picks
which digit is drawn. The shares must find exactly that split.
"""

import math
import statistics

import numpy as np
import pytest

from ladder_vae.evaluation import hierarchy
from ladder_vae.evaluation.image_attributes import ATTRIBUTES, image_attributes

SIZE = 28
LATENT_DIMS = (2, 2, 2)
NUM_CODES = 120
REDRAWS = 6
MAX_SHEAR = 0.5


def _normal_cdf(values):
    return np.vectorize(statistics.NormalDist().cdf)(np.asarray(values, np.float64))


def _blur_matrix(sigma, size=SIZE):
    """[size, size] matrix M such that M @ image blurs the columns of `image` (zero outside)."""
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum(axis=1, keepdims=True)


BLUR = _blur_matrix(1.0)


def blur(images):
    """Gaussian blur (sigma 1 pixel) of [n, H, W]."""
    return BLUR @ images @ BLUR.T


def shear(images, amounts):
    """Shears [n, H, W] horizontally by `amounts` [n] (positive: the top moves right).

    Output pixel (r, c) takes the input at column c + s (r - r_c), linearly interpolated, so the
    row r_c (the middle) stays and a row k pixels above it moves s k pixels to the right.
    """
    n, height, width = images.shape
    centre = (height - 1) / 2.0
    rows = np.arange(height, dtype=np.float64)
    source = (
        np.arange(width)[None, None, :]
        + np.asarray(amounts, np.float64)[:, None, None] * (rows[None, :, None] - centre)
    )
    left = np.floor(source).astype(int)
    fraction = source - left
    padded = np.pad(images, ((0, 0), (0, 0), (1, 2)))
    lower = np.take_along_axis(padded, np.clip(left + 1, 0, width + 2), axis=2)
    upper = np.take_along_axis(padded, np.clip(left + 2, 0, width + 2), axis=2)
    return (1.0 - fraction) * lower + fraction * upper


def thicken(images, levels):
    """Soft strokes whose width grows as `levels` [n] in [0, 1] grows: the blurred digit,
    thresholded softly at a level from 0.7 (thin) down to 0.05 (thick)."""
    thresholds = 0.7 - 0.65 * np.asarray(levels, np.float64)
    return 1.0 / (1.0 + np.exp(-(blur(images) - thresholds[:, None, None]) / 0.04))


@pytest.fixture(scope="module")
def prototypes(bundled_digits):
    """The first bundled training digit of each class, float [10, 28, 28] in [0, 1]."""
    labels = bundled_digits.train_labels
    first = [int(np.flatnonzero(labels == digit)[0]) for digit in range(10)]
    return bundled_digits.train_images[first, ..., 0].astype(np.float64) / 255.0


def factors(codes, order=(0, 1, 2)):
    """(stroke level in [0, 1], shear, digit) of codes [n, 6]; level `order[k]` holds factor k.

    Only the first dimension of each level is used, so each level also has a dimension that the
    decoder ignores.
    """
    codes = np.asarray(codes, np.float64)
    first = [codes[:, 2 * level] for level in order]
    stroke = _normal_cdf(first[0])
    shear_amount = MAX_SHEAR * (2.0 * _normal_cdf(first[1]) - 1.0)
    digit = np.minimum((_normal_cdf(first[2]) * 10).astype(int), 9)
    return stroke, shear_amount, digit


def make_decode(prototypes, order=(0, 1, 2)):
    def decode(codes):
        stroke, shear_amount, digit = factors(codes, order)
        images = thicken(shear(prototypes[digit], shear_amount), stroke)
        return images[..., None].astype(np.float32)

    return decode


def make_classify(prototypes):
    """Nearest prototype by correlation, after removing each image's measured slant and a wide
    blur (which evens out stroke widths): right on nearly all of these decoded digits."""

    def normalise(images):
        slant = image_attributes(images[..., None])["slant"]
        flat = blur(blur(shear(images, -slant))).reshape(len(images), -1)
        flat = flat - flat.mean(axis=1, keepdims=True)
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    templates = normalise(prototypes)

    def classify(images):
        return np.argmax(normalise(np.asarray(images, np.float64)[..., 0]) @ templates.T, axis=1)

    return classify


# The attributes respond to the transformation they name ---------------------------------------


def bar(width, height=16, size=SIZE):
    """A vertical bar of `width` x `height` pixels in the middle of a size x size image."""
    image = np.zeros((size, size))
    top, left = (size - height) // 2, (size - width) // 2
    image[top : top + height, left : left + width] = 1.0
    return image


def rotated_bar(width, degrees, length=20, supersampling=8):
    """An anti-aliased bar of `width` x `length` pixels at `degrees` from the horizontal."""
    steps = np.arange(SIZE * supersampling) / supersampling - SIZE / 2 + 0.5 / supersampling
    y, x = np.meshgrid(steps, steps, indexing="ij")
    angle = math.radians(degrees)
    along = x * math.cos(angle) + y * math.sin(angle)
    across = -x * math.sin(angle) + y * math.cos(angle)
    inside = (np.abs(along) < length / 2) & (np.abs(across) < width / 2)
    return inside.reshape(SIZE, supersampling, SIZE, supersampling).mean(axis=(1, 3))


def test_thickness_is_the_stroke_width_in_pixels_at_any_angle():
    widths = (2, 3, 4, 6)
    angles = (0, 15, 30, 45, 60, 90, 135)
    bars = np.stack([rotated_bar(w, angle) for w in widths for angle in angles])
    thickness = image_attributes(bars[..., None])["thickness"].reshape(4, 7)
    # 2 A / P of a w x 20 rectangle: within 4% from 3 pixels on, 13% at 2 pixels.
    expected = np.array([w * 20 / (w + 20) for w in widths])[:, None]
    np.testing.assert_allclose(thickness[1:], np.broadcast_to(expected[1:], (3, 7)), rtol=0.04)
    np.testing.assert_allclose(thickness[0], np.broadcast_to(expected[0], 7), rtol=0.13)
    assert np.all(np.diff(thickness, axis=0) > 0.5)


def test_thicker_strokes_of_real_digits_measure_thicker(prototypes):
    thin = thicken(prototypes, np.zeros(10))[..., None]
    thick = thicken(prototypes, np.ones(10))[..., None]
    thin_attributes = image_attributes(thin)
    thick_attributes = image_attributes(thick)
    assert np.all(thick_attributes["thickness"] > thin_attributes["thickness"] + 1.0)
    assert np.all(thick_attributes["ink"] > thin_attributes["ink"])


def test_ink_is_the_sum_of_intensities(digit_batch):
    np.testing.assert_allclose(
        image_attributes(digit_batch)["ink"],
        digit_batch.sum(axis=(1, 2, 3)),
        rtol=1e-5,
    )


def test_slant_measures_the_shear_and_its_sign():
    upright = np.stack([bar(3, height=20)] * 3)
    amounts = np.array([0.0, 0.3, -0.3])
    slant = image_attributes(shear(upright, amounts)[..., None])["slant"]
    assert slant[0] == pytest.approx(0.0, abs=1e-9)
    # The top of the second bar leans right: positive, about the shear itself.
    assert slant[1] == pytest.approx(0.3, abs=0.03)
    assert slant[2] == pytest.approx(-0.3, abs=0.03)


def test_slant_of_sheared_real_digits_follows_the_shear(prototypes):
    base = image_attributes(prototypes[..., None])["slant"]
    right = image_attributes(shear(prototypes, np.full(10, 0.3))[..., None])["slant"]
    left = image_attributes(shear(prototypes, np.full(10, -0.3))[..., None])["slant"]
    np.testing.assert_allclose(right - base, 0.3, atol=0.06)
    np.testing.assert_allclose(left - base, -0.3, atol=0.06)


def test_width_is_the_deskewed_extent_and_height_the_vertical_one():
    bars = np.stack([bar(4, height=12), bar(8, height=12), bar(8, height=20)])
    attributes = image_attributes(bars[..., None])
    # A uniform run of w pixels has variance (w^2 - 1) / 12.
    np.testing.assert_allclose(attributes["width"], np.sqrt([15, 63, 63]), rtol=1e-9)
    np.testing.assert_allclose(attributes["height"], np.sqrt([143, 143, 399]), rtol=1e-9)
    # A shear does not widen the digit once it is removed, though its bounding box grows.
    sheared = image_attributes(shear(bars[1:2], np.array([0.4]))[..., None])
    assert sheared["width"][0] == pytest.approx(math.sqrt(63), rel=0.05)


def test_colour_images_are_measured_on_the_mean_of_their_channels(digit_batch):
    grey = image_attributes(0.75 * digit_batch)
    colour = image_attributes(
        np.concatenate([0.5 * digit_batch, digit_batch, 0.75 * digit_batch], axis=-1)
    )
    for name in ATTRIBUTES:
        np.testing.assert_allclose(colour[name], grey[name], rtol=1e-6, err_msg=name)


def test_an_empty_image_has_zero_attributes():
    attributes = image_attributes(np.zeros((2, SIZE, SIZE, 1)))
    for name in ATTRIBUTES:
        np.testing.assert_array_equal(attributes[name], 0.0, err_msg=name)


def test_image_attributes_reject_images_without_channels():
    with pytest.raises(ValueError, match=r"\[n, height, width, channels\]"):
        image_attributes(np.zeros((2, SIZE, SIZE)))


# The shares of a decoder whose hierarchy is known -----------------------------------------------


@pytest.fixture(scope="module")
def known_result(prototypes):
    return hierarchy.level_factor_shares(
        make_decode(prototypes),
        LATENT_DIMS,
        make_classify(prototypes),
        num_codes=NUM_CODES,
        redraws=REDRAWS,
        seed=0,
    )


def test_the_constructed_classifier_names_the_drawn_digit(prototypes):
    codes = np.random.default_rng(5).standard_normal((2000, sum(LATENT_DIMS)))
    images = make_decode(prototypes)(codes)
    _, _, digits = factors(codes)
    accuracy = np.mean(make_classify(prototypes)(images) == digits)
    assert accuracy > 0.97


def test_each_level_moves_what_it_was_built_to_move(known_result):
    result = known_result
    assert result.attributes == ("identity",) + ATTRIBUTES
    assert result.shares.shape == (3, 6)
    share = result.share
    # Level 3 alone picks the digit; levels 1 and 2 leave it (almost: the classifier's rare
    # errors depend on stroke and shear).
    assert share(3, "identity") > 0.9
    assert share(1, "identity") < 0.05 and share(2, "identity") < 0.05
    # Stroke width: most from level 1, the largest of the levels; nothing from level 2's shear.
    assert share(1, "thickness") > 0.55
    assert share(1, "thickness") > share(3, "thickness") + 0.2
    assert share(2, "thickness") < 0.1
    # Slant: level 2's shear, plus the slant of the chosen digit at level 3; next to none from
    # level 1 (very thick strokes fill a digit's loops, which moves its moments a little).
    assert share(2, "slant") > 0.5
    assert share(2, "slant") > share(3, "slant")
    assert share(1, "slant") < 0.1
    assert result.class_change_rates[0] < 0.05 and result.class_change_rates[1] < 0.05
    # Ten equally likely digits: a redraw of level 3 draws another one 90% of the time.
    assert result.class_change_rates[2] == pytest.approx(0.9, abs=0.04)
    assert result.hierarchy_summary > 0.85


def test_swapping_the_levels_swaps_the_table(prototypes, known_result):
    swapped = hierarchy.level_factor_shares(
        make_decode(prototypes, order=(2, 1, 0)),
        LATENT_DIMS,
        make_classify(prototypes),
        num_codes=NUM_CODES,
        redraws=REDRAWS,
        seed=0,
    )
    np.testing.assert_allclose(swapped.shares, known_result.shares[::-1], atol=0.12)
    assert swapped.share(1, "identity") > 0.9
    assert swapped.hierarchy_summary < -0.85


def test_shares_of_a_level_that_decides_everything_or_nothing(prototypes):
    # A decoder that reads only level 2: level 2's shares are 1, the others' 0.
    decode = make_decode(prototypes)

    def only_level_2(codes):
        codes = np.array(codes)
        codes[:, 0:2] = 1.0
        codes[:, 4:6] = -0.3
        return decode(codes)

    result = hierarchy.level_factor_shares(
        only_level_2, LATENT_DIMS, None, num_codes=60, redraws=4, seed=1
    )
    assert result.attributes == ATTRIBUTES
    np.testing.assert_array_equal(result.shares[[0, 2]], 0.0)
    np.testing.assert_allclose(result.shares[1], 1.0, atol=0.25)
    assert result.class_change_rates is None and result.hierarchy_summary is None
    assert not any("identity" in key or "class" in key for key in result.metrics())


def test_metrics_are_flat_named_numbers(known_result):
    values = known_result.metrics()
    expected = {
        f"level_{level}_share_{name}"
        for level in (1, 2, 3)
        for name in ("identity",) + ATTRIBUTES
    }
    expected |= {f"level_{level}_class_change_rate" for level in (1, 2, 3)}
    assert set(values) == expected | {"hierarchy_summary"}
    assert all(isinstance(value, float) and math.isfinite(value) for value in values.values())
    assert values["level_2_share_slant"] == known_result.share(2, "slant")


def border_model():
    """(decode, classify, confidence) of a two-level model whose level 1 decides the class only
    where the top code is near the border (|z_2| < 0.5), where the classifier is unsure."""

    def decode(codes):
        images = np.zeros((len(codes), 8, 8, 1), np.float32)
        images[:, 2:6, 3:5] = 0.8  # A bar, so that every attribute is defined.
        # The codes, in [0, 1] as pixels are (|z| < 10).
        images[:, 0, 0, 0], images[:, 0, 1, 0] = 0.5 + codes[:, 1] / 20, 0.5 + codes[:, 0] / 20
        return images

    def top_and_bottom(images):
        return (images[:, 0, 0, 0] - 0.5) * 20, (images[:, 0, 1, 0] - 0.5) * 20

    def classify(images):
        top, bottom = top_and_bottom(images)
        return np.where(np.abs(top) >= 0.5, top > 0, bottom > 0).astype(np.int64)

    def confidence(images):
        top, _ = top_and_bottom(images)
        return np.where(np.abs(top) >= 0.5, 0.99, 0.6)

    return decode, classify, confidence


def test_clear_class_changes_leave_out_the_ambiguous_base_images():
    """Every change level 1 makes is at an ambiguous image (`border_model`)."""
    decode, classify, confidence = border_model()
    result = hierarchy.level_factor_shares(
        decode, (1, 1), classify, num_codes=2000, redraws=4, seed=0, confidence=confidence
    )
    near_border = 0.383  # P(|z| < 0.5) under N(0, 1)
    assert result.clear_base_fraction == pytest.approx(1 - near_border, abs=0.03)
    # Level 1 changes half of the ambiguous images' classes, and no clear one's.
    assert result.class_change_rates[0] == pytest.approx(near_border / 2, abs=0.03)
    assert result.clear_class_change_rates[0] == 0.0
    # A clear image keeps its class under a new top code only if the code keeps its sign and
    # stays clear, or lands near the border and draws its level 1 code's sign: 1/2 in all.
    assert result.clear_class_change_rates[1] == pytest.approx(0.5, abs=0.03)
    values = result.metrics()
    assert values["level_1_clear_class_change_rate"] == 0.0
    assert values["clear_base_fraction"] == result.clear_base_fraction
    # With no clear base image the clear rates are undefined and left out.
    unsure = hierarchy.level_factor_shares(
        decode, (1, 1), classify, num_codes=50, redraws=2, confidence=lambda x: np.zeros(len(x))
    )
    assert unsure.clear_class_change_rates is None and unsure.clear_base_fraction == 0.0
    assert "level_1_clear_class_change_rate" not in unsure.metrics()


def test_top_codes_of_real_digits_replace_the_prior_draws_of_the_top_level():
    """Base codes whose top level comes from `top_codes` are as clear as those codes are."""
    decode, classify, confidence = border_model()

    def measure(top_codes):
        return hierarchy.level_factor_shares(
            decode, (1, 1), classify, num_codes=400, redraws=4, seed=0, confidence=confidence,
            top_codes=np.array(top_codes, np.float32)[:, None],
        )

    # Far from the border: level 1 never changes the class, and every base image is clear.
    far = measure([-2.0, 1.5, 3.0])
    assert far.class_change_rates[0] == 0.0 and far.clear_base_fraction == 1.0
    # At the border: level 1 decides the class, so a redraw changes it half of the time.
    near = measure([0.1, -0.2])
    assert near.clear_base_fraction == 0.0
    assert near.class_change_rates[0] == pytest.approx(0.5, abs=0.05)
    # The top level's redraws still come from the prior.
    assert far.class_change_rates[1] > 0.1
    with pytest.raises(ValueError, match="top_codes"):
        measure([[1.0, 2.0]])


def test_a_constant_classifier_leaves_identity_undefined(prototypes):
    result = hierarchy.level_factor_shares(
        make_decode(prototypes),
        LATENT_DIMS,
        lambda images: np.zeros(len(images), np.int64),
        num_codes=40,
        redraws=3,
    )
    assert np.all(np.isnan(result.shares[:, 0]))
    np.testing.assert_array_equal(result.class_change_rates, 0.0)
    values = result.metrics()
    assert "hierarchy_summary" not in values and "level_1_share_identity" not in values
    assert values["level_1_class_change_rate"] == 0.0
    assert "level_1_share_thickness" in values


def test_the_same_seed_gives_the_same_table(prototypes):
    decode, classify = make_decode(prototypes), make_classify(prototypes)

    def shares(seed, batch_size):
        return hierarchy.level_factor_shares(
            decode, LATENT_DIMS, classify, num_codes=30, redraws=3, seed=seed,
            batch_size=batch_size,
        ).shares

    first = shares(0, 500)
    np.testing.assert_array_equal(first, shares(0, 7))
    assert not np.array_equal(first, shares(1, 500))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(latent_dims=()), "latent_dims"),
        (dict(latent_dims=(2, 0)), "latent_dims"),
        (dict(latent_dims="ab"), "latent_dims"),
        (dict(num_codes=1), "num_codes"),
        (dict(redraws=1), "redraws"),
        (dict(redraws=2.5), "redraws"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_arguments_are_named(prototypes, arguments, message):
    call = dict(decode=make_decode(prototypes), latent_dims=LATENT_DIMS, classify=None)
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        hierarchy.level_factor_shares(**call)


def test_a_decoder_or_classifier_of_the_wrong_shape_is_named(prototypes):
    decode = make_decode(prototypes)

    def measure(decode, classify):
        return hierarchy.level_factor_shares(decode, LATENT_DIMS, classify, num_codes=4)

    with pytest.raises(ValueError, match="`decode` must return one row per input"):
        measure(lambda codes: decode(codes)[:-1], None)
    with pytest.raises(ValueError, match="`decode` must return images"):
        measure(lambda codes: decode(codes)[..., 0], None)
    with pytest.raises(ValueError, match="`classify` must return one row per input"):
        measure(decode, lambda images: np.zeros(3))
    with pytest.raises(ValueError, match=r"`classify` must return class ids \[n\]"):
        measure(decode, lambda images: np.zeros((len(images), 10)))
