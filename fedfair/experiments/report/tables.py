"""The paper's tables for one report section: a cell per (method row, partition), averaged over
seeds, with the paper's numbers beside ours where ``paper.toml`` has them.

Every table is a ``TableSpec`` (file stem, title, note, how a cell renders, which paper table
stands beside it); a renderer turns a cell's runs into the markdown text and the CSV values.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from ...methods import REFERENCE
from ..reference import NO_REFERENCE, UNDEFINED, References, rho_of
from .paper import PaperCells, paper_table
from .runs import MISSING, Cell, Grid, local_mean_max, mean

PAPER_GAP = 3.0
"""Accuracy points between our mean and the paper's beyond which a cell is flagged (†)."""

Values = dict[str, Any]
Render = Callable[[Cell, References], tuple[str, Values]]


def fmt_mean(values: list[float | None], scale: float = 1.0, digits: int = 1,
             undefined: str = UNDEFINED) -> str:
    """Mean over seeds of the defined values; 'undefined' when none is; '(k/n defined)' when some are not."""
    defined = [v * scale for v in values if v is not None]
    if not defined:
        return undefined
    text = f"{mean(defined):.{digits}f}"
    if len(defined) > 1:
        text += f" ±{statistics.stdev(defined):.{digits}f}"
    if len(defined) < len(values):
        text += f" ({len(defined)}/{len(values)} defined)"
    return text


def avg(values: list[float | None], scale: float = 1.0, digits: int | None = None) -> Any:
    """The CSV value: mean of the defined values (rounded to ``digits``), "" when none is."""
    defined = [v * scale for v in values if v is not None]
    if not defined:
        return ""
    m = mean(defined)
    return round(m, digits) if digits is not None else m


# ------------------------------------------------------------------ how a cell renders


def accuracy(cell: Cell, by_ref: References) -> tuple[str, Values]:
    means, maxes = cell.summary_values("mean_acc"), cell.summary_values("max_acc")
    return (f"{fmt_mean(means, 100, 1, MISSING)} ({fmt_mean(maxes, 100, 1, MISSING)})",
            {"mean_acc": avg(means, 100), "max_acc": avg(maxes, 100)})


def local_accuracy(cell: Cell, by_ref: References) -> tuple[str, Values]:
    pairs = [local_mean_max(r) for r in cell.runs]
    means, maxes = [m for m, _ in pairs], [x for _, x in pairs]
    return (f"{fmt_mean(means, 100, 1, MISSING)} ({fmt_mean(maxes, 100, 1, MISSING)})",
            {"mean_local_acc": avg(means, 100), "max_local_acc": avg(maxes, 100)})


def rho(cell: Cell, by_ref: References) -> tuple[str, Values]:
    got = [rho_of(r, by_ref) for r in cell.runs]
    if all(state == NO_REFERENCE for _, state in got):
        return NO_REFERENCE, {"rho": "", "state": NO_REFERENCE}
    values = [v for v, state in got if state != NO_REFERENCE]
    return fmt_mean(values, 1, 2), {"rho": avg(values, 1, 6), "state": "ok" if avg(values) is not None else UNDEFINED}


@dataclass(frozen=True)
class RhoPair:
    """ρ of CGSV's r (``key``) and, in brackets, of the method's own coefficient (``own``), from the summaries."""
    key: str
    own: str

    def __call__(self, cell: Cell, by_ref: References) -> tuple[str, Values]:
        first, second = cell.summary_values(self.key), cell.summary_values(self.own)
        return (f"{fmt_mean(first, 1, 2)} (own {fmt_mean(second, 1, 2)})",
                {self.key: avg(first, 1, 6), self.own: avg(second, 1, 6)})


def overhead(cell: Cell, by_ref: References) -> tuple[str, Values]:
    secs, ratio = cell.summary_values("mechanism_s"), cell.summary_values("overhead_ratio")
    train = cell.summary_values("train_s")
    return (f"{fmt_mean(secs, 1, 3, MISSING)} s ({fmt_mean(ratio, 1, 4, MISSING)})",
            {"mechanism_s": avg(secs, 1, 6), "overhead_ratio": avg(ratio, 1, 6), "train_s": avg(train, 1, 6)})


def communication(cell: Cell, by_ref: References) -> tuple[str, Values]:
    down, dense = cell.summary_values("bytes_down"), cell.summary_values("bytes_down_dense")
    up = cell.summary_values("bytes_up")
    frac = [d / x if d is not None and x else None for d, x in zip(down, dense)]
    return (f"{fmt_mean(down, 1e-6, 2, MISSING)} MB ({fmt_mean(frac, 1, 3, MISSING)} of dense)",
            {"bytes_down": avg(down, 1, 0), "bytes_down_dense": avg(dense, 1, 0), "bytes_up": avg(up, 1, 0),
             "down_fraction_of_dense": avg(frac, 1, 6)})


# ------------------------------------------------------------------ the tables


@dataclass(frozen=True)
class TableSpec:
    key: str                      # file stem of its CSV
    title: str
    note: str
    render: Render
    paper: str | None = None      # which of the paper's tables stands beside it: accuracy or rho
    gap_key: str | None = None    # the value compared with the paper's mean accuracy (flagged † beyond PAPER_GAP)
    with_reference: bool = True   # False: no row for the reference itself (ρ of standalone against itself)


ACC_NOTE = ("Accuracy of each agent's model after its last reward (`test_acc`), on the common test set; "
            "cell = mean over agents (max over agents), %, averaged over seeds (± sd when several).")
TABLES = (
    TableSpec("table1_accuracy", "Table 1: mean (max) final accuracy, % (test_acc)", ACC_NOTE, accuracy,
              "accuracy", "mean_acc"),
    TableSpec("table1_local_accuracy", "Table 1, local_acc variant: mean (max) final accuracy, % (local_acc)",
              "Accuracy of each agent's model right after its local training in the final round, before upload "
              "(`local_acc`): the paper's FedAvg rows can only be this (see spec/baselines.md).", local_accuracy,
              "accuracy", "mean_local_acc"),
    TableSpec("table2_rho", "Table 2: fairness ρ = 100 · pearson(standalone accuracies, final accuracies)",
              f"`{UNDEFINED}`: zero variance on a side (never shown as 0); `{NO_REFERENCE}`: no standalone run with "
              "the same data, training, seed and rounds.", rho, "rho", with_reference=False),
    TableSpec("table7_rho_r", "Table 7: ρ_r = 100 · pearson(final r, final accuracies)",
              "As in the paper's appendix, r is CGSV's moving-average importance computed from each method's own "
              "uploads (`rho_r_cgsv`); in brackets, the method's own coefficient (`rho_r`: importance, "
              f"reputation or weights; `{UNDEFINED}` where it has none). For cgsv, dw and eu the two are the same r.",
              RhoPair("rho_r_cgsv", "rho_r"), with_reference=False),
    TableSpec("table8_rho_r_loss", "Table 8: 100 · pearson(final r, −final training loss)",
              "Training loss = each agent's loss on its own shard at the end (`final_shard_loss`); r as in "
              "Table 7: CGSV's r from the method's uploads (in brackets, the method's own coefficient).",
              RhoPair("rho_r_loss_cgsv", "rho_r_loss"), with_reference=False),
    TableSpec("table3_overhead", "Table 3: time overhead: mechanism seconds (ratio to local training time)",
              "Server mechanism wall time summed over the run (normalise, aggregate, value, mask, encode), and its "
              "ratio to the summed slowest-agent local training time (`overhead_ratio`).", overhead),
    TableSpec("communication", "Bytes downloaded by all agents over the run (fraction of dense downloads)",
              "Measured on the wire, headers included.", communication),
)
PAPER_NOTES = {"accuracy": (" Rows marked (paper) are the paper's Table 1; † marks our mean more than "
                            f"{PAPER_GAP:g} points from the paper's."),
               "rho": " Rows marked (paper) are the paper's Table 2."}
PAPER_TEXT: dict[str, Callable[[Any], str]] = {"accuracy": lambda v: f"{v[0]} ({v[1]})", "rho": lambda v: f"{v:.2f}"}


@dataclass
class Table:
    key: str                       # file stem
    title: str
    note: str
    rows: list[str]                # row labels, in order
    cols: list[str]                # partitions
    records: list[dict[str, Any]]  # long-form CSV rows; "label", "partition" and "cell" place the markdown

    def markdown(self) -> str:
        wide = (pd.DataFrame(self.records, columns=["label", "partition", "cell"])
                .drop_duplicates(["label", "partition"], keep="last")
                .pivot(index="label", columns="partition", values="cell")
                .reindex(index=self.rows, columns=self.cols).fillna(MISSING))
        head = "| method | " + " | ".join(c.upper() for c in self.cols) + " |"
        lines = [f"**{self.title}**", "", *([self.note, ""] if self.note else []), head,
                 "|---|" + "---|" * len(self.cols)]
        lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in zip(self.rows, wide.values)]
        return "\n".join(lines)


def flagged(spec: TableSpec, values: Values, paper: Any) -> bool:
    """Whether our mean accuracy is more than PAPER_GAP points from the paper's."""
    ours = values.get(spec.gap_key) if spec.gap_key else None
    return isinstance(ours, float) and abs(ours - paper[0]) > PAPER_GAP


def build_table(spec: TableSpec, grid: Grid, by_ref: References) -> Table:
    """One table of a section: our cells, then the paper's row under each row it has numbers for."""
    papers = paper_table(spec.paper).get((grid.setting.dataset, grid.setting.agents), {}) if spec.paper else {}
    note = spec.note + (PAPER_NOTES[spec.paper] if papers else "")
    base = grid.setting._asdict()
    labels: list[str] = []
    records: list[dict[str, Any]] = []
    for row in grid.rows:
        if not spec.with_reference and row.method == REFERENCE:
            continue
        paper: PaperCells = papers.get(row.paper_key, {})
        ident = {**base, "method": row.method, "beta": "" if row.paper_key[1] is None else row.beta}
        labels.append(row.label)
        for p in grid.cols:
            cell = grid.cells.get((row, p))
            if cell is None:
                continue
            text, values = spec.render(cell, by_ref)
            if p in paper and flagged(spec, values, paper[p]):
                text += " †"
            seeds = " ".join(str(r.seed) for r in cell.runs)
            records.append({**ident, "label": row.label, "partition": p, "seeds": seeds, "cell": text, **values,
                            "source": "fedfair"})
        if paper:
            labels.append(f"{row.label} (paper)")
            records += [{**ident, "label": f"{row.label} (paper)", "partition": p, "seeds": "",
                         "cell": PAPER_TEXT[spec.paper](v), "source": "paper"}
                        for p, v in paper.items() if p in grid.cols]
    return Table(spec.key, spec.title, note, labels, grid.cols, records)


def build_tables(grid: Grid, by_ref: References) -> list[Table]:
    return [build_table(spec, grid, by_ref) for spec in TABLES]
