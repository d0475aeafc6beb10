"""The server's round loop (the spec's "One round, server"), written once for every method.

Each round: receive every agent's upload into one preallocated buffer, reject non-finite
uploads, let the strategy value them and decide rewards, encode each agent's reward for the
wire, move the server model, send each agent its own payload, then collect the agents'
scalars and log. ``mechanism_s`` times exactly the strategy's step plus encoding.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch

from .agent import STATS_FIELDS, is_eval_round
from ..config import Config
from .faults import maybe_fail
from .logs import RunLog, find_standalone_reference, reference_key
from ..mechanism import finite_rows
from ..metrics import pearson100
from ..strategies import RoundInput, Strategy, importance_audit
from .training import evaluate, flatten_parameters
from .transport import PeerFailure, RunAborted, ServerTransport
from .wire import SIZE_HEADER_BYTES, choose_encoding, encode, encoded_size


WIRE_DTYPE = torch.float32
"""Uploads and reward values travel as float32, also in float64 runs (see train.dtype)."""


def validation_passes(strategy: Strategy) -> int:
    """How many times the server has evaluated a model on its validation set (cffl, eci)."""
    return getattr(strategy.ctx.validation_accuracy, "calls", 0)


class Server:
    def __init__(self, cfg: Config, task, model: torch.nn.Module, strategy: Strategy,
                 transport: ServerTransport, log: RunLog | None) -> None:
        self.cfg = cfg
        self.task = task
        self.model = model
        self.w = flatten_parameters(model)
        self.dim = self.w.numel()
        self.n = cfg.data.agents
        self.strategy = strategy
        self.audit = importance_audit(strategy)  # CGSV's r beside a baseline, for ρ_r (not timed)
        self.transport = transport
        self.log = log
        # The server's exact copy of each agent's model (agents only move by the rewards sent here),
        # used for distances and by methods whose reward is "the new model minus yours".
        self.agent_models = self.w.unsqueeze(0).repeat(self.n, 1) if strategy.communicates else None
        self.totals: dict[str, float] = {"mechanism_s": 0.0, "train_s": 0.0, "bytes_up": 0, "bytes_down": 0,
                                         "bytes_down_dense": 0, "bytes_ctrl": 0, "validation_passes": 0}
        self.last: dict[str, Any] = {}
        self.start_wall = time.perf_counter()
        self.checkpointer = None  # fedfair.checkpoint.Checkpointer, set by run_rank

    # ------------------------------------------------------------------ one round
    def round(self, t: int) -> dict[str, Any]:
        cfg, n, dim = self.cfg, self.n, self.dim
        maybe_fail(0, t)
        t_round = time.perf_counter()
        self.transport.ledger.reset()
        step, payloads, encodings, rejected = None, [None] * n, [""] * n, []
        mechanism_s = 0.0
        if self.strategy.communicates:
            rows = self.transport.receive_uploads()
            valid = finite_rows(rows)  # = isfinite(rows).all(dim=1), without an N x D temporary
            if not bool(valid.all()):
                rejected = [i + 1 for i in range(n) if not valid[i]]
                print(f"fedfair: round {t}: rejected non-finite upload(s) from agent(s) {rejected}; "
                      "they get psi = 0 and no weight this round", file=sys.stderr)
                rows[~valid] = 0.0
            lr = cfg.train.lr * cfg.train.lr_decay ** (t - 1)
            # float64 training: the float32 wire rows are widened for normalising and aggregating
            inp = RoundInput(round=t, updates=rows[:, :dim].to(self.w.dtype), extras=rows[:, dim:], valid=valid,
                             server_model=self.w, agent_models=self.agent_models, lr=lr)
            t0 = time.perf_counter()
            passes_before = validation_passes(self.strategy)
            step = self.strategy.server_step(inp)
            self.totals["validation_passes"] = (self.totals.get("validation_passes", 0)
                                                + validation_passes(self.strategy) - passes_before)
            for i, rw in enumerate(step.rewards):
                rw.values = rw.values.to(WIRE_DTYPE)  # what the agent gets (a no-op in float32 runs)
                k = dim if rw.indices is None else rw.indices.numel()
                enc = cfg.comm.encoding if cfg.comm.encoding != "auto" else choose_encoding(k, dim)
                idx = rw.indices if rw.indices is not None else torch.arange(dim)
                payloads[i] = encode(idx, rw.values, dim, enc)
                encodings[i] = enc
            mechanism_s = time.perf_counter() - t0
            if self.audit is not None:
                self.audit.value(inp)
            if step.server_delta is not None:
                self.w.add_(step.server_delta)
            self.transport.send_rewards(payloads)
            for i, rw in enumerate(step.rewards):
                if rw.indices is None:
                    self.agent_models[i].add_(rw.values.to(self.agent_models.dtype))
                else:
                    self.agent_models[i].index_add_(0, rw.indices, rw.values.to(self.agent_models.dtype))
        stats = self.transport.receive_stats()
        evaluate_now = is_eval_round(cfg, t)
        if evaluate_now and self.strategy.communicates:
            test_loss, test_acc = evaluate(self.model, self.task, "test")
        else:
            test_loss, test_acc = math.nan, math.nan
        dists = (row_distances(self.agent_models, self.w)
                 if self.agent_models is not None else [math.nan] * n)

        led = self.transport.ledger
        dense_msg = SIZE_HEADER_BYTES + encoded_size("dense", dim, dim)
        train_s = float(stats[:, 0].max())
        self.totals["mechanism_s"] += mechanism_s
        self.totals["train_s"] += train_s
        self.totals["bytes_up"] += sum(led.up)
        self.totals["bytes_down"] += sum(led.down)
        self.totals["bytes_down_dense"] += dense_msg * n if self.strategy.communicates else 0
        self.totals["bytes_ctrl"] += sum(led.ctrl)

        def per_agent(x, i):
            return math.nan if x is None else float(x[i])

        cgsv_r = None
        if step is not None:
            cgsv_r = step.r if self.strategy.values_by_cgsv else (self.audit.r if self.audit is not None else None)

        agent_rows = []
        for i in range(n):
            s = dict(zip(STATS_FIELDS, stats[i].tolist()))
            rw = step.rewards[i] if step is not None else None
            row = {"round": t, "agent": i + 1,
                   "psi": per_agent(step.psi if step else None, i),
                   "r": per_agent(step.r if step else None, i),
                   "cgsv_r": per_agent(cgsv_r, i),
                   "q": per_agent(step.q if step else None, i),
                   "density": rw.density(dim) if rw is not None else 0.0,
                   "k": (dim if rw.indices is None else rw.indices.numel()) if rw is not None else 0,
                   "encoding": encodings[i], "bytes_up": led.up[i], "bytes_down": led.down[i],
                   "bytes_recv": int(s["bytes_recv"]), "valid": int(i + 1 not in rejected),
                   "test_acc": s["test_acc"], "test_loss": s["test_loss"], "local_acc": s["local_acc"],
                   "local_loss": s["local_loss"], "train_loss": s["train_loss"], "shard_loss": s["shard_loss"],
                   "dist_to_server": dists[i], "train_s": s["train_s"]}
            agent_rows.append(row)
        server_row = {"round": t, "test_acc": test_acc, "test_loss": test_loss, "mechanism_s": mechanism_s,
                      "train_s": train_s, "round_s": time.perf_counter() - t_round, "bytes_up": sum(led.up),
                      "bytes_down": sum(led.down),
                      "bytes_down_dense": dense_msg * n if self.strategy.communicates else 0,
                      "rejected": " ".join(map(str, rejected))}
        if self.log is not None:
            for row in agent_rows:
                self.log.agent_row(row)
            self.log.server_row(server_row)
        self.last = {"agents": agent_rows, "server": server_row}
        if evaluate_now:
            self.last_eval = self.last
        return self.last

    # ------------------------------------------------------------------ the run
    def run(self, start_round: int = 1) -> dict[str, Any]:
        from tqdm import tqdm

        cfg = self.cfg
        bar = tqdm(range(start_round, cfg.run.rounds + 1), disable=not cfg.run.progress, file=sys.stderr,
                   desc=f"{cfg.mechanism.method} {cfg.data.dataset}", unit="round", dynamic_ncols=True)
        for t in bar:
            try:
                out = self.round(t)
            except PeerFailure as e:
                bar.close()
                raise RunAborted(self.failure_message(e, t)) from None
            if self.checkpointer is not None and self.checkpointer.due(t):
                self.checkpointer.save(t, self.state_dict())  # every agent has saved round t: its stats came
            accs = [r["test_acc"] for r in out["agents"] if not math.isnan(r["test_acc"])]
            if accs:
                self.bar_acc = (sum(accs) / len(accs), out["server"]["test_acc"])
            mean_acc, server_acc = getattr(self, "bar_acc", (math.nan, math.nan))
            bar.set_postfix_str(f"acc agents {mean_acc:.3f} server {server_acc:.3f} | "
                                f"down {self.totals['bytes_down'] / 1e6:.2f} MB "
                                f"(dense {self.totals['bytes_down_dense'] / 1e6:.2f})")
        bar.close()
        return self.finish()

    def failure_message(self, e: PeerFailure, t: int) -> str:
        if e.kind == "timeout":
            what = (f"stopped responding in round {t}: no {e.what} within comm.timeout_s = {self.cfg.comm.timeout_s:g} s "
                    "(hung or dead, or just slower: on a loaded machine raise comm.timeout_s)")
        else:
            what = f"died in round {t}: its connection closed while the server waited for its {e.what}"
        last = self.checkpointer.describe_last() if self.checkpointer is not None else "no checkpoints"
        return f"agent {e.rank} (rank {e.rank}) {what}; {last}"

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(),
                "agent_models": None if self.agent_models is None else self.agent_models.clone(),
                "strategy": self.strategy.state_dict(),
                "audit": None if self.audit is None else self.audit.state_dict(), "totals": dict(self.totals), "last": self.last,
                "last_eval": getattr(self, "last_eval", None), "bar_acc": getattr(self, "bar_acc", None),
                "wall_s": time.perf_counter() - self.start_wall, "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w.copy_(state["w"])
        if self.agent_models is not None:
            self.agent_models.copy_(state["agent_models"])
        self.strategy.load_state_dict(state["strategy"])
        if self.audit is not None and state.get("audit") is not None:
            self.audit.load_state_dict(state["audit"])
        self.totals = dict(state["totals"])
        self.last = state["last"]
        if state["last_eval"] is not None:
            self.last_eval = state["last_eval"]
        if state["bar_acc"] is not None:
            self.bar_acc = tuple(state["bar_acc"])
        self.start_wall = time.perf_counter() - state["wall_s"]
        torch.set_rng_state(state["torch_rng"])  # an old checkpoint's "ctx_generator" held nothing: ignored

    def finish(self) -> dict[str, Any]:
        cfg = self.cfg
        last = self.last_eval
        agents = last["agents"]
        final_acc = [r["test_acc"] for r in agents]
        final_r = [r["r"] for r in agents]
        shard_loss = [r["shard_loss"] for r in agents]
        standalone = find_standalone_reference(cfg) if cfg.mechanism.method != "standalone" else final_acc
        t = self.totals
        summary = {
            "method": cfg.mechanism.method, "dataset": cfg.data.dataset, "partition": cfg.data.partition,
            "agents": cfg.data.agents, "rounds": cfg.run.rounds, "seed": cfg.run.seed,
            "beta": cfg.mechanism.beta if math.isfinite(cfg.mechanism.beta) else "inf",
            "final_acc": final_acc,
            "final_local_acc": [r["local_acc"] for r in agents],
            "final_r": final_r, "final_cgsv_r": [r["cgsv_r"] for r in agents], "final_q": [r["q"] for r in agents],
            "final_density": [r["density"] for r in agents],
            "final_shard_loss": shard_loss,
            "mean_acc": sum(final_acc) / len(final_acc), "max_acc": max(final_acc),
            "server_acc": last["server"]["test_acc"],
            "rho": pearson100(standalone, final_acc) if standalone is not None else None,
            "rho_available": standalone is not None,
            "rho_r": pearson100(final_r, final_acc),
            "rho_r_loss": pearson100(final_r, [-x for x in shard_loss]),
            # the paper's appendix: every method's ρ_r from CGSV's r on that method's uploads
            "rho_r_cgsv": pearson100([r["cgsv_r"] for r in agents], final_acc),
            "rho_r_loss_cgsv": pearson100([r["cgsv_r"] for r in agents], [-x for x in shard_loss]),
            "mechanism_s": t["mechanism_s"], "train_s": t["train_s"],
            "validation_passes": int(t.get("validation_passes", 0)),
            "overhead_ratio": t["mechanism_s"] / t["train_s"] if t["train_s"] > 0 else None,
            "bytes_up": int(t["bytes_up"]), "bytes_down": int(t["bytes_down"]),
            "bytes_down_dense": int(t["bytes_down_dense"]), "bytes_ctrl": int(t["bytes_ctrl"]),
            "wall_s": time.perf_counter() - self.start_wall,
            "reference_key": reference_key(cfg),
        }
        def no_nan(v):  # JSON has no NaN: undefined values (e.g. standalone's r and q) are null
            if isinstance(v, list):
                return [no_nan(x) for x in v]
            return None if isinstance(v, float) and math.isnan(v) else v

        summary = {k: no_nan(v) for k, v in summary.items()}
        if self.log is not None:
            self.log.write_summary(summary)
        return summary


def row_distances(models: torch.Tensor, w: torch.Tensor) -> list[float]:
    """||models[i] - w||_2 per row through one reused D-sized buffer (no N x D temporary)."""
    buf = torch.empty_like(w)
    out = []
    for row in models:
        torch.sub(row, w, out=buf)
        out.append(float(torch.linalg.vector_norm(buf)))
    return out


def agent_table(summary: dict[str, Any]) -> str:
    """The per-agent table printed at the end of a run."""
    lines = [f"{'agent':>5} {'test_acc':>8} {'local_acc':>9} {'r':>7} {'q':>6} {'density':>7}"]

    def f(x, w, p):
        return f"{'-':>{w}}" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:>{w}.{p}f}"

    for i, acc in enumerate(summary["final_acc"]):
        lines.append(f"{i + 1:>5} {f(acc, 8, 3)} {f(summary['final_local_acc'][i], 9, 3)} "
                     f"{f(summary['final_r'][i], 7, 4)} {f(summary['final_q'][i], 6, 3)} "
                     f"{f(summary['final_density'][i], 7, 3)}")

    def g(x):
        return "undefined" if x is None else f"{x:.2f}"

    lines.append(f"mean acc {summary['mean_acc']:.3f}  max acc {summary['max_acc']:.3f}  "
                 f"rho_r {g(summary['rho_r'])}  rho {g(summary['rho']) if summary['rho_available'] else 'n/a (no standalone run)'}")
    ratio = summary["overhead_ratio"]
    lines.append(f"overhead_ratio {'n/a' if ratio is None else f'{ratio:.4f}'}  "
                 f"bytes_down {summary['bytes_down']:,} (dense {summary['bytes_down_dense']:,})  "
                 f"wall {summary['wall_s']:.1f} s")
    return "\n".join(lines)
