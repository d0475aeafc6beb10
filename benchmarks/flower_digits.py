"""The scaling benchmark's task in Flower's simulation engine, for a side-by-side comparison.

Same task as ``benchmarks/scaling.py`` runs in fedfair: scikit-learn's 8x8 digits (pixels /16,
standardised with the training split's mean/std, stratified 80/20 split), a UNI partition of
the training split over N clients, fedfair's digits CNN (D = 6,090; its definition is copied
below so this script needs no fedfair import), 3 SGD steps of batch 32 at lr 0.3 per client
and round, FedAvg over all clients (fraction_fit = 1), no evaluation. Flower is NOT a fedfair
dependency: run this with a separate venv

    python3 -m venv /work/venvs/flower
    /work/venvs/flower/bin/pip install 'flwr[simulation]' torch==2.13.0 scikit-learn
    OMP_NUM_THREADS=1 /work/venvs/flower/bin/python benchmarks/flower_digits.py --agents 10 --rounds 20

Prints one line per run: N, rounds, wall, median seconds per round (time between successive
aggregations, rounds 2..R), total seconds.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LR, STEPS, BATCH = 0.3, 3, 32


class DigitsCNN(nn.Module):
    """fedfair.models.DigitsCNN, copied: Conv(1->16) -> pool -> Conv(16->32) -> pool -> Linear(128->10)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.log_softmax(self.fc(x.flatten(1)), dim=1)


def digits_partitions(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.int64)
    tr, _ = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    x = (x - x[tr].mean()) / x[tr].std()
    parts = np.array_split(np.random.default_rng(seed).permutation(tr), n)
    return [(x[p], y[p]) for p in parts]


def main() -> None:
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.simulation import run_simulation

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--cpus-per-client", type=float, default=1.0)
    args = p.parse_args()
    n, rounds = args.agents, args.rounds
    torch.set_num_threads(1)
    parts = digits_partitions(n)

    class Client(NumPyClient):
        def __init__(self, pid: int) -> None:
            self.x, self.y = (torch.from_numpy(a) for a in parts[pid])
            self.model = DigitsCNN()

        def fit(self, parameters, config):
            for p_, w in zip(self.model.parameters(), parameters):
                p_.data = torch.from_numpy(np.array(w))
            opt = torch.optim.SGD(self.model.parameters(), lr=LR)
            for _ in range(STEPS):
                idx = torch.randperm(len(self.y))[:BATCH]
                opt.zero_grad()
                F.nll_loss(self.model(self.x[idx]), self.y[idx]).backward()
                opt.step()
            return [p_.detach().numpy() for p_ in self.model.parameters()], len(self.y), {}

    def client_fn(context: Context):
        return Client(int(context.node_config["partition-id"])).to_client()

    marks: list[float] = []

    class TimedFedAvg(FedAvg):
        def aggregate_fit(self, server_round, results, failures):
            out = super().aggregate_fit(server_round, results, failures)
            marks.append(time.perf_counter())
            if failures:
                raise RuntimeError(f"round {server_round}: {len(failures)} clients failed")
            return out

    torch.manual_seed(0)
    init = ndarrays_to_parameters([p_.detach().numpy() for p_ in DigitsCNN().parameters()])

    def server_fn(context: Context):
        strategy = TimedFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n, min_evaluate_clients=0,
                               min_available_clients=n, initial_parameters=init)
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

    logging.getLogger("flwr").setLevel(logging.WARNING)
    start = time.perf_counter()
    run_simulation(server_app=ServerApp(server_fn=server_fn), client_app=ClientApp(client_fn=client_fn),
                   num_supernodes=n, backend_config={"client_resources": {"num_cpus": args.cpus_per_client,
                                                                           "num_gpus": 0.0}})
    total = time.perf_counter() - start
    if len(marks) != rounds:
        raise SystemExit(f"flower finished {len(marks)} of {rounds} rounds")
    per_round = statistics.median(b - a for a, b in zip(marks, marks[1:])) if rounds > 1 else total
    print(f"FLOWER N={n} rounds={rounds} per_round_s={per_round:.4f} total_s={total:.1f}", flush=True)


if __name__ == "__main__":
    main()
