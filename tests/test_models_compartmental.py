"""Linear compartmental PK models: the compiled closed forms against the ODEs, the models."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from sknlme.data import IndividualRecords, make_individuals
from sknlme.models import LinearCompartmental, get_model
from sknlme.simulate import linear_pk_predict

# CL, V1, Q, V2, Q3, V3, ka, tlag, F
PK1 = [2.0, 10.0, 0, 0, 0, 0, 1.3, 0.0, 1.0]
PK2 = [2.0, 10.0, 3.0, 25.0, 0, 0, 0.9, 0.0, 1.0]
PK3 = [2.0, 10.0, 3.0, 25.0, 0.7, 60.0, 1.7, 0.0, 1.0]
PKS = {1: PK1, 2: PK2, 3: PK3}


# ------------------------------------------------------------ independent reference
def _rhs(pk, ncomp, r_depot, r_central):
    cl, v1, q2, v2, q3, v3, ka = pk[:7]
    k10, k12, k21 = cl / v1, q2 / v1, (q2 / v2 if v2 else 0.0)
    k13, k31 = q3 / v1, (q3 / v3 if v3 else 0.0)
    if ncomp < 3:
        k13 = k31 = 0.0
    if ncomp < 2:
        k12 = k21 = 0.0

    def f(t, a):
        d, c, p2, p3 = a
        return [
            -ka * d + r_depot,
            ka * d + r_central - (k10 + k12 + k13) * c + k21 * p2 + k31 * p3,
            k12 * c - k21 * p2,
            k13 * c - k31 * p3,
        ]

    return f


def ode_conc(pk, ncomp, events, times):
    """Central concentration by ``solve_ivp``; an observation is taken before events at its time.

    ``events``: dicts with ``t``, ``amt``, ``dur`` (0 bolus), ``depot`` (bool), ``reset``.
    Depot doses get the lag ``pk[7]`` and bioavailability ``pk[8]``.
    """
    actions = []  # (time, event order, reset first, kind, payload)
    for order, ev in enumerate(events):
        if ev.get("reset"):
            actions.append((ev["t"], order, 0, "reset", None))
        depot = ev.get("depot", False)
        amt = ev["amt"] * (pk[8] if depot else 1.0)
        t0 = ev["t"] + (pk[7] if depot else 0.0)
        if amt == 0:
            continue
        if ev.get("dur", 0.0) > 0:
            rate = amt / ev["dur"]
            actions.append((t0, order, 1, "rate", (depot, rate, order)))
            actions.append((t0 + ev["dur"], order, 1, "rate", (depot, -rate, order)))
        else:
            actions.append((t0, order, 1, "bolus", (depot, amt, order)))
    grid = sorted(set([a[0] for a in actions]) | set(times) | {0.0})
    state = np.zeros(4)
    rates = {}  # order -> (depot, rate)
    out = {}
    t_prev = grid[0]
    for t in grid:
        if t > t_prev:
            rd = sum(r for o, (dep, r) in rates.items() if dep)
            rc = sum(r for o, (dep, r) in rates.items() if not dep)
            sol = solve_ivp(
                _rhs(pk, ncomp, rd, rc), (t_prev, t), state, method="DOP853",
                rtol=1e-13, atol=1e-15,
            )  # fmt: skip
            state = sol.y[:, -1]
            t_prev = t
        if t in times:
            out[t] = state[1] / pk[1]
        for _, order, _, kind, payload in sorted(a for a in actions if a[0] == t):
            if kind == "reset":  # drops the state and the running infusions of earlier events
                state = np.zeros(4)
                rates = {o: v for o, v in rates.items() if o >= order}
            elif kind == "bolus":
                state[0 if payload[0] else 1] += payload[1]
            else:
                depot, r, o = payload
                if r > 0:
                    rates[o] = (depot, r)
                elif o in rates:
                    del rates[o]
    return np.array([out[t] for t in times])


def kernel_conc(pk, ncomp, events, times):
    D = max(1, len(events))
    arr = {k: np.zeros((1, D)) for k in ("t", "amt", "dur", "ii")}
    route, ss = np.zeros((1, D), np.int64), np.zeros((1, D), np.int64)
    reset = np.zeros((1, D), bool)
    for d, ev in enumerate(events):
        for k in arr:
            arr[k][0, d] = ev.get(k, 0.0)
        route[0, d] = int(ev.get("depot", False))
        ss[0, d] = ev.get("ss", 0)
        reset[0, d] = ev.get("reset", False)
    out = np.empty((1, len(times)))
    linear_pk_predict(
        np.array([pk], float), ncomp, np.array([times], float), arr["t"], arr["amt"],
        arr["dur"], route, ss, arr["ii"], reset, out,
    )  # fmt: skip
    return out[0]


def _close(a, b, rtol=1e-9):
    scale = np.max(np.abs(b))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


TIMES = [0.0, 0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 12.5, 16.0, 24.0, 30.0]


@pytest.mark.parametrize("ncomp", [1, 2, 3])
@pytest.mark.parametrize(
    "events",
    [
        [{"t": 0.0, "amt": 100.0}],  # bolus
        [{"t": 0.0, "amt": 100.0, "dur": 1.5}],  # infusion
        [{"t": 0.0, "amt": 100.0, "depot": True}],  # oral
        [{"t": 0.0, "amt": 100.0}, {"t": 8.0, "amt": 50.0, "dur": 2.0}, {"t": 12.0, "amt": 80.0}],
        [{"t": 0.0, "amt": 100.0, "depot": True}, {"t": 12.0, "amt": 100.0, "depot": True}],
        [{"t": 0.0, "amt": 100.0, "depot": True}, {"t": 2.0, "amt": 30.0}],  # oral + IV
        [{"t": 0.0, "amt": 100.0}, {"t": 5.0, "amt": 0.0, "reset": True}],  # reset only
        [
            {"t": 0.0, "amt": 100.0, "dur": 8.0},  # reset stops a running infusion
            {"t": 5.0, "amt": 40.0, "reset": True},
            {"t": 12.0, "amt": 60.0, "depot": True},
        ],
    ],
    ids=["bolus", "infusion", "oral", "mixed-iv", "oral-repeat", "oral+iv", "reset", "reset-inf"],
)
def test_kernel_matches_ode(ncomp, events):
    pk = PKS[ncomp]
    _close(kernel_conc(pk, ncomp, events, TIMES), ode_conc(pk, ncomp, events, TIMES))


@pytest.mark.parametrize("ncomp", [1, 2, 3])
def test_lag_and_bioavailability(ncomp):
    pk = list(PKS[ncomp])
    pk[7], pk[8] = 0.75, 0.6
    events = [{"t": 0.0, "amt": 100.0, "depot": True}, {"t": 12.0, "amt": 100.0, "depot": True}]
    _close(kernel_conc(pk, ncomp, events, TIMES), ode_conc(pk, ncomp, events, TIMES))


def _explicit(ev, n_rep):
    """``n_rep`` explicit repetitions of a steady-state dose ending with it."""
    return [dict(ev, t=ev["t"] - m * ev["ii"], ss=0) for m in range(n_rep - 1, -1, -1)]


@pytest.mark.parametrize("ncomp", [1, 2, 3])
@pytest.mark.parametrize(
    "dose",
    [{"amt": 100.0}, {"amt": 100.0, "dur": 2.0}, {"amt": 100.0, "depot": True}],
    ids=["bolus", "infusion", "oral"],
)
def test_steady_state_matches_many_repeated_doses(ncomp, dose):
    pk = list(PKS[ncomp])
    pk[3:6] = [pk[3] / 5, pk[4], pk[5] / 10]  # shorter terminal half-life: fewer repeats
    if dose.get("depot"):
        pk[7], pk[8] = 0.5, 0.8
    ss = dict(dose, t=200.0, ss=1, ii=12.0)
    pre = [{"t": 10.0, "amt": 500.0}]  # dropped by SS=1
    times = [200.0 + t for t in TIMES if t > 0] + [250.0]
    after = [{"t": 224.0, "amt": 50.0}]
    got = kernel_conc(pk, ncomp, pre + [ss] + after, times)
    n_rep = 40 if ncomp == 3 else 17
    want = ode_conc(pk, ncomp, _explicit(ss, n_rep) + after, times)
    _close(got, want)
    # SS=2 adds the steady state to what is there
    got2 = kernel_conc(pk, ncomp, pre + [dict(ss, ss=2)] + after, times)
    want2 = ode_conc(pk, ncomp, pre + _explicit(ss, n_rep) + after, times)
    _close(got2, want2)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.floats(0.1, 500.0),
    st.floats(0.1, 500.0),
    st.floats(0.0, 20.0),
    st.booleans(),
)
def test_linearity_and_superposition(ncomp, a1, a2, t2, depot):
    pk = PKS[ncomp]
    e1 = {"t": 0.0, "amt": a1, "depot": depot}
    e2 = {"t": t2, "amt": a2, "dur": 1.0}
    both = kernel_conc(pk, ncomp, [e1, e2], TIMES)
    one = kernel_conc(pk, ncomp, [dict(e1, amt=1.0)], TIMES)
    two = kernel_conc(pk, ncomp, [e2], TIMES)
    np.testing.assert_allclose(both, a1 * one + two, rtol=1e-12, atol=1e-12 * both.max())


# ------------------------------------------------------------------------ the models
def _records(events, times, values=None, censored=None):
    return IndividualRecords(
        times,
        np.ones(len(times)) if values is None else values,
        [e["t"] for e in events],
        [e["amt"] for e in events],
        dose_durations=[e.get("dur", 0.0) for e in events],
        dose_cmt=[e.get("cmt", 0) for e in events],
        dose_ss=[e.get("ss", 0) for e in events],
        dose_ii=[e.get("ii", 0.0) for e in events],
        dose_reset=[e.get("reset", False) for e in events],
        censored=censored,
    )


def _phi(model, pk):
    names = {"log_CL": 0, "log_V1": 1, "log_Q": 2, "log_V2": 3, "log_Q3": 4, "log_V3": 5}
    names |= {"log_ka": 6, "log_lag": 7}
    out = []
    for p in model.param_names:
        if p == "logit_F":
            out.append(np.log(pk[8] / (1 - pk[8])))
        elif p in names:
            out.append(np.log(pk[names[p]]))
        else:
            out.append(np.log(0.1))
    return np.array(out)


@pytest.mark.parametrize("ncomp", [1, 2, 3])
def test_oral_model_reads_nonmem_records(ncomp):
    model = LinearCompartmental(ncomp, "oral", lag=True, bioavailability=True)
    pk = list(PKS[ncomp])
    pk[3:6] = [pk[3] / 5, pk[4], pk[5] / 10]  # shorter terminal half-life: fewer repeats
    pk[7], pk[8] = 0.4, 0.7
    events = [
        {"t": 0.0, "amt": 100.0, "cmt": 1, "ss": 1, "ii": 12.0},
        {"t": 12.0, "amt": 100.0},  # CMT 0: the depot
        {"t": 14.0, "amt": 20.0, "cmt": 2, "dur": 1.0},  # an IV infusion
        {"t": 20.0, "amt": 0.0, "reset": True},
        {"t": 24.0, "amt": 50.0, "cmt": 2},  # an IV bolus
    ]
    times = [0.5, 1.0, 6.0, 13.0, 14.5, 18.0, 21.0, 24.5, 30.0]
    X = make_individuals([_records(events, times)])
    got = model.predict(_phi(model, pk)[None, :], X)[0, :, 0]
    ref_events = [{"t": e["t"], "amt": e["amt"], "depot": e.get("cmt", 0) < 2, **e} for e in events]
    want = kernel_conc(pk, ncomp, [dict(e, depot=e.get("cmt", 0) < 2) for e in events], times)
    explicit = _explicit(dict(ref_events[0], depot=True), 40) + ref_events[1:]
    _close(got, want)
    _close(got, ode_conc(pk, ncomp, [{**e, "ss": 0} for e in explicit], times))


def test_iv_model_takes_bolus_and_infusion():
    model = LinearCompartmental(2, "iv")
    events = [{"t": 0.0, "amt": 100.0, "dur": 2.0}, {"t": 6.0, "amt": 50.0, "cmt": 1}]
    times = [1.0, 3.0, 7.0, 12.0]
    X = make_individuals([_records(events, times)])
    _close(model.predict(_phi(model, PK2)[None], X)[0, :, 0], ode_conc(PK2, 2, events, times))


@pytest.mark.parametrize(
    ("route", "event", "message"),
    [
        ("iv", {"t": 0.0, "amt": 1.0, "cmt": 2}, "row 0: dose_cmt 2"),
        ("oral", {"t": 0.0, "amt": 1.0, "cmt": 3}, "row 0: dose_cmt 3"),
        ("oral", {"t": 0.0, "amt": 1.0, "dur": 1.0}, "infusion into the depot"),
        ("iv", {"t": 0.0, "amt": 1.0, "ss": 1}, "needs II > 0"),
        ("iv", {"t": 0.0, "amt": 1.0, "ss": 1, "ii": 2.0, "dur": 3.0}, "longer than its interval"),
    ],
)
def test_unsupported_records_are_refused(route, event, message):
    X = make_individuals([_records([event], [1.0])])
    model = LinearCompartmental(1, route)
    with pytest.raises(ValueError, match=message):
        model.predict(model.prior_mean[None], X)


def test_unsorted_events_are_refused():
    X = make_individuals([_records([{"t": 5.0, "amt": 1.0}, {"t": 1.0, "amt": 1.0}], [6.0])])
    model = LinearCompartmental(1)
    with pytest.raises(ValueError, match="dose times must be sorted"):
        model.predict(model.prior_mean[None], X)


@pytest.mark.parametrize("error", ["additive", "proportional", "combined"])
def test_likelihood_is_gaussian_with_m3_censoring(error):
    from scipy.stats import norm

    model = LinearCompartmental(1, "oral", error=error)
    times = [0.5, 2.0, 8.0, 24.0]
    values = [1.2, 1.5, 0.3, 0.05]  # the last one: LLOQ 0.05, below it
    cens = [False, False, False, True]
    X = make_individuals([_records([{"t": 0.0, "amt": 100.0}], times, values, cens)])
    phi = model.prior_mean
    f = model.predict(phi[None], X)[0, :, 0]
    sd = model.error_model.sd(f, phi[-model.error_model.n_params :])
    want = norm.logpdf(values[:3], f[:3], sd[:3]).sum() + norm.logcdf(values[3], f[3], sd[3])
    got = model.log_likelihood(phi[None, None], X)[0, 0]
    assert got == pytest.approx(want, rel=1e-10)


def test_likelihood_does_not_depend_on_the_padding():
    """An individual's likelihood alone equals its row beside a longer one.

    The kernel stops at each row's last observed sample; the padding after it (the
    last time repeated) and missing values inside and at the end must change nothing.
    """
    model = LinearCompartmental(2, "iv")
    doses = [{"t": 0.0, "amt": 100.0}, {"t": 12.0, "amt": 100.0}]
    nan = float("nan")
    short = _records(doses, [0.5, 2.0, 8.0, 10.0], [1.4, nan, 0.6, nan], [False] * 4)
    long = _records(doses[:1], np.linspace(0.25, 48.0, 12), np.full(12, 0.5), [False] * 12)
    phi = np.broadcast_to(model.prior_mean, (2, 3, model.n_params)).copy()
    phi[:, 1] += 0.3
    alone = model.log_likelihood(phi[:1], make_individuals([short]))
    padded = model.log_likelihood(phi, make_individuals([short, long]))
    np.testing.assert_allclose(padded[:1], alone, rtol=1e-12)
    assert np.all(np.isfinite(padded))


def test_parameter_names_registry_and_priors():
    m = LinearCompartmental(3, "oral", lag=True, bioavailability=True, error="combined")
    assert m.param_names == (
        "log_CL", "log_V1", "log_Q", "log_V2", "log_Q3", "log_V3", "log_ka", "log_lag",
        "logit_F", "log_a", "log_b",
    )  # fmt: skip
    assert m.error_params == ("log_a", "log_b") and m.name == "three-compartment-oral"
    assert get_model("two-compartment-iv").param_names[:4] == (
        "log_CL",
        "log_V1",
        "log_Q",
        "log_V2",
    )
    assert get_model("one-compartment-oral-trans4").name == "one-compartment-oral-trans4"
    assert np.exp(m.prior_mean[0]) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="use route='oral'"):
        LinearCompartmental(1, "iv", lag=True)
    with pytest.raises(ValueError, match="not a parameter"):
        LinearCompartmental(1, "iv", covariate_model={"log_ka": [("WT", "power", 70, 1)]})


def test_broad_training_designs():
    model = LinearCompartmental(2, "iv")
    design, cov = model.sample_design(2000, random_state=0)
    n_obs, n_doses = design.obs_mask.sum(1), design.dose_mask.sum(1)
    assert n_obs.min() == 1 and n_obs.max() == 30
    assert n_doses.min() == 1 and n_doses.max() == 20
    assert 0.1 < (design.dose_ss[:, 0] == 1).mean() < 0.3
    assert 0.4 < (design.dose_durations[:, 0] > 0).mean() < 0.6
    values = model.simulate_padded(model.sample_prior(2000, random_state=1), design, cov, 2)
    assert np.isfinite(values[design.obs_mask]).all()


def test_allometric_clearance_is_recovered_by_the_exact_likelihood():
    from scipy.optimize import minimize

    model = LinearCompartmental(
        1,
        "iv",
        error="proportional",
        covariate_model={
            "log_CL": [("WT", "power", 70.0, None)],
            "log_V1": [("WT", "power", 70.0, 1.0), ("SEX", "categorical", 1, None)],
        },
    )
    assert model.param_names == ("log_CL", "log_V1", "log_CL_WT", "log_V1_SEX", "log_b")
    rng = np.random.RandomState(0)
    n = 40
    wt = rng.uniform(40.0, 120.0, n)
    sex = rng.randint(0, 2, n).astype(float)
    truth = np.log([4.0, 40.0, 1.0, 1.0, 1.0])
    truth[2], truth[3], truth[4] = 0.75, 0.3, np.log(0.1)
    recs = [_records([{"t": 0.0, "amt": 100.0}], [0.5, 2.0, 6.0, 12.0, 24.0]) for _ in range(n)]
    design = make_individuals(recs)
    design["WT"], design["SEX"] = wt, sex
    X, _ = model.simulate(design=design, phi=np.tile(truth, (n, 1)), random_state=1)
    study = model.prepare(X)

    def nll(theta):
        phi = np.broadcast_to(theta, (n, 1, theta.size))
        return -model.log_likelihood_padded(phi, study.padded, study.covariates).sum()

    fit = minimize(nll, model.prior_mean, method="Nelder-Mead",
                   options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8})  # fmt: skip
    np.testing.assert_allclose(fit.x[:4], truth[:4], atol=0.1)
    # dropping the weight effect (exponent 0) is visibly worse
    assert nll(np.r_[fit.x[:2], 0.0, fit.x[3:]]) > fit.fun + 10


def test_kernel_speed_for_training(capsys):
    import time

    model = LinearCompartmental(2, "iv")
    design, cov = model.sample_design(20000, random_state=0)
    phi = model.sample_prior(20000, random_state=1)
    model.simulate_padded(phi[:10], design.take(np.arange(10)), None, 0)  # compile
    start = time.perf_counter()
    model.simulate_padded(phi, design, cov, 0)
    rate = 20000 / (time.perf_counter() - start)
    assert rate > 2000  # measured about 1e5 individuals/s on 2 shared cores


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-4.0, 4.0), min_size=7, max_size=7),
    st.integers(1, 3),
    st.booleans(),
)
def test_kernel_matches_matrix_exponential_over_wide_parameters(logs, ncomp, depot):
    from scipy.linalg import expm

    cl, v1, q2, v2, q3, v3, ka = np.exp(logs)
    pk = [cl, v1, q2, v2, q3, v3, ka, 0.0, 1.0]
    k = np.zeros((4, 4))  # depot, central, peripheral 2, peripheral 3
    k[0, 0], k[1, 0] = -ka, ka
    k[1, 1] = -cl / v1
    for p, (q, v) in enumerate([(q2, v2), (q3, v3)][: ncomp - 1], start=2):
        k[1, 1] -= q / v1
        k[p, 1], k[1, p], k[p, p] = q / v1, q / v, -q / v
    times = [0.05, 0.5, 2.0, 10.0, 50.0]
    want = [(expm(k * t) @ np.eye(4)[0 if depot else 1])[1] / v1 for t in times]
    got = kernel_conc(pk, ncomp, [{"t": 0.0, "amt": 1.0, "depot": depot}], times)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9 * max(want))


@pytest.mark.parametrize("rel", [0.0, 1e-7, 1e-4, 1e-2])
def test_oral_steady_state_is_stable_when_ka_equals_ke(rel):
    pk = [2.0, 10.0, 0, 0, 0, 0, 0.2 * (1 + rel), 0.0, 1.0]  # ke = 0.2
    ss = {"t": 500.0, "amt": 100.0, "depot": True, "ss": 1, "ii": 12.0}
    times = [500.5, 503.0, 510.0, 530.0]
    got = kernel_conc(pk, 1, [ss], times)
    _close(got, kernel_conc(pk, 1, _explicit(ss, 60), times), 1e-10)  # measured < 3e-12
