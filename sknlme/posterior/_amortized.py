"""The amortized neural posterior estimator (BayesFlow 2 on Keras 3)."""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._encoding import pad_sets
from ._networks import INFERENCE_NETWORKS, SUMMARY_NETWORKS
from ._runtime import NetworkRuntime
from ._training import encode_chunks, fit_encoder, presimulated, simulate_rounds


class AmortizedPosterior(TransformerMixin, BaseEstimator):
    """Neural posterior estimator q(phi | y_i) of one individual's parameters.

    Trained once per model on simulations (drawn from the model's design
    distribution and training prior), it then returns posterior draws for any
    number of individuals in seconds. Each individual is encoded as a set of
    observation and dose elements with explicit observed/padding masks (see
    :mod:`sknlme.posterior._encoding`); a masked set network summarises it and a
    BayesFlow inference network (normalising flow) gives the posterior.

    Parameters
    ----------
    model : Model
        The simulator and training prior (see :class:`sknlme.models.Model`).
    summary_network : {"deepset", "set_transformer", "time_series", "conv"} or None, \
default="deepset"
        Masked deep set, BayesFlow ``SetTransformer`` with a padding mask, a
        masked GRU over time-ordered elements, masked strided convolutions along
        time-ordered elements (dense time series: they see successive
        differences, hence noise levels and onsets), or no summary network
        (designs of one fixed size only).
    inference_network : {"coupling_flow", "flow_matching"}, default="coupling_flow"
        BayesFlow affine coupling flow or flow matching.
    summary_dim : int, default=None
        Number of learned summary statistics; ``max(8, 4 * n_params)`` when None.
    hidden_units : int or tuple of int, default=(64, 64)
        Hidden widths of every MLP (summary and flow subnets).
    flow_depth : int, default=5
        Number of coupling layers.
    n_simulations : int, default=10_000
        Simulations drawn by :meth:`fit` when no data are given.
    epochs : int, default=50
    batch_size : int, default=128
    learning_rate : float, default=5e-4
        Initial Adam learning rate (cosine decay to 0 over ``epochs``).
    validation_fraction : float, default=0.1
        Fraction of simulations held out for the validation loss.
    early_stopping : bool, default=True
        Stop when the validation loss has not improved for ``patience`` epochs
        and restore the best weights.
    patience : int, default=5
    n_samples : int, default=100
        Draws per individual returned by :meth:`transform`.
    callbacks : list of keras.callbacks.Callback, default=None
        Extra Keras callbacks for training.
    max_prior_sd : float or None, default=8.0
        Draws farther than this many prior SDs from the prior mean in any
        coordinate (prior density below ``exp(-max_prior_sd**2 / 2)``, never
        seen in training) are artefacts of the flow's tails: they are redrawn,
        i.e. q is truncated to that box (see Notes). None keeps every draw.
    random_state : int, RandomState or None, default=None
        Seeds simulation, network initialisation, shuffling and :meth:`transform`.
        :meth:`fit` calls ``keras.utils.set_random_seed`` (Keras' global seeds).
    verbose : int, default=0
        0 silent, 1 progress bars (simulation and Keras), 2 one line per epoch.

    Attributes
    ----------
    estimator_ : bayesflow.BasicEstimator
        The trained networks.
    encoder_ : Encoder
        Input encoding with its training standardisation statistics.
    history_ : dict of list of float
        Training (``"loss"``) and validation (``"val_loss"``) loss per epoch.
    n_simulations_ : int
        Number of simulations used (training and validation).
    set_size_ : int
        Number of set elements in training.
    training_time_ : float
        Seconds spent in :meth:`fit`.

    Notes
    -----
    Draws are float32 (BayesFlow computes in float32); :meth:`log_prob` is
    returned as float64. Same ``random_state`` gives identical draws.

    Affine coupling flows occasionally map extreme base draws to absurd
    values (for the shipped mRNA network about 0.1 % of draws lie beyond 10
    prior SDs). :meth:`sample` redraws such draws (up to 10 rounds) and warns
    when more than 1 % of draws needed it or some could not be replaced;
    :meth:`log_prob` is the untruncated network density (the truncated mass
    is that small fraction).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import AmortizedPosterior
    >>> model = LinearGaussian(n_params=2, sigma=0.5)
    >>> post = AmortizedPosterior(model, hidden_units=(8,), flow_depth=2,
    ...                           n_simulations=256, epochs=1, random_state=0).fit()
    >>> X, phi = model.simulate(3, random_state=1)
    >>> post.sample(X, 10, random_state=0).shape
    (3, 10, 2)
    >>> post.log_prob(X, phi.to_numpy()[:, None, :]).shape
    (3, 1)
    """

    def __init__(
        self,
        model,
        summary_network="deepset",
        inference_network="coupling_flow",
        summary_dim=None,
        hidden_units=(64, 64),
        flow_depth=5,
        n_simulations=10_000,
        epochs=50,
        batch_size=128,
        learning_rate=5e-4,
        validation_fraction=0.1,
        early_stopping=True,
        patience=5,
        n_samples=100,
        callbacks=None,
        max_prior_sd=8.0,
        random_state=None,
        verbose=0,
    ):
        self.model = model
        self.summary_network = summary_network
        self.inference_network = inference_network
        self.summary_dim = summary_dim
        self.hidden_units = hidden_units
        self.flow_depth = flow_depth
        self.n_simulations = n_simulations
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.n_samples = n_samples
        self.callbacks = callbacks
        self.max_prior_sd = max_prior_sd
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ checking
    def _check_params(self):
        if not all(hasattr(self.model, a) for a in ("param_names", "prior_mean", "sample_prior")):
            raise TypeError(f"model must be a sknlme Model, got {type(self.model).__name__}")
        if self.summary_network not in SUMMARY_NETWORKS:
            raise ValueError(
                f"summary_network must be one of {SUMMARY_NETWORKS}, got {self.summary_network!r}"
            )
        if self.inference_network not in INFERENCE_NETWORKS:
            raise ValueError(
                f"inference_network must be one of {INFERENCE_NETWORKS}, "
                f"got {self.inference_network!r}"
            )
        for name in ("n_simulations", "epochs", "batch_size", "n_samples", "flow_depth"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("early_stopping needs validation_fraction > 0")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.inference_network == "coupling_flow" and self.model.n_params < 2:
            # bayesflow issue #767: a coupling flow on a 1-d target breaks under keras 3.15
            raise ValueError("a model with one parameter needs inference_network='flow_matching'")

    def _widths(self):
        units = self.hidden_units
        widths = (units,) if isinstance(units, int | np.integer) else tuple(units)
        if not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"hidden_units must be positive widths, got {units!r}")
        return tuple(int(w) for w in widths)

    def _summary_dim(self):
        if self.summary_dim is None:
            return max(8, 4 * self.model.n_params)
        return int(self.summary_dim)

    # ------------------------------------------------------------- fitting
    def fit(self, X_sim=None, phi_sim=None):
        """Train on presimulated data or on fresh simulations from the model.

        Parameters
        ----------
        X_sim : DataFrame, Padded or (Padded, covariates DataFrame), default=None
            Simulated individuals; when None, ``n_simulations`` individuals are
            simulated from ``model.sample_design`` and the training prior.
        phi_sim : DataFrame or array-like of shape (n, n_params), default=None
            The true parameters of ``X_sim`` (model scale, model parameter order).

        Returns
        -------
        self : AmortizedPosterior
        """
        import keras

        start = time.perf_counter()
        self._check_params()
        rng = check_random_state(self.random_state)
        keras.utils.set_random_seed(int(rng.randint(2**31 - 1)))
        if X_sim is None:
            if phi_sim is not None:
                raise ValueError("phi_sim given without X_sim")
            chunks = simulate_rounds(self.model, self.n_simulations, rng, self.verbose)
        else:
            if phi_sim is None:
                raise ValueError("X_sim given without phi_sim (the true parameters)")
            chunks = presimulated(self.model, X_sim, phi_sim)
        encoder = fit_encoder(chunks)
        set_x, mask, cond, phi = encode_chunks(encoder, chunks)
        n = len(phi)
        n_val = int(round(self.validation_fraction * n))
        if self.validation_fraction > 0 and (n_val < 1 or n - n_val < 1):
            raise ValueError(f"{n} simulations are too few for validation_fraction")
        self.encoder_ = encoder
        self.set_size_ = set_x.shape[1]
        self.n_simulations_ = n
        self._runtime = NetworkRuntime.build(self, encoder.n_features, encoder.n_conditions)
        self.estimator_ = self._runtime.estimator
        self.history_ = self._runtime.train(self, set_x, mask, cond, phi, n_val, rng)
        self.training_time_ = time.perf_counter() - start
        return self

    # ----------------------------------------------------------- inference
    def _inputs(self, X):
        check_is_fitted(self)
        study = self.model.prepare(X, require_values=False)
        padded, cov = study.padded, study.simulator_covariates
        self.encoder_.check_design(padded, cov, study.ids)
        set_x, mask, cond = self.encoder_.encode(padded, cov)
        if self.summary_network is None:
            if set_x.shape[1] > self.set_size_:
                raise ValueError(
                    f"individuals have up to {set_x.shape[1]} observations and doses; the network "
                    f"without summary network takes at most {self.set_size_}"
                )
            size = self.set_size_
        else:
            size = -(-set_x.shape[1] // 8) * 8  # fewer shapes to compile
        set_x, mask = pad_sets((set_x, mask), size)
        return set_x, mask, cond

    def sample(self, X, n_samples=None, random_state=None):
        """Posterior draws for every individual.

        Parameters
        ----------
        X : DataFrame
            Individuals table.
        n_samples : int, default=None
            Draws per individual; ``self.n_samples`` when None.
        random_state : int, RandomState or None, default=None
            Seed of the base-distribution draws (same seed, same draws).

        Returns
        -------
        ndarray of shape (n_individuals, n_samples, n_params), float32
            On the model's (log) scale, rows in ``X``'s order.
        """
        n_samples = self.n_samples if n_samples is None else int(n_samples)
        if n_samples < 1:
            raise ValueError(f"n_samples must be positive, got {n_samples}")
        set_x, mask, cond = self._inputs(X)
        rng = check_random_state(random_state)
        d = self.model.n_params
        z = rng.standard_normal((len(cond), n_samples, d)).astype(np.float32)
        std = self._redraw_outliers(
            self._runtime.sample(set_x, mask, cond, z), set_x, mask, cond, rng
        )
        out = std * self.model.prior_std.astype(np.float32) + self.model.prior_mean.astype(
            np.float32
        )
        return out

    def _redraw_outliers(self, std, set_x, mask, cond, rng):
        if self.max_prior_sd is None:
            return std
        limit = float(self.max_prior_sd)
        bad = ~(np.abs(std) <= limit).all(-1)  # NaN counts as bad
        n_bad = int(bad.sum())
        for _ in range(10):
            if not bad.any():
                break
            rows = np.flatnonzero(bad.any(1))
            z = rng.standard_normal((len(rows),) + std.shape[1:]).astype(np.float32)
            new = self._runtime.sample(set_x[rows], mask[rows], cond[rows], z)
            block = std[rows]
            block[bad[rows]] = new[bad[rows]]
            std[rows] = block
            bad = ~(np.abs(std) <= limit).all(-1)
        if bad.any() or n_bad > 0.01 * bad.size:
            warnings.warn(
                f"{n_bad} of {bad.size} draws were beyond {limit:g} prior SDs and redrawn; "
                f"{int(bad.sum())} remain (the network extrapolates poorly for these data)",
                UserWarning,
                stacklevel=3,
            )
        return std

    def transform(self, X):
        """Draws ``sample(X, self.n_samples, self.random_state)``."""
        return self.sample(X, self.n_samples, self.random_state)

    def log_prob(self, X, phi):
        """Log posterior density log q(phi | y_i).

        Parameters
        ----------
        X : DataFrame
            Individuals table with ``n`` rows.
        phi : array-like of shape (n, K, n_params)
            Parameter values (model scale) at which to evaluate each
            individual's posterior.

        Returns
        -------
        ndarray of shape (n, K), float64
        """
        phi = np.asarray(phi, dtype=float)
        set_x, mask, cond = self._inputs(X)
        d = self.model.n_params
        if phi.ndim != 3 or phi.shape[0] != len(cond) or phi.shape[2] != d:
            raise ValueError(f"phi must have shape ({len(cond)}, K, {d}), got {phi.shape}")
        prior_std = self.model.prior_std
        std = ((phi - self.model.prior_mean) / prior_std).astype(np.float32)
        lp = self._runtime.log_prob(set_x, mask, cond, std).astype(float)
        return lp - np.log(prior_std).sum()

    def diagnose(self, X_val, phi_val, n_samples=None, random_state=0):
        """Calibration and recovery metrics on held-out simulations.

        Parameters
        ----------
        X_val : DataFrame
            Simulated individuals (not used in training).
        phi_val : DataFrame or array-like of shape (n, n_params)
            Their true parameters.
        n_samples : int, default=None
            Draws per individual; ``self.n_samples`` when None.
        random_state : int, RandomState or None, default=0

        Returns
        -------
        DataFrame
            One row per parameter; see
            :func:`sknlme.posterior.posterior_metrics`.
        """
        from ._diagnostics import posterior_metrics

        draws = self.sample(X_val, n_samples, random_state)
        return posterior_metrics(
            draws, phi_val, np.diag(self.model.prior_cov), self.model.param_names
        )

    # ------------------------------------------------------------ storage
    def save(self, path):
        """Save to one file (zip: JSON header and weights); see :meth:`load`.

        The file records the model by class and constructor arguments. A model
        whose arguments JSON cannot hold (a :class:`~sknlme.models.FunctionModel`
        with a Python function, say) is saved by its parameter names and
        prior only, and must be passed to :meth:`load`.
        """
        from ._io import save

        save(self, path)

    @classmethod
    def load(cls, path, model=None):
        """Load a posterior saved by :meth:`save`.

        Parameters
        ----------
        path : str or Path
        model : Model, default=None
            Use this model instead of rebuilding the saved one; its parameter
            names and training prior must match the saved ones. Required when
            the saved model could not be recorded.
        """
        from ._io import load

        return load(path, model=model)

    def __getstate__(self):
        from ._io import getstate

        return getstate(self)

    def __setstate__(self, state):
        from ._io import setstate

        setstate(self, state)
