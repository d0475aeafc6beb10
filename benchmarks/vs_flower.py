"""fedfair against Flower's Message API (an importable ClientApp) on the same FedAvg task, one run after
another, and the machine's floor: prints the ratios measured in this one invocation (issue 30, point 9).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vs_flower.py --task mnist --agents 100 1000 \\
        --flower-python /work/flower-venv/bin/python --flower-dir ../shared/bench/flower_mnist

For each N, one after the other on an idle box:

- **fedfair**: ``launch``-equivalent torchrun job, FedAvg, UNI, ``run.ranks = 3`` (the server and two agent
  ranks: two agents train at a time on 2 cores, as Flower's two client actors), 3 SGD steps of batch
  min(32, shard) per agent and round (lr 0.15 MNIST with the MNIST CNN, 0.3 digits with the digits CNN),
  no evaluation before the last round; the job is stopped once round R − 1 is logged (the last round
  would evaluate every agent's model on the test set, which Flower's set-up does not do), and the
  per-round time is the mean of server.csv's ``round_s`` over rounds 2..R − 1.
- **Flower**: ``<flower-dir>/run.py N --rounds R`` in Flower's own venv (Flower is not a fedfair
  dependency), the Message API with a ClientApp imported by Ray by reference; its
  ``per_round_after_first_s`` (rounds 2..R, Ray's start-up and actor creation excluded).
- **floor**: one SGD step of the same batch through the same model on one core, in CPU time of the
  stepping thread (torch on one thread; CPU time does not count the waits other processes cause, so
  the floor holds on a loaded box too; the least of 200 steps after warm-up) × the round's steps
  (3·N) / the cores: no framework can train a round faster on this box.

Prints one line per N: fedfair s/round, Flower s/round, Flower / fedfair, the floor, and each over
the floor. The machine's load average is printed with each line; measure on an idle box.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import PYTHON, load_average  # noqa: E402

TASKS = {"mnist": {"model": "mnist_cnn", "lr": 0.15, "pool": 60000},
         "digits": {"model": "digits_cnn", "lr": 0.3, "pool": 0}}
STEPS, BATCH, RANKS = 3, 32, 3


def fedfair_round_s(task: str, n: int, rounds: int, out: Path) -> float:
    """Mean round_s over rounds 2..R-1 of a fedfair FedAvg job stopped after round R-1."""
    t = TASKS[task]
    name = f"vs_flower_{task}_{n}"
    args = ["--config", "configs/default.toml", f"data.dataset={task}", f"train.model={t['model']}",
            f"train.lr={t['lr']}", "train.lr_decay=1", f"train.local_steps={STEPS}", f"train.batch_size={BATCH}",
            "data.partition=uni", f"data.agents={n}", f"run.ranks={RANKS}", f"run.rounds={rounds}",
            f"run.eval_every={rounds + 1000}", "mechanism.method=fedavg", f"run.name={name}", f"run.out_dir={out}",
            "run.progress=false", "run.overwrite=true", "comm.timeout_s=3600",
            "data.val_size=0", "mechanism.audit=none"]  # every image trains, as in Flower's app; no audit
    if t["pool"]:
        args.append(f"data.pool_size={t['pool']}")
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(RANKS),
           "-m", "fedfair.run", *args]
    log = open(out / f"{name}.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    server_csv = out / name / "server.csv"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"fedfair job ended early ({proc.returncode}); see {log.name}")
            rows = server_csv.read_text().splitlines()[1:] if server_csv.exists() else []
            if len(rows) >= rounds - 1:
                break
            time.sleep(0.5)
    finally:
        stop(proc)
        log.close()
    head = server_csv.read_text().splitlines()
    col = head[0].split(",").index("round_s")
    times = [float(line.split(",")[col]) for line in head[1:rounds - 1 + 1]][1:]  # rounds 2..R-1
    return statistics.mean(times)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun's workers run in sessions of their own, out of its group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def stop(proc: subprocess.Popen) -> None:
    """End the torchrun job and every worker: SIGTERM to torchrun (it stops its workers), then SIGKILL to
    whatever is left of the whole tree."""
    tree = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    for pid in [proc.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def flower_round_s(flower_python: str, flower_dir: str, n: int, rounds: int, out: Path) -> float:
    """Flower's per_round_after_first_s from its RESULT line."""
    p = subprocess.run([flower_python, str(Path(flower_dir) / "run.py"), str(n), "--rounds", str(rounds),
                        "--out", str(out / "flower")], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=7200)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"flower failed ({p.returncode}): {(p.stdout + p.stderr)[-2000:]}")
    return float(json.loads(lines[-1][len("RESULT "):])["per_round_after_first_s"])


def floor_round_s(task: str, n: int, cores: int) -> tuple[float, float]:
    """(one step's seconds on one core, the round's floor = step x 3N / cores) for this task's batch."""
    from fedfair.data import load_task
    from fedfair.models import build_model

    torch.set_num_threads(1)
    data = load_task(task)
    pool = TASKS[task]["pool"] or data.num_train
    batch = max(1, min(BATCH, min(pool, data.num_train) // n))
    torch.manual_seed(0)
    model = build_model(TASKS[task]["model"], data)
    opt = torch.optim.SGD(model.parameters(), lr=TASKS[task]["lr"])
    x, y = data.batch("train", torch.arange(batch))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.nll_loss(model(x), y).backward()
        opt.step()

    for _ in range(10):
        step()
    times = []
    for _ in range(200):
        t0 = time.thread_time()
        step()
        times.append(time.thread_time() - t0)
    one = min(times)
    return one, one * STEPS * n / cores


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--agents", type=int, nargs="+", required=True)
    p.add_argument("--rounds", type=int, default=5, help="rounds of each run (>= 4)")
    p.add_argument("--flower-python", required=True, help="python of a venv with flwr[simulation] and torch")
    p.add_argument("--flower-dir", required=True, help="folder with Flower's run.py and task.py (the ClientApp)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--floor-only", action="store_true", help="only the floor (no fedfair or Flower runs)")
    a = p.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="vs-flower-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"task {a.task}, FedAvg, UNI, {STEPS} steps of batch min({BATCH}, shard), fedfair run.ranks={RANKS}, "
          f"{a.rounds} rounds, {a.cores} cores; torch {torch.__version__}", flush=True)
    print("N | fedfair s/round | Flower (Message API) s/round | Flower / fedfair | floor s/round (one step "
          "s) | fedfair / floor | Flower / floor | load before", flush=True)
    if a.floor_only:
        for n in a.agents:
            step, floor = floor_round_s(a.task, n, a.cores)
            print(f"{n} | floor {floor:.3f} s/round | one step {step * 1e3:.2f} ms | load {load_average()}", flush=True)
        return 0
    for n in a.agents:
        load = load_average()
        ours = fedfair_round_s(a.task, n, a.rounds, out)
        theirs = flower_round_s(a.flower_python, a.flower_dir, n, a.rounds, out)
        step, floor = floor_round_s(a.task, n, a.cores)
        print(f"{n} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.2f} | {floor:.3f} ({step * 1e3:.2f} ms) | "
              f"{ours / floor:.2f} | {theirs / floor:.2f} | {load}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
