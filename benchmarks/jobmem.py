"""Whole-job memory: run a command and sample the summed PSS and RSS of its process tree.

RSS counts a shared page (the memory-mapped data set, torch's libraries) once in EVERY process
that maps it, so the sum of RSS over a job's ranks overstates what the job takes; PSS
(proportional set size, /proc/<pid>/smaps_rollup) charges each shared page 1/k to each of its k
users, so the sum of PSS is the job's honest footprint. Both peaks are reported (the peak of
the sum over the tree, sampled every ``interval_s``).

Usage: python benchmarks/jobmem.py -- COMMAND ...   (prints wall s, peak PSS and RSS in MB)
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def children_of(root: int) -> list[int]:
    """root and all its descendants, from the parent links in /proc/*/stat."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent.items() if ppid in set(frontier)]
        tree += frontier
    return tree


def pss_rss_kb(pid: int) -> tuple[int, int]:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0]) if rest.split() else 0
    return values.get("Pss", 0), values.get("Rss", 0)


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def run_measured(cmd: list[str], interval_s: float = 0.5, guard_mb: float = 3000.0, **popen) -> dict[str, float]:
    """Run cmd to the end; returns wall_s, peak_pss_mb, peak_rss_mb, returncode and the output.

    The machine is shared: when its available memory falls below ``guard_mb`` the job is
    killed (returncode -9, ``guarded`` True) before it can push anything else out of memory.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **popen)
    guarded = {"hit": False}
    peak = {"pss": 0, "rss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total_pss = total_rss = 0
            for pid in children_of(proc.pid):
                pss, rss = pss_rss_kb(pid)
                total_pss += pss
                total_rss += rss
            peak["pss"], peak["rss"] = max(peak["pss"], total_pss), max(peak["rss"], total_rss)
            if available_mb() < guard_mb and not guarded["hit"]:
                guarded["hit"] = True
                os.killpg(proc.pid, 9)  # the job's own session only
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    return {"wall_s": time.perf_counter() - start, "peak_pss_mb": peak["pss"] / 1024, "peak_rss_mb": peak["rss"] / 1024,
            "returncode": proc.returncode, "guarded": guarded["hit"], "output": out}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    m = run_measured(args, env=dict(os.environ))
    out = m.pop("output")
    sys.stdout.write("\n".join(line for line in out.splitlines() if "fedfair:" in line or "Error" in line) + "\n")
    sys.stdout.write(out[-1500:])
    print(f"wall {m['wall_s']:.1f} s  peak PSS {m['peak_pss_mb']:.0f} MB  peak RSS {m['peak_rss_mb']:.0f} MB  "
          f"(exit {m['returncode']})")
