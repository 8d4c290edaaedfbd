"""The :class:`Model` base: parameters, prior, designs, simulation, likelihood."""

from __future__ import annotations

import copy

import numpy as np
from sklearn.utils import check_random_state

from ._prior import NormalPrior, _as_cov
from ._tables import TableMethods


class Model(TableMethods):
    """Base class of an individual-level mechanistic model.

    A model knows its parameters (on an unconstrained scale, e.g. log scale for
    positive quantities), a training prior on that scale (normal
    ``N(prior_mean, prior_cov)``; another, e.g. a box, by :meth:`with_prior`),
    how to sample study designs (observation times, doses, simulator
    covariates) and how to simulate data of many individuals at once. Models
    with an explicit observation model also give the exact log-likelihood
    :meth:`log_likelihood`.

    Subclasses implement :meth:`_simulate` (and optionally :meth:`_predict` and
    :meth:`_log_likelihood`) and :meth:`sample_design`. The public methods
    validate their inputs and call these; array-level ones (on :class:`Padded`
    arrays, :meth:`simulate_padded`, :meth:`log_likelihood_padded`,
    :meth:`covariate_array`) serve the posterior and the population code,
    the DataFrame ones (:meth:`simulate`, :meth:`predict`,
    :meth:`log_likelihood`) are thin wrappers over them.

    Parameters
    ----------
    param_names : sequence of str
        Names of the individual parameters, on the model's (log) scale.
    prior_mean : array-like of shape (n_params,)
        Mean of the normal training prior.
    prior_cov : array-like of shape (n_params,) or (n_params, n_params)
        Variances or covariance of the training prior.
    output_names : sequence of str, default=("y",)
        Names of the observed outputs.
    covariate_names : sequence of str, default=()
        Individual covariates the simulator needs (e.g. body weight); they are
        read from the individuals table columns of the same names.
    name : str, default=None
        Short name of the model; the class name when None.
    error_params : sequence of str, default=()
        The residual-error parameters among ``param_names`` (e.g. ``log_sigma``);
        the others are structural (see :attr:`structural_params`). A population
        fit gives random effects to the structural parameters only, unless told
        otherwise.

    Examples
    --------
    >>> from sknlme.models import OneCompartmentOral
    >>> model = OneCompartmentOral()
    >>> model.structural_params, model.error_params
    (('log_ke', 'log_ka', 'log_Cl'), ('log_sigma',))
    """

    def __init__(
        self,
        param_names,
        prior_mean,
        prior_cov,
        output_names=("y",),
        covariate_names=(),
        name=None,
        error_params=(),
    ):
        self.param_names = tuple(str(p) for p in param_names)
        d = len(self.param_names)
        if d == 0 or len(set(self.param_names)) != d:
            raise ValueError(f"param_names must be non-empty and unique, got {param_names}")
        self.prior_mean = np.asarray(prior_mean, dtype=float).reshape(-1)
        if self.prior_mean.shape != (d,):
            raise ValueError(f"prior_mean must have {d} entries, got {self.prior_mean.shape}")
        self.prior_cov = _as_cov(prior_cov, d)
        self.output_names = tuple(output_names)
        self.covariate_names = tuple(covariate_names)
        self.name = name or type(self).__name__
        self.error_params = tuple(str(p) for p in error_params)
        unknown = [p for p in self.error_params if p not in self.param_names]
        if unknown:
            raise ValueError(f"error_params {unknown} are not among param_names {param_names}")

    # ------------------------------------------------------------------ prior
    @property
    def n_params(self):
        """Number of individual parameters."""
        return len(self.param_names)

    @property
    def n_outputs(self):
        """Number of observed outputs."""
        return len(self.output_names)

    @property
    def structural_params(self):
        """Parameter names that are not residual-error parameters, in model order."""
        return tuple(p for p in self.param_names if p not in self.error_params)

    @property
    def prior_std(self):
        """Prior standard deviations."""
        return np.sqrt(np.diag(self.prior_cov))

    @property
    def prior(self):
        """The training prior: a :class:`NormalPrior` of ``prior_mean``, ``prior_cov``
        unless :meth:`with_prior` set another (``prior_mean``, ``prior_cov`` are then
        its moments)."""
        return getattr(self, "_prior", None) or NormalPrior(self.prior_mean, self.prior_cov)

    def with_prior(self, prior):
        """A copy of the model with the training prior ``prior``.

        Parameters
        ----------
        prior : NormalPrior or UniformPrior
            Over the ``n_params`` parameters.

        Examples
        --------
        >>> from sknlme.models import LinearGaussian, UniformPrior
        >>> model = LinearGaussian(n_params=1).with_prior(UniformPrior([-3.0], [3.0]))
        >>> model.prior, model.prior_mean, model.prior_cov
        (UniformPrior(low=[-3.0], high=[3.0]), array([0.]), array([[3.]]))
        """
        d = self.n_params
        if not callable(getattr(prior, "log_density", None)) or prior.mean.shape != (d,):
            raise ValueError(f"prior must be a prior over {d} parameters, got {prior!r}")
        new = copy.copy(self)
        new.prior_mean, new.prior_cov = prior.mean.copy(), prior.cov.copy()
        new._prior = None if prior.kind == "normal" else copy.deepcopy(prior)
        return new

    def sample_prior(self, n, random_state=None):
        """Draw ``n`` parameter vectors from the training prior, shape (n, n_params).

        Examples
        --------
        >>> from sknlme.models import OneCompartmentOral
        >>> OneCompartmentOral().sample_prior(5, random_state=0).shape
        (5, 4)
        """
        return self.prior.sample(n, random_state)

    def prior_logpdf(self, phi):
        """Log-density of the training prior at ``phi`` (..., n_params).

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> round(float(LinearGaussian(n_params=1).prior_logpdf([0.0])), 4)  # N(0, 1) at 0
        -0.9189
        """
        return self.prior.log_density(phi)

    # ----------------------------------------------------------------- design
    def sample_design(self, n, random_state=None):
        """Sample ``n`` study designs.

        Returns
        -------
        design : Padded
            Observation times and doses (values all NaN).
        covariates : DataFrame or None
            Simulator covariates, one row per individual.

        Examples
        --------
        >>> from sknlme.models import OneCompartmentOral
        >>> design, covariates = OneCompartmentOral().sample_design(3, random_state=0)
        >>> design.n_individuals, bool(design.dose_mask.any(axis=1).all())
        (3, True)
        """
        raise NotImplementedError(f"{self.name} has no design distribution; pass design=")

    # ------------------------------------------------------------- simulation
    def _simulate(self, phi, design, covariates, rng):
        """Simulate values of shape (n, T, n_outputs) for ``phi`` of shape (n, d)."""
        pred = self._predict(phi, design, covariates)
        return self._add_noise(pred, phi, rng)

    def _predict(self, phi, design, covariates):
        raise NotImplementedError

    def _add_noise(self, pred, phi, rng):
        raise NotImplementedError

    def covariate_array(self, covariates, n):
        """The simulator covariates as a float array (n, p), in ``covariate_names`` order.

        Parameters
        ----------
        covariates : DataFrame or None
            Covariate columns, one row per individual.
        n : int
            Number of individuals.

        Returns
        -------
        ndarray of shape (n, len(covariate_names))

        Raises
        ------
        ValueError
            Naming the missing column, or the individual and value that is not finite.

        Examples
        --------
        >>> import pandas as pd
        >>> from sknlme.models import LinearGaussian
        >>> LinearGaussian().covariate_array(None, 3).shape
        (3, 0)
        """
        if not self.covariate_names:
            return np.empty((n, 0))
        if covariates is None:
            raise ValueError(f"{self.name} needs covariates {list(self.covariate_names)}")
        missing = [c for c in self.covariate_names if c not in covariates.columns]
        if missing:
            raise ValueError(f"{self.name} needs covariate columns {missing}, not in the data")
        arr = covariates[list(self.covariate_names)].to_numpy(dtype=float)
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            i, j = bad[0]
            raise ValueError(
                f"covariate {self.covariate_names[j]!r} of individual "
                f"{covariates.index[i]!r} is {arr[i, j]!r}"
            )
        return arr

    #: Dosing features (see :attr:`sknlme.data.IndividualRecords.dosing_features`)
    #: the model simulates; data using any other are refused, never ignored.
    dosing_features = frozenset()

    #: The NONMEM ``CMT`` of the model's own dose compartment: dose rows that name
    #: it (NONMEM files put CMT on every row) need no ``"compartment"`` feature.
    default_dose_cmt = 1

    #: Permutations of the parameters under which the observation likelihood is
    #: exactly invariant (e.g. ``ka <-> ke`` in the one-compartment oral model:
    #: ``(1, 0, 2, ...)``). Per-individual mode searches pick, among a mode and its
    #: images, the one the training prior prefers.
    likelihood_symmetries = ()

    @property
    def unit_exponents(self):
        """Exponents (n_params, 3) of the parameters in (time, amount, concentration) units.

        Times x ``a_t``, doses x ``a_d``, values x ``a_c`` give the data of
        ``phi + E @ log(a)`` exactly (linear PK); None: not equivariant.

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> LinearGaussian().unit_exponents is None
        True
        """
        return None

    def check_dosing(self, padded, ids=None):
        """Refuse data whose dose events or observations use features the model lacks.

        Parameters
        ----------
        padded : Padded
        ids : sequence, default=None
            Individual IDs for the message (row positions when None).

        Raises
        ------
        ValueError
            Naming the feature, the first individuals that use it and what the
            model supports.

        Examples
        --------
        >>> from sknlme.data import IndividualRecords, make_individuals
        >>> from sknlme.models import OneCompartmentOral
        >>> rec = IndividualRecords([1.0, 2.0], [1.0, 0.5], [0.0], [4.0], dose_durations=[0.5])
        >>> X = make_individuals([rec], ids=[7])
        >>> OneCompartmentOral().prepare(X)
        Traceback (most recent call last):
        ...
        ValueError: model 'one-compartment-oral' does not simulate infusion (individual 7 ...
        """
        extra = padded.dosing_features - self.dosing_features
        if "compartment" in extra:
            cmt = padded.dose_cmt[padded.dose_mask]
            if np.all((cmt == 0) | (cmt == self.default_dose_cmt)):
                extra = extra - {"compartment"}
        if not extra:
            return
        feature = sorted(extra)[0]
        rows = [
            i for i in range(padded.n_individuals) if feature in padded.take([i]).dosing_features
        ]
        names = [repr(ids[i]) if ids is not None else f"row {i}" for i in rows[:5]]
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        supported = ", ".join(sorted(self.dosing_features)) or "none"
        raise ValueError(
            f"model {self.name!r} does not simulate {feature} (individual"
            f"{'s' if len(rows) > 1 else ''} {', '.join(names)}{more} use"
            f"{'' if len(rows) > 1 else 's'} it); its dosing features: {supported}"
        )

    def simulate_padded(self, phi, design, covariates=None, random_state=None):
        """Simulate on padded arrays: the fast path used for training.

        Parameters
        ----------
        phi : ndarray of shape (n, n_params)
        design : Padded
        covariates : DataFrame, default=None
        random_state : int, RandomState or None

        Returns
        -------
        values : ndarray of shape (n, T, n_outputs)
            ``NaN`` where ``design.obs_mask`` is False.

        Examples
        --------
        >>> from sknlme.models import OneCompartmentOral
        >>> model = OneCompartmentOral()
        >>> design, cov = model.sample_design(2, random_state=0)
        >>> values = model.simulate_padded(model.sample_prior(2, random_state=1), design, cov,
        ...                                random_state=2)
        >>> values.shape == design.times.shape + (1,)
        True
        """
        phi = np.ascontiguousarray(phi, dtype=float)
        if phi.ndim != 2 or phi.shape[1] != self.n_params:
            raise ValueError(f"phi must have shape (n, {self.n_params}), got {phi.shape}")
        if phi.shape[0] != design.n_individuals:
            raise ValueError(f"{phi.shape[0]} parameter vectors for {design.n_individuals} designs")
        self.check_dosing(design)
        rng = check_random_state(random_state)
        values = self._simulate(phi, design, covariates, rng)
        values = np.where(design.obs_mask[..., None], values, np.nan)
        return values

    # ------------------------------------------------------------- likelihood
    @property
    def has_likelihood(self):
        """Whether the model has an exact observation log-likelihood."""
        return type(self)._log_likelihood is not Model._log_likelihood

    def _log_likelihood(self, phi, padded, covariates):
        raise NotImplementedError

    def log_likelihood_padded(self, phi, padded, covariates=None):
        """Exact observation log-likelihood on padded arrays (the array-level API).

        Parameters
        ----------
        phi : array-like of shape (n_individuals, n_draws, n_params)
        padded : Padded
            Observations of the ``n_individuals``.
        covariates : DataFrame, default=None
            Covariate columns, one row per individual (those the model needs).

        Returns
        -------
        ndarray of shape (n_individuals, n_draws), float64
            Missing values and padded time points contribute nothing.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import OneCompartmentOral
        >>> model = OneCompartmentOral()
        >>> X, phi = model.simulate(2, random_state=0)
        >>> study = model.prepare(X)
        >>> ll = model.log_likelihood_padded(phi.to_numpy()[:, None, :], study.padded,
        ...                                  study.covariates)
        >>> ll.shape
        (2, 1)
        """
        if not self.has_likelihood:
            raise NotImplementedError(f"{self.name} has no explicit observation likelihood")
        phi = np.asarray(phi, dtype=float)
        n = padded.n_individuals
        if phi.ndim != 3 or phi.shape[0] != n or phi.shape[2] != self.n_params:
            raise ValueError(
                f"phi must have shape ({n}, n_draws, {self.n_params}), got {phi.shape}"
            )
        if padded.n_outputs != self.n_outputs:
            raise ValueError(
                f"data have {padded.n_outputs} outputs, {self.name} has {self.n_outputs}"
            )
        self.check_dosing(padded)
        return np.asarray(self._log_likelihood(phi, padded, covariates), dtype=float)

    def __repr__(self):
        return f"{type(self).__name__}()"
