"""The proving ground: tiny LLaVA-1.5 and LLaVA-OneVision models trained here on synthetic
fine-grained VQA, so that FOCUS's accuracy gain is measured on a model that can answer, not assumed."""

from pathlib import Path

# The trained checkpoints (`make proving-ground` writes fresh ones; installed as package data).
CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"  # LLaVA-1.5 (train.py)
ONEVISION_CHECKPOINT = CHECKPOINT.with_name("checkpoint_onevision")  # LLaVA-OneVision (onevision.py)
