"""The paper's published numbers, typed in once from the ICML 2025 paper, each with its source.

Values are as printed: percentages, except MT-Bench (a score out of 10). ``None`` marks a cell
the paper leaves empty ("/"). Rows are keyed by this repository's ``--method`` name where it
implements the method, else by the paper's name (those rows have no runs to compare with).
Columns are this repository's task names; :data:`TASK_ALIASES` maps other spellings to them.
``source`` gives table and section; the copy of the paper in this project
(``shared/paper/goat-paper.md``) carries no page breaks, so no page numbers are given
(PMLR 267: 15804-15832 for the whole paper).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PublishedTable:
    """One results table of the paper."""

    table: str  # "Table 4"
    section: str  # where the paper discusses it
    caption: str
    columns: tuple[str, ...]
    rows: dict[str, tuple[float | None, ...]]
    average: dict[str, float] = field(default_factory=dict)  # the printed Average column, if any
    row_names: dict[str, str] = field(default_factory=dict)  # row key -> the paper's name
    raw_scale: tuple[str, ...] = ()  # columns not in percent (measured values are not x100)

    def citation(self) -> str:
        return f"paper {self.table} ({self.section}): {self.caption}"

    def value(self, row: str, column: str) -> float | None:
        return self.rows[row][self.columns.index(column)]

    def mean_of_row(self, row: str) -> float | None:
        """Mean of a row's cells, to check the printed Average column; None if a cell is empty."""
        values = self.rows[row]
        return None if any(v is None for v in values) else statistics.mean(values)


NAMES = {
    "full": "Full FT",
    "full_moe": "Full FT MoE",
    "lora": "LoRA",
    "dora": "DoRA",
    "pissa": "PiSSA",
    "milora": "MiLoRA",
    "rslora": "rsLoRA",
    "kasa": "KaSA",
    "molora": "MoLoRA",
    "adamole": "AdaMoLE",
    "hydralora": "HydraLoRA",
    "goat": "GOAT",
}

TABLE_1 = PublishedTable(
    table="Table 1",
    section="§4.3",
    caption="CLIP ViT-B/32, total rank 8, seven image classification datasets (accuracy %)",
    columns=("cars", "dtd", "eurosat", "gtsrb", "resisc45", "sun397", "svhn"),
    rows={
        "full": (60.33, 73.88, 98.96, 98.30, 93.65, 53.84, 96.78),
        "full_moe": (66.39, 75.53, 98.59, 98.50, 94.38, 60.34, 97.09),
        "lora": (41.02, 70.15, 98.66, 96.51, 90.38, 47.51, 95.39),
        "LoRA (rank16)": (46.51, 72.07, 98.74, 98.04, 92.08, 51.63, 96.00),
        "LoRA (rank32)": (50.13, 72.87, 98.88, 98.13, 92.87, 53.65, 96.55),
        "dora": (40.75, 71.91, 98.89, 97.71, 90.19, 47.54, 95.46),
        "pissa": (40.41, 69.62, 98.48, 95.84, 90.58, 47.21, 95.84),
        "milora": (39.77, 70.48, 98.19, 97.52, 89.92, 45.38, 95.49),
        "molora": (50.83, 73.51, 98.63, 97.72, 92.58, 52.55, 96.00),
        "adamole": (49.47, 71.65, 98.52, 97.73, 91.95, 52.29, 95.82),
        "hydralora": (48.42, 72.18, 98.40, 97.28, 92.93, 51.80, 96.06),
        "goat": (53.50, 75.32, 98.82, 98.17, 93.46, 54.53, 96.62),
    },
    average={
        "full": 82.25,
        "full_moe": 84.40,
        "lora": 77.09,
        "LoRA (rank16)": 79.30,
        "LoRA (rank32)": 80.44,
        "dora": 77.49,
        "pissa": 76.85,
        "milora": 76.68,
        "molora": 80.26,
        "adamole": 79.63,
        "hydralora": 79.58,
        "goat": 81.49,
    },
)

TABLE_2 = PublishedTable(
    table="Table 2",
    section="§4.3",
    caption="LLaMA-2-7B: MT-Bench (score /10), GSM8K and HumanEval (%)",
    columns=("mtbench", "gsm8k", "humaneval"),
    rows={
        "full": (5.56, 59.36, 35.31),
        "lora": (5.61, 52.84, 21.34),
        "dora": (5.97, 54.59, 19.75),
        "pissa": (5.30, 55.42, 19.52),
        "milora": (5.23, 54.44, 19.51),
        "molora": (5.84, 56.63, 24.83),
        "hydralora": (5.82, 57.39, 24.21),
        "goat": (6.01, 60.20, 25.61),
    },
    raw_scale=("mtbench",),
)

TABLE_3 = PublishedTable(
    table="Table 3",
    section="§4.3",
    caption="LLaMA-2-7B on eight commonsense reasoning datasets (accuracy %; † rows quoted by the paper from other work)",
    columns=("boolq", "piqa", "social_i_qa", "hellaswag", "winogrande", "arc_e", "arc_c", "openbookqa"),
    rows={
        "ChatGPT †": (73.10, 85.40, 68.50, 78.50, 66.10, 89.80, 79.90, 74.80),
        "lora": (69.80, 79.90, 79.50, 83.60, 82.60, 79.80, 64.70, 81.00),
        "dora": (71.80, 83.10, 79.90, 89.10, 83.00, 84.50, 71.00, 81.20),
        "pissa": (67.60, 78.10, 78.40, 76.60, 78.00, 75.80, 60.20, 75.60),
        "milora": (67.60, 83.80, 80.10, 88.20, 82.00, 82.80, 68.80, 80.60),
        "LoRA-Dash †": (71.00, 75.70, 79.30, 91.10, 78.60, 84.20, 69.80, 78.80),
        "NEAT †": (71.70, 83.90, 80.20, 88.90, 84.30, 86.30, 71.40, 83.00),
        "kasa": (73.60, 84.40, 80.20, 91.50, 84.50, 84.70, 72.10, 81.20),
        "molora": (73.15, 83.68, 80.09, 74.57, 85.95, 87.33, 72.53, 86.20),
        "hydralora": (72.78, 84.06, 79.68, 80.34, 86.66, 87.12, 72.35, 86.00),
        "goat": (73.60, 83.95, 80.50, 87.12, 85.00, 87.79, 76.88, 87.00),
    },
    average={
        "ChatGPT †": 77.01,
        "lora": 77.61,
        "dora": 80.45,
        "pissa": 73.78,
        "milora": 79.24,
        "LoRA-Dash †": 78.56,
        "NEAT †": 81.21,
        "kasa": 81.53,
        "molora": 80.43,
        "hydralora": 81.12,
        "goat": 82.73,
    },
    row_names={"lora": "LoRA †", "dora": "DoRA †", "pissa": "PiSSA †", "milora": "MiLoRA †", "kasa": "KaSA †"},
)

TABLE_4 = PublishedTable(
    table="Table 4",
    section="§4.3",
    caption="RoBERTa-large on seven GLUE tasks, total rank 32 (CoLA: Matthews correlation; others accuracy %)",
    columns=("cola", "sst2", "mrpc", "qqp", "mnli", "qnli", "rte"),
    rows={
        "full": (84.27, 95.98, 85.29, 91.58, 89.83, 94.49, 84.84),
        "full_moe": (86.02, 96.22, 85.05, 92.20, 90.20, 95.10, 84.48),
        "lora": (83.41, 95.64, 83.33, 90.06, 89.00, 93.28, 84.47),
        "dora": (85.33, 95.99, 84.07, 91.24, 89.52, 93.54, 84.48),
        "pissa": (69.12, 95.98, 82.84, 91.24, 88.94, 93.59, 73.29),
        "milora": (84.65, 96.10, 86.02, 91.33, 89.51, 94.12, 84.83),
        "rslora": (83.51, 95.98, 86.02, 90.75, 88.97, 93.84, 84.12),
        "molora": (83.94, 96.10, 87.75, 91.45, 89.36, 93.90, 84.11),
        "adamole": (83.99, 95.76, 86.03, 91.48, 89.21, 93.64, 83.75),
        "hydralora": (83.89, 95.52, 85.04, 91.02, 89.34, 93.87, 81.22),
        "goat": (86.86, 96.21, 84.55, 91.40, 89.55, 94.19, 85.56),
    },
    average={
        "full": 89.47,
        "full_moe": 89.90,
        "lora": 88.46,
        "dora": 89.17,
        "pissa": 85.00,
        "milora": 89.51,
        "rslora": 89.03,
        "molora": 89.52,
        "adamole": 89.12,
        "hydralora": 88.56,
        "goat": 89.76,
    },
)

TABLE_5 = PublishedTable(
    table="Table 5",
    section="§4.4, App. E.3",
    caption="Ablation: expert init O (ours) / P (principal) / M (minor) / R (random) / zero, with and without "
    "MoE scaling (MS); last row a single LoRA with the O segments. Averages over Table 1's seven datasets",
    columns=("avg_ms", "avg_no_ms"),
    rows={
        "O": (81.49, 80.35),
        "P": (81.11, 80.02),
        "M": (81.14, 80.03),
        "R": (81.22, 80.07),
        "zero": (81.06, 80.26),
        "single": (None, 77.62),
    },
)

TABLE_6 = PublishedTable(
    table="Table 6",
    section="§4.8",
    caption="GSM8K accuracy (%) of LLaMA-2-7B trained on MetaMathQA at three learning rates",
    columns=("molora", "hydralora", "goat"),
    rows={"1e-05": (56.18, 55.19, 58.74), "2e-05": (56.63, 57.39, 60.20), "5e-05": (60.19, 60.96, 62.05)},
)

# Numbers the text quotes for figures whose data is not tabulated.
FIGURE_2_TEXT = {  # §2.2: accuracy of SVD-initialised LoRA (dataset not named)
    "r=1,s=2": 95.77,
    "r=64,s=2": 98.55,
    "r=1,s=16": 97.70,
}
FIGURE_5_TEXT = {  # §4.6: average over the CV datasets at total rank 32
    "goat": 83.04,
    "molora": 82.15,
    "hydralora": 82.12,
}
FIGURE_7_TEXT = {  # §4.7: E = 8, k = 2
    "expected_load": 0.125,
    "max_deviation": 0.02,
}

# Which published table a results family compares with.
FAMILY_TABLES = {
    "vision": TABLE_1,
    "math": TABLE_2,
    "code": TABLE_2,
    "chat": TABLE_2,
    "commonsense": TABLE_3,
    "glue": TABLE_4,
}

# Other spellings of the columns (training-set names, benchmark aliases) -> column name.
TASK_ALIASES = {
    "metamathqa": "gsm8k",
    "code_feedback": "humaneval",
    "wizardlm": "mtbench",
    "mt_bench": "mtbench",
    "siqa": "social_i_qa",
    "obqa": "openbookqa",
    "arc-e": "arc_e",
    "arc-c": "arc_c",
    "arc_easy": "arc_e",
    "arc_challenge": "arc_c",
    "ARC-Easy": "arc_e",
    "ARC-Challenge": "arc_c",
    "stanford_cars": "cars",
    "sst-2": "sst2",
    "mnli_overall": "mnli",
}


def canonical_task(name: str) -> str:
    """A task or metric name as the tables spell their columns (``boolq_accuracy`` -> ``boolq``)."""
    name = name.removesuffix("_accuracy")
    return TASK_ALIASES.get(name, TASK_ALIASES.get(name.lower(), name.lower()))


def published_for(family: str) -> PublishedTable:
    """The paper table of a results family."""
    if family not in FAMILY_TABLES:
        raise ValueError(f"no published table for family {family!r}; families with one: {', '.join(FAMILY_TABLES)}.")
    return FAMILY_TABLES[family]
