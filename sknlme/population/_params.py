"""Hyperparameter constraints of the population estimator (scikit-learn's validation)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pypesto.optimize
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = ["PARAMETER_CONSTRAINTS", "validate_params"]


class _Count(Interval):
    """An integer interval that rejects booleans (``True`` is an Integral)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, bool | np.bool_) and super().is_satisfied_by(val)


# plain-language lead of the message for these parameters (sklearn's message follows)
_LEADS = {
    "n_samples": "n_samples must be an integer >= 1",
    "n_starts": "n_starts must be an integer >= 1",
    "covariance": "covariance must be 'diag', 'cholesky' or a list of parameter blocks",
    "likelihood": "likelihood must be one of ('auto', 'amortized', 'importance')",
}


PARAMETER_CONSTRAINTS = {
    "posterior": [HasMethods(["sample", "log_prob"])],
    "covariance": [StrOptions({"diag", "cholesky"}), list, tuple],
    "random_effects": ["array-like", None],
    "covariates": [dict, None],
    "variance_groups": [dict, None],
    "random_effects_distribution": [StrOptions({"normal", "student_t"})],
    "df": [Interval(Real, 0, None, closed="neither"), None],
    "fixed": [dict, None],
    "n_samples": [_Count(Integral, 1, None, closed="left")],
    "n_starts": [_Count(Integral, 1, None, closed="left")],
    "optimizer": [pypesto.optimize.Optimizer, None],
    "bounds": [dict, None],
    "variance_floor": [Interval(Real, 0, None, closed="neither")],
    "n_jobs": [_Count(Integral, None, None, closed="neither"), None],
    "random_state": ["random_state"],
    "likelihood": [StrOptions({"auto", "amortized", "importance"})],
    "on_outside": [StrOptions({"auto", "fallback", "warn", "raise"})],
    "verbose": ["verbose"],
    "scheduler": [None, str, HasMethods(["submit", "gather", "scatter"])],
}


def validate_params(estimator):
    """sklearn's checks of ``estimator._parameter_constraints``, one parameter at a time.

    A failure raises sklearn's ``InvalidParameterError`` (a ValueError and a
    TypeError); for the parameters of ``_LEADS`` its message follows a plain
    statement of the rule.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> est = NLMEPopulationEstimator(ExactGaussianPosterior(LinearGaussian()), n_starts=True)
    >>> try:
    ...     validate_params(est)
    ... except ValueError as err:
    ...     print(str(err)[:36])
    n_starts must be an integer >= 1: Th
    """
    params = estimator.get_params(deep=False)
    for name, constraints in estimator._parameter_constraints.items():
        try:
            validate_parameter_constraints(
                {name: constraints}, {name: params[name]}, caller_name=type(estimator).__name__
            )
        except InvalidParameterError as err:
            if name not in _LEADS:
                raise
            raise InvalidParameterError(f"{_LEADS[name]}: {err}") from None
