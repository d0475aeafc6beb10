"""Time overhead of every registered method: MNIST, 10 agents, CLA, under torchrun.

For each method in ``fedfair.strategies.REGISTRY`` the job ``configs/mnist_10_cla.toml`` runs
for a few rounds under ``python -m torch.distributed.run`` (11 ranks on this machine), with
evaluation only at the final round (``run.eval_every`` larger than the rounds). From each run:

- ``overhead_ratio`` (summary.json): Σ mechanism_s / Σ train_s, where mechanism_s is the wall
  time of the server's strategy step plus reward encoding, and train_s the slowest agent's
  local-training wall time, per round;
- the per-round median of mechanism_s and of train_s (server.csv), less sensitive to a single
  preempted round than the sums.

Beside them, the paper's Table 3 figure where the brief gives one (cosine mechanism: 0.05 at
this setting; 0.04 to 0.40 over the paper's settings; ECI up to 141x).

Then a contention-free estimate, measured in this process, interleaved, single-threaded:
fedfair's cgsv server step at N = 10 on the MNIST CNN's layer split (D = 104,242) against one
agent's local work (3 SGD steps, batch 32, MNIST CNN), as CPU time. The runtime's agents train
concurrently, each on its own core in a real deployment (ratio to one agent's work), while the
reference code trains the agents one after another in one process (ratio to N agents' work).

Target: cgsv overhead_ratio ≤ 0.01 (paper: 0.05).

Usage: python benchmarks/overhead.py [--rounds 5] [--methods cgsv fedavg ...]
                                     [--eci-rounds 1] [--eci-permutations 10] [--skip-runs]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import footer, interleaved, machine_header, make_round, model_shapes, torchrun  # noqa: E402

from fedfair.methods import NAMES as METHODS  # noqa: E402
from fedfair.strategies import REGISTRY  # noqa: E402

CONFIG = "configs/mnist_10_cla.toml"
AGENTS = 10
PAPER = {"cgsv": "0.05 (0.04-0.40 over settings)", "eci": "up to 141 (over settings)"}


def run_method(method: str, rounds: int, out: str, extra: list[str]) -> dict:
    name = f"overhead_{method}"
    wall = torchrun(CONFIG, AGENTS + 1, [f"mechanism.method={method}", f"run.rounds={rounds}",
                                         f"run.eval_every={rounds + 1000}", f"run.name={name}", "run.overwrite=true",
                                         f"run.out_dir={out}", "run.progress=false", *extra])
    return {"method": method, "rounds": rounds, "wall": wall, "extra": extra, **summarise(Path(out) / name)}


def summarise(run: Path) -> dict:
    """overhead_ratio and the per-round medians of a finished run's logs."""
    summary = json.loads((run / "summary.json").read_text())
    with open(run / "server.csv") as f:
        rows = list(csv.DictReader(f))
    mech = [float(r["mechanism_s"]) for r in rows]
    train = [float(r["train_s"]) for r in rows]
    return {"ratio": summary["overhead_ratio"], "mech_med": statistics.median(mech), "mech_min": min(mech),
            "train_med": statistics.median(train)}


def dedicated_estimate(repeats: int, batch: int = 32) -> str:
    """cgsv step vs one agent's local work, CPU time, one thread, same process, interleaved."""
    import torch.nn.functional as F
    from server_step import FedfairStep

    from fedfair.models import MnistCNN

    torch.set_num_threads(1)
    shapes = model_shapes("mnist_cnn")
    sizes = [int(torch.Size(s).numel()) for s in shapes]
    updates, r = make_round(AGENTS, sum(sizes), seed=AGENTS)
    step = FedfairStep(updates, r, sizes)
    model = MnistCNN(10, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.25)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)

    def local_work() -> None:  # what one agent does per round: 3 mini-batch SGD steps
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            F.nll_loss(model(x), y).backward()
            opt.step()

    step(), local_work()  # warm-up
    t = interleaved({"step": step, "train": local_work}, repeats)
    mech, train = t["step"][1], t["train"][1]
    return (f"contention-free (CPU time, 1 thread, min of {repeats}): cgsv server step N = {AGENTS}, "
            f"D = {sum(sizes):,}: {mech * 1e3:.2f} ms; one agent's local work (3 SGD steps, batch {batch}): "
            f"{train * 1e3:.1f} ms\n"
            f"  ratio to one agent's work (agents on their own cores): {mech / train:.4f}\n"
            f"  ratio to {AGENTS} agents' work in sequence (the reference code's loop): {mech / (AGENTS * train):.4f}\n"
            f"  ratio to {AGENTS} agents sharing this machine's {os.cpu_count()} cores: "
            f"{mech / (AGENTS * train / os.cpu_count()):.4f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--eci-rounds", type=int, default=1, help="eci is expensive by design: fewer rounds")
    parser.add_argument("--eci-permutations", type=int, default=10,
                        help="eci permutations per round for this benchmark (the config default is 50; "
                             "its cost is about linear in this)")
    parser.add_argument("--repeats", type=int, default=15, help="repeats of the contention-free estimate")
    parser.add_argument("--skip-runs", action="store_true", help="only the contention-free estimate")
    parser.add_argument("--out", default="", help="keep the runs' logs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    print(machine_header(threads=1))
    registered = list(REGISTRY)
    missing = [m for m in METHODS if m not in REGISTRY]
    print(f"registered methods: {', '.join(registered)}; missing: {', '.join(missing) or 'none'}")
    methods = args.methods or registered
    results = []
    start = time.perf_counter()
    if not args.skip_runs:
        with tempfile.TemporaryDirectory(prefix="fedfair-overhead-") as tmp:
            out = args.out or tmp
            for method in methods:
                if method not in REGISTRY:
                    print(f"{method}: not registered, skipped")
                    continue
                rounds, extra = args.rounds, []
                if method == "eci":
                    rounds, extra = args.eci_rounds, [f"mechanism.eci.permutations={args.eci_permutations}"]
                res = run_method(method, rounds, out, extra)
                results.append(res)
                print(f"  {method}: {res['wall']:.0f} s wall, overhead_ratio {res['ratio']}", flush=True)
        print(f"\n{CONFIG}, {AGENTS} agents, evaluation at the final round only; runs took "
              f"{time.perf_counter() - start:.0f} s")
        print(f"{'method':>10} {'rounds':>6} {'mech ms/round':>13} {'(min)':>7} {'train ms/round':>14} "
              f"{'overhead_ratio':>14} {'med/med':>8}   paper Table 3")
        for r in results:
            ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.4f}"
            note = " (" + " ".join(r["extra"]) + ")" if r["extra"] else ""
            print(f"{r['method']:>10} {r['rounds']:>6} {r['mech_med'] * 1e3:>13.1f} {r['mech_min'] * 1e3:>7.1f} "
                  f"{r['train_med'] * 1e3:>14.0f} {ratio:>14} {r['mech_med'] / r['train_med']:>8.4f}   "
                  f"{PAPER.get(r['method'], '-')}{note}")
        for r in results:
            if r["method"] == "cgsv" and r["ratio"] is not None:
                print(f"cgsv target overhead_ratio <= 0.01: {'met' if r['ratio'] <= 0.01 else 'NOT met'} "
                      f"({r['ratio']:.4f})")
    print()
    print(dedicated_estimate(args.repeats))
    print(footer())


if __name__ == "__main__":
    main()
