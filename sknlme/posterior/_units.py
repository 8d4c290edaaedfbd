"""Unit- and dose-level-equivariant posteriors: study scales, mapping and binding.

A linear PK model is exactly equivariant under its units: times x ``a_t``,
doses x ``a_d`` and values x ``a_c`` give the data of the parameters
``phi + E @ log(a)``, ``E`` the model's ``unit_exponents``. A posterior with
``rescale_units=True`` maps a study onto the scales of its training
simulations (``a = training scale / study scale``), samples there and shifts
the draws back: ``phi = phi' - E @ log(a)``. The three scales of a study are
each positively homogeneous in their unit, so estimates are equivariant
exactly (up to rounding).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..models import NormalPrior, UniformPrior

__all__ = ["StudyBoundPosterior", "study_scales"]

# rows per block of the (rows, T, D) time-since-dose array: 5000 x 30 x 20 floats, 24 MB
_BLOCK = 5000


def _times_since_dose(padded):
    """Time of every observation since the latest dose strictly before it (NaN: none)."""
    out = []
    for start in range(0, padded.n_individuals, _BLOCK):
        rows = slice(start, start + _BLOCK)
        t, td = padded.times[rows], padded.dose_times[rows]
        dosed = padded.dose_mask[rows] & (padded.dose_amounts[rows] > 0)
        dt = t[:, :, None] - td[:, None, :]
        dt = np.where(dosed[:, None, :] & (dt > 0), dt, np.inf).min(axis=2)
        out.append(np.where(padded.obs_mask[rows] & np.isfinite(dt), dt, np.nan).ravel())
    return np.concatenate(out) if out else np.empty(0)


def study_scales(padded):
    """Time, amount and concentration scales ``(T, D, C)`` of a study's padded data.

    ``T``: median over observations of the time since the latest dose before
    it (the median observation time where no observation follows a dose);
    ``D``: median dose amount; ``C``: median observed (uncensored, positive)
    value, the median limit of quantification where none. Each is positively
    homogeneous in its unit (times x 60 give ``T`` x 60).

    Parameters
    ----------
    padded : Padded

    Returns
    -------
    ndarray of shape (3,)

    Raises
    ------
    ValueError
        Naming the scale a study has no data for.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, make_individuals, to_padded
    >>> rec = IndividualRecords([1.0, 2.0, 13.0], [4.0, 3.0, 2.0], [0.0, 12.0], [100.0, 100.0])
    >>> study_scales(to_padded(make_individuals([rec]))).tolist()
    [1.0, 100.0, 3.0]
    """
    dt = _times_since_dose(padded)
    dt = dt[np.isfinite(dt)]
    if dt.size == 0:  # no observation after a dose: the observation times themselves
        t = np.abs(padded.times[padded.obs_mask])
        dt = t[t > 0]
    amounts = padded.dose_amounts[padded.dose_mask]
    amounts = amounts[amounts > 0]
    vm = padded.value_mask()
    values = padded.values[vm & ~padded.censored]
    values = values[values > 0]
    if values.size == 0:
        values = padded.values[vm & padded.censored]
        values = values[values > 0]
    for name, x in (("time (observation times)", dt), ("amount (doses)", amounts)):
        if x.size == 0:
            raise ValueError(f"the study has no positive {name} to set its {name.split()[0]} scale")
    if values.size == 0:
        raise ValueError("the study has no positive observed value or limit of quantification")
    return np.array([np.median(dt), np.median(amounts), np.median(values)])


def map_padded(padded, a):
    """``padded`` in other units: times x ``a[0]``, doses x ``a[1]``, values x ``a[2]``."""
    a_t, a_d, a_c = (float(v) for v in a)
    return padded.replace(
        times=padded.times * a_t,
        dose_times=padded.dose_times * a_t,
        dose_durations=padded.dose_durations * a_t,
        dose_ii=padded.dose_ii * a_t,
        dose_amounts=padded.dose_amounts * a_d,
        values=padded.values * a_c,  # censored values are their limits: scaled alike
    )


def shifted_model(model, shift):
    """``model`` with its training prior moved by ``shift`` (covariance unchanged)."""
    prior = model.prior
    if prior.kind == "normal":
        return model.with_prior(NormalPrior(prior.mean + shift, prior.cov))
    if prior.kind == "uniform":
        return model.with_prior(UniformPrior(prior.low + shift, prior.high + shift))
    raise TypeError(f"cannot shift a {prior.kind} prior for unit rescaling")


class UnitRescaling:
    """The unit mapping of :class:`AmortizedPosterior` (a mixin)."""

    def _check_units(self):
        if self.rescale_units and getattr(self.model, "unit_exponents", None) is None:
            raise ValueError(
                f"rescale_units=True needs a model with unit_exponents; {self.model!r} has none "
                "(it is not declared equivariant under unit changes)"
            )

    def _to_training_units(self, study, scales=None):
        """``(study mapped onto the training scales, shift)``; ``(study, None)`` when off.

        ``shift = E @ log(a)`` with ``a = unit_scales_ / scales``: parameters
        in the study's units are the mapped ones minus ``shift``. The mapped
        study keeps the original ``records`` (only ``padded`` is mapped).
        """
        if not self.rescale_units:
            return study, None
        if scales is None:
            scales = study_scales(study.padded)
        a = self.unit_scales_ / np.asarray(scales, dtype=float)
        shift = np.asarray(self.model.unit_exponents, dtype=float) @ np.log(a)
        return dataclasses.replace(study, padded=map_padded(study.padded, a)), shift

    def for_study(self, X):
        """This posterior bound to the units of study ``X`` (``rescale_units=True``).

        A population fit needs one training prior, hence one unit mapping,
        for all its calls; the bound posterior maps any data with the scales
        of ``X`` and its ``model`` carries the training prior in ``X``'s units.
        :class:`~sknlme.NLMEPopulationEstimator` binds at the start of a fit.
        Without binding, each call maps the data it is given with their own scales.

        Parameters
        ----------
        X : DataFrame or Study
            The study whose scales (see :func:`study_scales`) are kept.

        Returns
        -------
        StudyBoundPosterior

        Examples
        --------
        >>> from sknlme.models import LinearCompartmental
        >>> from sknlme.posterior import AmortizedPosterior
        >>> model = LinearCompartmental(1, "iv")
        >>> post = AmortizedPosterior(model, hidden_units=(8,), flow_depth=2, n_simulations=256,
        ...                           epochs=1, rescale_units=True, random_state=0).fit()
        >>> X, _ = model.simulate(3, random_state=1)
        >>> bound = post.for_study(X)
        >>> bound.sample(X, 5, random_state=0).shape, bound.model.prior_cov.shape
        ((3, 5, 3), (3, 3))
        """
        if not self.rescale_units:
            raise ValueError("for_study needs rescale_units=True")
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        study = self.model.prepare(X, require_values=False)
        return StudyBoundPosterior(self, study_scales(study.padded))


class StudyBoundPosterior:
    """An amortized posterior bound to the units of one study (see ``for_study``).

    The same interface as the posterior (``sample``, ``transform``,
    ``log_prob``, ``check_envelope``, ``n_samples``, ...), every call mapping
    its data with the bound study's scales ``unit_scales``; ``model`` is the
    posterior's model with its training prior shifted into the study's units.

    Parameters
    ----------
    posterior : AmortizedPosterior
        Fitted, with ``rescale_units=True``.
    scales : array-like of shape (3,)
        The study's time, amount and concentration scales.

    Attributes
    ----------
    unit_shift : ndarray of shape (n_params,)
        ``E @ log(training scales / scales)``: draws in the study's units are
        the network's minus this.

    Examples
    --------
    >>> from sknlme.models import LinearCompartmental
    >>> from sknlme.posterior import AmortizedPosterior, StudyBoundPosterior
    >>> model = LinearCompartmental(1, "iv")
    >>> post = AmortizedPosterior(model, hidden_units=(8,), flow_depth=2, n_simulations=256,
    ...                           epochs=1, rescale_units=True, random_state=0).fit()
    >>> bound = StudyBoundPosterior(post, post.unit_scales_ * [60.0, 1000.0, 1.0])
    >>> (0.0 - bound.unit_shift).round(3).tolist()  # log CL in mL/min: + log(1000 / 60)
    [2.813, 6.908, 0.0]
    """

    rescale_units = True

    def __init__(self, posterior, scales):
        self.posterior = posterior
        self.unit_scales = np.asarray(scales, dtype=float).reshape(3)
        a = posterior.unit_scales_ / self.unit_scales
        self.unit_shift = np.asarray(posterior.model.unit_exponents, float) @ np.log(a)
        self.model = shifted_model(posterior.model, -self.unit_shift)

    def __getattr__(self, name):
        if name == "posterior" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.posterior, name)

    def __sklearn_is_fitted__(self):
        return True

    def fit(self, *args, **kwargs):
        """Not available: fit the posterior this one binds.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearCompartmental
        >>> from sknlme.posterior import AmortizedPosterior, StudyBoundPosterior
        >>> post = AmortizedPosterior(LinearCompartmental(1, "iv"), rescale_units=True)
        >>> post.unit_scales_ = np.ones(3)  # as fit sets it
        >>> StudyBoundPosterior(post, [1.0, 1.0, 1.0]).fit()
        Traceback (most recent call last):
        ...
        TypeError: a StudyBoundPosterior is not fitted; fit the posterior it binds
        """
        raise TypeError("a StudyBoundPosterior is not fitted; fit the posterior it binds")

    def for_study(self, X):
        """This bound posterior itself (its scales stay those it was bound to).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearCompartmental
        >>> from sknlme.posterior import AmortizedPosterior, StudyBoundPosterior
        >>> post = AmortizedPosterior(LinearCompartmental(1, "iv"), rescale_units=True)
        >>> post.unit_scales_ = np.ones(3)  # as fit sets it
        >>> bound = StudyBoundPosterior(post, [2.0, 1.0, 1.0])
        >>> bound.for_study(None) is bound
        True
        """
        return self

    def sample(self, X, n_samples=None, random_state=None):
        """Draws in the bound study's units (see :meth:`AmortizedPosterior.sample`).

        Examples
        --------
        >>> from sknlme.models import LinearCompartmental
        >>> from sknlme.posterior import AmortizedPosterior
        >>> model = LinearCompartmental(1, "iv")
        >>> post = AmortizedPosterior(model, hidden_units=(8,), flow_depth=2, n_simulations=128,
        ...                           epochs=1, rescale_units=True, random_state=0).fit()
        >>> X, _ = model.simulate(2, random_state=1)
        >>> bound = post.for_study(X)
        >>> bound.sample(X, 4, random_state=0).shape
        (2, 4, 3)
        """
        return self.posterior._draw(X, n_samples, random_state, self.unit_scales)

    def transform(self, X):
        """``sample(X, n_samples, random_state)`` of the posterior's settings.

        Examples
        --------
        >>> from sknlme.models import LinearCompartmental
        >>> from sknlme.posterior import AmortizedPosterior
        >>> model = LinearCompartmental(1, "iv")
        >>> post = AmortizedPosterior(model, hidden_units=(8,), flow_depth=2, n_simulations=128,
        ...                           epochs=1, rescale_units=True, random_state=0).fit()
        >>> X, _ = model.simulate(2, random_state=1)
        >>> bound = post.for_study(X)
        >>> bound.transform(X).shape
        (2, 100, 3)
        """
        return self.sample(X, self.posterior.n_samples, self.posterior.random_state)

    def log_prob(self, X, phi):
        """Log density of ``phi`` in the bound study's units (the shift's Jacobian is 1).

        Examples
        --------
        >>> from sknlme.models import LinearCompartmental
        >>> from sknlme.posterior import AmortizedPosterior
        >>> model = LinearCompartmental(1, "iv")
        >>> post = AmortizedPosterior(model, hidden_units=(8,), flow_depth=2, n_simulations=128,
        ...                           epochs=1, rescale_units=True, random_state=0).fit()
        >>> X, _ = model.simulate(2, random_state=1)
        >>> bound = post.for_study(X)
        >>> bound.log_prob(X, bound.sample(X, 3, random_state=0)).shape
        (2, 3)
        """
        return self.posterior._density(X, phi, self.unit_scales)

    def check_envelope(self, X):
        """The envelope check on ``X`` mapped with the bound scales.

        Examples
        --------
        >>> from sknlme.models import LinearCompartmental
        >>> from sknlme.posterior import AmortizedPosterior
        >>> model = LinearCompartmental(1, "iv")
        >>> post = AmortizedPosterior(model, hidden_units=(8,), flow_depth=2, n_simulations=128,
        ...                           epochs=1, rescale_units=True, random_state=0).fit()
        >>> X, _ = model.simulate(2, random_state=1)
        >>> bound = post.for_study(X)
        >>> bound.check_envelope(X).shape[0]
        2
        """
        post = self.posterior
        study = post.model.prepare(X, require_values=False)
        return post._envelope_table(post._to_training_units(study, self.unit_scales)[0])

    def __repr__(self):
        return f"StudyBoundPosterior(scales={self.unit_scales.tolist()})"
