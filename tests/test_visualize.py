"""Explanation pictures: layout, map overlay, ROI outlines, sizes, determinism, files."""

import math

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw

from api_helpers import QUESTION, RED, SIZE, inside, small_config
from fake_adapter import FakeAdapter, scene
from focus_eval.present import fonts, visualize
from focus_eval.pipeline import Pipeline, PipelineError
from focus_eval.trace import RoiTrace, TargetTrace, Trace
from focus_eval.present.visualize import (
    CHECKED_COLOUR,
    CHOSEN_COLOUR,
    ERROR_COLOUR,
    MAX_TEXT_LINES,
    MAX_WIDTH,
    PANEL_HEIGHT,
    UNCHECKED_COLOUR,
    hot_colours,
    printable,
    render_explanation,
    save_explanation,
)

DECOYS = [(50, 50, 100, 100), (650, 50, 700, 100)]


def decoy_run():
    """Decoys outrank the red square on the map; the existence checks pick the square."""
    image = scene(SIZE, {"red": [RED], "blue": DECOYS})
    result = Pipeline(FakeAdapter(decoys=DECOYS, square_noise=0.5), small_config()).answer(image, QUESTION)
    return image, result


def pixel(picture, xy):
    return picture.getpixel(xy)[:3]


def test_chosen_roi_is_outlined_in_the_chosen_colour_and_the_crop_is_shown():
    image, result = decoy_run()
    target = result.trace.targets[0]
    chosen = target.rois[target.chosen[0]]
    assert inside(RED, chosen.box) and target.chosen[0] != 0, "the square must be found by reranking"

    figure = render_explanation(result.trace, image, result.final_images)
    picture = figure.image
    overlay, model_input = figure.panels
    # 800x600 at panel height 512 -> 683 px; the 250x250 crop -> 512 px; margins 512 // 48 = 10
    assert (overlay.kind, overlay.box[2] - overlay.box[0], overlay.box[3] - overlay.box[1]) == ("target", 683, 512)
    assert (model_input.kind, model_input.box[2] - model_input.box[0]) == ("input", 512)
    assert picture.width == 10 + 683 + 10 + 512 + 10
    assert overlay.box[3] < picture.height < overlay.box[3] + 200

    x0, y0, x1, y1 = chosen.box
    for x, y in [(x0, (y0 + y1) / 2), (x1 - 1, (y0 + y1) / 2), ((x0 + x1) / 2, y1 - 1)]:
        assert pixel(picture, overlay.to_picture(x, y)) == CHOSEN_COLOUR, (x, y)
    # a checked but rejected decoy ROI carries the checked colour, not the chosen one
    rejected = next(r for i, r in enumerate(target.rois) if r.confidence is not None and i not in target.chosen)
    left_middle = overlay.to_picture(rejected.box[0], (rejected.box[1] + rejected.box[3]) / 2)
    assert pixel(picture, left_middle) in (CHECKED_COLOUR, CHOSEN_COLOUR)
    # no chosen-colour pixel outside the chosen box and its label just above it
    panel = np.asarray(picture.crop(overlay.box))
    ys, xs = np.nonzero((panel == CHOSEN_COLOUR).all(-1))
    left, top = overlay.to_picture(x0, y0)
    right, bottom = overlay.to_picture(x1, y1)
    left, top, right, bottom = left - overlay.box[0], top - overlay.box[1], right - overlay.box[0], bottom - overlay.box[1]
    assert xs.min() >= left and ys.max() < bottom and ys.min() >= top - 40
    # the model-input panel shows the red square: 50x50 of the 250x250 crop
    shown = np.asarray(picture.crop(model_input.box), dtype=int)
    assert (np.abs(shown - (220, 20, 20)).sum(-1) < 30).mean() == pytest.approx(0.04, abs=0.005)


def synthetic_trace(image_size, grid, hot_cell, covered=None, rois=()):
    """A one-target trace with a map that is 1 at hot_cell and 0 elsewhere."""
    rows, cols = grid
    x0, y0, x1, y1 = covered or (0, 0, *image_size)
    xs, ys = np.linspace(x0, x1, cols + 1), np.linspace(y0, y1, rows + 1)
    cells = [[[xs[c], ys[r], xs[c + 1], ys[r + 1]] for c in range(cols)] for r in range(rows)]
    relevance = np.zeros(grid)
    relevance[hot_cell] = 1.0
    target = TargetTrace(name="cat", all_instances=False, relevance_map=relevance.tolist(), cell_boxes=cells,
                         rois=list(rois), order=list(range(len(rois))), chosen=[0] if rois else [])
    return Trace(question="Where is the cat?", prompt="Where is the cat?", image_size=list(image_size),
                 config={}, targets=[target], answer="left")


def test_heat_overlay_follows_the_cells_and_spares_uncovered_pixels():
    grey = Image.new("RGB", (400, 400), (128, 128, 128))
    # the grid covers only the central 200x200 (a centre-cropped vision input)
    trace = synthetic_trace((400, 400), (4, 4), (1, 2), covered=(100, 100, 300, 300))
    figure = render_explanation(trace, grey, [])
    overlay = figure.panels[0]
    hot = np.array(pixel(figure.image, overlay.to_picture(225, 175)))  # centre of cell (1, 2)
    cold = np.array(pixel(figure.image, overlay.to_picture(110, 290)))  # far corner cell of the grid
    outside = pixel(figure.image, overlay.to_picture(50, 50))
    white_heat = 0.5 * 128 + 0.5 * 255 * hot_colours(np.array(1.0))
    assert np.abs(hot - white_heat).max() <= 8  # the pixel centre is not exactly the cell centre
    assert cold.tolist() == [64, 64, 64]  # black heat at alpha 0.5
    assert outside == (128, 128, 128)
    # the brightest pixel lies in cell (1, 2): x in [200, 250), y in [150, 200)
    panel = np.asarray(figure.image.crop(overlay.box), dtype=int).sum(-1)
    row, col = np.unravel_index(panel.argmax(), panel.shape)
    (left, top), (right, bottom) = overlay.to_picture(200, 150), overlay.to_picture(250, 200)
    assert left <= col + overlay.box[0] < right and top <= row + overlay.box[1] < bottom


def test_printable_escapes_control_characters():
    assert printable("a\x1b[2J\rb\n\tc \u4e2d") == "a\\x1b[2J\\rb\n\tc \u4e2d"


def test_hot_colours_ramp():
    assert hot_colours(np.array([0.0, 1 / 3, 2 / 3, 1.0])).tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]]


@pytest.mark.parametrize("size", [(7680, 4320), (28, 21)])
def test_huge_images_are_shrunk_and_tiny_ones_enlarged(size):
    image = Image.new("RGB", size, (90, 120, 150))
    roi = RoiTrace(anchor=[1, 1], anchor_score=1.0, cells=[0, 0, 3, 3],
                   box=[size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2], confidence=0.9)
    trace = synthetic_trace(size, (4, 4), (1, 1), rois=[roi])
    crop = image.crop(roi.box)
    figure = render_explanation(trace, image, [image, crop])
    heights = {p.box[3] - p.box[1] for p in figure.panels}
    assert len(heights) == 1
    (height,) = heights
    assert figure.image.width <= MAX_WIDTH
    if size[0] > MAX_WIDTH:
        assert height < PANEL_HEIGHT
        assert figure.image.width >= MAX_WIDTH - 3 * len(figure.panels)  # shrunk just enough
    else:
        assert height == PANEL_HEIGHT
    overlay = figure.panels[0]
    assert math.isclose((overlay.box[2] - overlay.box[0]) / height, size[0] / size[1], rel_tol=0.02)
    x0, y0, _, y1 = roi.box
    assert pixel(figure.image, overlay.to_picture(x0, (y0 + y1) / 2)) == CHOSEN_COLOUR


def test_same_inputs_give_the_same_png_bytes_and_the_trace_round_trips(tmp_path):
    image, first = decoy_run()
    _, second = decoy_run()
    png_a, json_a = save_explanation(first.trace, image, first.final_images, tmp_path / "a", "vstar/doc 7")
    png_b, _ = save_explanation(second.trace, image, second.final_images, tmp_path / "b", "vstar/doc 7")
    assert png_a.name == "vstar_doc_7.png" and json_a.name == "vstar_doc_7.json"
    assert png_a.read_bytes() == png_b.read_bytes()
    assert Image.open(png_a).size == render_explanation(first.trace, image, first.final_images).image.size
    assert Trace.from_json(json_a.read_text()).to_dict() == first.trace.to_dict()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["vstar_doc_7.json", "vstar_doc_7.png"]


def test_a_failed_question_is_drawn_with_its_error(tmp_path):
    image = scene(SIZE, {"red": [RED]})
    with pytest.raises(PipelineError) as failure:
        Pipeline(FakeAdapter(fail_generate_with_images=True), small_config()).answer(image, QUESTION)
    png, json_path = save_explanation(failure.value.trace, image, [], tmp_path, "failed")
    picture = Image.open(png).convert("RGB")
    assert (np.asarray(picture) == ERROR_COLOUR).all(-1).any()
    assert "generation exploded" in Trace.from_json(json_path.read_text()).error
    assert len(render_explanation(failure.value.trace, image, []).panels) == 1


def test_vanilla_trace_shows_the_image_and_the_model_input():
    image = scene(SIZE, {"red": [RED]})
    result = Pipeline(FakeAdapter(), small_config(method="vanilla")).answer(image, QUESTION)
    figure = render_explanation(result.trace, image, result.final_images)
    assert [p.kind for p in figure.panels] == ["target", "input"]
    overlay = figure.panels[0]
    assert pixel(figure.image, overlay.to_picture(525, 325)) == (220, 20, 20)  # no heat over the square


def test_a_trace_of_another_image_is_refused():
    image, result = decoy_run()
    with pytest.raises(ValueError, match="trace was computed on 800x600"):
        render_explanation(result.trace, image.resize((400, 300)), result.final_images)


def header_of(figure):
    """The picture above its first panel: header and legend."""
    return np.asarray(figure.image.crop((0, 0, figure.image.width, figure.panels[0].box[1])))


def has_colour(pixels, colour) -> bool:
    return bool((pixels == np.array(colour)).all(-1).any())


def test_the_legend_shows_the_outline_colours_when_there_are_rois():
    image = Image.new("RGB", (400, 300), (128, 128, 128))
    roi = RoiTrace(anchor=[1, 1], anchor_score=1.0, cells=[0, 0, 2, 2], box=[0, 0, 200, 150], confidence=0.5)
    with_rois = header_of(render_explanation(synthetic_trace((400, 300), (4, 4), (1, 1), rois=[roi]), image, []))
    assert all(has_colour(with_rois, colour) for colour in (CHOSEN_COLOUR, CHECKED_COLOUR, UNCHECKED_COLOUR))
    without = header_of(render_explanation(synthetic_trace((400, 300), (4, 4), (1, 1)), image, []))
    assert not has_colour(without, CHOSEN_COLOUR)


def test_a_long_answer_takes_at_most_max_text_lines_of_the_header():
    image = Image.new("RGB", (400, 300), (128, 128, 128))
    short = synthetic_trace((400, 300), (4, 4), (1, 1))
    long = synthetic_trace((400, 300), (4, 4), (1, 1))
    long.answer = " ".join(["word"] * 1024)  # a 1,024-token answer
    tops = [render_explanation(trace, image, []).panels[0].box[1] for trace in (short, long)]
    assert tops[1] - tops[0] == (MAX_TEXT_LINES - 1) * visualize._Style(PANEL_HEIGHT).line_height
    lines = visualize._wrap(long.answer, visualize._Style(PANEL_HEIGHT).font, 600, MAX_TEXT_LINES)
    shown = sum(line.count("word") for line in lines)
    assert len(lines) == MAX_TEXT_LINES and lines[-1].endswith(f"(+{4 * (1024 - shown)} characters, see the trace)")


@pytest.fixture
def font_chain(monkeypatch):
    """font_chain(*paths): the picture fonts are these files, then PIL's built-in font."""
    def use(*paths):
        monkeypatch.setattr(fonts, "DEFAULT_FONTS", ())
        monkeypatch.setenv(fonts.FONT_ENV, ":".join(str(path) for path in paths))
    return use


def test_text_no_font_can_draw_is_escaped_and_the_picture_says_why(font_chain):
    font_chain()
    typeface = fonts.Typeface(17)
    assert typeface.visible("red car") == "red car" and not typeface.escaped
    assert typeface.visible("\u5186 caf\xe9") == "\\u5186 caf\\xe9" and typeface.escaped  # PIL's font: ASCII only
    image = Image.new("RGB", (400, 300), (128, 128, 128))
    trace = synthetic_trace((400, 300), (4, 4), (1, 1))
    trace.question = "\u8d64\u3044\u5186\u306f\uff1f"
    style = visualize._Style(PANEL_HEIGHT)
    header = [line for line, _ in visualize._header_lines(trace, style, 2000)]
    assert header[0] == "Q: \\u8d64\\u3044\\u5186\\u306f\\uff1f"
    assert header[-1].startswith("\\u....: characters none of the fonts can draw; set FOCUS_EVAL_FONT")
    render_explanation(trace, image, [])


DEJAVU = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")  # shipped with matplotlib


def test_default_fonts_are_matplotlibs_dejavu_sans_then_system_cjk_fonts(monkeypatch):
    """The first font is the same file on every machine: Latin, Greek and Cyrillic text is drawn alike."""
    monkeypatch.delenv(fonts.FONT_ENV, raising=False)
    assert fonts.font_files() == [DEJAVU, *(path for path in fonts.SYSTEM_FONTS if Path(path).is_file())]
    typeface = fonts.Typeface(17)
    text = "\u043a\u0440\u0430\u0441\u043d\u044b\u0439 caf\xe9 \u03b1"  # Cyrillic, Latin-1, Greek
    assert typeface.visible(text) == text and not typeface.escaped
    assert {typeface._font(ch).path for ch in text if not ch.isspace()} == {DEJAVU}


def test_a_font_from_focus_eval_font_draws_non_latin_text_as_text(font_chain, tmp_path):
    font_chain(tmp_path / "missing.ttf", DEJAVU)
    with pytest.warns(UserWarning, match="cannot open font .*missing.ttf"):
        typeface = fonts.Typeface(23)
    text = "\u043a\u0440\u0430\u0441\u043d\u044b\u0439 caf\xe9 \u03b1"  # Cyrillic, Latin-1, Greek
    assert typeface.visible(text) == text and not typeface.escaped
    assert typeface.fonts[0].getname()[0] == "DejaVu Sans" and len(typeface.fonts) == 2
    dejavu = typeface
    font_chain()
    builtin = fonts.Typeface(23)
    drawn = []
    for face in (dejavu, builtin):
        canvas = Image.new("L", (200, 40), 0)
        face.draw(ImageDraw.Draw(canvas), (2, 2), "\u043a", fill=255)
        drawn.append(np.asarray(canvas))
    notdef = Image.new("L", (200, 40), 0)
    builtin.draw(ImageDraw.Draw(notdef), (2, 2), "\U0010ffff", fill=255)
    assert (drawn[1] == np.asarray(notdef)).all()  # the built-in font has no glyph: a box
    assert not (drawn[0] == np.asarray(notdef)).all() and drawn[0].any()  # DejaVu draws the letter
