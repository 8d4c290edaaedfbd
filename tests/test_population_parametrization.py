"""Parametrization: names, round trips, bounds, fixed entries and the chain rule."""

import numpy as np
import pytest

from sknlme.population._parametrization import Parametrization

NAMES = ["ka", "ke", "cl", "v"]


def random_cov(rng, d):
    A = rng.normal(size=(d, d))
    return A @ A.T + 0.5 * np.eye(d)


@pytest.mark.parametrize(
    "covariance", ["diag", "cholesky", [["ka", "cl"], ["ke", "v"]], [["ke", "cl", "v"]]], ids=str
)
def test_round_trip(covariance):
    par = Parametrization(NAMES, covariance=covariance)
    rng = np.random.default_rng(0)
    cov = random_cov(rng, 4)
    # keep only the entries the structure can represent
    mask = np.zeros((4, 4), dtype=bool)
    for block in par.blocks:
        mask[np.ix_(block, block)] = True
    cov = np.where(mask, cov, 0.0)
    beta = rng.normal(size=4)
    x = par.pack(beta=beta, cov=cov)
    out = par.unpack(x)
    np.testing.assert_allclose(out["cov"], cov, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out["beta"], beta)
    np.testing.assert_allclose(par.pack(**out), x, rtol=1e-12, atol=1e-13)  # x -> cov -> x


def test_names_and_floor():
    par = Parametrization(
        NAMES,
        covariance=[["ka", "cl"]],
        random_effects=["ka", "cl", "v"],
        covariate_names=["wt", "sex"],
        covariate_effects={"wt": ["cl", "v"], "sex": "ka"},
        variance_floor=0.01,
    )
    assert par.x_names_full == [
        "ka", "ke", "cl", "v", "wt:cl", "wt:v", "sex:ka",
        "log_chol(ka)", "log_chol(cl)", "chol(cl,ka)", "log_var(v)",
    ]  # fmt: skip
    x = par.pack(beta=np.arange(4.0), cov=np.diag([1.0, 5.0, 2.0, 3.0]))
    cov = par.unpack(x)["cov"]
    assert cov[1, 1] == pytest.approx(0.01)  # ke: no random effect -> floor
    np.testing.assert_allclose(np.diag(cov), [1.0, 0.01, 2.0, 3.0])
    assert not par.diagonal
    assert Parametrization(NAMES, covariance="cholesky", random_effects=["v"]).diagonal


def test_fixed_and_bounds():
    par = Parametrization(NAMES, fixed={"ke": -1.0, "log_var(cl)": 0.5},
                          bounds={"ka": (-3.0, 3.0)})  # fmt: skip
    assert par.n_x == 6 and "ke" not in par.x_names
    lb, ub = par.bounds
    assert lb[0] == -3.0 and ub[0] == 3.0 and lb.shape == (6,)
    x = np.arange(6.0) / 10
    full = par.x_full(x)
    assert full[1] == -1.0 and full[6] == 0.5
    np.testing.assert_array_equal(par.x_free(full), x)
    with pytest.raises(ValueError, match="outside its bounds"):
        Parametrization(NAMES, fixed={"ka": 5.0}, bounds={"ka": (-3.0, 3.0)})
    with pytest.raises(ValueError, match="low < high"):
        Parametrization(NAMES, bounds={"ka": (3.0, -3.0)})
    with pytest.raises(ValueError, match=r"bounds.*\['kz'\]"):
        Parametrization(NAMES, bounds={"kz": (3.0, -3.0)})


def test_default_bounds_follow_the_data():
    lo, hi = np.array([-1.0, 0.0, 2.0, -5.0]), np.array([1.0, 4.0, 2.5, 5.0])
    par = Parametrization(NAMES, covariance="cholesky", sample_range=(lo, hi))
    lb, ub = par.bounds
    w = np.maximum(hi - lo, 1.0)  # the third parameter's draws span only 0.5
    np.testing.assert_allclose(lb[:4], lo - w / 2)
    np.testing.assert_allclose(ub[:4], hi + w / 2)
    # a covariance whose standard deviations equal the data widths is inside the bounds
    x = par.pack(beta=(lo + hi) / 2, cov=np.diag((hi - lo) ** 2))
    assert np.all((lb <= x) & (x <= ub))


def test_chain_rule_matches_finite_differences():
    """g_x = J^T g_L for a random linear functional of (beta, B, L)."""
    par = Parametrization(NAMES, covariance=[["ka", "cl", "v"]], covariate_names=["wt"],
                          covariate_effects={"wt": ["cl"]}, fixed={"chol(v,ka)": 0.2})  # fmt: skip
    rng = np.random.default_rng(1)
    Wb, WB, WL = rng.normal(size=4), rng.normal(size=(1, 4)), np.tril(rng.normal(size=(4, 4)))

    def func(x):
        beta, B, L = par.factors(x)
        return Wb @ beta + np.sum(WB * B) + np.sum(WL * L)

    x = rng.uniform(-0.5, 0.5, size=par.n_x)
    g = par.chain(x, Wb, WB, WL)
    h = 1e-6
    fd = np.array([(func(x + h * e) - func(x - h * e)) / (2 * h) for e in np.eye(par.n_x)])
    # func is linear in beta, B, off-diagonals and exp of the diagonal parameters:
    # truncation ~ h^2 |WL| e^0.5 / 6 ~ 1e-12, rounding ~ eps |func| / h ~ 1e-9
    np.testing.assert_allclose(g, fd, atol=1e-8)


def test_bad_structures():
    with pytest.raises(ValueError, match="covariance must be"):
        Parametrization(NAMES, covariance="full")
    with pytest.raises(ValueError, match="more than one"):
        Parametrization(NAMES, covariance=[["ka", "ke"], ["ke"]])
    with pytest.raises(ValueError, match="non-empty list"):
        Parametrization(NAMES, covariance=["ka"])
    with pytest.raises(ValueError, match="no covariates"):
        Parametrization(NAMES, covariate_effects={"wt": ["ka"]})
    with pytest.raises(ValueError, match="variance_floor"):
        Parametrization(NAMES, variance_floor=0.0)
    with pytest.raises(ValueError, match="unique"):
        Parametrization(["a", "a"])
