"""The paper's names of method settings, to and from our options.

A setting names the search, then "; <what differs>" for each change the paper's tables name:
- FOCUS: "Steps-N (overrun)" or "Steps-N (no overrun)" (n_steps and the overrun mode of C.1),
  then Table 3's changes: "random relevance map" (relevance=random), "K-K w/o RoPE"
  (relevance=kk), "no proposal ranking" (ranking=false), "layers A-B" (a layer range other than
  the family's Table 7 one; 0-based, end-exclusive as in focus_eval/config.py).
- ZoomEye: "Depth-D (S crops)" (zoomeye_depth, zoomeye_split: Table 10's depths 1, 2, 5 and its
  4 or 2 sub-regions per node).
- ViCrop: its map and variant as Table 10 names them, "rel-att" or "grad-att" (vicrop_map),
  "-high" with the tiled variant (vicrop_high).
- vanilla: "".
Other options that differ between runs (k, zoomeye_bias, vicrop_layer, ...) are not part of
the name; `focus-eval compare` lists them separately.

The answer scheme is named only where it is not the method's own (`own_scheme`): C.5 says
ZoomEye (and SEAL) answer V*Bench by logits matching and every other benchmark by open-ended
generation, and the paper's tables label their numbers that way: Table 10's ZoomEye rows on
V*Bench are logits matching with no label, Table 15 names "open-ended generation" for ZoomEye
and "logits matching" for FOCUS and vanilla, whose own scheme is generation. So "; logits
matching" (task vstar_logits, answer_scheme=logits) or "; open-ended generation"
(answer_scheme=generate) follows the search's name when the scheme is not the method's own.
Tables 13 and 15 also print "Depth-5 (4 crops); logits matching", the same configuration as
Table 10's "Depth-5 (4 crops)" on V*Bench (77.49 vs 77.48): `setting_options` reads it, and a
run of it is named, and matched, as Table 10's.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

RELEVANCE = {"random": "random relevance map", "kk": "K-K w/o RoPE"}
NO_RANKING = "no proposal ranking"
LOGITS = "logits matching"
GENERATION = "open-ended generation"
SCHEME_LABELS = {"logits": LOGITS, "generate": GENERATION}  # FocusConfig.answer_scheme -> its label in a setting
SCHEMES = {label: scheme for scheme, label in SCHEME_LABELS.items()}
_STEPS = re.compile(r"Steps-(\d+) \((overrun|no overrun)\)")
_LAYERS = re.compile(r"layers (\d+)-(\d+)")
_DEPTH = re.compile(r"Depth-(\d+) \(([24]) crops\)")
_VICROP = re.compile(r"(rel|grad)-att(-high)?")


def own_scheme(method: str, benchmark: str | None) -> str:
    """The answer scheme (FocusConfig.answer_scheme) of a method's published numbers when its
    setting names none: logits matching for ZoomEye and SEAL on V*Bench (C.5), generation
    everywhere else."""
    return "logits" if method in ("zoomeye", "seal") and benchmark == "vstar" else "generate"


def setting_name(config: Mapping[str, Any], table7: Mapping[str, Any]) -> str:
    """The setting of a resolved FocusConfig (as a dict); `table7` is the family's default
    configuration for the same benchmark (to tell a changed layer range)."""
    method = config["method"]
    parts = []
    if method == "focus":
        parts.append(f"Steps-{config['n_steps']} ({'overrun' if config['overrun'] else 'no overrun'})")
        if config["relevance"] in RELEVANCE:
            parts.append(RELEVANCE[config["relevance"]])
        if not config["ranking"]:
            parts.append(NO_RANKING)
        layers = (config["layer_start"], config["layer_end"])
        if layers != (table7["layer_start"], table7["layer_end"]):
            parts.append(f"layers {layers[0]}-{layers[1]}")
    elif method == "zoomeye":
        parts.append(f"Depth-{config['zoomeye_depth']} ({config['zoomeye_split']} crops)")
    elif method == "vicrop":
        parts.append(config["vicrop_map"].replace("_", "-") + ("-high" if config["vicrop_high"] else ""))
    if config["answer_scheme"] != own_scheme(method, config["dataset"]):
        parts.append(SCHEME_LABELS[config["answer_scheme"]])
    return "; ".join(parts)


def setting_options(method: str, setting: str, benchmark: str) -> tuple[dict[str, str], bool] | None:
    """Model arguments and whether the setting answers by logits matching on `benchmark`, for
    a setting of method focus, vanilla, zoomeye or vicrop; None when our options cannot express
    it. A setting the paper does not state ("", Tables 2 and 5) gets the defaults: FOCUS
    n_steps=8 with overrun, ZoomEye its official Depth-5 (4 crops)."""
    parts = [part for part in setting.split("; ") if part]
    schemes = [SCHEMES[part] for part in parts if part in SCHEMES]
    parts = [part for part in parts if part not in SCHEMES]
    logits = (schemes or [own_scheme(method, benchmark)])[-1] == "logits"
    if method == "vanilla":
        return ({"method": "vanilla"}, logits) if not parts else None
    if method == "zoomeye":
        depth = _DEPTH.fullmatch(parts[0]) if len(parts) == 1 else None
        if parts and depth is None:
            return None
        options = {"method": "zoomeye"}
        if depth:
            options.update(zoomeye_depth=depth.group(1), zoomeye_split=depth.group(2))
        return options, logits
    if method == "vicrop":
        found = _VICROP.fullmatch(parts[0]) if len(parts) == 1 else None
        if found is None:
            return None
        return {"method": "vicrop", "vicrop_map": f"{found.group(1)}_att",
                "vicrop_high": str(bool(found.group(2))).lower()}, logits
    if method != "focus":
        return None
    options = {"n_steps": "8", "overrun": "true"}
    if parts:
        steps = _STEPS.fullmatch(parts[0])
        if steps is None:
            return None
        options = {"n_steps": steps.group(1), "overrun": str(steps.group(2) == "overrun").lower()}
    for part in parts[1:]:
        layers = _LAYERS.fullmatch(part)
        if part in RELEVANCE.values():
            options["relevance"] = next(key for key, name in RELEVANCE.items() if name == part)
        elif part == NO_RANKING:
            options["ranking"] = "false"
        elif layers:
            options["layers"] = f"{layers.group(1)}-{layers.group(2)}"
        else:
            return None
    return options, logits


def variant(method: str, setting: str) -> str:
    """What sets a setting apart from its method's curve over search budgets, as named at a
    point of a plot: the "; <change>" part (FOCUS's ablations, an answer scheme), a vanilla
    setting ("logits matching"), or a ViCrop setting (a map, not a budget)."""
    return setting if method in ("vanilla", "vicrop") else setting.partition("; ")[2]


def search_variant(method: str, setting: str) -> str:
    """`variant` without the answer scheme: what the search itself changes (FOCUS's ablations,
    ViCrop's map); "" for a method's published search at any budget."""
    return "; ".join(part for part in variant(method, setting).split("; ") if part and part not in SCHEMES)


def answer_scheme(method: str, setting: str, benchmark: str) -> str:
    """The answer scheme ("generate" or "logits") behind a setting's number on `benchmark`."""
    named = [SCHEMES[part] for part in setting.split("; ") if part in SCHEMES]
    return named[-1] if named else own_scheme(method, benchmark)
