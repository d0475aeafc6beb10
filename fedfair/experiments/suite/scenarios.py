"""The fairness suite's scenarios, data sets and run plan, as typed data (issue 29, item 2).

A scenario is a data split with a known answer: the order of the agents that counts as right
(``truth``), which agents are honest, and which are adversaries. A run of the plan is one
(scenario, seed) with a method: the Standalone and FedAvg baselines every cell is measured
against, or CGSV with one valuation. Overrides are dotted ``section.key=value`` texts that
fedfair.run reads; nothing here validates them against today's config, because the suite names
fields (data.feature_noise, data.copy_of, partition "disjoint", ...) that other work adds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ... import valuations
from ...methods import ACCURACY_REFERENCE, REFERENCE

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "suite"

VALUATIONS: tuple[str, ...] = valuations.NAMES
"""mechanism.valuation values the suite compares, in the registry's (and run) order: the paper's cosine first."""
COSINE = valuations.DEFAULT
BASELINES: tuple[str, ...] = (REFERENCE, ACCURACY_REFERENCE)
"""Runs every (scenario, seed) needs: Standalone (gains, ρ) and FedAvg (the server's accuracy gap)."""
VALUED_METHOD = "cgsv"

Kind = Literal["order", "adversaries", "symmetry"]


class SuiteError(ValueError):
    """A bad suite option or input: one line naming the option."""


@dataclass(frozen=True)
class Ratio:
    """A ratio of mean final r, reported beside a scenario (e.g. a copy's r over its original's)."""
    name: str
    numerator: tuple[int, ...]    # agents, 1-based
    denominator: tuple[int, ...]


@dataclass(frozen=True)
class Scenario:
    """One scenario: N agents split by ``partition``, plus the overrides that make it.

    ``truth`` is the order that counts as right (any numbers, higher = should earn more r);
    None where no order is right (symmetry, judged by r's spread). Adversaries are 1-based.
    """
    name: str
    agents: int
    partition: str
    kind: Kind
    truth: tuple[float, ...] | None
    overrides: tuple[str, ...] = ()
    adversaries: tuple[int, ...] = ()
    ratios: tuple[Ratio, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.truth is not None and len(self.truth) != self.agents:
            raise ValueError(f"scenario {self.name}: truth has {len(self.truth)} entries for {self.agents} agents")
        if any(not 1 <= a <= self.agents for a in self.adversaries):
            raise ValueError(f"scenario {self.name}: adversaries {self.adversaries} outside 1..{self.agents}")
        if "_" in self.name:
            raise ValueError(f"scenario {self.name}: no '_' in a scenario name (run names split on it)")

    @property
    def honest(self) -> tuple[int, ...]:
        """Every agent that is not an adversary (1-based): the agents whose gains must not be negative."""
        return tuple(i for i in range(1, self.agents + 1) if i not in self.adversaries)

    @property
    def sized_by_shard(self) -> bool:
        """cla and disjoint give each agent shard_size samples; uni and pow split a pool of per-agent x N."""
        return self.partition in ("cla", "disjoint")


def _list(values: list) -> str:
    return "[" + ",".join(f'"{v}"' if isinstance(v, str) else f"{v:g}" for v in values) + "]"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("cla5", 5, "cla", "order", (1, 3, 5, 7, 10), note="truth = classes held"),
    Scenario("cla10", 10, "cla", "order", tuple(range(1, 11)), note="truth = classes held"),
    Scenario("pow5", 5, "pow", "order", (1, 2, 3, 4, 5), note="truth = shard size (grows with the agent index)"),
    Scenario("labelnoise5", 5, "uni", "order", (0.8, 0.6, 0.4, 1.0, 1.0),
             (f"data.label_noise={_list([0.2, 0.4, 0.6, 0, 0])}",), note="truth = clean share"),
    Scenario("featurenoise5", 5, "uni", "order", (-0.5, -1.0, -2.0, 0.0, 0.0),
             (f"data.feature_noise={_list([0.5, 1.0, 2.0, 0, 0])}",), note="truth = -sigma"),
    Scenario("replication5", 5, "uni", "order", (1, 1, 2, 2, 2),
             (f"data.copy_of={_list([0, 1, 0, 0, 0])}", f"data.repeats={_list([1, 1, 1, 1, 2])}"),
             ratios=(Ratio("r_copy/r_original", (2,), (1,)), Ratio("r_doubled/r_3-4", (5,), (3, 4))),
             note="truth = unique data: agent 2 holds agent 1's shard, agent 5 its own twice"),
    Scenario("adversaries6", 6, "uni", "adversaries", (1, 1, 1, 0, 0, 0),
             (f"adversary.behaviours={_list(['honest', 'honest', 'honest', 'free_rider', 'scaled', 'sign_flipper'])}",),
             adversaries=(4, 5, 6), note="truth = honest; agents 4-6: free-rider, x1e4 scaler, sign-flipper"),
    Scenario("symmetry5", 5, "disjoint", "symmetry", None,
             note="two exclusive classes each: no order, judged by r's spread and gains"),
)
SCENARIO_BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}


@dataclass(frozen=True)
class DatasetProfile:
    """A data set the suite runs on: its base config and how much data an agent holds."""
    name: str
    per_agent: int          # uni/pow pool = per_agent x N; cla/disjoint shard_size = per_agent
    rounds: int             # default number of rounds
    lr_by_agents: tuple[tuple[int, float], ...] = ()  # (N, lr) where the regime changes lr with N

    @property
    def config(self) -> Path:
        return CONFIG_DIR / f"{self.name}.toml"

    def lr(self, agents: int) -> float | None:
        return dict(self.lr_by_agents).get(agents)


PROFILES: dict[str, DatasetProfile] = {
    "mnist": DatasetProfile("mnist", 600, 200, ((10, 0.25),)),
    "digits": DatasetProfile("digits", 200, 8),
}


def eval_every(rounds: int) -> int:
    """Accuracies are evaluated once, at the end (configs/suite/mnist.toml): every measure but τ uses
    the final accuracies, and τ reads r, which agents.csv logs every round."""
    return rounds


@dataclass(frozen=True)
class SuiteRun:
    """One run of the plan: a scenario and seed with a baseline or a valuation (``what``)."""
    scenario: Scenario
    what: str               # standalone | fedavg | a valuation
    seed: int
    overrides: tuple[str, ...] = field(repr=False)

    @property
    def name(self) -> str:
        return run_name(self.scenario.name, self.what, self.seed)

    @property
    def valuation(self) -> str | None:
        return None if self.what in BASELINES else self.what


def run_name(scenario: str, what: str, seed: int) -> str:
    """``<scenario>_<valuation|standalone|fedavg>_s<seed>`` (suite_spec.md)."""
    return f"{scenario}_{what}_s{seed}"


def parse_run_name(name: str) -> tuple[str, str, int] | None:
    """(scenario, valuation or baseline, seed) of a suite run's name; None for any other name."""
    scenario, _, rest = name.partition("_")
    what, sep, seed = rest.rpartition("_s")
    if scenario not in SCENARIO_BY_NAME or not sep or not seed.isdigit() or what not in (*BASELINES, *VALUATIONS):
        return None
    return scenario, what, int(seed)


def scenario_overrides(scenario: Scenario, profile: DatasetProfile, rounds: int) -> list[str]:
    """What turns the base config into this scenario (and number of rounds)."""
    size = (f"data.shard_size={profile.per_agent}" if scenario.sized_by_shard
            else f"data.pool_size={profile.per_agent * scenario.agents}")
    out = [f"run.rounds={rounds}", f"run.eval_every={eval_every(rounds)}", f"data.partition={scenario.partition}",
           f"data.agents={scenario.agents}", size]
    lr = profile.lr(scenario.agents)
    if lr is not None:
        out.append(f"train.lr={lr:g}")
    return [*out, *scenario.overrides]


def method_overrides(what: str) -> list[str]:
    """A baseline is its method; a valuation is CGSV valuing uploads by it."""
    if what in BASELINES:
        return [f"mechanism.method={what}"]
    return [f"mechanism.method={VALUED_METHOD}", f"mechanism.valuation={what}"]


def plan(profile: DatasetProfile, seeds: list[int], scenarios: list[Scenario], valuations: list[str],
         rounds: int | None = None) -> list[SuiteRun]:
    """Every run, in order: seed by seed; within a seed scenario by scenario, Standalone, FedAvg,
    then the valuations in VALUATIONS order (cosine first, gtg_shapley last)."""
    rounds = rounds or profile.rounds
    chosen = [v for v in VALUATIONS if v in valuations]
    runs: list[SuiteRun] = []
    for seed in seeds:
        for sc in scenarios:
            base = scenario_overrides(sc, profile, rounds)
            for what in (*BASELINES, *chosen):
                runs.append(SuiteRun(sc, what, seed, (*base, f"run.seed={seed}", *method_overrides(what))))
    return runs


def pick(text: str | None, known: tuple[str, ...], option: str) -> list[str]:
    """A comma-separated choice among ``known`` (None or "all" = every one), in ``known``'s order."""
    if text is None or text.strip() == "all":
        return list(known)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise SuiteError(f"{option} {text!r} is invalid: {'unknown ' + ', '.join(unknown) + '; ' if unknown else ''}"
                         f"expected a comma-separated list of {', '.join(known)}")
    return [k for k in known if k in names]


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0`` or ``--seeds 1,2``: distinct non-negative integers, in the order given."""
    try:
        seeds = [int(t) for t in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise SuiteError(f"--seeds {text!r} is invalid: expected distinct integers >= 0, e.g. 0 or 1,2")
    return seeds
