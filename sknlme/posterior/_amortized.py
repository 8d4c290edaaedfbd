"""The amortized neural posterior estimator (BayesFlow 2 on Keras 3)."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..simulate import draw_seed, keyed_standard_normal
from ._diagnostics import Diagnosis
from ._encoding import pad_sets, set_size
from ._envelope import EnvelopeChecks, design_envelope
from ._online import training_data
from ._params import Hyperparameters
from ._runtime import NetworkRuntime, redraw_outliers
from ._storage import Storage
from ._units import UnitRescaling, study_scales

_REDRAW_ROUNDS = 10


def _round_seed(seed, r):
    """Seed of redraw round ``r`` (a function of ``seed`` and ``r`` only)."""
    return np.random.SeedSequence([int(seed), r]).generate_state(1, np.uint64)[0]


class AmortizedPosterior(
    UnitRescaling,
    Diagnosis,
    EnvelopeChecks,
    Storage,
    Hyperparameters,
    TransformerMixin,
    BaseEstimator,
):
    """Neural posterior estimator q(phi | y_i) of one individual's parameters.

    Trained once per model on simulations (drawn from the model's design
    distribution and training prior), it then returns posterior draws for any
    number of individuals in seconds. Each individual is encoded as a set of
    observation and dose elements with explicit observed/padding masks; a
    masked set network summarises it and a
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
        Simulations drawn by :meth:`fit` when no data are given (per epoch if online).
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
    censoring : float, array-like of shape (n_outputs,), "random" or None, default=None
        Lower limits of quantification of the training simulations (one, or
        one per output; NaN or None: none): a value below its limit becomes the
        limit, flagged censored, as an ``LLOQ`` column marks data (the network
        sees a censored indicator; :meth:`check_envelope` flags censoring unseen).
        ``"random"``: a third of the simulated individuals get a limit
        log-uniform between 1 % and 20 % of their largest value.
    rescale_units : bool, default=False
        Map every study onto the time, amount and concentration scales of the
        training simulations (``unit_scales_``, see :func:`study_scales`) and
        shift the draws back by the model's ``unit_exponents``: estimates are
        then equivariant under unit and dose-level changes. Each call uses the
        scales of the data it gets; :meth:`for_study` binds them to one study.
    training : {"offline", "online"} or path, default="offline"
        Simulate once, afresh every epoch (seeds derived from ``random_state``),
        or read a set written by :func:`~sknlme.posterior.presimulate`; see the
        user guide, "Online and presimulated training".
    on_outside : {"warn", "raise"}, default="warn"
        What :meth:`sample`, :meth:`transform` and :meth:`log_prob` do with
        individuals outside the training designs (:meth:`check_envelope`):
        warn, naming them and what is outside, or raise a ValueError.
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
    envelope_ : dict
        Ranges of the training designs (see :meth:`check_envelope`).
    history_ : dict of list of float
        Training (``"loss"``) and validation (``"val_loss"``) loss per epoch.
    n_simulations_ : int
        Number of simulations used (training and validation).
    set_size_ : int
        Number of set elements in training.
    training_time_ : float
        Seconds spent in :meth:`fit`.
    unit_scales_ : ndarray of shape (3,)
        Time, amount and concentration scales of the training simulations
        (``rescale_units=True`` only).

    Notes
    -----
    Draws are float32 (BayesFlow computes in float32); :meth:`log_prob` is
    returned as float64. Same ``random_state`` gives identical draws, and the
    draws of an individual are keyed by its ID: they are bit-identical whichever
    other individuals are passed with it, in any order.

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
        censoring=None,
        rescale_units=False,
        training="offline",
        on_outside="warn",
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
        self.censoring = censoring
        self.rescale_units = rescale_units
        self.training = training
        self.on_outside = on_outside
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
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

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import AmortizedPosterior
        >>> model = LinearGaussian(n_params=2, sigma=0.5)
        >>> X_sim, phi_sim = model.simulate(256, random_state=0)
        >>> post = AmortizedPosterior(model, hidden_units=(8,), flow_depth=2, epochs=1,
        ...                           random_state=0).fit(X_sim, phi_sim)
        >>> post.n_simulations_, len(post.history_["loss"])
        (256, 1)
        """
        import keras

        start = time.perf_counter()
        self._check_params()
        rng = check_random_state(self.random_state)
        keras.utils.set_random_seed(seed := int(rng.randint(2**31 - 1)))
        designs, encoder, (set_x, mask, cond, phi), n_val, stream = training_data(
            self, X_sim, phi_sim, rng, seed
        )
        self.encoder_ = encoder
        self.envelope_ = design_envelope(*designs)
        if self.rescale_units:
            self.unit_scales_ = study_scales(designs[0])
        self.set_size_ = set_x.shape[1]
        self.n_simulations_ = len(phi)
        self._runtime = NetworkRuntime.build(self._network_config())
        self.estimator_ = self._runtime.estimator
        target = encoder.standardize(phi)
        self.history_ = self._runtime.train(
            self._training_settings(), set_x, mask, cond, target, n_val, rng, stream
        )
        self.training_time_ = time.perf_counter() - start
        return self

    # ----------------------------------------------------------- inference
    def _encode(self, X, scales=None):
        """Study (in training units), inputs, padded set sizes and the unit shift."""
        check_is_fitted(self)
        study, shift = self._to_training_units(self.model.prepare(X, require_values=False), scales)
        padded, cov = study.padded, study.simulator_covariates
        self._check_outside(study)
        set_x, mask, cond = self.encoder_.encode(padded, cov)
        n_elements = mask.sum(1).astype(int)
        if self.summary_network is None:
            if set_x.shape[1] > self.set_size_:
                raise ValueError(
                    f"individuals have up to {set_x.shape[1]} observations and doses; the network "
                    f"without summary network takes at most {self.set_size_}"
                )
            sizes = np.full(len(cond), self.set_size_)
        else:
            sizes = set_size(n_elements, self.set_size_)
        set_x, mask = pad_sets((set_x, mask), int(sizes.max(initial=self.set_size_)))
        return study, (set_x, mask, cond), sizes, shift

    def _inputs(self, X):
        return self._encode(X)[1]

    def sample(self, X, n_samples=None, random_state=None):
        """Posterior draws for every individual.

        Draws are keyed by individual: those of one individual depend only on
        ``random_state``, its ID and its data, not on the other rows passed.

        Parameters
        ----------
        X : DataFrame or Study
            Individuals table.
        n_samples : int, default=None
            Draws per individual; ``self.n_samples`` when None.
        random_state : int, RandomState or None, default=None
            Seed of the base-distribution draws (same seed, same draws).

        Returns
        -------
        ndarray of shape (n_individuals, n_samples, n_params), float32
            On the model's (log) scale, rows in ``X``'s order.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.datasets import load_theophylline, pretrained
        >>> post = pretrained("one-compartment-oral")
        >>> X = load_theophylline()
        >>> draws = post.sample(X, 50, random_state=0)
        >>> draws.shape
        (12, 50, 4)
        >>> bool(np.array_equal(post.sample(X.iloc[[3]], 50, random_state=0)[0], draws[3]))
        True
        """
        return self._draw(X, n_samples, random_state)

    def _draw(self, X, n_samples, random_state, scales=None):
        """:meth:`sample` with the unit mapping of study scales ``scales`` (None: ``X``'s)."""
        n_samples = self.n_samples if n_samples is None else int(n_samples)
        if n_samples < 1:
            raise ValueError(f"n_samples must be positive, got {n_samples}")
        study, (set_x, mask, cond), sizes, shift = self._encode(X, scales)
        seed = draw_seed(check_random_state(random_state))
        d = self.model.n_params

        def draw(rows, r):
            z = keyed_standard_normal(
                seed if r == 0 else _round_seed(seed, r), study.keys[rows], n_samples * d
            ).astype(np.float32)
            z = z.reshape(len(rows), n_samples, d)
            return self._runtime.sample(set_x[rows], mask[rows], cond[rows], z, sizes[rows])

        std = draw(np.arange(len(cond)), 0)
        if self.max_prior_sd is not None:
            std = redraw_outliers(std, draw, float(self.max_prior_sd), _REDRAW_ROUNDS, study.ids)
        out = self.encoder_.unstandardize(std)
        return out if shift is None else (out - shift).astype(out.dtype)

    def transform(self, X):
        """Draws ``sample(X, self.n_samples, self.random_state)``.

        Parameters
        ----------
        X : DataFrame or Study
            Individuals table.

        Returns
        -------
        ndarray of shape (n_individuals, n_samples, n_params), float32

        Examples
        --------
        >>> from sknlme.datasets import load_theophylline, pretrained
        >>> post = pretrained("one-compartment-oral").set_params(n_samples=20, random_state=0)
        >>> post.transform(load_theophylline()).shape
        (12, 20, 4)
        """
        return self.sample(X, self.n_samples, self.random_state)

    def log_prob(self, X, phi):
        """Log posterior density log q(phi | y_i).

        Parameters
        ----------
        X : DataFrame or Study
            Individuals table with ``n`` rows.
        phi : array-like of shape (n, K, n_params)
            Parameter values (model scale) at which to evaluate each
            individual's posterior.

        Returns
        -------
        ndarray of shape (n, K), float64

        Examples
        --------
        >>> from sknlme.datasets import load_theophylline, pretrained
        >>> post = pretrained("one-compartment-oral")
        >>> X = load_theophylline()
        >>> post.log_prob(X, post.sample(X, 5, random_state=0)).shape
        (12, 5)
        """
        return self._density(X, phi)

    def _density(self, X, phi, scales=None):
        """:meth:`log_prob` with the unit mapping of study scales ``scales`` (None: ``X``'s)."""
        phi = np.asarray(phi, dtype=float)
        _, (set_x, mask, cond), sizes, shift = self._encode(X, scales)
        d = self.model.n_params
        if phi.ndim != 3 or phi.shape[0] != len(cond) or phi.shape[2] != d:
            raise ValueError(f"phi must have shape ({len(cond)}, K, {d}), got {phi.shape}")
        std = self.encoder_.standardize(phi if shift is None else phi + shift)  # Jacobian 1
        lp = self._runtime.log_prob(set_x, mask, cond, std, sizes).astype(float)
        return lp + self.encoder_.log_abs_det()
