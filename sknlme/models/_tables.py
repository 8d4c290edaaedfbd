"""The DataFrame-level methods of a model: thin wrappers over its array-level API.

:class:`~sknlme.models.Model` works on :class:`~sknlme.data.Padded` arrays
(``simulate_padded``, ``log_likelihood_padded``, ``covariate_array``); the
methods here take individuals tables (or a prepared :class:`~sknlme.data.Study`),
validate them once and call those.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ..data import Study, as_study, check_individuals, from_padded


class TableMethods:
    """Mixin of :class:`~sknlme.models.Model`: its individuals-table methods."""

    def prepare(self, X, *, require_values=True):
        """Validate an individuals table for this model once: a :class:`~sknlme.data.Study`.

        Parameters
        ----------
        X : DataFrame or Study
            Individuals table (a study prepared for this model is returned as it is).
        require_values : bool, default=True
            Whether each individual needs at least one observed value.

        Returns
        -------
        Study
            With the model's simulator covariates (:meth:`covariate_array`).

        Examples
        --------
        >>> from sknlme.models import OneCompartmentOral
        >>> model = OneCompartmentOral()
        >>> X, _ = model.simulate(4, random_state=0)
        >>> study = model.prepare(X)
        >>> study.n_individuals, study.simulator_covariates.shape
        (4, (4, 0))
        """
        if not isinstance(X, Study):
            k = self.n_outputs
            records = check_individuals(X)  # a TypeError naming the type first
            for ident, rec in zip(X.index, records, strict=True):
                if rec.n_outputs != k:
                    raise ValueError(
                        f"individual {ident!r} has {rec.n_outputs} outputs, but model "
                        f"{self.name!r} has {k} ({', '.join(map(str, self.output_names))})"
                    )
                for what, arr in (("observation times", rec.times), ("dose times", rec.dose_times)):
                    if not np.all(np.isfinite(arr)):
                        raise ValueError(
                            f"individual {ident!r} has non-finite {what}: {arr.tolist()}"
                        )
        study = as_study(X, n_outputs=self.n_outputs, require_values=require_values)
        self.check_dosing(study.padded, study.ids)
        if study.simulator_covariates is not None and study.simulator_covariates.shape[1] == len(
            self.covariate_names
        ):
            return study
        return study.with_simulator_covariates(
            self.covariate_array(study.covariates, study.n_individuals)
        )

    def simulate(self, n=None, *, design=None, phi=None, random_state=None):
        """Simulate a population of individuals.

        Parameters
        ----------
        n : int, default=None
            Number of individuals; taken from ``design`` or ``phi`` if None.
        design : DataFrame, default=None
            An individuals table whose times, doses and covariates are reused
            (its values are ignored). Sampled with :meth:`sample_design` when None.
        phi : array-like of shape (n, n_params), default=None
            Parameters; drawn from the training prior when None.
        random_state : int, RandomState or None
            Controls every draw (design, parameters, noise).

        Returns
        -------
        X : DataFrame
            Individuals table.
        phi : DataFrame of shape (n, n_params)
            The true parameters, indexed like ``X``.

        Examples
        --------
        >>> from sknlme.models import OneCompartmentOral
        >>> X, phi = OneCompartmentOral().simulate(3, random_state=0)
        >>> len(X), list(phi.columns)
        (3, ['log_ke', 'log_ka', 'log_Cl', 'log_sigma'])
        """
        rng = check_random_state(random_state)
        if design is not None:
            study = as_study(design, require_values=False, name="design")
            padded, covariates, ids = study.padded, study.covariates, study.index
            n = padded.n_individuals if n is None else n
            if n != padded.n_individuals:
                raise ValueError(f"n={n} but design has {padded.n_individuals} individuals")
        else:
            if n is None:
                if phi is None:
                    raise ValueError("give n, design or phi")
                n = len(phi)
            padded, covariates = self.sample_design(n, rng)
            ids = None
        if phi is None:
            phi = self.sample_prior(n, rng)
        phi = np.asarray(phi, dtype=float)
        values = self.simulate_padded(phi, padded, covariates, rng)
        padded = padded.replace(values=values)
        X = from_padded(padded, ids=ids, covariates=covariates)
        return X, pd.DataFrame(phi, index=X.index, columns=list(self.param_names))

    # ------------------------------------------------------------- prediction
    def predict(self, phi, X, times=None):
        """Noise-free model predictions for the individuals of ``X``.

        Parameters
        ----------
        phi : array-like of shape (n_individuals, n_params) or (n_individuals, K, n_params)
            Parameters, one vector (or ``K`` draws) per individual.
        X : DataFrame or Study
            Individuals table: its doses and covariates are used.
        times : array-like of shape (T,) or (n_individuals, T), default=None
            Prediction times (e.g. a fine grid for plots); each individual's
            own observation times when None.

        Returns
        -------
        ndarray of shape (n_individuals, T, n_outputs) or (n_individuals, K, T, n_outputs)
            ``NaN`` at padded time points (only when ``times`` is None).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import OneCompartmentOral
        >>> model = OneCompartmentOral()
        >>> X, phi = model.simulate(2, random_state=0)
        >>> model.predict(phi.to_numpy(), X, times=np.linspace(0, 24, 5)).shape
        (2, 5, 1)
        """
        study = as_study(X, n_outputs=self.n_outputs, require_values=False)
        padded, covariates = study.padded, study.covariates
        n = padded.n_individuals
        if times is not None:
            t = np.asarray(times, dtype=float)
            t = np.broadcast_to(t, (n, t.shape[-1])) if t.ndim == 1 else t
            if t.shape[0] != n or not np.all(np.isfinite(t)):
                raise ValueError(f"times must be finite, of shape (T,) or ({n}, T), got {t.shape}")
            padded = padded.replace(
                times=np.ascontiguousarray(t),
                values=np.full(t.shape + (self.n_outputs,), np.nan),
                obs_mask=np.ones(t.shape, dtype=bool),
                censored=np.zeros(t.shape + (self.n_outputs,), dtype=bool),
            )
        phi = np.asarray(phi, dtype=float)
        if phi.ndim not in (2, 3) or phi.shape[0] != n or phi.shape[-1] != self.n_params:
            raise ValueError(
                f"phi must have shape ({n}, {self.n_params}) or ({n}, K, {self.n_params}), "
                f"got {phi.shape}"
            )
        K = 1 if phi.ndim == 2 else phi.shape[1]
        if K > 1:
            padded = padded.tile(K)
            covariates = covariates.iloc[np.repeat(np.arange(n), K)]
        flat = np.ascontiguousarray(phi.reshape(n * K, self.n_params))
        pred = self._predict(flat, padded, covariates)
        pred = np.where(padded.obs_mask[..., None], pred, np.nan)
        return pred if phi.ndim == 2 else pred.reshape((n, K) + pred.shape[1:])

    def log_likelihood(self, phi, X):
        """Exact observation log-likelihood log p(y_i | phi).

        Parameters
        ----------
        phi : array-like of shape (n_individuals, n_draws, n_params)
        X : DataFrame or Study
            Individuals table with ``n_individuals`` rows.

        Returns
        -------
        ndarray of shape (n_individuals, n_draws)
            Missing values and padded time points contribute nothing.

        Examples
        --------
        >>> from sknlme.models import OneCompartmentOral
        >>> model = OneCompartmentOral()
        >>> X, phi = model.simulate(2, random_state=0)
        >>> model.log_likelihood(phi.to_numpy()[:, None, :], X).shape
        (2, 1)
        """
        if not self.has_likelihood:
            raise NotImplementedError(f"{self.name} has no explicit observation likelihood")
        study = as_study(X, n_outputs=self.n_outputs, require_values=False)
        return self.log_likelihood_padded(phi, study.padded, study.covariates)
