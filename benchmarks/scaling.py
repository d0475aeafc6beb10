"""Round time and whole-job memory as the number of agents grows, with many agents per rank.

Each run is one torchrun job (``run.ranks`` = P ranks: the server and P - 1 ranks hosting the
N agents in blocks, ``fedfair.runtime.placement``), evaluating only at the final round,
sampled by ``benchmarks/jobmem.py`` for the whole job's peak memory (sum over its processes
of PSS, the honest number, and of RSS, which counts shared pages once per process). From
server.csv and agents.csv, medians over the steady rounds (the first round, a warm-up, and the
final, evaluating round are left out):

- round: the server's wall time per round (``round_s``: from waiting for the uploads to
  having logged the round);
- train: local training on the busiest rank: per round, the largest sum over a rank's agents
  of their ``train_s`` (a rank trains its agents one after another), as a share of the round;
- mechanism: the server's strategy step plus encoding (``mechanism_s``), as a share;
- bytes per agent per round: (bytes_up + bytes_down) / N.

All ranks share this machine's cores, so wall times grow with the machine's load: the load
average is printed with every row.

Usage: python benchmarks/scaling.py [--agents 10 100] [--ranks 3 5] [--methods cgsv fedavg]
       [--rounds 20] [--config configs/default.toml] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import PYTHON, ROOT, footer, load_average, machine_header  # noqa: E402
from jobmem import run_measured  # noqa: E402

sys.path.insert(0, str(ROOT))
from fedfair.runtime.placement import host_ranks  # noqa: E402


def run(config: str, n: int, ranks: int, method: str, rounds: int, out: str, overrides: list[str]) -> dict:
    name = f"scaling_{method}_{n}_{ranks}"
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
           "-m", "fedfair.run", "--config", config, f"data.agents={n}", f"run.ranks={ranks}", f"run.rounds={rounds}",
           f"run.eval_every={rounds + 1000}", f"run.name={name}", f"run.out_dir={out}", "run.progress=false",
           "run.overwrite=true",
           f"mechanism.method={method}", "comm.timeout_s=1800", *overrides]
    m = run_measured(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    if m["returncode"] != 0:
        tail = "\n".join(m["output"].splitlines()[-20:])
        raise RuntimeError(f"run failed ({m['returncode']}{', memory guard' if m['guarded'] else ''}): "
                           f"{' '.join(cmd)}\n{tail}")
    return {"n": n, "ranks": ranks, "method": method, "wall": m["wall_s"], "pss": m["peak_pss_mb"],
            "rss": m["peak_rss_mb"], **summarise(Path(out) / name, rounds, ranks)}


def summarise(folder: Path, rounds: int, ranks: int = 0) -> dict:
    """Medians over the steady rounds (2..rounds-1) of a finished run's logs (ranks 0 = N + 1)."""
    with open(folder / "server.csv") as f:
        server = [r for r in csv.DictReader(f) if 1 < int(r["round"]) < rounds]
    with open(folder / "agents.csv") as f:
        agents = [r for r in csv.DictReader(f) if 1 < int(r["round"]) < rounds]
    n = max(int(r["agent"]) for r in agents)
    hosts = host_ranks(n, ranks or n + 1)
    per_rank: dict[tuple[int, int], float] = defaultdict(float)
    for r in agents:
        per_rank[int(r["round"]), hosts[int(r["agent"]) - 1]] += float(r["train_s"])
    busiest: dict[int, float] = defaultdict(float)
    for (t, _), s in per_rank.items():
        busiest[t] = max(busiest[t], s)

    def med(rows, key):
        return statistics.median(float(r[key]) for r in rows)

    round_s, mech_s = med(server, "round_s"), med(server, "mechanism_s")
    return {"round": round_s, "train": statistics.median(busiest.values()), "mech": mech_s,
            "rest": statistics.median(float(r["round_s"]) - float(r["train_s"]) - float(r["mechanism_s"])
                                      for r in server),
            "agent_mean": med(agents, "train_s"),
            "bytes": med(server, "bytes_up") + med(server, "bytes_down"),
            "bytes_per_agent": (med(server, "bytes_up") + med(server, "bytes_down")) / n}


HEADER = ("| N | P | method | round ms | train % | mech % | peak PSS MB | peak RSS MB | KB/agent/round | job s "
          "| load |\n"
          "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")


def row(m: dict) -> str:
    total = m["round"]
    return (f"| {m['n']} | {m['ranks']} | {m['method']} | {total * 1e3:.1f} | {100 * m['train'] / total:.1f} | "
            f"{100 * m['mech'] / total:.2f} | {m['pss']:.0f} | {m['rss']:.0f} | {m['bytes_per_agent'] / 1e3:.1f} | "
            f"{m['wall']:.0f} | {load_average()} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--ranks", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--methods", nargs="+", default=["cgsv", "fedavg"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--config", default="configs/default.toml")
    parser.add_argument("--out", default="", help="keep the runs' logs here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides for every run")
    args = parser.parse_args(argv)
    print(machine_header(threads=1))
    print(f"job: {args.config}, {args.rounds} rounds (medians over rounds 2..{args.rounds - 1}), "
          f"overrides {args.overrides or 'none'}\n")
    print(HEADER, flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedfair-scaling-") as tmp:
        for n in args.agents:
            for ranks in args.ranks:
                for method in args.methods:
                    m = run(args.config, n, min(ranks, n + 1), method, args.rounds, args.out or tmp, args.overrides)
                    print(row(m), flush=True)
    print(f"\nruns took {time.perf_counter() - start:.0f} s")
    print(footer())


if __name__ == "__main__":
    main()
