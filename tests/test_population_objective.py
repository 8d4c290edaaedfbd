"""PopulationObjective: value vs brute force, analytic gradient vs finite differences,
invariances, dtypes and input validation."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from sknlme.population import PopulationObjective, amortized_offsets

EPS = np.finfo(float).eps
NAMES = ["a", "b", "c", "d"]


def brute_force(obj, x, samples, offsets, covariates=None):
    """Double loop over individuals and draws with scipy's multivariate normal."""
    p = obj.unpack(x)
    n, K, _ = samples.shape
    f = n * np.log(K)
    for i in range(n):
        m = p["beta"] + (0 if covariates is None else covariates[i] @ p["B"])
        mvn = multivariate_normal(m, p["cov"])
        f -= logsumexp([mvn.logpdf(samples[i, k]) + offsets[i, k] for k in range(K)])
    return f


def make_data(seed, n, K, d, p=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    samples = (rng.normal(size=(n, 1, d)) + 0.7 * rng.normal(size=(n, K, d))).astype(dtype)
    offsets = rng.normal(size=(n, K))
    covariates = rng.normal(size=(n, p))
    return samples, offsets, covariates


def random_x(obj, rng, scale=0.4):
    """A point inside the bounds: beta near the data, modest covariance parameters."""
    return obj.x_free(rng.uniform(-scale, scale, size=len(obj.x_names_full)))


def check_gradient(obj, x):
    """Central differences at steps h and h/2.

    The truncation error of D(h/2) is c h^2 / 4 + O(h^4) and D(h) - D(h/2) = 3 c h^2 / 4
    + O(h^4), so 2 |D(h) - D(h/2)| bounds it (factor 1.5 of safety). Rounding in each
    difference quotient is at most ~ 2 eps F / h, F = |f| + sum_i |log L_i| bounding the
    magnitude of the summed terms; we allow 16 eps F / h for both quotients.
    """
    f, g = obj.value_and_gradient(x)
    F = abs(f) + np.abs(obj.individual_loglik(x)).sum() + 1.0
    h = 1e-4
    for j in range(obj.n_x):
        e = np.zeros(obj.n_x)
        e[j] = 1.0
        d1 = (obj(x + h * e) - obj(x - h * e)) / (2 * h)
        d2 = (obj(x + h / 2 * e) - obj(x - h / 2 * e)) / h
        tol = 2 * abs(d1 - d2) + 16 * EPS * F / (h / 2)
        assert abs(g[j] - d2) <= tol, (obj.x_names[j], g[j], d2, tol)


COVARIANCES = ["diag", "cholesky", [["a", "c"]], [["a"], ["b", "c", "d"]]]


@pytest.mark.parametrize("covariance", COVARIANCES, ids=str)
def test_value_matches_brute_force(covariance):
    samples, offsets, cov = make_data(0, n=6, K=5, d=4, p=2)
    obj = PopulationObjective(
        samples,
        offsets,
        NAMES,
        covariance=covariance,
        random_effects=["a", "b", "c", "d"] if covariance != "diag" else ["a", "c", "d"],
        covariates=cov,
        covariate_names=["wt", "age"],
        covariate_effects={"wt": ["a", "b"], "age": ["d"]},
        fixed={"b": 0.3, "wt:b": -0.2},
    )
    assert "b" not in obj.x_names and "wt:b" not in obj.x_names
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = random_x(obj, rng)
        f_ref = brute_force(obj, x, samples, offsets, cov)
        # brute force and kernel differ only by float64 rounding of O(n K) terms
        assert obj(x) == pytest.approx(f_ref, rel=1e-12, abs=1e-10)
        check_gradient(obj, x)
    full = obj.x_full(x)
    assert full[obj.x_names_full.index("b")] == 0.3
    assert obj.unpack(x)["B"][0, 1] == -0.2


@st.composite
def problems(draw):
    n = draw(st.integers(1, 5))
    K = draw(st.integers(1, 6))
    d = draw(st.integers(1, 4))
    names = NAMES[:d]
    re_mask = draw(st.lists(st.booleans(), min_size=d, max_size=d))
    re = [p for p, m in zip(names, re_mask, strict=True) if m]
    kind = draw(st.sampled_from(["diag", "cholesky", "blocks"]))
    if kind == "blocks":
        labels = draw(st.lists(st.integers(0, 1), min_size=len(re), max_size=len(re)))
        covariance = [[p for p, lab in zip(re, labels, strict=True) if lab == b] for b in (0, 1)]
        covariance = [b for b in covariance if b]
    else:
        covariance = kind
    p = draw(st.integers(0, 2))
    effects = {}
    for c in range(p):
        targets = draw(st.lists(st.sampled_from(names), unique=True, max_size=d))
        if targets:
            effects[f"c{c}"] = targets
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**16))
    n_fixed = draw(st.integers(0, 2))
    return dict(
        n=n, K=K, d=d, re=re, covariance=covariance, p=p, effects=effects, dtype=dtype,
        seed=seed, n_fixed=n_fixed,
    )  # fmt: skip


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_gradient_matches_finite_differences(pr):
    samples, offsets, cov = make_data(pr["seed"], pr["n"], pr["K"], pr["d"], pr["p"], pr["dtype"])
    kwargs = dict(covariance=pr["covariance"], random_effects=pr["re"])
    if pr["p"]:
        kwargs.update(
            covariates=cov,
            covariate_names=[f"c{c}" for c in range(pr["p"])],
            covariate_effects=pr["effects"],
        )
    obj = PopulationObjective(samples, offsets, NAMES[: pr["d"]], **kwargs)
    rng = np.random.default_rng(pr["seed"])
    x_full = rng.uniform(-0.4, 0.4, size=len(obj.x_names_full))
    fix = rng.choice(len(x_full), size=min(pr["n_fixed"], len(x_full)), replace=False)
    fixed = {obj.x_names_full[i]: x_full[i] for i in fix}
    wide = {name: (-5.0, 5.0) for name in obj.x_names_full}  # data-driven defaults may be narrow
    obj = PopulationObjective(
        samples, offsets, NAMES[: pr["d"]], fixed=fixed, bounds=wide, **kwargs
    )
    x = obj.x_free(x_full)
    samples64 = samples.astype(np.float64)
    f_ref = brute_force(obj, x, samples64, offsets, cov if pr["p"] else None)
    assert obj(x) == pytest.approx(f_ref, rel=1e-12, abs=1e-10)
    if obj.n_x:
        check_gradient(obj, x)


def test_invariances():
    samples, offsets, cov = make_data(3, n=8, K=7, d=3, p=1)
    kw = dict(covariance="cholesky", covariates=cov, covariate_effects={"x0": ["b"]})
    obj = PopulationObjective(samples, offsets, NAMES[:3], **kw)
    x = random_x(obj, np.random.default_rng(0))
    f = obj(x)
    perm_i = np.random.default_rng(1).permutation(8)
    perm_k = np.random.default_rng(2).permutation(7)
    kw_perm = dict(kw, covariates=cov[perm_i])
    obj_i = PopulationObjective(samples[perm_i], offsets[perm_i], NAMES[:3], **kw_perm)
    obj_k = PopulationObjective(samples[:, perm_k], offsets[:, perm_k], NAMES[:3], **kw)
    # sums in a different order: a few ulps of the O(n K) summed magnitudes
    assert obj_i(x) == pytest.approx(f, rel=1e-13)
    assert obj_k(x) == pytest.approx(f, rel=1e-13)
    np.testing.assert_allclose(obj_i.gradient(x), obj.gradient(x), rtol=1e-11, atol=1e-12)
    shifted = PopulationObjective(samples, offsets + 2.5, NAMES[:3], **kw)
    assert shifted(x) == pytest.approx(f - 8 * 2.5, rel=1e-13)
    np.testing.assert_allclose(shifted.gradient(x), obj.gradient(x), rtol=1e-11, atol=1e-12)


def test_float32_and_float64_agree():
    samples, offsets, _ = make_data(4, n=30, K=20, d=3, dtype=np.float32)
    obj32 = PopulationObjective(samples, offsets, NAMES[:3])
    obj64 = PopulationObjective(samples.astype(np.float64), offsets, NAMES[:3])
    assert obj32.samples.dtype == np.float32  # no float64 copy of the draws
    np.testing.assert_array_equal(obj32.samples, samples)
    assert not obj32.samples.flags.writeable
    x = random_x(obj32, np.random.default_rng(0))
    # Same float32 values, promoted exactly to float64 before any arithmetic: the two
    # must agree to float64 rounding (far below float32's 6e-8).
    assert obj32(x) == pytest.approx(obj64(x), rel=1e-12)
    # Rounding the draws to float32 perturbs each z by ~ 6e-8 |phi| / sd, hence f by at most
    # n K max|z| 6e-8 |phi| / sd; with |phi|, |z| < 10 and sd > 0.5 that is < 0.1 * 1e-4.
    exact = make_data(4, n=30, K=20, d=3)[0]
    assert abs(PopulationObjective(exact, offsets, NAMES[:3])(x) - obj32(x)) < 0.1


def test_individual_loglik_and_weights():
    samples, offsets, _ = make_data(5, n=4, K=6, d=2)
    obj = PopulationObjective(samples, offsets, NAMES[:2], covariance="cholesky")
    x = random_x(obj, np.random.default_rng(0))
    p = obj.unpack(x)
    mvn = multivariate_normal(p["beta"], p["cov"])
    a = mvn.logpdf(samples) + offsets
    np.testing.assert_allclose(obj.individual_loglik(x), logsumexp(a, axis=1) - np.log(6))
    w = obj.weights(x)
    np.testing.assert_allclose(w, np.exp(a - logsumexp(a, axis=1, keepdims=True)), rtol=1e-12)
    assert obj.individual_loglik(x).sum() == pytest.approx(-obj(x))


def test_zero_likelihood_individual_gives_inf():
    samples, offsets, _ = make_data(6, n=3, K=4, d=2)
    offsets[1] = -np.inf
    offsets[2, :2] = -np.inf  # partly -inf: still finite
    obj = PopulationObjective(samples, offsets, NAMES[:2])
    x = random_x(obj, np.random.default_rng(0))
    assert obj(x) == np.inf
    assert np.all(obj.weights(x)[1] == 0) and np.all(obj.weights(x)[2, :2] == 0)
    ok = PopulationObjective(samples[[0, 2]], offsets[[0, 2]], NAMES[:2])
    assert np.isfinite(ok(x))
    check_gradient(ok, x)


def test_amortized_offsets_and_with_samples():
    samples, _, _ = make_data(7, n=5, K=4, d=3, dtype=np.float32)
    mean, cov = (
        np.array([0.0, 1.0, -1.0]),
        np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0, 0.1, 3]]),
    )
    c = amortized_offsets(samples, mean, cov)
    assert c.dtype == np.float64 and c.shape == (5, 4)
    ref = -multivariate_normal(mean, cov).logpdf(samples.astype(float))
    np.testing.assert_allclose(c, ref, rtol=1e-12)
    obj = PopulationObjective(samples, c, NAMES[:3], covariance=[["a", "b"]])
    x = random_x(obj, np.random.default_rng(0))
    more, _, _ = make_data(8, n=5, K=9, d=3)
    new = obj.with_samples(more, amortized_offsets(more, mean, cov))
    assert new.K == 9 and new.x_names == obj.x_names and obj.K == 4
    fresh = PopulationObjective(more, amortized_offsets(more, mean, cov), NAMES[:3],
                                covariance=[["a", "b"]])  # fmt: skip
    assert new(x) == pytest.approx(fresh(x), rel=1e-14)
    with pytest.raises(ValueError, match="3 individuals, expected 5"):
        obj.with_samples(more[:3], np.zeros((3, 9)))


def test_pypesto_problem_optimises_to_truth():
    rng = np.random.default_rng(9)
    n, K = 400, 50
    beta, sd = np.array([1.0, -2.0]), np.array([0.5, 0.2])
    phi = beta + sd * rng.normal(size=(n, 1, 2))
    # draws from q = N(phi_i, 0.1^2) with a flat training prior (c = 0): q is then the
    # normalised likelihood, L_i = N(phi_i; beta, Psi + 0.1^2 I), maximised at
    # Psi = var(phi_i) - 0.01 ~ sd^2.
    samples = (phi + 0.1 * rng.normal(size=(n, K, 2))).astype(np.float32)
    obj = PopulationObjective(samples, np.zeros((n, K)), ["a", "b"])
    problem = obj.to_pypesto_problem()
    assert list(problem.x_names) == obj.x_names
    from scipy.optimize import minimize

    fun, jac = problem.objective.get_fval, problem.objective.get_grad
    bounds = list(zip(*obj.bounds, strict=True))
    res = minimize(fun, obj.pack(cov=np.eye(2)), jac=jac, bounds=bounds, method="L-BFGS-B")
    est = obj.unpack(res.x)
    # standard errors: sqrt((sd^2 + 0.01) / n) for the means, sqrt(2 / n) (sd^2 + 0.01) for
    # the variances; allow 4 of them
    se_var = np.sqrt(2 / n) * (sd**2 + 0.01)
    assert np.all(np.abs(est["beta"] - beta) <= 4 * np.sqrt((sd**2 + 0.01) / n)), est
    assert np.all(np.abs(np.diag(est["cov"]) - sd**2) <= 4 * se_var), est


def test_bad_inputs():
    samples, offsets, cov = make_data(10, n=4, K=3, d=2, p=1)
    names = ["a", "b"]
    with pytest.raises(ValueError, match="shape"):
        PopulationObjective(samples, offsets[:, :2], names)
    with pytest.raises(ValueError, match="3 parameters|2 parameters"):
        PopulationObjective(samples, offsets, ["a", "b", "c"])
    with pytest.raises(ValueError, match="K >= 1"):
        PopulationObjective(samples[:, :0], offsets[:, :0], names)
    with pytest.raises(ValueError, match=r"random_effects.*\['z'\]"):
        PopulationObjective(samples, offsets, names, random_effects=["a", "z"])
    with pytest.raises(ValueError, match="'q'"):
        PopulationObjective(samples, offsets, names, covariates=cov, covariate_names=["wt"],
                            covariate_effects={"wt": ["q"]})  # fmt: skip
    with pytest.raises(ValueError, match="'age'"):
        PopulationObjective(samples, offsets, names, covariates=cov, covariate_names=["wt"],
                            covariate_effects={"age": ["a"]})  # fmt: skip
    with pytest.raises(ValueError, match=r"fixed.*log_var\(z\)"):
        PopulationObjective(samples, offsets, names, fixed={"log_var(z)": 0.0})
    with pytest.raises(ValueError, match="outside its bounds"):
        PopulationObjective(samples, offsets, names, fixed={"a": 1e6})
    with pytest.raises(ValueError, match="no random effect"):
        PopulationObjective(samples, offsets, names, covariance=[["a", "b"]], random_effects=["a"])
    bad = cov.copy()
    bad[2, 0] = np.nan
    df = pd.DataFrame(bad, columns=["wt"], index=pd.Index([11, 12, 13, 14], name="ID"))
    with pytest.raises(ValueError, match=r"'wt'.*row 2 \(ID 13\)"):
        PopulationObjective(samples, offsets, names, covariates=df, covariate_effects={"wt": ["a"]})
    s = samples.copy()
    s[1, 2, 0] = np.inf
    with pytest.raises(ValueError, match="individual row 1, draw 2, parameter 0"):
        PopulationObjective(s, offsets, names)
    o = offsets.copy()
    o[3, 1] = np.nan
    with pytest.raises(ValueError, match="log_offsets.*row 3, draw 1"):
        PopulationObjective(samples, o, names)
    obj = PopulationObjective(samples, offsets, names)
    with pytest.raises(ValueError, match="4 entries"):
        obj(np.zeros(3))


def test_vectorised_exp_matches_numpy():
    from sknlme.population._kernels import _exp_shifted

    x = np.concatenate([-np.linspace(0, 708, 20001), [-707.999, -708.001, -800, -np.inf, 0.0]])
    w = np.empty_like(x)
    _exp_shifted(x + 3.0, 3.0, w)  # shifted by the maximum, as in the kernels
    ref = np.exp(x)
    keep = x >= -708
    # degree-12 Taylor remainder 1.7e-16 plus a few roundings of x - n ln2 and Horner: 1e-15
    np.testing.assert_allclose(w[keep], ref[keep], rtol=1e-15, atol=0)
    assert np.all(w[~keep] == 0.0)  # below exp(-708) = 3.3e-308 weights are exactly zero


def test_non_finite_parameters_give_nan():
    samples, offsets, _ = make_data(11, n=3, K=4, d=2)
    obj = PopulationObjective(samples, offsets, NAMES[:2])
    f, g = obj.value_and_gradient(np.array([np.nan, 0.0, 0.0, 0.0]))
    assert np.isnan(f) and np.all(np.isnan(g))


@pytest.mark.parametrize("covariance", ["diag", "cholesky"])
def test_parallel_and_serial_passes_agree(monkeypatch, covariance):
    from sknlme.population import _objective

    samples, offsets, _ = make_data(12, n=301, K=17, d=3, dtype=np.float32)
    obj = PopulationObjective(samples, offsets, NAMES[:3], covariance=covariance)
    x = random_x(obj, np.random.default_rng(0))
    monkeypatch.setattr(_objective, "_SERIAL_SIZE", np.inf)
    f1, g1 = obj.value_and_gradient(x)
    monkeypatch.setattr(_objective, "_SERIAL_SIZE", 0)
    f2, g2 = obj.with_samples(samples, offsets).value_and_gradient(x)  # fresh cache
    # same terms summed in another grouping (64 chunks): a few ulps of sum |terms|
    F = np.abs(obj.individual_loglik(x)).sum()
    assert abs(f1 - f2) <= 64 * EPS * F
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-10)


def test_threads_sharing_one_objective():
    from concurrent.futures import ThreadPoolExecutor

    samples, offsets, _ = make_data(13, n=50, K=10, d=2)
    obj = PopulationObjective(samples, offsets, NAMES[:2], covariance="cholesky")
    rng = np.random.default_rng(0)
    xs = [random_x(obj, rng) for _ in range(40)]
    expected = [PopulationObjective(samples, offsets, NAMES[:2], covariance="cholesky")
                .value_and_gradient(x) for x in xs]  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(obj.value_and_gradient, xs))
    for (f, g), (fe, ge) in zip(got, expected, strict=True):
        assert f == fe
        np.testing.assert_array_equal(g, ge)


def test_gradient_at_diagonal_start_of_full_covariance():
    # at cov = diag the off-diagonal Cholesky entries are exactly 0 (L^{-1} is diagonal),
    # yet their gradient is not: the kernel must not infer the needed moments from L^{-1}
    samples, offsets, _ = make_data(14, n=20, K=8, d=3)
    samples[:, :, 1] += 0.8 * samples[:, :, 0]  # correlated draws
    obj = PopulationObjective(samples, offsets, NAMES[:3], covariance=[["a", "b"], ["c"]])
    x = obj.pack(beta=[0.1, -0.1, 0.0], cov=np.diag([1.0, 2.0, 0.5]))
    assert obj.x_full(x)[obj.x_names_full.index("chol(b,a)")] == 0.0
    assert abs(obj.gradient(x)[obj.x_names.index("chol(b,a)")]) > 1e-3
    check_gradient(obj, x)
