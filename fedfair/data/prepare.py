"""``python -m fedfair prepare``: write per-party data files for a ``data.dataset = "files"`` run.

    python -m fedfair prepare --source breast_cancer --agents 4 --partition pow \\
        --label-noise 0,0,0,0.3 --seed 0 --out sites [--format npz|csv] [--val-size 0]

Splits a built-in data set (fedfair's, or scikit-learn's bundled breast_cancer, wine, iris) or
your own .npz/.csv file with the simulator's seeded uni/pow/cla/disjoint partitions and label noise, and
prints the config lines that point a run at the files. Same arguments, same files.
"""
from __future__ import annotations

import argparse
import sys

from . import DataError
from .shards import PARTITIONS
from .split import SOURCES, load_source, write_parties


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fedfair prepare", description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help=f"{', '.join(SOURCES)}, or a .npz (x, y) / .csv file")
    p.add_argument("--out", required=True, help="folder for party_<i>.<format>, test.<format> (and val.<format>)")
    p.add_argument("--agents", type=int, default=4, help="number of parties N (default 4)")
    p.add_argument("--partition", choices=PARTITIONS, default="uni")
    p.add_argument("--label-noise", default="",
                   help="per-party fractions of random labels, one per party (all --agents of them), e.g. 0,0,0,0.3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.2, help="stratified test share (default 0.2)")
    p.add_argument("--pool-size", type=int, default=0, help="uni/pow: samples split among parties (0 = all)")
    p.add_argument("--shard-size", type=int, default=0, help="cla, disjoint: samples per party (0 = all / N)")
    p.add_argument("--val-size", type=int, default=0, help="samples of a server validation file (cffl, eci)")
    p.add_argument("--format", choices=("npz", "csv"), default="npz")
    p.add_argument("--label-column", default="label", help="label column of .csv input and output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        noise = [float(v) for v in a.label_noise.split(",") if v.strip()]
        if noise and len(noise) != a.agents:  # a short list would leave the last parties clean without a word
            raise ValueError(f"--label-noise {a.label_noise} gives {len(noise)} fraction(s) for --agents {a.agents}: "
                             "give one per party (0 for a clean party)")
        task = load_source(a.source, a.seed, a.test_fraction, a.label_column)
        w = write_parties(task, a.out, agents=a.agents, partition=a.partition, seed=a.seed, label_noise=noise,
                          pool_size=a.pool_size or None, shard_size=a.shard_size or None, val_size=a.val_size,
                          fmt=a.format, label_column=a.label_column)
    except (DataError, ValueError, OSError) as e:
        print(f"fedfair.prepare: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    for i, (n, counts) in enumerate(zip(w.sizes, w.class_counts), start=1):
        print(f"party {i}: {n} samples, class counts {counts}")
    print(f"test: {task.num_test} samples\n\n[data]\ndataset = \"files\"\nagents = {a.agents}")
    print(f"agent_files = \"{w.agent_files}\"\ntest_file = \"{w.test_file}\"")
    if w.val_file:
        print(f"val_file = \"{w.val_file}\"")
    if a.format == "csv":
        print(f"label_column = \"{a.label_column}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
