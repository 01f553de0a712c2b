"""The paper's names of method settings, to and from FOCUS options.

A FOCUS setting is "Steps-N (overrun)" or "Steps-N (no overrun)" (n_steps and the overrun
mode of C.1), then "; <what differs>" for each Table 3 / Table 15 change:
"random relevance map" (relevance=random), "K-K w/o RoPE" (relevance=kk), "no proposal
ranking" (ranking=false), "layers A-B" (a layer range other than the family's Table 7 one;
0-based, end-exclusive as in focus_eval/config.py), "logits matching" (the vstar_logits task,
answer_scheme=logits). A vanilla setting is "" or "logits matching". Other options that differ
between runs (k, s_max, ...) are not part of the name; `focus-eval compare` lists them
separately. Other methods keep the paper's labels ("Depth-2 (4 crops)", "rel-att-high").
"""

from __future__ import annotations

import re
from typing import Any, Mapping

RELEVANCE = {"random": "random relevance map", "kk": "K-K w/o RoPE"}
NO_RANKING = "no proposal ranking"
LOGITS = "logits matching"
_STEPS = re.compile(r"Steps-(\d+) \((overrun|no overrun)\)")
_LAYERS = re.compile(r"layers (\d+)-(\d+)")


def setting_name(config: Mapping[str, Any], table7: Mapping[str, Any]) -> str:
    """The setting of a resolved FocusConfig (as a dict); `table7` is the family's default
    configuration for the same benchmark (to tell a changed layer range)."""
    parts = []
    if config["method"] == "focus":
        parts.append(f"Steps-{config['n_steps']} ({'overrun' if config['overrun'] else 'no overrun'})")
        if config["relevance"] in RELEVANCE:
            parts.append(RELEVANCE[config["relevance"]])
        if not config["ranking"]:
            parts.append(NO_RANKING)
        layers = (config["layer_start"], config["layer_end"])
        if layers != (table7["layer_start"], table7["layer_end"]):
            parts.append(f"layers {layers[0]}-{layers[1]}")
    if config["answer_scheme"] == "logits":
        parts.append(LOGITS)
    return "; ".join(parts)


def setting_options(method: str, setting: str) -> tuple[dict[str, str], bool] | None:
    """FOCUS model arguments and whether the setting uses logits matching, for a setting of
    method focus or vanilla; None when our options cannot express it. A FOCUS setting the paper
    does not state ("") gets the defaults: n_steps=8 with overrun."""
    if method not in ("focus", "vanilla"):
        return None
    parts = [part for part in setting.split("; ") if part]
    logits = LOGITS in parts
    parts = [part for part in parts if part != LOGITS]
    if method == "vanilla":
        return ({"method": "vanilla"}, logits) if not parts else None
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
    """What sets a setting apart from its method's curve over search budgets: the "; <change>"
    part (FOCUS's ablations, another answer scheme), or a vanilla setting ("logits matching")."""
    return setting if method == "vanilla" else setting.partition("; ")[2]
