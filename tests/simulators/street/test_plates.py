"""Rendered Chinese plates: valid texts, the standard's sizes and colours, glyphs where the cells are."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from simulators.street import plates
from simulators.street.plates import (
    LETTERS,
    PROVINCES,
    random_plate,
    render_plate,
    validate_plate_text,
)


@pytest.mark.parametrize("colour", ["blue", "green", "yellow"])
def test_random_plates_are_valid_and_seeded(colour: str) -> None:
    rng = np.random.default_rng(7)
    drawn = [random_plate(rng, colour) for _ in range(300)]  # type: ignore[arg-type]
    again = [random_plate(np.random.default_rng(7), colour) for _ in range(1)]  # type: ignore[arg-type]
    assert drawn[0] == again[0]
    length = 8 if colour == "green" else 7
    for text, got_colour in drawn:
        assert got_colour == colour
        assert len(text) == length
        assert text[0] in PROVINCES
        assert text[1] in LETTERS
        assert "I" not in text and "O" not in text
        validate_plate_text(text, colour)
    assert len({t for t, _ in drawn}) > 290  # varied, not one plate over and over
    if colour == "green":
        serials = [t[2:] for t, _ in drawn]
        assert any(s[0] in "DF" for s in serials) and any(s[-1] in "DF" and s[:5].isdigit() for s in serials)


def test_random_colours_follow_the_street_mix() -> None:
    rng = np.random.default_rng(3)
    colours = [random_plate(rng)[1] for _ in range(1000)]
    assert colours.count("blue") > colours.count("green") > colours.count("yellow") > 30


@pytest.mark.parametrize(
    ("text", "colour", "mistake"),
    [
        ("京A1234", "blue", "has 7 characters"),
        ("京A123456", "blue", "has 7 characters"),
        ("A京12345", "blue", "not a province"),
        ("京112345", "blue", "second character"),
        ("京I12345", "blue", "second character"),
        ("京A12O45", "blue", "I and O are never used"),
        ("京A12a45", "blue", "capital letters and digits only"),
        ("京AD1234", "green", "has 8 characters"),
        ("京A123456", "green", "new-energy"),
        ("京A12345", "red", "must be one of blue, green, yellow"),
    ],
)
def test_invalid_plates_are_refused_naming_the_mistake(text: str, colour: str, mistake: str) -> None:
    with pytest.raises(ValueError, match=mistake):
        validate_plate_text(text, colour)


def test_the_separator_dot_is_accepted() -> None:
    validate_plate_text("粤B·D12345", "green")
    validate_plate_text("粤B·12345D", "green")
    validate_plate_text("沪A·B1234", "yellow")
    a = render_plate("沪A·B1234", "blue", height_px=40)
    b = render_plate("沪AB1234", "blue", height_px=40)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(("colour", "width_mm"), [("blue", 440), ("yellow", 440), ("green", 480)])
@pytest.mark.parametrize("height_px", [20, 45, 70, 140])
def test_plates_have_the_standard_aspect(colour: str, width_mm: int, height_px: int) -> None:
    text, _ = random_plate(np.random.default_rng(height_px), colour)  # type: ignore[arg-type]
    for rng in (None, np.random.default_rng(1)):
        img = render_plate(text, colour, height_px=height_px, rng=rng)  # type: ignore[arg-type]
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.shape[0] == height_px
        assert abs(img.shape[1] - height_px * width_mm / 140) <= 0.5


def _face_and_ink(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median BGR of the plate's top margin (the face) and of its darkest/brightest text pixels."""
    face = np.median(img[3 : img.shape[0] // 8, img.shape[1] // 3 : img.shape[1] // 2].reshape(-1, 3), axis=0)
    return face, img[img.shape[0] // 4 : img.shape[0] * 3 // 4].reshape(-1, 3).astype(float)


def test_plate_colours_and_text_colours() -> None:
    blue = render_plate("京A12345", "blue", height_px=140)
    face, body = _face_and_ink(blue)
    assert face[0] > 120 and face[2] < 60  # blue face
    assert (body.min(axis=1) > 200).mean() > 0.08  # white strokes
    yellow = render_plate("京A12345", "yellow", height_px=140)
    face, body = _face_and_ink(yellow)
    assert face[2] > 200 and face[1] > 150 and face[0] < 80
    assert (body.max(axis=1) < 60).mean() > 0.08  # black strokes
    green = render_plate("京AD12345", "green", height_px=140)
    top = green[5:12, 200:260].reshape(-1, 3).mean(axis=0)
    bottom = green[-12:-5, 200:260].reshape(-1, 3).mean(axis=0)
    assert top.mean() > bottom.mean() + 40  # white-to-green gradient
    assert bottom[1] > bottom[0] + 60 and bottom[1] > bottom[2] + 60
    _, body = _face_and_ink(green)
    assert (body.max(axis=1) < 60).mean() > 0.08


def test_every_character_is_drawn_in_its_cell() -> None:
    # Ink per character cell, at the standard's cell positions (2 px/mm at 280 px high).
    img = render_plate("京A12345", "blue", height_px=280)
    white = img.min(axis=2) > 200
    for x_mm in (15.5, 72.5, 151.5, 208.5, 265.5, 322.5, 379.5):
        cell = white[50:230, round(x_mm * 2) : round((x_mm + 45) * 2)]
        assert cell.mean() > 0.08, f"no glyph in the cell at {x_mm} mm"
    gap = white[60:110, 240:268]  # the 34 mm gap above the separator dot
    assert gap.mean() < 0.02
    # Different texts, different pictures; the same text, the same picture.
    assert not np.array_equal(img, render_plate("京A12346", "blue", height_px=280))
    assert np.array_equal(img, render_plate("京A12345", "blue", height_px=280))


def test_weathered_plates_vary_but_are_seeded() -> None:
    clean = render_plate("苏E8K520", "blue", height_px=45).astype(float)
    a = render_plate("苏E8K520", "blue", height_px=45, rng=np.random.default_rng(5))
    b = render_plate("苏E8K520", "blue", height_px=45, rng=np.random.default_rng(5))
    c = render_plate("苏E8K520", "blue", height_px=45, rng=np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a.astype(float) - clean).mean() > 3
    # Still a blue plate with light text: the weather does not wipe it out.
    assert np.median(a[..., 0]) > np.median(a[..., 2])

    # The same picture underneath, once a slight tilt is smoothed over.
    def smooth(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img.astype(np.float32).mean(axis=2), (0, 0), 2.0).ravel()

    assert np.corrcoef(smooth(a), smooth(clean))[0, 1] > 0.6
    other = render_plate("苏E8K520", "yellow", height_px=45)
    assert np.corrcoef(smooth(a), smooth(other))[0, 1] < np.corrcoef(smooth(a), smooth(clean))[0, 1]


def test_tiny_heights_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8 pixels"):
        render_plate("京A12345", "blue", height_px=5)


def test_a_missing_font_names_the_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(plates, "FONT_PATHS", (tmp_path / "none.ttc",))
    with pytest.raises(FileNotFoundError, match="fonts-wqy-zenhei"):
        plates.font_path()
