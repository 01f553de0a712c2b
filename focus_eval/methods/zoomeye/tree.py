"""ZoomEye's image tree, pure geometry (no model): nodes, the split rule, depth caps, a node's view.

Boxes are (x0, y0, x1, y1) integer pixels of the original image, end-exclusive, as everywhere in
focus_eval; the official code (`ZoomEye/tree.py`, `get_patch` in `ZoomEye/zoom_model.py`,
om-ai-lab/ZoomEye 6762d79) keeps (x, y, w, h), which gives the same pixels.

- The root is the full image. A node has children while max(w, h) >= patch_size (official:
  `is_terminal`). The patch size is the vision encoder's input side: 336 for LLaVA-1.5 and 384
  for LLaVA-OneVision in the official code, which takes the image processor's crop size, and 448
  for Qwen2.5-VL, hard-coded there because Qwen2.5-VL has no fixed input size. Here it is the
  adapter's `base_resolution` unless `zoomeye_patch_size` is set (configs/qwen2_5_vl.yaml sets 448:
  our Qwen2.5-VL adapter's base_resolution is the largest square max_pixels keeps, 1260 px).
- split=4 (official): 2 x 2, or 1 column x 4 rows when h / w >= 2, or 4 columns x 1 row when
  h / w <= 0.5. split=2: the halves along the longer side (left/right when w >= h, so a square
  splits into left and right). The official code has no 2-way split; it is our reading of the
  FOCUS authors' "Depth-1 (2 crops)" rows of their Table 10. Either way a side split into n
  parts has parts of w // n pixels, the last part taking the remainder; children are listed row
  by row, left to right.
- Depth caps: the tree is built down to `max_depth` (the type-1 cap `zoomeye_depth`, 5 officially,
  or the type-2 depth `zoomeye_type2_depth`, 2), so `Tree.depth` = min(depth of the full tree, cap),
  the D of the priority weight. A node at depth D counts as a leaf for the search.
- The view of a node (`view_box`, official `get_patch`): the box grown about its centre
  (x0 + w // 2) to at least patch_size per side, times patch_scale (int() of the product), then
  placed at left = max(0, centre - width // 2) and cut at the image's right/bottom edge. So a
  view at the left or top border keeps its full size (it is moved inward), one at the right or
  bottom border is cut; this asymmetry is the official code's and kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[int, int, int, int]

SPLITS = (4, 2)
MIN_PATCH_SIZE = 4  # below this a split could give an empty child


@dataclass(eq=False)
class Node:
    box: Box
    path: tuple[int, ...] = ()  # child indices from the root: () is the root, (0, 3) the 4th child of the 1st
    children: list["Node"] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return len(self.path)

    @property
    def is_root(self) -> bool:
        return not self.path

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]


@dataclass
class Tree:
    root: Node
    depth: int  # deepest node built: min(depth of the full tree, the cap it was built to)
    image_size: tuple[int, int]
    patch_size: int

    def nodes(self) -> list[Node]:
        """Every node, parents before children (breadth-first)."""
        out, frontier = [], [self.root]
        while frontier:
            out.extend(frontier)
            frontier = [child for node in frontier for child in node.children]
        return out


def split_grid(width: int, height: int, split: int) -> tuple[int, int]:
    """(columns, rows) a width x height box is cut into (module docstring)."""
    if split == 4:
        ratio = height / width
        if ratio >= 2:
            return 1, 4
        if ratio <= 0.5:
            return 4, 1
        return 2, 2
    if split == 2:
        return (2, 1) if width >= height else (1, 2)
    raise ValueError(f"split must be one of {SPLITS}, got {split}")


def split_box(box: Box, split: int) -> list[Box]:
    """The children's boxes, row by row, left to right; the last column and row take the remainder."""
    x0, y0, x1, y1 = box
    columns, rows = split_grid(x1 - x0, y1 - y0, split)
    column_width, row_height = (x1 - x0) // columns, (y1 - y0) // rows
    xs = [x0 + i * column_width for i in range(columns)] + [x1]
    ys = [y0 + j * row_height for j in range(rows)] + [y1]
    return [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(rows) for i in range(columns)]


def build_tree(image_size: tuple[int, int], patch_size: int, split: int, max_depth: int) -> Tree:
    """The tree of a (width, height) image down to `max_depth` (module docstring)."""
    width, height = image_size
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if patch_size < MIN_PATCH_SIZE:
        raise ValueError(f"patch size must be >= {MIN_PATCH_SIZE}, got {patch_size}")
    if max_depth < 0:
        raise ValueError(f"max_depth must be >= 0, got {max_depth}")
    split_grid(1, 1, split)  # rejects an unknown split before anything is built
    root = Node((0, 0, width, height))
    deepest, frontier = 0, [root]
    while frontier:
        grown = []
        for node in frontier:
            if node.depth < max_depth and max(node.size) >= patch_size:
                node.children = [Node(box, node.path + (i,)) for i, box in enumerate(split_box(node.box, split))]
                grown.extend(node.children)
        if grown:
            deepest = grown[0].depth
        frontier = grown
    return Tree(root=root, depth=deepest, image_size=(width, height), patch_size=patch_size)


def view_box(box: Box, image_size: tuple[int, int], patch_size: int, patch_scale: float = 1.0) -> Box:
    """What the model is shown for a node: `box` grown to at least patch_size per side about its
    centre, times patch_scale, then placed inside the image (module docstring)."""
    x0, y0, x1, y1 = box
    width, height = image_size
    left, right = _grown_span(x0, x1 - x0, width, patch_size, patch_scale)
    top, bottom = _grown_span(y0, y1 - y0, height, patch_size, patch_scale)
    return left, top, right, bottom


def _grown_span(start: int, length: int, limit: int, patch_size: int, patch_scale: float) -> tuple[int, int]:
    centre = start + length // 2
    grown = int(max(length, patch_size) * patch_scale)
    low = max(0, centre - grown // 2)
    return low, min(low + grown, limit)
