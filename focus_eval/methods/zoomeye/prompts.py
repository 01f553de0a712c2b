"""Every text ZoomEye puts in front of the model, in one place (the proving ground trains its
tiny models on exactly these strings by importing this module).

Taken verbatim from the official code (om-ai-lab/ZoomEye 6762d79, `ZoomEye/zoom_model.py`
`init_prompts` and `ZoomEye/eval/perform_zoom_eye.py`), with "{}" written as named fields.
The answering prompt keeps the official "the the": it is the string the published numbers
were measured with. The existence question on a single image is FOCUS's own template
(`FocusConfig.existence_prompt`, "Is there a {target} in the image? Answer Yes or No."), the
same words as ZoomEye's, so it is not repeated here: `confidence_prompt` takes it.

A node is shown in one of three views (`focus_eval.methods.zoomeye` module docstring):
- "local": a local-view model (LLaVA-1.5) sees the node's crop alone;
- "global": a global-local model (LLaVA-OneVision, Qwen2.5-VL) sees the root, the full image, alone;
- "zoom": a global-local model sees two images, the full image with the node outlined in red and
  the zoomed-in crop, each followed by its text in ZOOM_IMAGE_TEXTS.
"""

from __future__ import annotations

from typing import Literal

View = Literal["local", "global", "zoom"]
Kind = Literal["existence", "latent", "answering"]

# Latent confidence: could the target be found (by zooming further)?
LATENT_PROMPTS: dict[str, str] = {
    "local": ("According to your common sense knowledge and the content of the image, is it possible to find a "
              "{target} in the image? Answer Yes or No and tell the reason."),
    "global": ("According to your common sense knowledge and the content of image, is it possible to find a "
               "{target} by further zooming in the image? Answer Yes or No and tell the reason."),
    "zoom": ("According to your common sense knowledge and the content of the zoomed-in view, along with its "
             "location in the image, is it possible to find a {target} by further zooming in the current view? "
             "Answer Yes or No and tell the reason."),
}
# Existence confidence in the zoomed view ("local" and "global" ask FOCUS's existence template).
ZOOM_EXISTENCE_PROMPT = "Is there a {target} in the zoomed-in view? Answer Yes or No."
# Answering confidence, the same in every view; {question} is the question itself (one type-1
# target) or DECOMPOSED_QUESTION (several targets).
ANSWERING_PROMPT = ("Question: {question}\nCould you answer the question based on the the available visual "
                    "information? Answer Yes or No.")
DECOMPOSED_QUESTION = "What is the appearance of the {target}?"
# The text after each image of the zoom view, in the confidence prompts and in the final answer.
ZOOM_IMAGE_TEXTS = (
    "This is the main image, and the section enclosed by the red rectangle is the focus region.",
    "This is the zoomed-in view of the focus region.",
)


def confidence_prompt(kind: Kind, view: View, subject: str, existence_template: str) -> str:
    """The prompt of one confidence pass: `subject` is the target (existence, latent) or the
    question (answering); `existence_template` is the configured FOCUS existence template."""
    if view not in LATENT_PROMPTS:
        raise ValueError(f"unknown ZoomEye view {view!r}; views are {tuple(LATENT_PROMPTS)}")
    if kind == "existence":
        template = ZOOM_EXISTENCE_PROMPT if view == "zoom" else existence_template
        return template.format(target=subject)
    if kind == "latent":
        return LATENT_PROMPTS[view].format(target=subject)
    if kind == "answering":
        return ANSWERING_PROMPT.format(question=subject)
    raise ValueError(f"unknown confidence kind {kind!r}; kinds are existence, latent, answering")
