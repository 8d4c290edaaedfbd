"""Linear compartmental PK models: the compiled closed forms against the ODEs, the models."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

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
