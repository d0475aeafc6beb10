"""Bytes on the wire for a real run's rewards, against the ideal for each reward's size.

Runs a short job on this machine (all ranks as local processes, ``fedfair.runtime.local.run_local``),
then reads what the server's byte ledger recorded (``agents.csv``: per round and agent, k kept
entries, the encoding chosen, ``bytes_down`` actually sent; ``summary.json``: totals).

For every download, the ideal is the smallest body any of the three encodings could have for
that k, without headers:  min(dense 4·D, index (4 + 4)·k, bitmap ⌈D/8⌉ + 4·k)  (float32 values,
int32 indices). ``bytes_down`` includes fedfair's 8-byte size header and 24-byte payload header.
Target: bytes_down / ideal ≤ 1.01 for every download.

Then the run's total download bytes against dense FedAvg downloads: ``bytes_down_dense`` (what
the same rounds cost if every agent downloaded the dense D-vector, headers included), and a
FedAvg run of the same job measured by the same ledger (``--no-fedavg`` skips it).

Usage: python benchmarks/wire.py [--config configs/default.toml] [--rounds 40] [overrides ...]
   e.g. python benchmarks/wire.py --config configs/mnist_10_cla.toml --rounds 5 run.eval_every=100
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, footer, machine_header  # noqa: E402

from fedfair.config import load_config  # noqa: E402
from fedfair.runtime.local import run_local  # noqa: E402
from fedfair.runtime.wire import HEADER_BYTES, SIZE_HEADER_BYTES, encoded_size  # noqa: E402

VALUE_BYTES = 4  # float32 rewards
INDEX_BYTES = 4  # int32 indices (D < 2^31)


def ideal_bytes(k: int, dim: int) -> int:
    """The smallest body of the three encodings for k entries of a dim-vector (no headers)."""
    return min(VALUE_BYTES * dim, (INDEX_BYTES + VALUE_BYTES) * k, math.ceil(dim / 8) + VALUE_BYTES * k)


def run_job(config: str, rounds: int, overrides: list[str], out_dir: str, name: str) -> Path:
    cfg = load_config(ROOT / config if not os.path.isabs(config) else config,
                      [f"run.rounds={rounds}", f"run.out_dir={out_dir}", f"run.name={name}", "run.progress=false",
                       "run.overwrite=true",
                       *overrides])
    run_local(cfg, timeout_s=3600)
    return Path(out_dir) / name


def analyse(run: Path) -> dict:
    """Per-download ratios to the ideal and the totals, from a finished run's logs."""
    with open(run / "agents.csv") as f:
        rows = list(csv.DictReader(f))
    with open(run / "server.csv") as f:
        server = list(csv.DictReader(f))
    summary = json.loads((run / "summary.json").read_text())
    agents = summary["agents"]
    dense_msg = int(server[0]["bytes_down_dense"]) // agents
    dim = (dense_msg - SIZE_HEADER_BYTES - HEADER_BYTES) // VALUE_BYTES
    ratios, by_encoding, mismatches, body_ratios, over = [], defaultdict(list), 0, [], []
    for row in rows:
        k, sent, encoding = int(row["k"]), int(row["bytes_down"]), row["encoding"]
        if SIZE_HEADER_BYTES + encoded_size(encoding, k, dim) != sent:
            mismatches += 1  # the ledger must count exactly the payload the codec defines
        ideal = ideal_bytes(k, dim)
        ratio = sent / ideal
        ratios.append(ratio)
        body_ratios.append((sent - SIZE_HEADER_BYTES - HEADER_BYTES) / ideal)  # the encoding choice alone
        by_encoding[encoding].append((ratio, k / dim))
        if ratio > 1.01:
            over.append(ideal)
    return {"dim": dim, "downloads": len(rows), "ratios": ratios, "by_encoding": by_encoding,
            "mismatches": mismatches, "body_ratios": body_ratios, "over": over, "summary": summary}


def report(result: dict, fedavg: dict | None) -> str:
    s = result["summary"]
    ratios = result["ratios"]
    lines = [f"D = {result['dim']:,}; {result['downloads']} downloads ({s['agents']} agents x {s['rounds']} rounds, "
             f"method {s['method']}, beta {s['beta']})",
             f"{'encoding':>9} {'downloads':>9} {'density min..max':>17} {'bytes/ideal min':>15} "
             f"{'mean':>8} {'max':>8}"]
    for encoding, items in sorted(result["by_encoding"].items()):
        r = [x for x, _ in items]
        d = [x for _, x in items]
        lines.append(f"{encoding:>9} {len(items):>9} {min(d):>8.3f}..{max(d):<8.3f} {min(r):>15.5f} "
                     f"{sum(r) / len(r):>8.5f} {max(r):>8.5f}")
    worst = max(ratios)
    lines.append(f"{'all':>9} {len(ratios):>9} {'':>17} {min(ratios):>15.5f} {sum(ratios) / len(ratios):>8.5f} "
                 f"{worst:>8.5f}   target <= 1.01: {'met' if worst <= 1.01 else 'NOT met'}")
    header = SIZE_HEADER_BYTES + HEADER_BYTES
    if result["over"]:
        lines.append(f"over 1.01: {len(result['over'])} downloads, ideal bodies {min(result['over']):,}.."
                     f"{max(result['over']):,} bytes, where the fixed {header}-byte headers exceed 1% "
                     f"(the bound holds for ideal bodies >= {100 * header:,} bytes)")
    body = result["body_ratios"]
    lines.append(f"headers excluded (the encoding choice alone): body/ideal min {min(body):.5f} max {max(body):.5f}")
    lines.append(f"ledger vs codec size: {result['mismatches']} mismatching downloads")
    down, dense = s["bytes_down"], s["bytes_down_dense"]
    lines.append(f"total bytes_down {down:,} vs dense downloads {dense:,}: {down / dense:.3f} of dense "
                 f"({dense / down:.2f}x fewer bytes)")
    if fedavg is not None:
        fs = fedavg["summary"]
        lines.append(f"fedavg run of the same job, measured: bytes_down {fs['bytes_down']:,} "
                     f"(its bytes_down_dense {fs['bytes_down_dense']:,}); "
                     f"cgsv / fedavg = {down / fs['bytes_down']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.toml")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-fedavg", action="store_true", help="skip the FedAvg run")
    parser.add_argument("--out", default="", help="keep the runs' logs here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides for both runs")
    args = parser.parse_args(argv)
    print(machine_header())
    print(f"job: {args.config}, {args.rounds} rounds, overrides {args.overrides or 'none'}")
    with tempfile.TemporaryDirectory(prefix="fedfair-wire-") as tmp:
        out = args.out or tmp
        result = analyse(run_job(args.config, args.rounds, args.overrides, out, "wire_cgsv"))
        fedavg = None
        if not args.no_fedavg:
            fedavg = analyse(run_job(args.config, args.rounds, [*args.overrides, "mechanism.method=fedavg"], out,
                                     "wire_fedavg"))
    print(report(result, fedavg))
    print(footer())


if __name__ == "__main__":
    main()
