"""The server's round loop (the spec's "One round, server"), written once for every method.

Each round: receive every agent's upload into one preallocated buffer and reject non-finite
ones; let the strategy value them and decide the rewards, and encode each reward for the wire
(``mechanism_s`` times exactly these two); move the server model; send each agent its own
payload; collect the agents' round statistics; account the bytes; log. The server never
learns an agent's model from the agent: its copy moves only by the rewards it sends.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from ..config import Config
from ..data import TaskData
from ..mechanism import finite_rows
from ..strategies import Reward, RoundInput, ServerStep, Strategy, importance_audit
from ..strategies.valuing import ShapleyAudit
from .checkpoint import Checkpointer
from .faults import maybe_fail
from .logs import RunLog, Totals, summarize
from .participation import present_agents
from .placement import host_ranks, world_size_for
from .training import ValidationSet, evaluate, flatten_parameters, is_eval_round, lr_at
from .transport import PeerFailure, RunAborted, ServerTransport
from .wire import WIRE_DTYPE, RoundStats, dense_reward_bytes, encode_reward, split_uploads


@dataclass
class Decision:
    """The server's side of one round once the strategy has decided: what goes on the wire."""
    step: ServerStep
    valid: torch.Tensor          # N bool: False for uploads rejected as non-finite
    sent: list[Reward | None]    # each agent's reward as sent (WIRE_DTYPE values); None: absent
    payloads: list[torch.Tensor | None]
    encodings: list[str]
    mechanism_s: float
    cgsv_r: torch.Tensor | None  # CGSV's importance r (the method's own, or the audit's beside it)
    upload_norm: torch.Tensor | None  # N: ‖Δw_i‖ as received (before any normalisation; 0 if rejected)
    audit: torch.Tensor | None   # N: the round's Shapley values of validation accuracy (audit rounds only)

    @classmethod
    def empty(cls, step: ServerStep) -> Decision:
        """A round without uploads (a method that does not communicate): nothing valued, sent or timed."""
        n = len(step.rewards)
        return cls(step, torch.ones(n, dtype=torch.bool), [None] * n, [None] * n, [""] * n, 0.0, None, None, None)


class Server:
    def __init__(self, cfg: Config, task: TaskData, model: torch.nn.Module, strategy: Strategy,
                 transport: ServerTransport, log: RunLog | None, validation: ValidationSet | None = None,
                 checkpointer: Checkpointer | None = None) -> None:
        self.cfg = cfg
        self.task = task
        self.model = model
        self.w = flatten_parameters(model)
        self.dim = self.w.numel()
        self.n = cfg.data.agents
        self.strategy = strategy
        self.audit = importance_audit(strategy)  # CGSV's r beside a baseline, for ρ_r (not timed)
        self.shapley = ShapleyAudit(strategy) if cfg.mechanism.audit == "shapley" else None
        self.transport = transport
        self.log = log
        self.validation = validation
        self.checkpointer = checkpointer
        # The server's exact copy of each agent's model (agents only move by the rewards sent here),
        # used for distances and by methods whose reward is "the new model minus yours".
        self.agent_models = self.w.unsqueeze(0).repeat(self.n, 1) if strategy.communicates else None
        self.totals = Totals()
        self.hosts = host_ranks(self.n, world_size_for(self.n, cfg.run.ranks))  # agent i's rank: hosts[i - 1]
        self.last: dict[str, Any] = {}                 # the last round's rows
        self.last_eval: dict[str, Any] | None = None   # ... of the last evaluation round (the summary's)
        self.shown_acc = (math.nan, math.nan)          # mean agent and server accuracy on the progress bar
        self.start_wall = time.perf_counter()
        self.present = torch.ones(self.n, dtype=torch.bool)  # this round's sampled agents (run.participation)

    # ------------------------------------------------------------------ one round
    def round(self, t: int) -> dict[str, Any]:
        """One round, server: receive, step and encode (the decision), send, account, log."""
        maybe_fail(0, t)
        started = time.perf_counter()
        self.transport.ledger.reset()
        self.present = present_agents(self.n, self.cfg.run.participation, self.cfg.run.seed, t)
        decision = self.decide(self.receive(t)) if self.strategy.communicates else Decision.empty(
            self.strategy.server_step(None))
        if decision.step.server_delta is not None:
            self.w.add_(decision.step.server_delta)
        self.transport.send_rewards(decision.payloads)
        self.track_agents(decision.sent)
        stats = [RoundStats.from_tensor(row) for row in self.transport.receive_stats()]
        self.account(decision, stats)
        self.write(t, self.agent_rows(t, decision, stats), self.server_row(t, decision, stats, started))
        return self.last

    def receive(self, t: int) -> RoundInput:
        """Every present agent's upload (absent rows are zero); a non-finite one is rejected
        (zeroed, valid = False): ψ = 0, no weight."""
        everyone = bool(self.present.all())
        rows = self.transport.receive_uploads(None if everyone else (self.present.nonzero().flatten() + 1).tolist())
        valid = finite_rows(rows)  # = isfinite(rows).all(dim=1), without an N x D temporary
        if not bool(valid.all()):
            rejected = [i + 1 for i in range(self.n) if not valid[i]]
            print(f"fedfair: round {t}: rejected non-finite upload(s) from agent(s) {rejected}; "
                  "they get psi = 0 and no weight this round", file=sys.stderr)
            rows[~valid] = 0.0
        updates, extras = split_uploads(rows, self.dim)
        # float64 training: the float32 wire rows are widened for normalising and aggregating
        return RoundInput(round=t, updates=updates.to(self.w.dtype), extras=extras, valid=valid,
                          server_model=self.w, agent_models=self.agent_models, lr=lr_at(self.cfg.train, t),
                          present=None if everyone else self.present)

    def decide(self, inp: RoundInput) -> Decision:
        """The strategy's step and the rewards' encoding, exactly what mechanism_s times; then the audit."""
        started = time.perf_counter()
        step = self.step(inp)
        sent, payloads, encodings = self.encode(step.rewards)
        mechanism_s = time.perf_counter() - started
        return Decision(step, inp.valid, sent, payloads, encodings, mechanism_s, self.cgsv_importance(inp, step),
                        inp.updates.norm(dim=1), self.shapley_audit(inp))

    def step(self, inp: RoundInput) -> ServerStep:
        """The strategy values the uploads and decides; its validation passes are counted."""
        before = self.validation.passes if self.validation is not None else 0
        step = self.strategy.server_step(inp)
        if self.validation is not None:
            self.totals.validation_passes += self.validation.passes - before
        return step

    def encode(self, rewards: list[Reward | None]) -> tuple[list[Reward | None], list[torch.Tensor | None], list[str]]:
        """Each reward in WIRE_DTYPE (a no-op in float32 runs) and as its payload: (sent, payloads,
        encodings); an absent agent's None stays None (no payload, encoding ""). A Reward object
        given to several agents (one model version: FedAvg, q-FFL) is converted and encoded once."""
        done: dict[int, tuple[Reward, torch.Tensor, str]] = {}
        for rw in rewards:
            if rw is not None and id(rw) not in done:
                wire = Reward(rw.indices, rw.values.to(WIRE_DTYPE))
                done[id(rw)] = (wire, *encode_reward(wire.indices, wire.values, self.dim, self.cfg.comm.encoding))
        out = [(None, None, "") if rw is None else done[id(rw)] for rw in rewards]
        return [s for s, _, _ in out], [p for _, p, _ in out], [e for _, _, e in out]

    def cgsv_importance(self, inp: RoundInput, step: ServerStep) -> torch.Tensor | None:
        """CGSV's r for ρ_r: the method's own, or the audit's, valued on the same uploads (not timed)."""
        if self.strategy.values_by_cgsv:
            return step.r
        if self.audit is None:
            return None
        self.audit.value(inp)
        return self.audit.r

    def shapley_audit(self, inp: RoundInput) -> torch.Tensor | None:
        """On audit rounds, the exact Shapley values of the round's validation accuracy (not timed;
        its validation passes are counted apart, as audit_passes)."""
        if self.shapley is None or not self.shapley.due(inp.round):
            return None
        before = self.validation.passes
        values = self.shapley.values(inp)
        self.totals.audit_passes += self.validation.passes - before
        self.totals.add_audit(values.tolist())
        return values

    def track_agents(self, sent: list[Reward | None]) -> None:
        """The server's copy of agent i moves by exactly what agent i received (absent: nothing)."""
        models = self.agent_models
        for i, rw in enumerate(sent):
            if rw is None:
                continue
            if rw.indices is None:
                models[i].add_(rw.values.to(models.dtype))
            else:
                models[i].index_add_(0, rw.indices, rw.values.to(models.dtype))

    def evaluate(self, t: int) -> tuple[float, float]:
        """(test loss, test accuracy) of the server model on evaluation rounds; NaN otherwise."""
        if is_eval_round(self.cfg.run, t) and self.strategy.communicates:
            return evaluate(self.model, self.task, "test")
        return math.nan, math.nan

    def dense_bytes(self) -> int:
        """What this round's rewards would have cost, every one (to a present agent) sent dense."""
        return dense_reward_bytes(self.dim) * int(self.present.sum()) if self.strategy.communicates else 0

    def training_time(self, stats: list[RoundStats]) -> float:
        """The round's local-training time: the slowest rank's, whose hosted agents train one after
        another (with one agent per rank, the slowest agent's)."""
        per_rank: dict[int, float] = {}
        for host, s in zip(self.hosts, stats):
            per_rank[host] = per_rank.get(host, 0.0) + s.train_s
        return max(per_rank.values())

    def account(self, decision: Decision, stats: list[RoundStats]) -> None:
        led, totals = self.transport.ledger, self.totals
        totals.mechanism_s += decision.mechanism_s
        if not math.isnan(decision.step.valuation_s):
            totals.valuation_s += decision.step.valuation_s
            totals.cosine_s += decision.step.cosine_s
        totals.train_s += self.training_time(stats)
        totals.bytes_up += sum(led.up)
        totals.bytes_down += sum(led.down)
        totals.bytes_down_dense += self.dense_bytes()
        totals.bytes_ctrl += sum(led.ctrl)
        totals.add_agent_bytes(led.up, led.down)

    def agent_rows(self, t: int, decision: Decision, stats: list[RoundStats]) -> list[dict[str, Any]]:
        """agents.csv's rows of round t (logs.AGENT_COLUMNS)."""
        led, dim, step = self.transport.ledger, self.dim, decision.step
        dists = row_distances(self.agent_models, self.w) if self.agent_models is not None else [math.nan] * self.n
        rows = []
        for i, s in enumerate(stats):
            rw = step.rewards[i]
            here = bool(self.present[i])  # absent: no ψ or q this round (r is carried), no bytes
            rows.append({
                "round": t, "agent": i + 1,
                "psi": _at(step.psi if here else None, i), "r": _at(step.r, i),
                "cgsv_r": _at(decision.cgsv_r, i),
                "q": _at(step.q if here else None, i),
                "audit": _at(decision.audit, i),
                "upload_norm": _at(decision.upload_norm if here else None, i),
                "density": rw.density(dim) if rw is not None else 0.0,
                "k": (dim if rw.indices is None else rw.indices.numel()) if rw is not None else 0,
                "encoding": decision.encodings[i], "bytes_up": led.up[i],
                "bytes_down": led.down[i], "bytes_recv": int(s.bytes_recv),
                "valid": int(bool(decision.valid[i])), "present": int(here),
                "test_acc": s.test_acc, "test_loss": s.test_loss, "local_acc": s.local_acc,
                "local_loss": s.local_loss, "train_loss": s.train_loss, "shard_loss": s.shard_loss,
                "dist_to_server": dists[i], "train_s": s.train_s})
        return rows

    def server_row(self, t: int, decision: Decision, stats: list[RoundStats], started: float) -> dict[str, Any]:
        """server.csv's row of round t (logs.SERVER_COLUMNS), with the server model's test metrics."""
        test_loss, test_acc = self.evaluate(t)
        led = self.transport.ledger
        rejected = [i + 1 for i in range(self.n) if not bool(decision.valid[i])]
        return {"round": t, "test_acc": test_acc, "test_loss": test_loss,
                "mechanism_s": decision.mechanism_s,
                "valuation_s": decision.step.valuation_s,
                "cosine_s": decision.step.cosine_s,
                "train_s": self.training_time(stats), "round_s": time.perf_counter() - started,
                "bytes_up": sum(led.up), "bytes_down": sum(led.down), "bytes_down_dense": self.dense_bytes(),
                "rejected": " ".join(map(str, rejected))}

    def write(self, t: int, agent_rows: list[dict[str, Any]], server_row: dict[str, Any]) -> None:
        if self.log is not None:
            for row in agent_rows:
                self.log.agent_row(row)
            self.log.server_row(server_row)
        self.last = {"agents": agent_rows, "server": server_row}
        if is_eval_round(self.cfg.run, t):
            self.last_eval = self.last

    # ------------------------------------------------------------------ the run
    def run(self, start_round: int = 1) -> dict[str, Any]:
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
                self.shown_acc = (sum(accs) / len(accs), out["server"]["test_acc"])
            bar.set_postfix_str(progress_text(self.shown_acc, self.totals))
        bar.close()
        return self.finish()

    def failure_message(self, e: PeerFailure, t: int) -> str:
        if e.kind == "timeout":
            what = (f"stopped responding in round {t}: no {e.what} within "
                    f"comm.timeout_s = {self.cfg.comm.timeout_s:g} s "
                    "(hung or dead, or just slower: on a loaded machine raise comm.timeout_s)")
        else:
            what = f"died in round {t}: its connection closed while the server waited for its {e.what}"
        last = self.checkpointer.describe_last() if self.checkpointer is not None else "no checkpoints"
        return f"agent {e.agent} (rank {e.rank}) {what}; {last}"

    def finish(self) -> dict[str, Any]:
        if self.last_eval is None:
            raise RuntimeError("the run ended without an evaluation round")  # the last round always evaluates
        summary = summarize(self.cfg, self.last_eval, self.totals, time.perf_counter() - self.start_wall)
        if self.log is not None:
            self.log.write_summary(summary)
        return summary

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(),
                "agent_models": None if self.agent_models is None else self.agent_models.clone(),
                "strategy": self.strategy.state_dict(),
                "audit": None if self.audit is None else self.audit.state_dict(),
                "shapley_audit": None if self.shapley is None else self.shapley.state_dict(),
                "totals": dataclasses.asdict(self.totals), "last": self.last, "last_eval": self.last_eval,
                "bar_acc": self.shown_acc, "wall_s": time.perf_counter() - self.start_wall,
                "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Also reads checkpoints of earlier versions (their "ctx_generator" held nothing: ignored)."""
        self.w.copy_(state["w"])
        if self.agent_models is not None:
            self.agent_models.copy_(state["agent_models"])
        self.strategy.load_state_dict(state["strategy"])
        if self.audit is not None and state.get("audit") is not None:
            self.audit.load_state_dict(state["audit"])
        if self.shapley is not None and state.get("shapley_audit") is not None:
            self.shapley.load_state_dict(state["shapley_audit"])
        self.totals = Totals(**state["totals"])
        self.last = state["last"]
        self.last_eval = state["last_eval"]
        if state["bar_acc"] is not None:
            self.shown_acc = tuple(state["bar_acc"])
        self.start_wall = time.perf_counter() - state["wall_s"]
        torch.set_rng_state(state["torch_rng"])


def progress_text(shown_acc: tuple[float, float], totals: Totals) -> str:
    """The progress bar's text: the last evaluation's accuracies ("-" before the first, never "nan") and bytes."""
    agents, server = ("-" if math.isnan(a) else f"{a:.3f}" for a in shown_acc)
    return (f"acc agents {agents} server {server} | down {totals.bytes_down / 1e6:.2f} MB "
            f"(dense {totals.bytes_down_dense / 1e6:.2f})")


def _at(x: torch.Tensor | None, i: int) -> float:
    """Entry i of a per-agent vector, NaN where the method does not define it."""
    return math.nan if x is None else float(x[i])


def row_distances(models: torch.Tensor, w: torch.Tensor) -> list[float]:
    """||models[i] - w||_2 per row through one reused D-sized buffer (no N x D temporary)."""
    buf = torch.empty_like(w)
    out = []
    for row in models:
        torch.sub(row, w, out=buf)
        out.append(float(torch.linalg.vector_norm(buf)))
    return out
