import math

import numpy as np
import pytest
from PIL import Image

from focus_eval.compose import (
    FinalInput,
    clip_box,
    compose_final_input,
    crop,
    max_center_distance,
    merge_overlapping,
    outline_boxes,
    paste_on_canvas,
    union_box,
)

GRAY = (128, 128, 128)
RED, GREEN, BLUE, YELLOW, CYAN = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)


def scene(size=(1000, 800), squares=()):
    """A gray image with coloured squares: squares = [(box, colour), ...]."""
    image = Image.new("RGB", size, GRAY)
    for box, colour in squares:
        image.paste(colour, box)
    return image


def close(actual, expected, tolerance=2):
    return all(abs(a - b) <= tolerance for a, b in zip(actual, expected))


def colour_bbox(image, colour, tolerance=30):
    """Bounding box (x0, y0, x1, y1) of the pixels near `colour`, or None."""
    pixels = np.asarray(image).astype(int)
    mask = (np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance)
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ---- box helpers ---------------------------------------------------------------------------

def test_crop_is_end_exclusive_and_clipped_at_the_border():
    image = scene(squares=[((0, 0, 10, 10), RED)])
    assert crop(image, (0, 0, 10, 10)).size == (10, 10)
    assert colour_bbox(crop(image, (0, 0, 10, 10)), RED) == (0, 0, 10, 10)
    assert crop(image, (-20, -5, 10, 10)).size == (10, 10)
    assert crop(image, (990, 790, 1200, 900)).size == (10, 10)


def test_one_pixel_box():
    image = scene(squares=[((5, 7, 6, 8), RED)])
    one = crop(image, (5, 7, 6, 8))
    assert one.size == (1, 1) and one.getpixel((0, 0)) == RED


def test_invalid_boxes():
    with pytest.raises(ValueError, match="empty box"):
        clip_box((5, 5, 5, 9), (10, 10))
    with pytest.raises(ValueError, match="outside"):
        clip_box((20, 20, 30, 30), (10, 10))
    with pytest.raises(ValueError, match=r"\(x0, y0, x1, y1\)"):
        clip_box((1, 2, 3), (10, 10))
    with pytest.raises(ValueError, match="no boxes"):
        union_box([])


def test_union_and_center_distance():
    assert union_box([(10, 20, 30, 40), (5, 30, 15, 50)]) == (5, 20, 30, 50)
    assert max_center_distance([(0, 0, 2, 2)]) == 0.0
    assert max_center_distance([]) == 0.0
    # centres (1, 1), (4, 5), (1, 9): the farthest pair is 8 apart
    assert max_center_distance([(0, 0, 2, 2), (3, 4, 5, 6), (0, 8, 2, 10)]) == pytest.approx(8.0)


def test_merge_overlapping_chain_collapses_to_one():
    # a overlaps b, b overlaps c, a and c do not: one box covering all three
    chain = [(0, 0, 10, 10), (8, 0, 20, 10), (18, 0, 30, 10)]
    assert merge_overlapping(chain) == [(0, 0, 30, 10)]


def test_merge_overlapping_repeats_after_a_merge_creates_overlap():
    # a and b merge into (0, 0, 20, 20), which then overlaps c although neither a nor b does
    boxes = [(0, 0, 10, 20), (5, 0, 20, 5), (15, 15, 25, 25)]
    assert not any(_overlaps(boxes[i], boxes[2]) for i in (0, 1))
    assert merge_overlapping(boxes) == [(0, 0, 25, 25)]
    assert merge_overlapping([(0, 0, 10, 10), (5, 5, 15, 15), (14, 0, 30, 6)]) == [(0, 0, 30, 15)]


def _overlaps(a, b):
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_merge_overlapping_keeps_touching_and_disjoint_boxes_in_input_order():
    boxes = [(50, 50, 60, 60), (0, 0, 10, 10), (10, 0, 20, 10)]  # the last two only touch
    assert merge_overlapping(boxes) == boxes
    merged = merge_overlapping([(50, 50, 60, 60), (0, 0, 10, 10), (55, 55, 70, 70), (5, 5, 8, 8)])
    assert merged == [(50, 50, 70, 70), (0, 0, 10, 10)]
    assert merge_overlapping([]) == []


def test_merge_overlapping_result_is_disjoint():
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 90, size=(40, 2))
    sizes = rng.integers(1, 15, size=(40, 2))
    boxes = [(int(x), int(y), int(x + w), int(y + h)) for (x, y), (w, h) in zip(corners, sizes)]
    merged = merge_overlapping(boxes)
    assert all(not _overlaps(a, b) for i, a in enumerate(merged) for b in merged[i + 1:])
    for box in boxes:  # every input lies inside one merged box
        assert any(m[0] <= box[0] and m[1] <= box[1] and box[2] <= m[2] and box[3] <= m[3] for m in merged)
    assert merge_overlapping(boxes) == merged


# ---- outlines ------------------------------------------------------------------------------

def test_outline_draws_inside_the_box_only():
    image = scene(size=(100, 80))
    out = outline_boxes(image, [(20, 10, 50, 40)], color=RED, width=3)
    assert image.getpixel((20, 10)) == GRAY  # the input is not modified
    pixels = np.asarray(out)
    red = np.all(pixels == RED, axis=-1)
    expected = np.zeros((80, 100), dtype=bool)
    expected[10:40, 20:50] = True
    expected[13:37, 23:47] = False
    assert np.array_equal(red, expected)


def test_outline_at_the_border_and_default_width_scales():
    image = scene(size=(3840, 2160))
    out = outline_boxes(image, [(3000, 1500, 5000, 3000)])
    width = math.ceil(3840 / 192)
    assert width == 20
    assert out.getpixel((3839, 2159)) == RED  # clipped box: its border is the image edge
    assert out.getpixel((3839 - width + 1, 1800)) == RED
    assert out.getpixel((3839 - width, 1800)) == GRAY
    assert out.getpixel((3000, 2160 - width)) == RED and out.getpixel((3000, 2160 - width - 1)) == RED
    assert out.getpixel((3000 + width, 2160 - width - 1)) == GRAY
    assert outline_boxes(scene(size=(100, 100)), [(0, 0, 50, 50)]).getpixel((1, 25)) == RED  # at least 2 px


def test_outline_of_boxes_smaller_than_the_line_stays_inside():
    out = outline_boxes(scene(size=(10, 10)), [(4, 4, 5, 5)], color=BLUE, width=2)
    blue = np.all(np.asarray(out) == BLUE, axis=-1)
    assert blue[4, 4] and blue.sum() == 1
    out = outline_boxes(scene(size=(20, 20)), [(5, 5, 8, 9)], color=BLUE, width=6)
    blue = np.all(np.asarray(out) == BLUE, axis=-1)
    assert blue[5:9, 5:8].all() and blue.sum() == 12


# ---- canvas --------------------------------------------------------------------------------

def test_canvas_two_boxes_side_by_side_with_vertical_offset():
    # red square high on the right, blue square low on the left
    image = scene(size=(2000, 1000), squares=[((1500, 100, 1600, 200), RED), ((200, 700, 300, 800), BLUE)])
    canvas = paste_on_canvas(image, [(1500, 100, 1600, 200), (200, 700, 300, 800)], 672)
    assert canvas.size == (672, 672)
    blue, red = colour_bbox(canvas, BLUE), colour_bbox(canvas, RED)
    # cols = 2, rows = 1, tile = 336: left/right order of the image kept
    assert blue[0] <= 2 and abs(blue[2] - 336) <= 2
    assert abs(red[0] - 336) <= 2 and red[2] >= 670
    # free height 336; offsets 336 * 150/1000 = 50 and 336 * 750/1000 = 252
    assert abs(red[1] - 50) <= 2 and abs(blue[1] - 252) <= 2
    assert red[1] < blue[1]
    mean = tuple(round(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0))
    assert close(canvas.getpixel((10, 5)), mean)  # background: the image's mean colour


def test_canvas_same_height_boxes_have_equal_offsets():
    image = scene(size=(1000, 1000), squares=[((100, 450, 200, 550), RED), ((700, 450, 800, 550), GREEN)])
    canvas = paste_on_canvas(image, [(700, 450, 800, 550), (100, 450, 200, 550)], 672)
    red, green = colour_bbox(canvas, RED), colour_bbox(canvas, GREEN)
    assert red[1] == green[1] and red[0] < green[0]


def test_canvas_grid_places_colours_in_the_right_tiles():
    # five squares: cols = 3, rows = 2, tile = 224; rows by centre y, left to right by x
    squares = [((800, 50, 900, 150), RED), ((100, 80, 200, 180), GREEN), ((450, 60, 550, 160), BLUE),
               ((600, 700, 700, 800), YELLOW), ((50, 650, 150, 750), CYAN)]
    image = scene(size=(1000, 1000), squares=squares)
    canvas = paste_on_canvas(image, [box for box, _ in reversed(squares)], 672)
    tile, free = 224, 672 - 2 * 224
    first_row = [GREEN, BLUE, RED]
    for col, colour in enumerate(first_row):
        found = colour_bbox(canvas, colour)
        assert abs(found[0] - col * tile) <= 2 and abs(found[2] - (col + 1) * tile) <= 2, colour
        assert found[1] < tile + free and found[3] <= 2 * tile
    # second row: two tiles centred, cyan (left) then yellow
    cyan, yellow = colour_bbox(canvas, CYAN), colour_bbox(canvas, YELLOW)
    row_left = (672 - 2 * tile) // 2
    assert abs(cyan[0] - row_left) <= 2 and abs(yellow[0] - (row_left + tile)) <= 2
    assert cyan[1] >= tile and yellow[1] >= tile
    assert abs(cyan[1] - (tile + round(free * 700 / 1000))) <= 2
    assert abs(yellow[1] - (tile + round(free * 750 / 1000))) <= 2


def test_canvas_keeps_aspect_ratio_and_upscales_a_one_pixel_box():
    image = scene(size=(500, 500), squares=[((10, 10, 110, 60), RED), ((300, 400, 301, 401), BLUE)])
    canvas = paste_on_canvas(image, [(10, 10, 110, 60)], 300)
    red = colour_bbox(canvas, RED)
    assert (red[2] - red[0], red[3] - red[1]) == (300, 150)
    assert red[1] == 75  # centred vertically, no free height with one tile
    dot = paste_on_canvas(image, [(300, 400, 301, 401)], 64)
    assert colour_bbox(dot, BLUE) == (0, 0, 64, 64)


def test_canvas_box_at_the_border_is_clipped():
    image = scene(size=(400, 300), squares=[((350, 250, 400, 300), RED)])
    canvas = paste_on_canvas(image, [(350, 250, 450, 350)], 100)
    assert colour_bbox(canvas, RED) == (0, 0, 100, 100)


# ---- compose_final_input -------------------------------------------------------------------

def compose(image, chosen, question_type=1, multi_image=False, t_obj_dist=1200.0, canvas_size=672):
    return compose_final_input(image, chosen, question_type=question_type, multi_image=multi_image,
                               t_obj_dist=t_obj_dist, canvas_size=canvas_size)


def test_nothing_chosen_gives_the_full_image():
    image = scene()
    for chosen in ([], [[]], [[], []]):
        for multi in (False, True):
            result = compose(image, chosen, multi_image=multi)
            assert isinstance(result, FinalInput)
            assert result.layout == "full" and result.images == [image] and result.boxes == [(0, 0, 1000, 800)]


def test_single_target_single_box_is_a_crop():
    image = scene(squares=[((100, 100, 150, 150), RED)])
    result = compose(image, [[(100, 100, 150, 150)], []])
    assert result.layout == "crop" and result.boxes == [(100, 100, 150, 150)]
    assert result.images[0].size == (50, 50) and result.images[0].getpixel((25, 25)) == RED


def test_union_versus_canvas_at_the_threshold():
    image = scene(size=(3000, 1000))
    a, b = (0, 0, 100, 100), (1000, 0, 1100, 100)  # centres exactly 1000 apart
    at = compose(image, [[a], [b]], t_obj_dist=1000.0)
    assert at.layout == "union" and at.boxes == [(0, 0, 1100, 100)] and at.images[0].size == (1100, 100)
    above = compose(image, [[a], [b]], t_obj_dist=999.9)
    assert above.layout == "canvas" and above.boxes == [a, b] and above.images[0].size == (672, 672)


def test_type1_far_apart_targets_keep_their_content_on_the_canvas():
    image = scene(size=(4000, 3000), squares=[((3500, 2500, 3600, 2600), RED), ((100, 100, 200, 200), GREEN)])
    result = compose(image, [[(3500, 2500, 3600, 2600)], [(100, 100, 200, 200)]])
    assert result.layout == "canvas"
    canvas = result.images[0]
    green, red = colour_bbox(canvas, GREEN), colour_bbox(canvas, RED)
    assert green[2] <= 338 and red[0] >= 334 and green[1] < red[1]


def test_type2_merges_overlaps_and_uses_the_canvas():
    image = scene(size=(1000, 1000))
    chosen = [[(100, 100, 200, 200), (150, 150, 250, 250), (700, 700, 800, 800)]]
    result = compose(image, chosen, question_type=2)
    assert result.layout == "canvas"
    assert result.boxes == [(100, 100, 250, 250), (700, 700, 800, 800)]
    single = compose(image, [[(100, 100, 200, 200)]], question_type=2, canvas_size=336)
    assert single.layout == "canvas" and single.images[0].size == (336, 336)


def test_multi_image_global_view_plus_one_crop_per_target():
    image = scene(size=(1920, 1080), squares=[((100, 100, 200, 200), RED), ((1500, 800, 1600, 900), BLUE)])
    result = compose(image, [[(100, 100, 200, 200)], [(1500, 800, 1600, 900)]], multi_image=True)
    assert result.layout == "global+crops"
    assert result.boxes == [(0, 0, 1920, 1080), (100, 100, 200, 200), (1500, 800, 1600, 900)]
    global_view, first, second = result.images
    assert global_view.size == (1920, 1080)
    assert global_view.getpixel((100, 150)) == RED and global_view.getpixel((150, 150)) == RED  # outline, square
    assert global_view.getpixel((1500, 850)) == (255, 0, 0) and global_view.getpixel((1550, 850)) == BLUE
    assert image.getpixel((1500, 850)) == BLUE  # the caller's image is untouched
    assert first.size == (100, 100) and first.getpixel((50, 50)) == RED
    assert second.getpixel((50, 50)) == BLUE


def test_multi_image_type2_one_crop_per_merged_box_and_no_duplicates():
    image = scene(size=(1000, 1000))
    chosen = [[(0, 0, 100, 100), (50, 50, 150, 150), (600, 600, 700, 700)], [(600, 600, 700, 700)]]
    result = compose(image, chosen, question_type=2, multi_image=True)
    assert result.boxes == [(0, 0, 1000, 1000), (0, 0, 150, 150), (600, 600, 700, 700)]
    assert len(result.images) == 3 and result.images[1].size == (150, 150)
    assert result.texts[2] == "Image 3 is an enlarged view of the region with target 1 and target 2."


def test_multi_image_texts_say_what_each_image_shows():
    # A.5 / ZoomEye: the global view with outlines, then one enlarged crop per target, each introduced
    image = scene(size=(1920, 1080))
    chosen = [[(100, 100, 200, 200)], [], [(1500, 800, 1600, 900), (1700, 100, 1800, 200)]]
    result = compose_final_input(image, chosen, question_type=2, multi_image=True, t_obj_dist=1200.0,
                                 canvas_size=672, names=["the red car", "the bus", "boats"])
    assert result.texts == [
        "Image 1 is the full image; red outlines mark the regions shown enlarged in the next images.",
        "Image 2 is an enlarged view of the region with the red car.",
        "Image 3 is an enlarged view of the region with boats.",
        "Image 4 is an enlarged view of the region with boats.",
    ]
    assert len(result.texts) == len(result.images)
    one = compose_final_input(image, [[(100, 100, 200, 200)]], question_type=1, multi_image=True,
                              t_obj_dist=1200.0, canvas_size=672, names=["the red car"])
    assert one.texts[0] == "Image 1 is the full image; red outlines mark the region shown enlarged in the next image."
    # single-image layouts have no texts
    assert compose(image, [[(100, 100, 200, 200)]]).texts == [] and compose(image, []).texts == []
    with pytest.raises(ValueError, match="2 names for 1 targets"):
        compose_final_input(image, [[(0, 0, 5, 5)]], question_type=1, multi_image=True, t_obj_dist=1.0,
                            canvas_size=672, names=["a", "b"])


def test_boxes_at_the_border_are_clipped_before_composing():
    image = scene(size=(500, 400))
    result = compose(image, [[(450, 350, 600, 500)]])
    assert result.boxes == [(450, 350, 500, 400)] and result.images[0].size == (50, 50)


def test_bad_question_type():
    with pytest.raises(ValueError, match="question_type"):
        compose(scene(), [[(0, 0, 5, 5)]], question_type=3)


def test_compose_is_deterministic():
    image = scene(size=(3000, 2000), squares=[((10, 10, 60, 60), RED)])
    chosen = [[(10, 10, 60, 60), (2900, 1900, 3000, 2000), (40, 40, 90, 90)]]
    first = compose(image, chosen, question_type=2)
    second = compose(image, chosen, question_type=2)
    assert first.boxes == second.boxes
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(second.images[0]))
