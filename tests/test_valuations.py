"""The valuations (mechanism.valuation), the norm bound and the Shapley audit, against hand
computation and brute force on tiny inputs (no process group)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from fedfair.config import ConfigError, load_config
from fedfair.mechanism import aggregate_uploads, cgsv_approx, median_norm, out_of_bounds, scheduled_bound, upload_scales
from fedfair.mechanism.valuations import (
    classwise_cosines,
    coalition_step,
    descent_cosines,
    exact_utility_shapley,
    fedce_combine,
    fedce_gradient_scores,
    fedce_normalise,
    gtg_shapley,
    loo_classwise_cosines,
    loo_cosines,
    output_layer,
    shares,
)
from fedfair.strategies import RoundInput, ServerContext, build_strategy
from fedfair.strategies.valuing import ShapleyAudit
from fedfair.valuations import NAMES

F64 = torch.float64


def cos(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def brute_shapley(utility, n: int) -> list[float]:
    """Shapley values by averaging marginals over all n! orders (independent of the subset DP)."""
    phi = [0.0] * n
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        members: list[int] = []
        before = utility(())
        for i in order:
            members.append(i)
            after = utility(tuple(sorted(members)))
            phi[i] += after - before
            before = after
    return [p / len(orders) for p in phi]


# ---------------------------------------------------------------- the pure functions

DW = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0]], dtype=F64)


def test_cosine_through_the_new_aggregation_is_cgsv_approx_bit_for_bit():
    """The seam's cosine path (aggregate_uploads, then cosine_values) is the old cgsv_approx exactly."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(6, 50, generator=g)
    w = torch.rand(6, generator=g, dtype=F64)
    for normalize in ("rescale", "clip", "none"):
        agg, psi = cgsv_approx(u, w.float(), 0.5, 1e-7, normalize)
        agg2, c, norms = aggregate_uploads(u, w.float(), 0.5, 1e-7, normalize)
        assert torch.equal(agg, agg2)
        assert torch.equal(c, w.float().to(F64) * upload_scales(norms, 0.5, 1e-7, normalize))


def test_loo_cosine_is_the_cosine_with_the_others_aggregate():
    c = torch.tensor([0.5, 0.25, 0.25], dtype=F64)
    agg = c @ DW
    psi = loo_cosines(DW, torch.linalg.vector_norm(DW, dim=1), c, agg)
    for i in range(3):
        others = sum(c[j].item() * DW[j].numpy() for j in range(3) if j != i)
        assert psi[i].item() == pytest.approx(cos(DW[i], others), abs=1e-12)


def test_loo_cosine_of_a_lone_agent_is_zero():
    """With one uploader the others' aggregate is zero: no agreement to measure."""
    rows = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=F64)
    c = torch.tensor([1.0, 0.0], dtype=F64)
    psi = loo_cosines(rows, torch.linalg.vector_norm(rows, dim=1), c, c @ rows)
    assert psi.tolist() == [0.0, 0.0]


def test_classwise_averages_the_per_class_cosines_of_weight_rows_with_bias():
    # a model with a first layer of 4 entries, then a Linear(3 -> 2): weight 2x3 (6), bias 2
    layer = output_layer([4, 6, 2], classes=2)
    assert (layer.weight_offset, layer.bias_offset, layer.fan_in) == (4, 10, 3)
    g = torch.Generator().manual_seed(1)
    u = torch.randn(3, 12, generator=g, dtype=F64)
    agg = torch.randn(12, generator=g, dtype=F64)
    psi = classwise_cosines(u, agg, layer)
    for i in range(3):
        rows = [np.r_[u[i, 4 + 3 * k: 7 + 3 * k].numpy(), u[i, 10 + k].item()] for k in range(2)]
        mean_rows = [np.r_[agg[4 + 3 * k: 7 + 3 * k].numpy(), agg[10 + k].item()] for k in range(2)]
        expected = (cos(rows[0], mean_rows[0]) + cos(rows[1], mean_rows[1])) / 2
        assert psi[i].item() == pytest.approx(expected, abs=1e-12)


def test_loo_classwise_by_hand_credits_no_agreement_with_oneself():
    """Two agents whose single class rows are orthogonal: each agrees with the aggregate (it is half
    of it: cos 1/sqrt 2) but not at all with the other agent."""
    layer = output_layer([2, 1], classes=1)      # Linear(2 -> 1): a row of 2 weights and a bias
    u = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=F64)
    c = torch.tensor([0.5, 0.5], dtype=F64)
    agg = c @ u
    assert classwise_cosines(u, agg, layer).tolist() == pytest.approx([2 ** -0.5, 2 ** -0.5])
    assert loo_classwise_cosines(u, c, agg, layer).tolist() == [0.0, 0.0]
    # a third agent along the first: agent 1 now agrees with the others (row (1, 1, 0)/3 without it)
    u3 = torch.cat([u, torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)])
    c3 = torch.full((3,), 1 / 3, dtype=F64)
    psi = loo_classwise_cosines(u3, c3, c3 @ u3, layer)
    assert psi.tolist() == pytest.approx([2 ** -0.5, 0.0, 2 ** -0.5])


def test_loo_classwise_is_classwise_against_each_agents_others_and_zero_alone():
    layer = output_layer([4, 6, 2], classes=2)
    g = torch.Generator().manual_seed(2)
    u = torch.randn(4, 12, generator=g, dtype=F64)
    c = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    agg = c @ u
    psi = loo_classwise_cosines(u, c, agg, layer)
    for i in range(4):
        brute = classwise_cosines(u[i:i + 1], agg - c[i] * u[i], layer)
        assert psi[i].item() == pytest.approx(brute.item(), abs=1e-12)
    lone = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)  # one weighted upload: without it nothing is left
    psi = loo_classwise_cosines(u, lone, lone @ u, layer)
    assert psi[0].item() == 0.0
    assert psi[1:].tolist() == pytest.approx(classwise_cosines(u[1:], u[0], layer).tolist(), abs=1e-12)


def test_classwise_needs_a_linear_output_layer_and_says_what_it_found():
    with pytest.raises(ValueError, match=r"last layer is a Linear with bias onto the 10 classes"):
        output_layer([4, 6, 2], classes=10)


def test_fedce_scores_and_modes_by_hand():
    """NVFlare's FedCE: score = max(0, 1 - mean cos); each list clipped at eps and normalised;
    plus = normalise(g + d), times = normalise(g * d)."""
    g = fedce_gradient_scores(torch.tensor([0.5, -0.5, 1.5], dtype=F64))
    assert g.tolist() == [0.5, 1.5, 0.0]
    d = torch.tensor([0.2, 0.2, 0.6], dtype=F64)
    gn = [0.5 / 2.000001, 1.5 / 2.000001, 1e-6 / 2.000001]
    assert fedce_normalise(g, 1e-6).tolist() == pytest.approx(gn)
    plus = [x + y for x, y in zip(gn, [0.2, 0.2, 0.6])]
    assert fedce_combine(g, d, "plus", 1e-6).tolist() == pytest.approx([x / sum(plus) for x in plus])
    times = [max(x * y, 1e-6) for x, y in zip(gn, [0.2, 0.2, 0.6])]  # the product is clipped at eps too
    assert fedce_combine(g, d, "times", 1e-6).tolist() == pytest.approx([x / sum(times) for x in times])
    assert fedce_combine(g, None, "gradient", 1e-6).tolist() == pytest.approx(gn)


def test_descent_cosine_is_the_cosine_with_minus_the_gradient():
    grad = torch.tensor([1.0, -1.0, 0.0], dtype=F64)
    psi = descent_cosines(DW, torch.linalg.vector_norm(DW, dim=1), grad)
    assert psi.tolist() == pytest.approx([cos(DW[i], -grad.numpy()) for i in range(3)], abs=1e-12)


def test_coalition_step_is_the_fedavg_of_the_members_normalised_uploads():
    s = torch.tensor([2.0, 0.5, 1.0], dtype=F64)
    a = torch.tensor([1.0, 3.0, 6.0], dtype=F64)
    step = coalition_step(DW, s, a, [0, 2])
    expected = (1.0 * 2.0 * DW[0] + 6.0 * 1.0 * DW[2]) / 7.0
    assert step.tolist() == pytest.approx(expected.tolist())
    assert coalition_step(DW, s, a, []).tolist() == [0.0, 0.0, 0.0]


def _game(values: dict[tuple[int, ...], float]):
    return lambda s: values[tuple(sorted(s))]


def test_exact_utility_shapley_matches_brute_force_and_is_efficient():
    rng = np.random.default_rng(3)
    table = {c: float(rng.random()) for k in range(5) for c in itertools.combinations(range(4), k)}
    phi = exact_utility_shapley(_game(table), 4)
    assert phi.tolist() == pytest.approx(brute_shapley(_game(table), 4), abs=1e-12)
    assert float(phi.sum()) == pytest.approx(table[(0, 1, 2, 3)] - table[()], abs=1e-12)


def test_gtg_is_exact_on_an_additive_game():
    """Marginals of an additive game do not depend on the order: every permutation gives φ = v."""
    v = [0.05, 0.1, 0.2, 0.0]
    phi, evals = gtg_shapley(lambda s: sum(v[i] for i in s), 4, torch.Generator().manual_seed(0), eps=0.0)
    assert phi.tolist() == pytest.approx(v, abs=1e-12)
    assert evals <= 16


def test_gtg_truncates_a_round_that_moves_the_utility_too_little():
    phi, evals = gtg_shapley(lambda s: 0.5 + 0.001 * len(s), 3, torch.Generator().manual_seed(0),
                             round_threshold=0.01)
    assert phi.tolist() == [0.0, 0.0, 0.0] and evals == 2


def test_gtg_respects_its_evaluation_budget():
    calls = []

    def utility(s):
        calls.append(s)
        return len(s) ** 1.5 / 10

    gtg_shapley(utility, 8, torch.Generator().manual_seed(0), eps=0.0, max_evals=20)
    assert len(calls) == 20 == len(set(calls))


def test_gtg_approximates_the_exact_shapley_value_of_a_nonadditive_game():
    rng = np.random.default_rng(7)
    table = {c: float(len(c) ** 0.5 + 0.1 * rng.random())
             for k in range(6) for c in itertools.combinations(range(5), k)}
    exact = exact_utility_shapley(_game(table), 5)
    phi, _ = gtg_shapley(_game(table), 5, torch.Generator().manual_seed(0), eps=0.0, min_permutations=200)
    assert phi.tolist() == pytest.approx(exact.tolist(), abs=0.02)


def test_shares_put_values_on_the_scale_of_r():
    assert shares(torch.tensor([0.02, -0.01, 0.01], dtype=F64)).tolist() == pytest.approx([0.5, -0.25, 0.25])
    assert shares(torch.zeros(3, dtype=F64)).tolist() == [0.0, 0.0, 0.0]


def test_the_scheduled_bound_and_out_of_bounds():
    norms = torch.tensor([1.0, 0.0, 3.0, 2.0, 1e4], dtype=F64)
    assert median_norm(norms) == 2.5  # the non-zero norms 1, 2, 3, 1e4
    assert median_norm(torch.zeros(3, dtype=F64)) == 0.0
    assert scheduled_bound(2.5, 0.2, 0.05) == pytest.approx(0.625)  # shrinks with the learning rate
    assert out_of_bounds(norms, 2.5, 100.0).tolist() == [False, False, False, False, True]
    assert not out_of_bounds(norms, 2.5, 0.0).any()


def test_vanished_updates_do_not_put_the_agent_still_learning_out_of_bounds():
    """Late CLA rounds of the default digits job (measured, round 200, lr 0.3 * 0.977^199): three of five
    updates at ~1e-8, two still learning; round 1's norms 0.39-1.42 (median 0.92)."""
    late = torch.tensor([1.5e-8, 2.2e-8, 2.5e-8, 1.1e-4, 1.7e-2], dtype=F64)
    bound = scheduled_bound(0.92, 0.3, 0.3 * 0.977 ** 199)
    assert not out_of_bounds(late, bound, 100.0).any()
    assert out_of_bounds(late * torch.tensor([1, 1, 1, 1, 1e4], dtype=F64), bound, 100.0).tolist()[-1]


def test_the_bound_caps_the_magnitude_keeping_rules_and_leaves_rescale_alone():
    norms = torch.tensor([1.0, 4.0, 10.0], dtype=F64)
    assert upload_scales(norms, 50.0, 0.0, "none", cap=4.0).tolist() == [1.0, 1.0, 0.4]
    assert upload_scales(norms, 3.0, 0.0, "clip", cap=4.0).tolist() == pytest.approx([1.0, 0.75, 0.3])  # min(Γ, B)
    assert upload_scales(norms, 5.0, 0.0, "clip", cap=4.0).tolist() == pytest.approx([1.0, 1.0, 0.4])
    assert torch.equal(upload_scales(norms, 2.0, 0.0, "rescale", cap=4.0), upload_scales(norms, 2.0, 0.0, "rescale"))


# ---------------------------------------------------------------- the seam in the strategy

def make(*overrides: str, n=5, dim=12, layer_sizes=None, accuracy=None, gradient=None, classes=2):
    cfg = load_config(None, [f"data.agents={n}", "data.val_size=10", *overrides])
    ctx = ServerContext(agents=n, dim=dim, layer_sizes=list(layer_sizes or [dim]), shard_sizes=[10] * n,
                        validation_accuracy=accuracy, validation_gradient=gradient, num_classes=classes)
    return build_strategy(cfg, ctx)


def round_input(updates, t=1, w=None) -> RoundInput:
    u = torch.as_tensor(updates, dtype=torch.float32)
    n, d = u.shape
    w = torch.zeros(d) if w is None else w
    return RoundInput(round=t, updates=u, extras=torch.zeros(n, 0), valid=torch.ones(n, dtype=torch.bool),
                      server_model=w, agent_models=w.repeat(n, 1), lr=0.1)


def honest_round(g: torch.Generator, n: int, d: int) -> torch.Tensor:
    direction = torch.ones(d)
    return torch.stack([direction + 0.3 * torch.randn(d, generator=g) for _ in range(n)]) * 0.01


@pytest.mark.parametrize("normalize", ["rescale", "clip", "none"])
def test_a_scaled_upload_reaches_the_r_floor_under_every_normalize_rule(normalize):
    """Item 4: with the bound, an agent that multiplies its (honest) update by 1e4 is out of
    bounds every round: no weight, ψ = −1, and r at the floor within a few rounds."""
    s = make("mechanism.norm_bound=schedule", f"mechanism.normalize={normalize}", "mechanism.grad_norm=0.5")
    g = torch.Generator().manual_seed(0)
    for t in range(1, 11):
        u = honest_round(g, 5, 12)
        u[4] *= 1e4
        step = s.server_step(round_input(u, t))
        assert step.psi[4].item() == -1.0
    assert step.r[4].item() <= 2 * 1e-3
    assert min(step.r[:4].tolist()) > 0.2


def test_without_the_bound_scaling_pays_under_none_and_the_cap_takes_it_away():
    """'none' keeps magnitudes: a 5x upload dominates the aggregate; capped at B_t (round 1's
    median norm, lr-scaled) it steps no further than that (5x is within outlier_factor: it counts)."""
    g = torch.Generator().manual_seed(1)
    first, second = honest_round(g, 5, 12), honest_round(g, 5, 12)
    second[4] = second[4] * 5
    plain = make("mechanism.normalize=none")
    bounded = make("mechanism.normalize=none", "mechanism.norm_bound=schedule")
    for s in (plain, bounded):
        s.server_step(round_input(first, 1))
    weights = bounded.aggregation_weights(round_input(second, 2))  # r after round 1
    a = plain.server_step(round_input(second, 2))
    b = bounded.server_step(round_input(second, 2))
    ref = float(torch.quantile(torch.linalg.vector_norm(first.double(), dim=1), 0.5))  # same lr both rounds
    norms = torch.linalg.vector_norm(second.double(), dim=1).tolist()
    expected = sum(float(weights[i]) * min(1.0, ref / norms[i]) * second[i].double() for i in range(5))
    assert b.server_delta.double().tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    assert float(a.server_delta.norm()) > 1.5 * float(b.server_delta.norm())
    assert b.psi[4].item() > 0  # bounded, not punished


@pytest.mark.parametrize("valuation", NAMES)
def test_every_valuation_gives_finite_psi_and_a_distribution_r(valuation):
    d = 12
    w = torch.zeros(d)

    def acc(v: torch.Tensor) -> float:  # a smooth stand-in utility of the flat model
        return float(torch.sigmoid(v.double().sum()))

    def grad(v: torch.Tensor) -> torch.Tensor:  # descent direction: +1 everywhere
        return -torch.ones(d, dtype=torch.float32)

    s = make(f"mechanism.valuation={valuation}", layer_sizes=[4, 6, 2], accuracy=acc, gradient=grad)
    g = torch.Generator().manual_seed(2)
    for t in range(1, 4):
        step = s.server_step(round_input(honest_round(g, 5, d), t, w))
        assert torch.isfinite(step.psi).all() and step.psi.abs().max() <= 1.0
        assert float(step.r.sum()) == pytest.approx(1.0)
        assert step.valuation_s >= 0 and step.cosine_s >= 0


def test_val_gradient_ranks_an_agent_that_goes_uphill_last():
    d = 6
    up = torch.ones(d)  # −∇L_val = +1: the descent direction
    u = torch.stack([up, up * 0.5 + torch.tensor([0.1, 0, 0, 0, 0, 0]), -up])
    s = make("mechanism.valuation=val_gradient", n=3, dim=d, accuracy=lambda v: 0.5,
             gradient=lambda v: -torch.ones(d))
    step = s.server_step(round_input(u))
    assert step.psi[2].item() == pytest.approx(-1.0) and step.psi[0].item() == pytest.approx(1.0)


def test_fedce_keeps_a_running_mean_of_the_loo_cosine_over_rounds():
    s = make("mechanism.valuation=fedce", "mechanism.fedce.mode=gradient", n=3, dim=3)
    rounds = [torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]]),
              torch.tensor([[1.0, 0, 0], [1.0, 0.1, 0], [0, 0, 1.0]])]
    sims = []
    for t, u in enumerate(rounds, start=1):
        weights = s.aggregation_weights(round_input(u, t)).double()
        norms = torch.linalg.vector_norm(u.double(), dim=1)
        c = weights * 0.5 / (norms + 1e-7)
        sims.append([cos(u[i], sum(c[j].item() * u[j].double().numpy() for j in range(3) if j != i))
                     for i in range(3)])
        step = s.server_step(round_input(u, t))
    mean = [(a + b) / 2 for a, b in zip(*sims)]
    scores = [max(0.0, 1 - m) for m in mean]
    clipped = [max(x, 1e-6) for x in scores]
    assert step.psi.tolist() == pytest.approx([x / sum(clipped) for x in clipped], abs=1e-6)


def test_gtg_valuation_ranks_a_harmful_upload_last():
    """U(S) = −‖w + step(S) − target‖: agents 1-2 step toward the target, agent 3 away from it."""
    target = torch.ones(4)
    u = torch.stack([target, target * 0.8, -target])
    s = make("mechanism.valuation=gtg_shapley", "mechanism.normalize=none", n=3, dim=4,
             accuracy=lambda v: -float(torch.linalg.vector_norm(v.double() - target.double())),
             gradient=lambda v: torch.zeros(4))
    step = s.server_step(round_input(u))
    assert step.psi[2].item() < 0 < step.psi[1].item() <= step.psi[0].item()


def test_the_audit_is_the_exact_shapley_value_of_the_round_game():
    """Brute force over all orders of the coalition game U(S) = utility(w + FedAvg of S's normalised
    uploads), computed here independently of the audit's code."""
    d = 5
    target = torch.tensor([1.0, 2.0, 0.0, -1.0, 0.5])

    def utility(v: torch.Tensor) -> float:
        return -float(torch.linalg.vector_norm(v.double() - target.double()))

    s = make("mechanism.audit=shapley", n=4, dim=d, accuracy=utility, gradient=lambda v: torch.zeros(d))
    g = torch.Generator().manual_seed(5)
    u = torch.randn(4, d, generator=g)
    inp = round_input(u)
    s.server_step(inp)
    phi = ShapleyAudit(s).values(inp)
    unit = u.double() * (0.5 / (torch.linalg.vector_norm(u.double(), dim=1) + 1e-7))[:, None]

    def game(members):
        step = unit[list(members)].mean(dim=0) if members else torch.zeros(d, dtype=F64)
        return utility(step)

    assert phi.tolist() == pytest.approx(brute_shapley(game, 4), abs=1e-5)
    assert float(phi.sum()) == pytest.approx(game((0, 1, 2, 3)) - game(()), abs=1e-5)


# ---------------------------------------------------------------- configuration

def test_a_validation_valuation_without_a_validation_set_stops_with_one_line():
    for v in ("val_gradient", "gtg_shapley", "fedce"):
        with pytest.raises(ConfigError, match=rf"data.val_size = 0 is invalid: mechanism.valuation = '{v}' "
                                              r"needs the server's validation set"):
            load_config("configs/default.toml", [f"mechanism.valuation={v}", "data.val_size=0", "mechanism.audit=none"])
    load_config("configs/default.toml", ["mechanism.valuation=fedce", "mechanism.fedce.mode=gradient",
                                         "data.val_size=0",
                                         "mechanism.audit=none"])
    with pytest.raises(ConfigError, match=r"mechanism.audit = 'shapley' needs the server's validation set"):
        load_config("configs/default.toml", ["mechanism.audit=shapley", "data.val_size=0"])


def test_a_valuation_is_ignored_by_a_method_that_does_not_value_and_an_unknown_one_stops_with_one_line():
    """configs/default.toml sets classwise, and `compare --methods standalone,fedavg,cgsv` runs every method
    from it: the methods that do not value uploads ignore the valuation (as they ignore beta), and need
    no validation set for it."""
    for method in ("fedavg", "standalone", "rr", "qffl"):
        cfg = load_config(None, [f"mechanism.method={method}", "mechanism.valuation=val_gradient", "data.val_size=0"])
        assert cfg.mechanism.valuation == "val_gradient"
    with pytest.raises(ConfigError, match=r"mechanism.valuation = 'shapley' is invalid: one of cosine, loo_cosine"):
        load_config(None, ["mechanism.valuation=shapley"])


def test_settings_tables_load_from_toml_and_overrides_and_round_trip(tmp_path):
    from fedfair.config import to_toml
    p = tmp_path / "c.toml"
    p.write_text('[mechanism]\nvaluation = "gtg_shapley"\n[mechanism.gtg]\nmax_evals = 12\n[data]\nval_size = 50\n')
    cfg = load_config(p, ["mechanism.gtg.eps=0.01"])
    assert (cfg.mechanism.gtg.max_evals, cfg.mechanism.gtg.eps, cfg.mechanism.gtg.last_k) == (12, 0.01, 10)
    (tmp_path / "back.toml").write_text(to_toml(cfg))
    assert load_config(tmp_path / "back.toml") == cfg
    with pytest.raises(ConfigError, match=r"unknown config key mechanism.gtg.budget"):
        load_config(None, ["mechanism.gtg.budget=3"])
    with pytest.raises(ConfigError, match=r"mechanism.fedce.mode = 'sum' is invalid: one of plus, times, gradient"):
        load_config(None, ["mechanism.fedce.mode=sum"])
    assert math.isfinite(cfg.mechanism.outlier_factor)
