"""The proving ground: a tiny LLaVA-1.5 trained here on synthetic fine-grained VQA, so that
FOCUS's accuracy gain is measured on a model that can answer, not assumed."""

from pathlib import Path

# The trained checkpoint (`make proving-ground` writes a fresh one; installed as package data).
CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"
