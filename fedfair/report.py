"""Tables and figures in the paper's layout from run folders: ``python -m fedfair.report``.

    python -m fedfair.report LOGDIR... [--out DIR] [--fig1 CSV] [--title TEXT] [--no-figures]

Each LOGDIR is a run folder (it holds summary.json) or a folder searched recursively for them
(e.g. a sweep's --out-dir). Writes to --out (default: the first LOGDIR):

- ``report.md``: per setting (dataset, agents, rounds) the paper's Table 1 (mean (max) final
  accuracy, %), the same with ``local_acc``, Table 2 (ρ), Tables 7/8 (ρ of r with accuracy and
  with −training loss), Table 3 (mechanism time and its ratio to local training time), bytes
  downloaded, a list of the runs, and the figures.
- CSV files, one per table in long form (``table1_accuracy.csv``, ...), and ``runs.csv``.
- PNG figures with matplotlib (skipped with a notice when it is not installed): r_i, reward
  density and distance to the server over rounds, final accuracy per agent per method, final
  training loss per agent against β, and Fig. 1 (ψ vs exact CGSV) from the benchmark's CSV.

Accuracy: ``test_acc`` is the agent's model after its last reward (the fairness outcome, used
by every table unless named otherwise); ``local_acc`` is its model right after local training
in the last round, before upload (what the paper's FedAvg rows show). Values are means over
seeds; ρ that is undefined (zero variance on a side) shows as "undefined", never 0.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .metrics import pearson100

BETA_METHODS = ("cgsv",)
METHOD_ORDER = ("standalone", "fedavg", "dw", "eu", "rr", "qffl", "cffl", "eci", "cgsv")
METHOD_LABELS = {"standalone": "Standalone", "fedavg": "FedAvg", "dw": "DW", "eu": "EU", "rr": "RR",
                 "qffl": "q-FFL", "cffl": "CFFL", "eci": "ECI", "cgsv": "CGSV"}
PARTITION_ORDER = ("uni", "pow", "cla")
# The paper's numbers (Xu et al. 2021) for the settings we reproduce, shown beside ours as "(paper)" rows.
# Keys: (dataset, agents) -> (method, beta or None) -> partition -> value.
PAPER_ACCURACY = {  # Table 1: mean (max) final accuracy, %
    ("mnist", 10): {
        ("standalone", None): {"uni": (91, 91), "pow": (88, 92), "cla": (53, 92)},
        ("fedavg", None): {"uni": (93, 94), "pow": (92, 94), "cla": (53, 93)},
        ("cgsv", 1.0): {"uni": (96, 97), "pow": (94, 95), "cla": (74, 95)},
        ("cgsv", 2.0): {"uni": (96, 96), "pow": (95, 96), "cla": (73, 94)},
    },
}
PAPER_RHO = {  # Table 2: rho x 100
    ("mnist", 10): {
        ("fedavg", None): {"uni": -45.60, "pow": 55.24, "cla": 24.12},
        ("cgsv", 1.0): {"uni": 94.03, "pow": 95.74, "cla": 94.54},
    },
}
PAPER_GAP = 3.0
"""Accuracy points between our mean and the paper's beyond which a cell is flagged (†)."""
UNDEFINED = "undefined"
NO_REFERENCE = "n/a"
MISSING = "–"


# ------------------------------------------------------------------ loading


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    _agents: list[dict[str, str]] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return str(self.summary.get("method"))

    @property
    def beta(self) -> float | None:
        b = self.summary.get("beta", self.config.get("mechanism", {}).get("beta"))
        if b is None:
            return None
        return math.inf if b == "inf" else float(b)

    @property
    def partition(self) -> str:
        return str(self.summary.get("partition"))

    @property
    def seed(self) -> int:
        return int(self.summary.get("seed", self.config.get("run", {}).get("seed", 0)))

    @property
    def setting(self) -> tuple[str, int, int]:
        s = self.summary
        return (str(s.get("dataset")), int(s.get("agents", 0)), int(s.get("rounds", 0)))

    @property
    def row_key(self) -> tuple[int, float, str]:
        """Sort key and identity of a table row: (method rank, beta, method)."""
        m = self.method
        rank = METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER)
        beta = self.beta if (m in BETA_METHODS and self.beta is not None) else -1.0
        return (rank, beta, m)

    def agents(self) -> list[dict[str, str]]:
        if self._agents is None:
            with open(self.path / "agents.csv", newline="") as f:
                self._agents = list(csv.DictReader(f))
        return self._agents


def row_label(key: tuple[int, float, str]) -> str:
    _, beta, method = key
    label = METHOD_LABELS.get(method, method)
    if method in BETA_METHODS and beta >= 0:
        label += f" β={'∞' if math.isinf(beta) else f'{beta:g}'}"
    return label


def find_runs(paths: Iterable[Path], notes: list[str] | None = None) -> list[Run]:
    """Every finished run (a folder with summary.json) under the given paths, each once."""
    seen: set[Path] = set()
    runs: list[Run] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        candidates = [p / "summary.json"] if (p / "summary.json").is_file() else sorted(p.rglob("summary.json"))
        for s in candidates:
            d = s.parent.resolve()
            if d in seen:
                continue
            seen.add(d)
            try:
                summary = json.loads(s.read_text())
                config = tomllib.loads((s.parent / "config.toml").read_text()) \
                    if (s.parent / "config.toml").is_file() else {}
            except (OSError, ValueError) as e:
                if notes is not None:
                    notes.append(f"skipped {s.parent}: unreadable ({e})")
                continue
            runs.append(Run(s.parent, summary, config))
    return runs


# ------------------------------------------------------------------ numbers


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def local_mean_max(run: Run) -> tuple[float | None, float | None]:
    acc = [_num(a) for a in run.summary.get("final_local_acc") or []]
    acc = [a for a in acc if a is not None]
    return (_mean(acc), max(acc)) if acc else (None, None)


def rho_of(run: Run, by_ref: dict[str, Run]) -> tuple[float | None, str]:
    """(rho, state): state is 'ok', 'undefined' (zero variance) or 'n/a' (no standalone reference).

    The server writes rho when a standalone run was there before it; otherwise the report
    computes it from a standalone run with the same reference_key among the runs it loaded.
    """
    s = run.summary
    if s.get("rho_available"):
        return (_num(s.get("rho")), "ok" if _num(s.get("rho")) is not None else UNDEFINED)
    ref = by_ref.get(s.get("reference_key")) if s.get("reference_key") else None
    if ref is None or not ref.summary.get("final_acc") or not s.get("final_acc"):
        return None, NO_REFERENCE
    v = pearson100(ref.summary["final_acc"], s["final_acc"])
    return v, ("ok" if v is not None else UNDEFINED)


@dataclass
class Cell:
    """The runs of one (setting, row, partition): one per seed."""
    runs: list[Run]

    def values(self, get: Callable[[Run], float | None]) -> list[float | None]:
        return [get(r) for r in self.runs]


def fmt_mean(values: list[float | None], scale: float = 1.0, digits: int = 1,
             undefined: str = UNDEFINED) -> str:
    """Mean over seeds of the defined values; 'undefined' when none is; '(k/n defined)' when some are not."""
    defined = [v * scale for v in values if v is not None]
    if not defined:
        return undefined
    text = f"{_mean(defined):.{digits}f}"
    if len(defined) > 1:
        text += f" ±{statistics.stdev(defined):.{digits}f}"
    if len(defined) < len(values):
        text += f" ({len(defined)}/{len(values)} defined)"
    return text


# ------------------------------------------------------------------ tables


@dataclass
class Table:
    key: str          # file stem
    title: str
    note: str
    rows: list[str]   # row labels
    cols: list[str]   # partitions
    cells: dict[tuple[str, str], str]                   # markdown text
    records: list[dict[str, Any]]                       # long-form CSV rows

    def markdown(self) -> str:
        head = "| method | " + " | ".join(c.upper() for c in self.cols) + " |"
        sep = "|---|" + "---|" * len(self.cols)
        lines = [f"**{self.title}**", "", self.note, "", head, sep] if self.note else [f"**{self.title}**", "", head, sep]
        for r in self.rows:
            lines.append(f"| {r} | " + " | ".join(self.cells.get((r, c), MISSING) for c in self.cols) + " |")
        return "\n".join(lines)


def _seeds_text(cell: Cell) -> str:
    return " ".join(str(r.seed) for r in cell.runs)


def build_tables(setting: tuple[str, int, int], grid: dict[tuple, dict[str, Cell]],
                 by_ref: dict[str, Run]) -> list[Table]:
    dataset, agents, rounds = setting
    row_keys = sorted(grid)
    cols = sorted({p for cells in grid.values() for p in cells},
                  key=lambda p: (PARTITION_ORDER.index(p) if p in PARTITION_ORDER else 99, p))
    base = {"dataset": dataset, "agents": agents, "rounds": rounds}

    def table(key: str, title: str, note: str, rows: list[tuple], render: Callable[[Cell], tuple[str, dict]],
              paper: dict | None = None, paper_text: Callable[[Any], str] = str,
              flag: Callable[[dict, Any], bool] | None = None) -> Table:
        cells, records, labels = {}, [], []
        paper = paper or {}
        for rk in rows:
            label = row_label(rk)
            labels.append(label)
            ref = paper.get((rk[2], rk[1] if rk[2] in BETA_METHODS else None), {})
            for p in cols:
                cell = grid[rk].get(p)
                if cell is None:
                    continue
                text, values = render(cell)
                if p in ref and flag is not None and flag(values, ref[p]):
                    text += " †"
                cells[(label, p)] = text
                records.append({**base, "method": rk[2], "beta": (rk[1] if rk[2] in BETA_METHODS else ""),
                                "label": label, "partition": p, "seeds": _seeds_text(cell),
                                "cell": text, **values, "source": "fedfair"})
            if ref:
                labels.append(f"{label} (paper)")
                for p, v in ref.items():
                    if p in cols:
                        cells[(f"{label} (paper)", p)] = paper_text(v)
                        records.append({**base, "method": rk[2], "beta": (rk[1] if rk[2] in BETA_METHODS else ""),
                                        "label": f"{label} (paper)", "partition": p, "seeds": "",
                                        "cell": paper_text(v), "source": "paper"})
        return Table(key, title, note, labels, cols, cells, records)

    def acc(cell: Cell) -> tuple[str, dict]:
        means = cell.values(lambda r: _num(r.summary.get("mean_acc")))
        maxes = cell.values(lambda r: _num(r.summary.get("max_acc")))
        return (f"{fmt_mean(means, 100, 1, MISSING)} ({fmt_mean(maxes, 100, 1, MISSING)})",
                {"mean_acc": _avg(means, 100), "max_acc": _avg(maxes, 100)})

    def local_acc(cell: Cell) -> tuple[str, dict]:
        pairs = [local_mean_max(r) for r in cell.runs]
        means, maxes = [m for m, _ in pairs], [x for _, x in pairs]
        return (f"{fmt_mean(means, 100, 1, MISSING)} ({fmt_mean(maxes, 100, 1, MISSING)})",
                {"mean_local_acc": _avg(means, 100), "max_local_acc": _avg(maxes, 100)})

    def rho(cell: Cell) -> tuple[str, dict]:
        got = [rho_of(r, by_ref) for r in cell.runs]
        if all(state == NO_REFERENCE for _, state in got):
            return NO_REFERENCE, {"rho": "", "state": NO_REFERENCE}
        values = [v for v, state in got if state != NO_REFERENCE]
        text = fmt_mean(values, 1, 2)
        return text, {"rho": _avg(values, 1, 6), "state": "ok" if _avg(values) is not None else UNDEFINED}

    def summary_rho(key: str) -> Callable[[Cell], tuple[str, dict]]:
        def render(cell: Cell) -> tuple[str, dict]:
            values = cell.values(lambda r: _num(r.summary.get(key)))
            return fmt_mean(values, 1, 2), {key: _avg(values, 1, 6)}
        return render

    def summary_rho_pair(key: str, own: str) -> Callable[[Cell], tuple[str, dict]]:
        first, second = summary_rho(key), summary_rho(own)

        def render(cell: Cell) -> tuple[str, dict]:
            (a, va), (b, vb) = first(cell), second(cell)
            return f"{a} (own {b})", {**va, **vb}
        return render

    def overhead(cell: Cell) -> tuple[str, dict]:
        secs = cell.values(lambda r: _num(r.summary.get("mechanism_s")))
        ratio = cell.values(lambda r: _num(r.summary.get("overhead_ratio")))
        train = cell.values(lambda r: _num(r.summary.get("train_s")))
        return (f"{fmt_mean(secs, 1, 3, MISSING)} s ({fmt_mean(ratio, 1, 4, MISSING)})",
                {"mechanism_s": _avg(secs, 1, 6), "overhead_ratio": _avg(ratio, 1, 6), "train_s": _avg(train, 1, 6)})

    def comm(cell: Cell) -> tuple[str, dict]:
        down = cell.values(lambda r: _num(r.summary.get("bytes_down")))
        dense = cell.values(lambda r: _num(r.summary.get("bytes_down_dense")))
        up = cell.values(lambda r: _num(r.summary.get("bytes_up")))
        frac = [d / x if d is not None and x else None for d, x in zip(down, dense)]
        return (f"{fmt_mean(down, 1e-6, 2, MISSING)} MB ({fmt_mean(frac, 1, 3, MISSING)} of dense)",
                {"bytes_down": _avg(down, 1, 0), "bytes_down_dense": _avg(dense, 1, 0), "bytes_up": _avg(up, 1, 0),
                 "down_fraction_of_dense": _avg(frac, 1, 6)})

    not_standalone = [rk for rk in row_keys if rk[2] != "standalone"]
    paper_note = (f" Rows marked (paper) are the paper's Table 1; † marks our mean more than {PAPER_GAP:g} points "
                  "from the paper's." if (dataset, agents) in PAPER_ACCURACY else "")

    def acc_gap(values: dict, ref: tuple[float, float]) -> bool:
        ours = values.get("mean_acc")
        return isinstance(ours, float) and abs(ours - ref[0]) > PAPER_GAP

    def local_gap(values: dict, ref: tuple[float, float]) -> bool:
        return acc_gap({"mean_acc": values.get("mean_local_acc")}, ref)

    acc_note = ("Accuracy of each agent's model after its last reward (`test_acc`), on the common test set; "
                "cell = mean over agents (max over agents), %, averaged over seeds (± sd when several).")
    return [
        table("table1_accuracy", "Table 1: mean (max) final accuracy, % (test_acc)", acc_note + paper_note,
              row_keys, acc, PAPER_ACCURACY.get((dataset, agents)), lambda v: f"{v[0]} ({v[1]})", acc_gap),
        table("table1_local_accuracy", "Table 1, local_acc variant: mean (max) final accuracy, % (local_acc)",
              "Accuracy of each agent's model right after its local training in the final round, before upload "
              "(`local_acc`): the paper's FedAvg rows can only be this (see spec/baselines.md)." + paper_note,
              row_keys, local_acc, PAPER_ACCURACY.get((dataset, agents)), lambda v: f"{v[0]} ({v[1]})", local_gap),
        table("table2_rho", "Table 2: fairness ρ = 100 · pearson(standalone accuracies, final accuracies)",
              f"`{UNDEFINED}`: zero variance on a side (never shown as 0); `{NO_REFERENCE}`: no standalone run with "
              "the same data, training, seed and rounds." + (" Rows marked (paper) are the paper's Table 2."
                                                              if (dataset, agents) in PAPER_RHO else ""),
              not_standalone, rho, PAPER_RHO.get((dataset, agents)), lambda v: f"{v:.2f}"),
        table("table7_rho_r", "Table 7: ρ_r = 100 · pearson(final r, final accuracies)",
              "As in the paper's appendix, r is CGSV's moving-average importance computed from each method's own "
              "uploads (`rho_r_cgsv`); in brackets, the method's own coefficient (`rho_r`: importance, "
              f"reputation or weights; `{UNDEFINED}` where it has none). For cgsv, dw and eu the two are the same r.",
              not_standalone, summary_rho_pair("rho_r_cgsv", "rho_r")),
        table("table8_rho_r_loss", "Table 8: 100 · pearson(final r, −final training loss)",
              "Training loss = each agent's loss on its own shard at the end (`final_shard_loss`); r as in "
              "Table 7: CGSV's r from the method's uploads (in brackets, the method's own coefficient).",
              not_standalone, summary_rho_pair("rho_r_loss_cgsv", "rho_r_loss")),
        table("table3_overhead", "Table 3: time overhead: mechanism seconds (ratio to local training time)",
              "Server mechanism wall time summed over the run (normalise, aggregate, value, mask, encode), and its "
              "ratio to the summed slowest-agent local training time (`overhead_ratio`).", row_keys, overhead),
        table("communication", "Bytes downloaded by all agents over the run (fraction of dense downloads)",
              "Measured on the wire, headers included.", row_keys, comm),
    ]


def _avg(values: list[float | None], scale: float = 1.0, digits: int | None = None) -> Any:
    defined = [v * scale for v in values if v is not None]
    if not defined:
        return ""
    m = _mean(defined)
    return round(m, digits) if digits is not None else m


# ------------------------------------------------------------------ figures


def _series(run: Run, column: str) -> dict[int, tuple[list[int], list[float]]]:
    out: dict[int, tuple[list[int], list[float]]] = {}
    for row in run.agents():
        v = _num(row.get(column))
        if v is None:
            continue
        a = int(row["agent"])
        xs, ys = out.setdefault(a, ([], []))
        xs.append(int(row["round"]))
        ys.append(v)
    return out


def _final_agent_values(run: Run, key: str) -> list[float | None]:
    return [_num(v) for v in run.summary.get(key) or []]


_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
            "tab:gray", "tab:olive", "tab:cyan")
_MARKERS = ("o", "s", "^", "v", "D", "x")


def _row_style(i: int) -> dict[str, str]:
    """Colour, line style and marker of the i-th table row: distinct for the first 60 rows."""
    return {"color": _COLOURS[i % len(_COLOURS)], "marker": _MARKERS[(i // len(_COLOURS)) % len(_MARKERS)],
            "linestyle": "-" if (i // len(_COLOURS)) % 2 == 0 else "--"}


def make_figures(setting: tuple[str, int, int], grid: dict[tuple, dict[str, Cell]], out: Path,
                 notes: list[str]) -> list[tuple[str, str]]:
    """PNG figures for one setting; returns (caption, file name) pairs. Uses each cell's lowest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    dataset, agents, rounds = setting
    tag = f"{dataset}-a{agents}-r{rounds}"
    cols = sorted({p for cells in grid.values() for p in cells},
                  key=lambda p: (PARTITION_ORDER.index(p) if p in PARTITION_ORDER else 99, p))
    first = {rk: {p: min(c.runs, key=lambda r: r.seed) for p, c in cells.items()} for rk, cells in grid.items()}
    made: list[tuple[str, str]] = []

    def over_rounds(column: str, ylabel: str, what: str) -> None:
        # standalone never communicates: no r, reward or server model to plot
        rows = [rk for rk in sorted(first) if rk[2] != "standalone"
                and any(_series(r, column) for r in first[rk].values())]
        if not rows:
            notes.append(f"figure of {column} for {tag} skipped: no run logs {column}")
            return
        fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols) + 0.6, 2.3 * len(rows) + 0.6),
                                 squeeze=False, sharex=True)
        for i, rk in enumerate(rows):
            for j, p in enumerate(cols):
                ax = axes[i][j]
                run = first[rk].get(p)
                if run is None:
                    ax.set_axis_off()
                    continue
                for a, (xs, ys) in sorted(_series(run, column).items()):
                    ax.plot(xs, ys, lw=1.0, label=f"agent {a}")
                if i == 0:
                    ax.set_title(p.upper())
                if j == 0:
                    ax.set_ylabel(f"{row_label(rk)}\n{ylabel}", fontsize=8)
                if i == len(rows) - 1:
                    ax.set_xlabel("round")
                ax.tick_params(labelsize=7)
        fig.suptitle(f"{what} ({dataset}, {agents} agents)", fontsize=10)
        height = fig.get_size_inches()[1]
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / height))  # keep the title clear of the column titles
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 10), fontsize=7,
                       bbox_to_anchor=(0.5, 0.0))
        name = f"fig_{column}_{tag}.png"
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        made.append((f"{what} ({dataset}, {agents} agents; one line per agent)", name))

    over_rounds("r", "r_i", "Importance coefficient r_i over rounds")
    over_rounds("density", "density", "Reward density (kept entries / D) over rounds")
    over_rounds("dist_to_server", "‖w_i − w‖", "Distance of each agent's model to the server model over rounds")

    # final accuracy per agent, one line per method; a row keeps its colour, line and marker in
    # every panel (and the legend lists every row), however many partitions ran it
    styles = {rk: _row_style(i) for i, rk in enumerate(sorted(first))}
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.4), squeeze=False)
    legend: dict[str, Any] = {}
    for j, p in enumerate(cols):
        ax = axes[0][j]
        for rk in sorted(first):
            run = first[rk].get(p)
            if run is None:
                continue
            acc = _final_agent_values(run, "final_acc")
            (line,) = ax.plot(range(1, len(acc) + 1), [math.nan if a is None else 100 * a for a in acc], ms=3,
                              lw=1.0, label=row_label(rk), **styles[rk])
            legend.setdefault(row_label(rk), line)
        ax.set_title(p.upper())
        ax.set_xlabel("agent")
        ax.set_ylabel("final test accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Final accuracy per agent ({dataset}, {agents} agents)", fontsize=10)
    fig.tight_layout()
    handles, labels = list(legend.values()), list(legend)
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=7,
                   bbox_to_anchor=(0.5, 0.0))
    name = f"fig_final_acc_{tag}.png"
    fig.savefig(out / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    made.append((f"Final accuracy per agent for each method ({dataset}, {agents} agents)", name))

    # final training loss per agent against beta (methods with beta)
    beta_rows = [rk for rk in sorted(first) if rk[2] in BETA_METHODS and rk[1] >= 0]
    if beta_rows:
        fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.4), squeeze=False)
        for j, p in enumerate(cols):
            ax = axes[0][j]
            for method in sorted({rk[2] for rk in beta_rows}):
                pts = [(rk[1], first[rk][p]) for rk in beta_rows if rk[2] == method and p in first[rk]]
                pts = [(b, r) for b, r in pts if math.isfinite(b)]
                if not pts:
                    continue
                losses = [(b, _final_agent_values(r, "final_shard_loss")) for b, r in sorted(pts, key=lambda t: t[0])]
                for a in range(agents):
                    ax.plot([b for b, _ in losses], [l[a] if a < len(l) and l[a] is not None else math.nan
                                                     for _, l in losses], marker="o", ms=3, lw=1.0,
                            label=f"agent {a + 1}")
            ax.set_title(p.upper())
            ax.set_xlabel("β")
            ax.set_ylabel("final training loss")
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="center right", fontsize=7)
        fig.suptitle(f"Final training loss (own shard) per agent against β, CGSV ({dataset}, {agents} agents)",
                     fontsize=10)
        fig.tight_layout(rect=(0, 0, 0.88, 1))
        name = f"fig_loss_vs_beta_{tag}.png"
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        made.append((f"Final training loss per agent against β ({dataset}, {agents} agents)", name))
    return made


# ------------------------------------------------------------------ Fig. 1 (benchmark CSV)


FIG1_TEXT_COLUMNS = ("vectors", "weights")  # the benchmark's variant labels; every other column is a number


def read_fig1(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [{k: (v if k in FIG1_TEXT_COLUMNS else float(v) if v not in ("", None) else None)
                 for k, v in row.items()} for row in csv.DictReader(f)]


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if isinstance(v, (int, float))]
    return _mean(defined) if defined else None


_VECTOR_LABELS = {"iid": "i.i.d. N(0,1) uploads", "correlated": "correlated uploads (shared direction + growing noise)"}


def fig1_variant(rows: list[dict[str, Any]]) -> str:
    """The uploads and weights the rows were drawn with; older CSVs lack the columns (they were correlated)."""
    parts = []
    for key, labels in (("vectors", _VECTOR_LABELS), ("weights", {})):
        values = sorted({str(r[key]) for r in rows if r.get(key)})
        if values:
            parts.append(", ".join(labels.get(v, f"{v} {key}") for v in values))
    return "; ".join(parts) or "variant not recorded"


def fig1_table(rows: list[dict[str, Any]]) -> str:
    """Mean normalised ℓ1/ℓ2 error (ψ, and sampling when recorded) and mean times per (N, D)."""
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((int(r["n"]), int(r["dim"])), []).append(r)
    sampling = any(r.get("sampling_l1") is not None for r in rows)
    head = "| N | D | ℓ1 error | ℓ2 error |"
    if sampling:
        head += " sampling K | sampling ℓ1 | sampling ℓ2 | sampling (ms) |"
    head += " ψ (ms) | exact CGSV, Gram + subset DP (ms) | exact CGSV by definition (ms) |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for (n, d), rs in sorted(groups.items()):
        naive = _mean_defined([r.get("naive_s") for r in rs])
        line = f"| {n} | {d:,} | {_mean([r['l1'] for r in rs]):.4f} | {_mean([r['l2'] for r in rs]):.4f} |"
        if sampling:
            line += (f" {int(rs[0]['sampling_k'])} | {_mean([r['sampling_l1'] for r in rs]):.4f} | "
                     f"{_mean([r['sampling_l2'] for r in rs]):.4f} | "
                     f"{1e3 * _mean([r['sampling_s'] for r in rs]):.3f} |")
        line += f" {1e3 * _mean([r['psi_s'] for r in rs]):.3f} | {1e3 * _mean([r['exact_s'] for r in rs]):.3f} |"
        lines.append(line + f" {'not run' if naive is None else f'{1e3 * naive:.1f}'} |")
    return "\n".join(lines)


def plot_fig1(rows: list[dict[str, Any]], path: Path) -> None:
    """ℓ1 error, ℓ2 error and time against N: one colour per D, one line style per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({int(r["dim"]) for r in rows})
    ks = sorted({int(r["sampling_k"]) for r in rows if r.get("sampling_k") is not None})
    k_text = f"K = {ks[0]}" if len(ks) == 1 else "K = " + "/".join(map(str, ks))
    fig, (ax_l1, ax_l2, ax_t) = plt.subplots(1, 3, figsize=(15, 4.4))
    for d in dims:
        ns = sorted({int(r["n"]) for r in rows if int(r["dim"]) == d})

        def series(key: str) -> tuple[list[int], list[float]]:
            points = [(n, _mean_defined([r.get(key) for r in rows if int(r["dim"]) == d and int(r["n"]) == n]))
                      for n in ns]
            # a log axis cannot show 0 (ψ is exact at N = 2): such points are left out
            return [n for n, v in points if v], [v for _, v in points if v]

        color = None
        for ax, key in ((ax_l1, "l1"), (ax_l2, "l2")):
            line, = ax.plot(*series(key), marker="o", ms=3, color=color, label=f"ψ (cosine), D={d:,}")
            color = line.get_color()
            if ks:
                ax.plot(*series(f"sampling_{key}"), marker="v", ms=3, ls="--", color=color,
                        label=f"permutation sampling, {k_text}, D={d:,}")
        ax_t.plot(*series("exact_s"), marker="o", ms=3, color=color, label=f"exact CGSV (Gram + DP), D={d:,}")
        ax_t.plot(*series("psi_s"), marker="s", ms=3, ls=(0, (1, 1)), color=color, label=f"ψ (cosine), D={d:,}")
        if ks:
            ax_t.plot(*series("sampling_s"), marker="v", ms=3, ls="--", color=color,
                      label=f"permutation sampling, {k_text}, D={d:,}")
        naive_n, naive_t = series("naive_s")
        if naive_n:
            ax_t.plot(naive_n, naive_t, marker="^", ms=3, ls="-.", color=color,
                      label=f"exact CGSV by definition, D={d:,}")
    for ax, metric in ((ax_l1, "ℓ1"), (ax_l2, "ℓ2")):
        ax.set_xlabel("number of agents N")
        ax.set_ylabel(f"normalised {metric} error vs exact CGSV")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax_t.set_xlabel("number of agents N")
    ax_t.set_ylabel("time per valuation (s)")
    ax_t.set_yscale("log")
    ax_t.legend(fontsize=7)
    budget = f", and permutation sampling at ψ's budget ({k_text})" if ks else ""
    fig.suptitle(f"Fig. 1: ψ = cos(u_i, u_N){budget} against the exact CGSV\n{fig1_variant(rows)}; "
                 "mean over trials", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ the report


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    for r in records:
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in records:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


RUN_FIELDS = ("method", "beta", "dataset", "partition", "agents", "rounds", "seed", "mean_acc", "max_acc",
              "server_acc", "rho", "rho_available", "rho_r", "rho_r_loss", "rho_r_cgsv", "rho_r_loss_cgsv",
              "mechanism_s", "train_s",
              "overhead_ratio", "bytes_up", "bytes_down", "bytes_down_dense", "wall_s")


def report(paths: list[Path], out: Path, fig1: Path | None = None, title: str | None = None,
           figures: bool = True, command: list[str] | None = None) -> dict[str, Any]:
    """Write report.md, the CSV tables and the figures to ``out``; returns what was written."""
    notes: list[str] = []
    runs = find_runs(paths, notes)
    if not runs:
        raise FileNotFoundError(f"no finished runs (summary.json) under {', '.join(map(str, paths))}")
    out.mkdir(parents=True, exist_ok=True)
    by_ref: dict[str, Run] = {}
    for r in sorted(runs, key=lambda r: r.name):
        if r.method == "standalone" and r.summary.get("reference_key"):
            by_ref.setdefault(r.summary["reference_key"], r)
    settings: dict[tuple, dict[tuple, dict[str, Cell]]] = {}
    for r in sorted(runs, key=lambda r: (r.setting, r.row_key, r.partition, r.seed, r.name)):
        cells = settings.setdefault(r.setting, {}).setdefault(r.row_key, {})
        cell = cells.setdefault(r.partition, Cell([]))
        twin = [o for o in cell.runs if o.seed == r.seed]
        if twin:
            notes.append(f"{r.name} and {twin[0].name} share method, partition and seed {r.seed}: both are averaged "
                         "into one cell (report their folders separately to tell them apart)")
        cell.runs.append(r)
    for r in runs:
        if not r.summary.get("rho_available") and r.method != "standalone":
            rho, state = rho_of(r, by_ref)
            if state != NO_REFERENCE:
                notes.append(f"{r.name}: rho computed by the report from standalone run "
                              f"{by_ref[r.summary['reference_key']].name} (the run finished before it)")

    can_plot = figures and _have_matplotlib()
    if figures and not can_plot:
        msg = "figures skipped: matplotlib is not installed (pip install matplotlib, or fedfair[plot])"
        print(f"fedfair.report: {msg}", file=sys.stderr)
        notes.append(msg)

    md: list[str] = [f"# {title or 'fedfair results'}", ""]
    if command:
        md += ["Generated by:", "", "```", " ".join(command), "```", ""]
    md += [f"{len(runs)} runs from {', '.join(f'`{p}`' for p in paths)}.", "",
           "Accuracy: every table uses `test_acc` (each agent's model after its last reward: the fairness "
           "outcome) except the `local_acc` variant of Table 1 (each agent's model after local training in the final "
           "round, before upload: what the paper's FedAvg rows show). Values are means over seeds (± sd when "
           "several seeds); ρ values are ×100. Undefined ρ (zero variance) is shown as `undefined`, never 0.", ""]
    all_tables: dict[str, list[dict[str, Any]]] = {}
    written: dict[str, Any] = {"markdown": out / "report.md", "csv": [], "figures": []}
    for setting in sorted(settings):
        dataset, agents, rounds = setting
        grid = settings[setting]
        seeds = sorted({r.seed for cells in grid.values() for c in cells.values() for r in c.runs})
        md += [f"## {dataset}, {agents} agents, {rounds} rounds (seeds: {', '.join(map(str, seeds))})", ""]
        for t in build_tables(setting, grid, by_ref):
            md += [t.markdown(), ""]
            all_tables.setdefault(t.key, []).extend(t.records)
        if can_plot:
            try:
                figs = make_figures(setting, grid, out, notes)
            except Exception as e:  # a figure must never cost the tables
                notes.append(f"figures for {dataset} {agents} agents failed: {type(e).__name__}: {e}")
                figs = []
            if figs:
                md += ["**Figures** (lowest seed of each cell)", ""]
                for caption, name in figs:
                    md += [f"![{caption}]({name})", "", f"*{caption}*", ""]
                    written["figures"].append(out / name)
    if fig1 is not None:
        rows = read_fig1(fig1)
        md += ["## Fig. 1: ψ against the exact CGSV", "",
               f"From `{fig1}` (benchmarks/fig1_psi_vs_exact.py; {fig1_variant(rows)}): normalised ℓ1/ℓ2 distance "
               "between ψ (and, where recorded, permutation sampling at ψ's budget of coalition evaluations) and the "
               "exact CGSV φ (each normalised to sum 1), and the time of one valuation, mean over trials.", "",
               fig1_table(rows), ""]
        if can_plot:
            plot_fig1(rows, out / "fig1_psi_vs_exact.png")
            md += ["![Fig. 1: ψ vs exact CGSV](fig1_psi_vs_exact.png)", ""]
            written["figures"].append(out / "fig1_psi_vs_exact.png")

    run_records = []
    for r in sorted(runs, key=lambda r: (r.setting, r.row_key, r.partition, r.seed, r.name)):
        rho, state = rho_of(r, by_ref) if r.method != "standalone" else (_num(r.summary.get("rho")), "ok")
        rec = {"run": r.name, "path": str(r.path), "label": row_label(r.row_key)}
        rec.update({k: r.summary.get(k) for k in RUN_FIELDS})
        rec["rho"] = rho
        rec["rho_state"] = state if rho is None else "ok"
        lm, lx = local_mean_max(r)
        rec["mean_local_acc"], rec["max_local_acc"] = lm, lx
        run_records.append(rec)
    md += ["## Runs", "", "| run | method | partition | seed | mean acc | max acc | rho | rho_r | wall s |",
           "|---|---|---|---|---|---|---|---|---|"]

    def g(x: Any, d: int = 2, state: str = UNDEFINED) -> str:
        return state if _num(x) is None else f"{float(x):.{d}f}"

    for rec in run_records:
        md.append(f"| {rec['run']} | {rec['label']} | {rec['partition']} | {rec['seed']} | {g(rec['mean_acc'], 4)} | "
                  f"{g(rec['max_acc'], 4)} | {g(rec['rho'], 2, rec['rho_state'])} | {g(rec['rho_r'])} | "
                  f"{g(rec['wall_s'], 1, MISSING)} |")
    md.append("")
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]

    (out / "report.md").write_text("\n".join(md))
    write_csv(out / "runs.csv", run_records)
    written["csv"].append(out / "runs.csv")
    for key, records in all_tables.items():
        write_csv(out / f"{key}.csv", records)
        written["csv"].append(out / f"{key}.csv")
    written["notes"] = notes
    return written


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m fedfair.report", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("logdirs", nargs="+", type=Path, help="run folders, or folders holding run folders")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the first LOGDIR)")
    p.add_argument("--fig1", type=Path, default=None, help="CSV written by benchmarks/fig1_psi_vs_exact.py")
    p.add_argument("--title", default=None, help="title of report.md")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    args = p.parse_args(argv)
    out = args.out or args.logdirs[0]
    try:
        written = report(args.logdirs, out, fig1=args.fig1, title=args.title, figures=not args.no_figures,
                         command=["python", "-m", "fedfair.report", *argv])
    except FileNotFoundError as e:
        print(f"fedfair.report: error: {e}", file=sys.stderr)
        return 2
    print(f"fedfair.report: wrote {written['markdown']}, {len(written['csv'])} CSV files and "
          f"{len(written['figures'])} figures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
