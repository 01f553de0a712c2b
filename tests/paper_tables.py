"""The paper's Tables 2, 3, 5, 10, 13, 14 and 15 read from its text, for the transcription test.

An independent reading of `../shared/reference/focus-paper.txt`: each table's tab-separated
rows are parsed from the text and labelled with the vocabulary of the packaged data
(`focus_eval/present/compare/published.csv`); the test compares the two cell by cell. Values stay the
strings the paper prints ("46.5", "81.60"), so a transcription must match to the character.
"""

from __future__ import annotations

import re
from pathlib import Path

# The reference copy beside the repository (the project's layout), else the machine's shared one.
_CANDIDATES = (Path(__file__).resolve().parents[2] / "shared" / "reference" / "focus-paper.txt",
               Path("/work/shared/reference/focus-paper.txt"))
PAPER = next((path for path in _CANDIDATES if path.is_file()), _CANDIDATES[-1])
SOURCE = "focus-paper"
L15, OV, QWEN, SEAL = "LLaVA-1.5-7B", "LLaVA-OV-7B", "Qwen-2.5-VL-7B", "LLaVA-7B (SEAL)"
STEPS8 = "Steps-8 (overrun)"
BENCHES = ("vstar", "hrbench4k", "hrbench8k")
SUBSETS = {"vstar": ("attribute", "spatial"), "hrbench4k": ("fsp", "fcp"), "hrbench8k": ("fsp", "fcp")}


def table_rows(text: str, number: int) -> list[list[str]]:
    """Cells of the rows of Table `number`: the tab-separated lines after its caption, up to
    the first blank line (HTML emphasis removed)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}:"))
    rows: list[list[str]] = []
    for line in lines[start + 1:]:
        if "\t" in line:
            rows.append([re.sub(r"</?[iu]>", "", cell).strip() for cell in line.split("\t")])
        elif rows and not line.strip():
            break
    return rows


def read_tables(text: str) -> list[tuple[str, ...]]:
    """Every number of the seven tables as (source, table, model, method, setting, benchmark,
    metric, value, fp) strings, fp "" where the paper prints none or "-"."""
    cells: list[tuple[str, ...]] = []

    def add(table, model, method, setting, bench, metric, value, fp=""):
        if value not in ("", "-", "—"):
            cells.append((SOURCE, f"Table {table}", model, method, setting, bench, metric, value,
                          "" if fp == "-" else fp))

    # Table 2: LLaVA-OV-7B on MME-RealWorld-Lite; Perception OCR RS DT MO AD Acc FP, Reasoning OCR DT MO AD Acc FP
    methods = {"LLaVA-OV-7B": "vanilla", "w/ ZoomEye": "zoomeye", "w/ FOCUS (Ours)": "focus"}
    for row in table_rows(text, 2):
        if row[0] in methods:
            method, values = methods[row[0]], row[1:]
            for name, value in zip(("ocr", "rs", "dt", "mo", "ad"), values[:5]):
                add(2, OV, method, "", "mme_realworld_lite", f"perception_{name}", value)
            add(2, OV, method, "", "mme_realworld_lite", "perception", values[5], values[6])
            for name, value in zip(("ocr", "dt", "mo", "ad"), values[7:11]):
                add(2, OV, method, "", "mme_realworld_lite", f"reasoning_{name}", value)
            add(2, OV, method, "", "mme_realworld_lite", "reasoning", values[11], values[12])

    # Table 3: LLaVA-1.5 ablations; V* accuracy, V* recall, HRBench-4K accuracy (its recall column is empty)
    ablations = {("", "✗", "✓"): "random relevance map", ("", "✓", "✗"): "no proposal ranking",
                 ("Pseudo-attn.", "K-K (w/o RoPE)", ""): "K-K w/o RoPE", ("Layers", "0 – 14", ""): "layers 0-14",
                 ("", "0 – 32", ""): "layers 0-32"}
    others = {"Original design choice": (L15, "focus", STEPS8), "Vanilla baseline": (L15, "vanilla", ""),
              "Random guess": ("", "chance", "")}
    for row in table_rows(text, 3):
        label = tuple(row[:3])
        if label in ablations:
            model, method, setting = L15, "focus", f"{STEPS8}; {ablations[label]}"
        elif row[0] in others:
            model, method, setting = others[row[0]]
        else:
            continue
        accuracy, recall, hr_accuracy = row[3:6]
        add(3, model, method, setting, "vstar", "overall", accuracy)
        add(3, model, method, setting, "vstar", "recall", recall)
        add(3, model, method, setting, "hrbench4k", "overall", hr_accuracy)

    # Table 5: Qwen-2.5-VL(-7B, Sec. 4.4); V*, HRBench-4K, HRBench-8K accuracy
    for row in table_rows(text, 5):
        method = {"Qwen-2.5-VL": "vanilla", "w/ FOCUS": "focus"}.get(row[0])
        if method:
            for bench, value in zip(BENCHES, row[1:]):
                add(5, QWEN, method, "", bench, "overall", value)

    # Table 10: per benchmark "overall (subset subset)" then FP
    method = model = None
    headers = {"ZoomEye": "zoomeye", "ViCrop": "vicrop", "DC²": "dc2", "FOCUS (Ours)": "focus"}
    for row in table_rows(text, 10):
        label, values = row[0], [cell for cell in row[1:] if cell]
        if label in headers:
            method, model = headers[label], None
            continue
        if label in ("LLaVA-1.5-7B", "LLaVA-v.1.5-7B", "LLaVA-OV-7B"):
            model = OV if "OV" in label else L15
            if not values:
                continue
            setting = ""  # DC²'s model line carries its numbers
        elif label == "SEAL":
            method, model, setting = "seal", SEAL, ""
        elif model is not None:
            setting = label.replace("no-overrun", "no overrun")
        else:
            continue
        for bench, (scores, fp) in zip(BENCHES, zip(values[0::2], values[1::2])):
            overall, first, second = re.fullmatch(r"(\S+) \((\S+) (\S+)\)", scores).groups()
            add(10, model, method, setting, bench, "overall", overall, fp)
            for metric, value in zip(SUBSETS[bench], (first, second)):
                add(10, model, method, setting, bench, metric, value, fp)

    # Table 13: V*Bench; accuracy, FP, seconds, peak memory
    rows13 = {"SEAL": (SEAL, "seal", ""), "LLaVA-OV-7B": (OV, "vanilla", ""), "LLaVA-1.5-7B": (L15, "vanilla", ""),
              "+ w/ ViCrop": (L15, "vicrop", "rel-att-high"),
              "+ w/ ZoomEye": (L15, "zoomeye", "Depth-5 (4 crops); logits matching"),
              "+ w/ Ours": (L15, "focus", STEPS8)}
    for row in table_rows(text, 13):
        if row[0] in rows13:
            model, method, setting = rows13[row[0]]
            accuracy, fp, seconds, memory = row[1:5]
            for metric, value in (("overall", accuracy), ("seconds", seconds), ("peak_mem_gb", memory)):
                add(13, model, method, setting, "vstar", metric, value, fp)

    # Table 14: LLaVA-1.5 on V*Bench; accuracy, seconds, FP, TFLOPs
    method = None
    for row in table_rows(text, 14):
        if row[0] in ("ZoomEye", "FOCUS"):
            method = row[0].lower()
        elif re.match(r"(Depth|Steps)-\d", row[0]):
            accuracy, seconds, fp, tflops = row[1:5]
            for metric, value in (("overall", accuracy), ("seconds", seconds), ("tflops", tflops)):
                add(14, L15, method, row[0], "vstar", metric, value, fp)

    # Table 15: LLaVA-1.5 on V*Bench; vanilla accuracy | ZoomEye accuracy, seconds, FP | FOCUS accuracy, seconds, FP
    for row in table_rows(text, 15):
        if row[0] not in ("Logits matching", "Open-ended generation"):
            continue
        logits = row[0] == "Logits matching"
        add(15, L15, "vanilla", "logits matching" if logits else "", "vstar", "overall", row[1])
        zoomeye = f"Depth-5 (4 crops); {row[0].lower()}"
        focus = f"{STEPS8}; logits matching" if logits else STEPS8
        for setting, method, (accuracy, seconds, fp) in ((zoomeye, "zoomeye", row[2:5]), (focus, "focus", row[5:8])):
            add(15, L15, method, setting, "vstar", "overall", accuracy, fp)
            add(15, L15, method, setting, "vstar", "seconds", seconds, fp)
    return cells
