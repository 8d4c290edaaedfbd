"""Refinements that cannot fail silently, and the safe defaults (issue 11, items 3 and 4)."""

import warnings

import numpy as np
import pytest

from sknlme.models import LinearGaussian
from sknlme.population import (
    ImportanceObjective,
    NLMEPopulationEstimator,
    PopulationObjective,
    run_multistart,
)
from sknlme.population._multistart import successful_starts
from sknlme.posterior import ExactGaussianPosterior

C = np.array([0.5, 0.3])


class Wall:
    """A quadratic (minimum at 0.8, 0.6) that is +inf beyond x = 1 in any coordinate.

    From (-5, -5) L-BFGS-B's first trial point, the projection of x0 - g on the
    box [-10, 10]^2, is (10, 10): before the safeguard the run stopped there after
    3 evaluations at its start, reporting convergence (measured).
    """

    def __call__(self, x):
        return np.inf if np.any(x > 1.0) else float(50 * np.sum((x - C) ** 2) - 30 * np.sum(x))

    def value_and_gradient(self, x):
        return self(x), 100 * (x - C) - 30


class Spike:
    """Finite only within 1e-9 of the origin, with a large gradient: no step can succeed."""

    def __call__(self, x):
        return 0.0 if np.max(np.abs(x)) < 1e-9 else np.inf

    def value_and_gradient(self, x):
        return self(x), np.full(x.size, 5.0)


class NaNGradient:
    def __call__(self, x):
        return float(np.sum(x**2))

    def value_and_gradient(self, x):
        return self(x), np.full(x.size, np.nan)


BOX = np.full(2, -10.0), np.full(2, 10.0)


def test_refinement_backtracks_from_infinite_trial_point():
    res = run_multistart(Wall(), ["a", "b"], *BOX, np.array([[-5.0, -5.0]]))
    best = res.optimize_result[0]
    np.testing.assert_allclose(best.x, [0.8, 0.6], atol=1e-6)
    assert best.fval == pytest.approx(-33.0) and best.exitflag != -1
    assert "non-finite evaluations backtracked" in best.message


def test_stalled_start_is_failed_and_named():
    res = run_multistart(Spike(), ["a", "b"], *BOX, np.zeros((2, 2)))
    assert all(r.exitflag == -1 and "did not move" in r.message for r in res.optimize_result)
    with pytest.raises(RuntimeError, match="all 2 optimiser starts failed"):
        successful_starts(res)


def test_nonfinite_gradient_at_start_is_failed():
    res = run_multistart(NaNGradient(), ["a", "b"], *BOX, np.array([[1.0, 1.0], [2.0, 2.0]]))
    assert all("non-finite gradient" in r.message for r in res.optimize_result)
    assert all(r.exitflag == -1 for r in res.optimize_result)


def test_failed_start_warning_names_the_start():
    starts = np.array([[1.0, 1.0], [2.0, 2.0]])
    res = run_multistart(_HalfNaN(), ["a", "b"], *BOX, starts)
    with pytest.warns(RuntimeWarning, match=r"1 of 2 optimiser starts failed \(start \d"):
        ok, failed = successful_starts(res)
    assert failed == 1 and len(ok) == 1


class _HalfNaN(NaNGradient):
    """NaN gradient where x[0] > 1.5, a quadratic elsewhere."""

    def value_and_gradient(self, x):
        return self(x), (np.full(x.size, np.nan) if x[0] > 1.5 else 2 * x)


class _ZeroBeyond(LinearGaussian):
    """LinearGaussian whose likelihood is zero where theta0 > 2 (a bounded support)."""

    def _log_likelihood(self, phi, padded, covariates):
        out = super()._log_likelihood(phi, padded, covariates)
        return np.where(phi[..., 0] > 2.0, -np.inf, out)


def _zero_beyond_objective():
    model = _ZeroBeyond(n_params=1, sigma=0.3)
    X, _ = model.simulate(4, random_state=0)
    draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
    base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
    return ImportanceObjective(base, model, X, 50, random_state=0)


def test_importance_gradient_finite_next_to_a_zero_likelihood():
    obj = _zero_beyond_objective()
    # theta0 = 2 with a tiny variance: the + step puts every draw beyond 2 (f = +inf)
    x = obj.pack(beta=[2.0], cov=[[1e-12]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f, g = obj.value_and_gradient(x)
        h = 1e-5 * 2.0
        backward = (f - obj(x - np.array([h, 0.0]))) / h
    assert np.isfinite(f) and np.all(np.isfinite(g))  # was NaN (inf - finite over 2h)
    assert g[0] == pytest.approx(backward)


# ----------------------------------------------------------------- defaults
class _NoLikelihood(LinearGaussian):
    @property
    def has_likelihood(self):
        return False


def _fit(model, **kw):
    X, _ = model.simulate(20, random_state=0)
    post = ExactGaussianPosterior(model).fit()
    return NLMEPopulationEstimator(post, n_samples=30, n_starts=2, random_state=0, **kw).fit(X)


def test_auto_picks_importance_where_the_model_has_a_likelihood():
    pop = _fit(LinearGaussian(n_params=1, sigma=0.3), likelihood="auto")
    assert pop.likelihood_ == "importance"
    assert isinstance(pop.objective_, ImportanceObjective)
    k, n = len(pop.x_), 20 * 5  # BIC counts observations (5 per individual), as R's BIC()
    assert pop.n_observations_ == n
    assert pop.aic_ == pytest.approx(2 * k - 2 * pop.loglik_)
    assert pop.bic_ == pytest.approx(k * np.log(n) - 2 * pop.loglik_)
    assert pop.summary().attrs["aic"] == pop.aic_


def test_auto_picks_amortized_without_a_likelihood_and_gives_no_aic():
    pop = _fit(_NoLikelihood(n_params=1, sigma=0.3), likelihood="auto")
    assert pop.likelihood_ == "amortized" and not isinstance(pop.objective_, ImportanceObjective)
    assert np.isfinite(pop.loglik_) and np.isnan(pop.aic_) and np.isnan(pop.bic_)
    attrs = pop.summary().attrs
    assert np.isnan(attrs["aic"]) and "not comparable" in attrs["loglik_note"]


def test_explicit_amortized_has_no_information_criteria():
    pop = _fit(LinearGaussian(n_params=1, sigma=0.3), likelihood="amortized")
    assert pop.likelihood_ == "amortized" and np.isnan(pop.aic_) and np.isnan(pop.bic_)


def test_relative_variance_floor():
    """A parameter without random effect gets floor * max(1, prior variance)."""
    model = LinearGaussian(n_params=2, sigma=0.3, prior_cov=np.diag([1.0, 400.0]))
    pop = _fit(model, random_effects=["theta0"], likelihood="amortized")
    assert pop.covariance_.loc["theta1", "theta1"] == pytest.approx(1e-3 * 400.0)
    small = LinearGaussian(n_params=2, sigma=0.3, prior_cov=np.diag([1.0, 0.25]))
    pop = _fit(small, random_effects=["theta0"], likelihood="amortized")
    assert pop.covariance_.loc["theta1", "theta1"] == pytest.approx(1e-3)  # as before


def test_cli_prints_no_aic_for_an_amortized_fit(capsys):
    import argparse

    from sknlme.cli import _fit_and_report

    model = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = model.simulate(20, random_state=0)
    args = argparse.Namespace(
        covariance="diag", covariates=None, likelihood="amortized", n_starts=2,
        random_state=0, out="", n_samples=100, fixed=None, bounds=None,
    )  # fmt: skip
    _fit_and_report(X, ExactGaussianPosterior(model).fit(), args)
    printed = capsys.readouterr().out
    assert "not comparable across models or tools; no AIC/BIC" in printed
    assert "AIC " not in printed.replace("no AIC/BIC", "")
    args.likelihood = "auto"
    _fit_and_report(X, ExactGaussianPosterior(model).fit(), args)
    assert "AIC " in capsys.readouterr().out
