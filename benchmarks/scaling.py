"""Round time as the number of agents grows, and where it goes: training, transport, mechanism.

For N in 2, 5, 10, 20, 40, the default job (scikit-learn digits, CLA, cgsv, β = 1; the digits
CNN has D = 6,090 parameters) runs under ``python -m torch.distributed.run`` with N + 1 ranks on
this machine, evaluating only at the final round. From server.csv and agents.csv, over the
steady rounds (the first round, a warm-up, and the final, evaluating round are left out):

- round: the server's wall time per round (``round_s``: from waiting for the uploads to
  having logged the round);
- train: the slowest agent's local training (``train_s``), and the mean over agents;
- mechanism: the server's strategy step plus encoding (``mechanism_s``);
- transport and the rest: round − train − mechanism, i.e. uploads, rewards and statistics on
  the wire, waiting for the last agent to be scheduled, decoding on the agents and the
  server's bookkeeping;
- bytes per round (up + down, all agents).

All N + 1 ranks share this machine's cores (nproc below), so an agent's training wall time
grows with N even though its work does not (on a deployment each agent has its own machine);
the server's mechanism runs while the agents wait for their rewards (blocked, not spinning).

Usage: python benchmarks/scaling.py [--agents 2 5 10 20 40] [--rounds 20] [--config configs/default.toml]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import footer, machine_header, torchrun  # noqa: E402


def run(config: str, n: int, rounds: int, out: str, overrides: list[str]) -> dict:
    name = f"scaling_{n}"
    wall = torchrun(config, n + 1, [f"data.agents={n}", f"run.rounds={rounds}", f"run.eval_every={rounds + 1000}",
                                    f"run.name={name}", f"run.out_dir={out}", "run.progress=false", *overrides])
    return {"n": n, "wall": wall, **summarise(Path(out) / name, rounds)}


def summarise(folder: Path, rounds: int) -> dict:
    """Medians over the steady rounds (2..rounds-1) of a finished run's logs."""
    with open(folder / "server.csv") as f:
        server = [r for r in csv.DictReader(f) if 1 < int(r["round"]) < rounds]
    with open(folder / "agents.csv") as f:
        agents = [r for r in csv.DictReader(f) if 1 < int(r["round"]) < rounds]

    def med(rows, key):
        return statistics.median(float(r[key]) for r in rows)

    round_s, train_s, mech_s = med(server, "round_s"), med(server, "train_s"), med(server, "mechanism_s")
    return {"round": round_s, "train": train_s, "mech": mech_s,
            "rest": statistics.median(float(r["round_s"]) - float(r["train_s"]) - float(r["mechanism_s"])
                                      for r in server),
            "agent_mean": med(agents, "train_s"),
            "bytes": med(server, "bytes_up") + med(server, "bytes_down")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 5, 10, 20, 40])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--config", default="configs/default.toml")
    parser.add_argument("--out", default="", help="keep the runs' logs here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides for every run")
    args = parser.parse_args(argv)
    print(machine_header(threads=1))
    print(f"job: {args.config}, {args.rounds} rounds (medians over rounds 2..{args.rounds - 1}), "
          f"overrides {args.overrides or 'none'}")
    print(f"{'N':>3} {'round ms':>9} {'train ms':>9} {'mech ms':>8} {'rest ms':>8} | {'train %':>7} {'mech %':>7} "
          f"{'rest %':>7} | {'agent train ms':>14} {'KB/round':>9} {'job s':>6}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedfair-scaling-") as tmp:
        for n in args.agents:
            m = run(args.config, n, args.rounds, args.out or tmp, args.overrides)
            total = m["round"]
            print(f"{n:>3} {total * 1e3:>9.1f} {m['train'] * 1e3:>9.1f} {m['mech'] * 1e3:>8.2f} {m['rest'] * 1e3:>8.1f} | "
                  f"{100 * m['train'] / total:>6.1f}% {100 * m['mech'] / total:>6.2f}% {100 * m['rest'] / total:>6.1f}% | "
                  f"{m['agent_mean'] * 1e3:>14.1f} "
                  f"{m['bytes'] / 1e3:>9.1f} {m['wall']:>6.0f}", flush=True)
    print(f"runs took {time.perf_counter() - start:.0f} s")
    print(footer())


if __name__ == "__main__":
    main()
