"""PNG figures of one report section (matplotlib, imported only here): r, reward density and
distance to the server over rounds, final accuracy per agent, final training loss against β.
Each figure uses the lowest seed of every cell."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...methods import BY_NAME, uses_beta
from ...metrics import num
from ..runs import Row, Run
from .runs import Grid

Figure = tuple[str, str]
"""(caption, file name) of a written figure."""

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
           "tab:gray", "tab:olive", "tab:cyan")
MARKERS = ("o", "s", "^", "v", "D", "x")
OVER_ROUNDS = (("r", "r_i", "Importance coefficient r_i over rounds"),
               ("density", "density", "Reward density (kept entries / D) over rounds"),
               ("dist_to_server", "‖w_i − w‖", "Distance of each agent's model to the server model over rounds"))
"""(agents.csv column, y label, title) of the figures over rounds."""


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (raises ImportError without matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def row_style(i: int) -> dict[str, str]:
    """Colour, line style and marker of the i-th table row: distinct for the first 60 rows."""
    return {"color": COLOURS[i % len(COLOURS)], "marker": MARKERS[(i // len(COLOURS)) % len(MARKERS)],
            "linestyle": "-" if (i // len(COLOURS)) % 2 == 0 else "--"}


def series(run: Run, column: str) -> dict[int, tuple[list[int], list[float]]]:
    """agent -> (rounds, values) of one agents.csv column, rounds without a value left out."""
    out: dict[int, tuple[list[int], list[float]]] = {}
    for row in run.agents():
        v = num(row.get(column))
        if v is None:
            continue
        xs, ys = out.setdefault(int(row["agent"]), ([], []))
        xs.append(int(row["round"]))
        ys.append(v)
    return out


def final_agent_values(run: Run, key: str) -> list[float | None]:
    return [num(v) for v in run.summary.get(key) or []]


def communicates(method: str) -> bool:
    """False for a method with no uploads (no r, reward or server model to plot); unknown methods count as True."""
    return method not in BY_NAME or BY_NAME[method].communicates


@dataclass
class Section:
    """What one section's figures draw: its setting, partitions and the lowest seed's run of every cell."""
    dataset: str
    agents: int
    tag: str
    cols: list[str]
    first: dict[Row, dict[str, Run]]

    @classmethod
    def of(cls, grid: Grid) -> Section:
        s = grid.setting
        return cls(s.dataset, s.agents, f"{s.dataset}-a{s.agents}-r{s.rounds}", grid.cols, grid.first_runs())


def save(fig: Any, out: Path, name: str) -> None:
    fig.savefig(out / name, dpi=110, bbox_inches="tight")
    pyplot().close(fig)


def over_rounds(sec: Section, column: str, ylabel: str, what: str, out: Path, notes: list[str]) -> Figure | None:
    """One panel per (method row, partition), one line per agent."""
    rows = [row for row in sec.first if communicates(row.method)
            and any(series(r, column) for r in sec.first[row].values())]
    if not rows:
        notes.append(f"figure of {column} for {sec.tag} skipped: no run logs {column}")
        return None
    cols = sec.cols
    fig, axes = pyplot().subplots(len(rows), len(cols), figsize=(3.2 * len(cols) + 0.6, 2.3 * len(rows) + 0.6),
                                  squeeze=False, sharex=True)
    for i, row in enumerate(rows):
        for j, p in enumerate(cols):
            ax = axes[i][j]
            run = sec.first[row].get(p)
            if run is None:
                ax.set_axis_off()
                continue
            for a, (xs, ys) in sorted(series(run, column).items()):
                ax.plot(xs, ys, lw=1.0, label=f"agent {a}")
            if i == 0:
                ax.set_title(p.upper())
            if j == 0:
                ax.set_ylabel(f"{row.label}\n{ylabel}", fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel("round")
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{what} ({sec.dataset}, {sec.agents} agents)", fontsize=10)
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / height))  # keep the title clear of the column titles
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 10), fontsize=7,
                   bbox_to_anchor=(0.5, 0.0))
    name = f"fig_{column}_{sec.tag}.png"
    save(fig, out, name)
    return (f"{what} ({sec.dataset}, {sec.agents} agents; one line per agent)", name)


def final_accuracy(sec: Section, out: Path) -> Figure:
    """Final accuracy per agent, one line per method row; a row keeps its colour, line and marker in
    every panel (and the legend lists every row), however many partitions ran it."""
    from matplotlib.ticker import MaxNLocator

    styles = {row: row_style(i) for i, row in enumerate(sec.first)}
    fig, axes = pyplot().subplots(1, len(sec.cols), figsize=(4.2 * len(sec.cols), 3.4), squeeze=False)
    legend: dict[str, Any] = {}
    for j, p in enumerate(sec.cols):
        ax = axes[0][j]
        for row, runs in sec.first.items():
            if p not in runs:
                continue
            acc = final_agent_values(runs[p], "final_acc")
            (line,) = ax.plot(range(1, len(acc) + 1), [math.nan if a is None else 100 * a for a in acc], ms=3,
                              lw=1.0, label=row.label, **styles[row])
            legend.setdefault(row.label, line)
        ax.set_title(p.upper())
        ax.set_xlabel("agent")
        ax.set_ylabel("final test accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Final accuracy per agent ({sec.dataset}, {sec.agents} agents)", fontsize=10)
    fig.tight_layout()
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="upper center", ncol=min(len(legend), 6), fontsize=7,
                   bbox_to_anchor=(0.5, 0.0))
    name = f"fig_final_acc_{sec.tag}.png"
    save(fig, out, name)
    return (f"Final accuracy per agent for each method ({sec.dataset}, {sec.agents} agents)", name)


def loss_vs_beta(sec: Section, out: Path) -> Figure | None:
    """Final training loss (own shard) per agent against β, for the methods that use β."""
    beta_rows = [row for row in sec.first if uses_beta(row.method) and row.beta >= 0]
    if not beta_rows:
        return None
    fig, axes = pyplot().subplots(1, len(sec.cols), figsize=(4.2 * len(sec.cols), 3.4), squeeze=False)
    for j, p in enumerate(sec.cols):
        ax = axes[0][j]
        for method in sorted({row.method for row in beta_rows}):
            pts = [(row.beta, sec.first[row][p]) for row in beta_rows
                   if row.method == method and p in sec.first[row] and math.isfinite(row.beta)]
            if not pts:
                continue
            losses = [(b, final_agent_values(r, "final_shard_loss")) for b, r in sorted(pts, key=lambda t: t[0])]
            for a in range(sec.agents):
                ax.plot([b for b, _ in losses], [ls[a] if a < len(ls) and ls[a] is not None else math.nan
                                                 for _, ls in losses], marker="o", ms=3, lw=1.0,
                        label=f"agent {a + 1}")
        ax.set_title(p.upper())
        ax.set_xlabel("β")
        ax.set_ylabel("final training loss")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center right", fontsize=7)
    fig.suptitle(f"Final training loss (own shard) per agent against β, CGSV ({sec.dataset}, {sec.agents} agents)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    name = f"fig_loss_vs_beta_{sec.tag}.png"
    save(fig, out, name)
    return (f"Final training loss per agent against β ({sec.dataset}, {sec.agents} agents)", name)


def make_figures(grid: Grid, out: Path, notes: list[str]) -> list[Figure]:
    """Every figure of one report section; returns (caption, file name) pairs."""
    sec = Section.of(grid)
    made = [over_rounds(sec, column, ylabel, what, out, notes) for column, ylabel, what in OVER_ROUNDS]
    made += [final_accuracy(sec, out), loss_vs_beta(sec, out)]
    return [f for f in made if f is not None]
