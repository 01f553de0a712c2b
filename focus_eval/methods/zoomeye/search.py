"""ZoomEye's two searches over the image tree, against abstract confidence functions (so tests
can script them): the type-1 best-first search and the type-2 post-order selection.

Every confidence is one forward pass in the paper's count: c = 2 (softmax([l_Yes, l_No])_Yes - 0.5)
in [-1, 1]. Rules as the official code has them (om-ai-lab/ZoomEye 6762d79,
`zoom_eye_search_type1` / `zoom_eye_search_type2` in `ZoomEye/zoom_eye.py`,
`get_confidence_weight` in `ZoomEye/zoom_model.py`):

Type 1 (`Type1Search`), for one target:
- The queue starts with the root. Pop the first node; its answering confidence (1 pass) decides
  the stop: c_answer >= tau_up. The root's answering confidence is not computed when
  `skip_root` (official `force_no_root`: a local-view model with several targets); it then
  counts as -1 when candidates are collected.
- A stopping node becomes a candidate and ends the search, except with `visit_bottom`
  (official `force_visit_bottom`: several targets), where the search goes on until a node was
  popped that is a leaf or at depth D: it ends at a stopping node once the bottom was reached
  before it, or at a bottom node once some candidate exists.
- A node that does not stop, popped when the pop count has reached pop_limit (first
  pop_factor * D): tau_up is lowered by the first remaining decrement (the last one repeats),
  pop_limit grows by pop_increment, and every popped node whose answering confidence reaches the
  lowered tau_up is a candidate (kept: the one with the highest answering confidence, counting
  candidates from earlier stops). The search ends if there is a candidate, or if tau_up fell below
  tau_low.
- Unless it ended, a node that is neither a leaf nor at depth D has its children queued. Nodes
  queued without a priority then get one, in queue order (2 passes each, computed once):
  p = w c_exist + (1 - w) c_latent, w = b + (1 - b) d^2 / D^2 (the official arithmetic:
  (1 - b) / D^2 * d^2 + b). The queue is sorted by priority, highest first, ties in queue order
  (Python's stable sort, as the official `Q.sort(..., reverse=True)`). The root never gets a
  priority: it is popped before the first sort.
- The search also ends when the queue is empty. The answer node is the deepest candidate (ties:
  the earliest collected); none when there is no candidate.
All new nodes' priorities are computed by ONE call of `existence_latent`, so the caller can batch
them (same passes, fewer model calls); the official code computes them one by one in the same order.

Type 2 (`type2_search`): post-order over every node to depth `depth_limit`, one existence pass
each (one call of `existence`: nothing depends on another node's answer). A node is kept when its
existence confidence >= max(threshold, the best confidence among its searched descendants); the
best of a childless node's descendants is -1. Kept nodes are listed in post-order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from focus_eval.methods.zoomeye.tree import Node

# (existence, latent) confidences of each node, one call for all of them
ExistenceLatent = Callable[[Sequence[Node]], Sequence[tuple[float, float]]]
Answering = Callable[[Node], float]
Existence = Callable[[Sequence[Node]], Sequence[float]]

SKIPPED_ROOT_ANSWERING = -1.0  # official: the root's answering confidence before it is computed
NO_DESCENDANT = -1.0  # official: the best confidence below a node before any child is searched


def priority_weight(depth: int, max_depth: int, bias: float) -> float:
    """w = b + (1 - b) d^2 / D^2: the share of the existence confidence in a priority."""
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1 for a node below the root, got {max_depth}")
    return (1 - bias) / max_depth**2 * depth**2 + bias


@dataclass
class NodeScores:
    """What the search learned about one node."""

    existence: float | None = None
    latent: float | None = None
    priority: float | None = None
    answering: float | None = None  # None: never popped, or the skipped root


@dataclass
class Type1Search:
    """The best-first search of one type-1 target (module docstring). `run()` fills the attributes,
    which keep what was computed when a confidence call fails."""

    root: Node
    max_depth: int  # D = min(tree depth, cap)
    existence_latent: ExistenceLatent
    answering: Answering
    tau_up: float
    tau_low: float
    decrements: Sequence[float]
    pop_factor: int = 3
    pop_increment: int = 2
    bias: float = 0.6
    skip_root: bool = False
    visit_bottom: bool = False

    scores: dict[Node, NodeScores] = field(default_factory=dict, init=False)  # in the order nodes were scored
    popped: list[Node] = field(default_factory=list, init=False)
    candidates: list[Node] = field(default_factory=list, init=False)
    thresholds: list[float] = field(default_factory=list, init=False)  # tau_up after each lowering
    stop: str = field(default="", init=False)  # why the search ended

    def run(self) -> Node | None:
        if not self.decrements or any(d <= 0 for d in self.decrements):
            raise ValueError(f"decrements must be positive numbers, got {list(self.decrements)}")
        queue = [self.root]
        tau, decrements = self.tau_up, list(self.decrements)
        pop_limit = self.pop_factor * self.max_depth
        bottom_seen = False
        while queue:
            node = queue.pop(0)
            self.popped.append(node)
            if self._stops(node, tau):
                self.candidates.append(node)
                if not self.visit_bottom or bottom_seen:
                    self.stop = "answering confidence reached tau_up"
                    break
            elif len(self.popped) >= pop_limit:
                tau -= decrements[0]
                if len(decrements) > 1:
                    decrements.pop(0)
                pop_limit += self.pop_increment
                self.thresholds.append(tau)
                self._collect(tau)
                if self.candidates:
                    self.stop = f"a popped node reaches the lowered tau_up {tau:.4g}"
                    break
                if tau < self.tau_low:
                    self.stop = f"tau_up {tau:.4g} fell below tau_low"
                    break
            if node.is_leaf or node.depth == self.max_depth:
                bottom_seen = True
                if self.visit_bottom and self.candidates:
                    self.stop = "bottom reached with a candidate"
                    break
            else:
                queue.extend(node.children)
            self._prioritise([n for n in queue if n not in self.scores or self.scores[n].priority is None])
            queue.sort(key=lambda n: self.scores[n].priority, reverse=True)
        else:
            self.stop = "queue empty"
        return self.chosen

    @property
    def chosen(self) -> Node | None:
        """The deepest candidate; the earliest collected among equally deep ones."""
        return max(self.candidates, key=lambda n: n.depth, default=None)

    def _stops(self, node: Node, tau: float) -> bool:
        if self.skip_root and node.is_root:
            self._scores(node)
            return False
        confidence = float(self.answering(node))
        self._scores(node).answering = confidence
        return confidence >= tau

    def _collect(self, tau: float) -> None:
        for node in self.popped:
            if self._answering(node) >= tau and node not in self.candidates:
                self.candidates.append(node)
        if len(self.candidates) > 1:
            best = max(self.candidates, key=self._answering)  # the first of equal ones, as a stable sort
            self.candidates[:] = [best]

    def _answering(self, node: Node) -> float:
        answering = self.scores[node].answering
        return SKIPPED_ROOT_ANSWERING if answering is None else answering

    def _prioritise(self, nodes: list[Node]) -> None:
        if not nodes:
            return
        pairs = list(self.existence_latent(nodes))
        if len(pairs) != len(nodes):
            raise ValueError(f"existence_latent returned {len(pairs)} pairs for {len(nodes)} nodes")
        for node, (existence, latent) in zip(nodes, pairs):
            weight = priority_weight(node.depth, self.max_depth, self.bias)
            scores = self._scores(node)
            scores.existence, scores.latent = float(existence), float(latent)
            scores.priority = scores.existence * weight + scores.latent * (1 - weight)

    def _scores(self, node: Node) -> NodeScores:
        return self.scores.setdefault(node, NodeScores())


@dataclass
class Type2Result:
    visited: list[Node]  # post-order
    confidences: list[float]  # existence, aligned with visited
    kept: list[Node]  # post-order


def post_order(node: Node, depth_limit: int) -> list[Node]:
    """`node`'s subtree to depth `depth_limit`, children before their parent."""
    out = []
    if node.depth < depth_limit:
        for child in node.children:
            out.extend(post_order(child, depth_limit))
    out.append(node)
    return out


def type2_search(root: Node, depth_limit: int, threshold: float, existence: Existence) -> Type2Result:
    """The type-2 selection (module docstring)."""
    visited = post_order(root, depth_limit)
    confidences = [float(c) for c in existence(visited)]
    if len(confidences) != len(visited):
        raise ValueError(f"existence returned {len(confidences)} confidences for {len(visited)} nodes")
    by_node = dict(zip(visited, confidences))
    kept: list[Node] = []

    def best_below_or_self(node: Node) -> float:
        best = NO_DESCENDANT
        if node.depth < depth_limit:
            for child in node.children:
                best = max(best, best_below_or_self(child))
        if by_node[node] >= max(best, threshold):
            kept.append(node)
        return max(best, by_node[node])

    best_below_or_self(root)
    return Type2Result(visited=visited, confidences=confidences, kept=kept)
