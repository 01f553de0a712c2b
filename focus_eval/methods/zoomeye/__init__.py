"""ZoomEye (Shen et al., EMNLP 2025, arXiv 2411.16044), the tree-search baseline, as its official
code runs it (om-ai-lab/ZoomEye 6762d79, `get_zoom_eye_response` in `ZoomEye/zoom_eye.py`;
reimplemented from the facts in ../shared/reference/baselines.md, no code copied).

Modules: `tree` (geometry), `search` (the type-1 and type-2 searches over abstract confidences),
`views` (the pixels of a node's view and of the final input), `prompts` (every prompt string).

One question (`search`):
1. Targets: ours (`methods.base.extract_targets`, the same targets FOCUS gets), so that a
   comparison with FOCUS is about the search. A target "all X" is type 2 (asked in the singular,
   `targets.singular_target`, where the official code drops a final "s").
2. Global-local model (adapter.multi_image) with several targets: the root's answering
   confidence for every type-1 target, asking "What is the appearance of the {target}?" about the
   global view alone (one batched call). If any reaches tau_up, there is no search: the full image
   answers (official `filter_visual_cues`).
3. One search per target in a fresh tree (`search.Type1Search` / `search.type2_search`). The
   answering question is the question itself for a single type-1 target, else
   "What is the appearance of the {target}?". With several targets every type-1 search must pop a
   bottom node before it may stop (`visit_bottom`), and a local-view model never asks the root
   (`skip_root`). Type 1 keeps its answer node (if any), type 2 every kept node.
4. The final input from the kept nodes (`views.final_input`).

Confidences go through `adapter.yes_no_logits`, batched where the algorithm allows: the
existence and latent prompts of all newly queued nodes in one call (8 prompts for a 4-way
expansion), all type-2 nodes in one call, the root checks in one; at most zoomeye_batch_size
prompts per call, single-image and two-image prompts in separate calls. Passes are counted per
prompt (the same as the official one-by-one calls), all in the "search" stage; the answer stage
is the shared one (focus_eval.pipeline), which shows the final input with its texts.

Choices where the official code does not carry over (each documented where it is made):
- the patch size of Qwen2.5-VL (`zoomeye_patch_size`, config.py and tree.py);
- the pixels of the views: padding colour, frame clipping, OneVision's encoding of two images
  (views.py); zoom views are encoded like the final input (`final_images_alone`, on by default:
  every image through anyres on OneVision, as the official zoomed view; its global view then gets
  one anyres tile besides its base view, where the official code keeps the base view only);
- the adapters' own image options stay in force: OneVision's anyres uses the checkpoint's
  pinpoints (the official code drops those of more than 12 tiles), Qwen2.5-VL its max_pixels
  (default 1605632; the official code raises it to 12845056; `--model_args max_pixels=...`);
- the local-view canvas for two far-apart regions is `compose.paste_on_canvas` (views.py);
- the trace keeps every scored node as an ROI: `box` the view, `confidence` the answering
  confidence of a popped node (type 2: the existence confidence); recall skips the root.
- Not done: the official code draws the frame in blue when the question mentions a "red
  rectangle" (HRBench); ours is always red, as FOCUS's outlines (NOTES).
"""

from __future__ import annotations

from typing import Sequence

from focus_eval.compose import FinalInput
from focus_eval.methods.base import SearchQuestion, extract_targets
from focus_eval.methods.focus.ranking import existence_confidence
from focus_eval.methods.zoomeye.prompts import DECOMPOSED_QUESTION, confidence_prompt
from focus_eval.methods.zoomeye.search import Type1Search, Type2Result, type2_search
from focus_eval.methods.zoomeye.tree import MIN_PATCH_SIZE, Node, Tree, build_tree
from focus_eval.methods.zoomeye.views import NodeView, ViewSettings, final_input, global_view, node_view, shown_box
from focus_eval.targets import Target, singular_target
from focus_eval.trace import RoiTrace, TargetTrace

__all__ = ["search"]


def search(asked: SearchQuestion) -> FinalInput:
    targets = extract_targets(asked).targets
    cfg, image = asked.config, asked.image
    settings = view_settings(asked)
    scorer = _Scorer(asked)
    traces = [TargetTrace(name=t.name, all_instances=t.all_instances) for t in targets]
    asked.trace.targets.extend(traces)
    chosen: list[Node] = []
    with asked.meter.stage("search"):
        if settings.multi_image and len(targets) > 1 and _root_answers(asked, scorer, settings, targets, traces):
            targets = ()
        single = len(targets) == 1 and not targets[0].all_instances
        for target, trace in zip(targets, traces):
            if target.all_instances:
                chosen.extend(_type2(asked, scorer, settings, target, trace))
                continue
            question = asked.question if single else DECOMPOSED_QUESTION.format(target=target.name)
            node = _type1(asked, scorer, settings, target, question, trace, several=not single)
            chosen.extend([node] if node is not None else [])
    with asked.meter.stage("answer"):
        return final_input(image, chosen, settings, cfg.canvas_size)


def view_settings(asked: SearchQuestion) -> ViewSettings:
    cfg, adapter = asked.config, asked.adapter
    patch_size = cfg.zoomeye_patch_size or adapter.base_resolution
    if patch_size < MIN_PATCH_SIZE:
        raise ValueError(f"ZoomEye's patch size must be >= {MIN_PATCH_SIZE} px, got {patch_size} "
                         f"(set zoomeye_patch_size)")
    return ViewSettings(multi_image=adapter.multi_image, patch_size=patch_size,
                        patch_scale=cfg.zoomeye_patch_scale, global_view=cfg.zoomeye_global_view)


class _Scorer:
    """Yes/no confidences of (view, prompt) pairs, one pass per pair, booked in the running stage
    ("search", which `search` opens around all of it, view building included)."""

    def __init__(self, asked: SearchQuestion):
        self.asked = asked

    def __call__(self, requests: Sequence[tuple[NodeView, str]]) -> list[float]:
        asked, cfg = self.asked, self.asked.config
        confidences: list[float] = [0.0] * len(requests)
        by_form: dict[bool, list[int]] = {}  # two-image prompt? -> request indices, in request order
        for index, (view, _) in enumerate(requests):
            by_form.setdefault(view.texts is not None, []).append(index)
        for zoom, indices in by_form.items():
            for start in range(0, len(indices), cfg.zoomeye_batch_size):
                chunk = indices[start:start + cfg.zoomeye_batch_size]
                views = [requests[i][0] for i in chunk]
                prompts = [requests[i][1] for i in chunk]
                if zoom:
                    result = asked.adapter.yes_no_logits([list(v.images) for v in views], prompts,
                                                         image_texts=[list(v.texts) for v in views],
                                                         each_image_alone=cfg.final_images_alone)
                else:
                    result = asked.adapter.yes_no_logits([v.images[0] for v in views], prompts)
                asked.meter.add(result.cost)
                for i, value in zip(chunk, existence_confidence(result.logits).tolist()):
                    confidences[i] = float(value)
        return confidences


def _root_answers(asked: SearchQuestion, scorer: _Scorer, settings: ViewSettings, targets: Sequence[Target],
                  traces: Sequence[TargetTrace]) -> bool:
    """Step 2 of the module docstring: True when the full image answers without a search."""
    cfg, image = asked.config, asked.image
    view = NodeView("global", (global_view(image, settings.patch_size, settings.global_view),),
                    (0, 0, image.width, image.height))
    asked_about = [(i, DECOMPOSED_QUESTION.format(target=t.name)) for i, t in enumerate(targets) if not t.all_instances]
    if not asked_about:
        return False
    values = scorer([(view, confidence_prompt("answering", "global", q, cfg.existence_prompt)) for _, q in asked_about])
    for (index, question), value in zip(asked_about, values):
        traces[index].answering_question = question
        traces[index].root_answering = value
    sure = [targets[i].name for (i, _), value in zip(asked_about, values) if value >= cfg.zoomeye_tau_up]
    if sure:
        asked.trace.notes.append(f"no search: the full image answers (root answering confidence >= tau_up "
                                 f"{cfg.zoomeye_tau_up} for {', '.join(sure)})")
    return bool(sure)


def _type1(asked: SearchQuestion, scorer: _Scorer, settings: ViewSettings, target: Target, question: str,
           trace: TargetTrace, several: bool) -> Node | None:
    cfg, image = asked.config, asked.image
    tree = build_tree(image.size, settings.patch_size, cfg.zoomeye_split, cfg.zoomeye_depth)

    def existence_latent(nodes: Sequence[Node]) -> list[tuple[float, float]]:
        views = [node_view(image, node, settings) for node in nodes]
        values = scorer([(view, confidence_prompt(kind, view.kind, target.name, cfg.existence_prompt))
                         for view in views for kind in ("existence", "latent")])
        return list(zip(values[0::2], values[1::2]))

    def answering(node: Node) -> float:
        view = node_view(image, node, settings)
        return scorer([(view, confidence_prompt("answering", view.kind, question, cfg.existence_prompt))])[0]

    tree_search = Type1Search(tree.root, tree.depth, existence_latent, answering, tau_up=cfg.zoomeye_tau_up,
                              tau_low=cfg.zoomeye_tau_low, decrements=cfg.zoomeye_decrements,
                              pop_factor=cfg.zoomeye_pop_factor, pop_increment=cfg.zoomeye_pop_increment,
                              bias=cfg.zoomeye_bias, skip_root=several and not settings.multi_image,
                              visit_bottom=several)
    node_kind = "zoom" if settings.multi_image else "local"  # how every node but the root is asked
    trace.existence_prompt = confidence_prompt("existence", node_kind, target.name, cfg.existence_prompt)
    trace.answering_question = question
    trace.search_depth = tree.depth
    try:
        tree_search.run()
    finally:
        index = {node: i for i, node in enumerate(tree_search.scores)}  # rois in the order nodes were scored
        trace.rois = [_roi(node, tree, settings, scores.answering, scores.existence, scores.latent, scores.priority)
                      for node, scores in tree_search.scores.items()]
        trace.order = [index[node] for node in tree_search.popped]
        trace.thresholds = list(tree_search.thresholds)
        if tree_search.stop:
            trace.notes.append(f"search ended after {len(tree_search.popped)} pops: {tree_search.stop}")
    chosen = tree_search.chosen
    trace.chosen = [index[chosen]] if chosen is not None else []
    if chosen is None:
        trace.notes.append("no node reached the answering threshold: this target adds no region")
    return chosen


def _type2(asked: SearchQuestion, scorer: _Scorer, settings: ViewSettings, target: Target,
           trace: TargetTrace) -> list[Node]:
    cfg, image = asked.config, asked.image
    phrase = singular_target(target.name)
    tree = build_tree(image.size, settings.patch_size, cfg.zoomeye_split, cfg.zoomeye_type2_depth)

    def existence(nodes: Sequence[Node]) -> list[float]:
        views = [node_view(image, node, settings) for node in nodes]
        return scorer([(view, confidence_prompt("existence", view.kind, phrase, cfg.existence_prompt))
                       for view in views])

    node_kind = "zoom" if settings.multi_image else "local"
    trace.existence_prompt = confidence_prompt("existence", node_kind, phrase, cfg.existence_prompt)
    trace.search_depth = tree.depth
    result: Type2Result = type2_search(tree.root, cfg.zoomeye_type2_depth, cfg.zoomeye_type2_threshold, existence)
    trace.rois = [_roi(node, tree, settings, value, value) for node, value in zip(result.visited, result.confidences)]
    trace.order = list(range(len(result.visited)))
    trace.chosen = [result.visited.index(node) for node in result.kept]
    if not result.kept:
        trace.notes.append(f"no node reached zoomeye_type2_threshold={cfg.zoomeye_type2_threshold}")
    return result.kept


def _roi(node: Node, tree: Tree, settings: ViewSettings, confidence: float | None, existence: float | None,
         latent: float | None = None, priority: float | None = None) -> RoiTrace:
    return RoiTrace(box=list(shown_box(node, tree.image_size, settings)), confidence=confidence, depth=node.depth,
                    node_box=list(node.box), existence=existence, latent=latent, priority=priority)
