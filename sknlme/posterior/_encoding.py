"""Turn individuals into network inputs, with standardisation learnt on training data.

Each individual becomes a *set* of elements, one per real observation time and
one per dose event, never a bare sentinel value:

* observation element: ``[t / t_scale, z_1..z_k, m_1..m_k, c_1..c_k, 1, 0, 0]``
  with ``z_j`` the standardised value of output ``j`` (0 where missing),
  ``m_j`` its observed indicator and ``c_j`` its censored indicator;
* dose element: ``[t / t_scale, 0.., 0.., 0.., 0, 1, a]`` with ``a`` the
  standardised log dose amount;
* padded element: all zeros, and 0 in the padding mask.

A censored observation (below its limit, Beal's M3) is encoded as its limit
(its value in the data, see :mod:`sknlme.data`) with ``m_j = 1`` and ``c_j =
1``: the limit is what the data say about the value (an upper bound), and it
differs between studies, so masking the value would throw that away. Encoders
saved before the censored channel (state without ``"censored_channel"``) keep
the old layout without ``c_j`` and read censored values as missing (what they
were trained to ignore) rather than as observed values at the limit; the
envelope check names such individuals (:mod:`._envelope`), so a population fit
falls back to their Laplace approximation.

Elements are sorted by time (padding last), so sequence networks see a time
series and set networks do not care. Direct conditions (not part of the set):
``log(1 + number of observed values)`` per output, ``log(1 + number of doses)``
and the simulator covariates, all standardised with training statistics.

Parameters are standardised with the training prior, ``(phi - mean) / sd``
(networks see standardised parameters in training, sampling and densities).
"""

from __future__ import annotations

import numpy as np

from ..data import Padded


def _degenerate(sd, mean):
    """Where a training SD is (near) zero or non-finite: a (near-)constant input."""
    sd, mean = np.asarray(sd, dtype=float), np.asarray(mean, dtype=float)
    return ~(np.isfinite(sd) & (sd >= 1e-8 * (1.0 + np.abs(mean))))


def _mean_sd(x, axis=0):
    """Mean and SD of training inputs; a constant input is centred on its value, SD 1.

    Dividing by the round-off SD of a constant (1.2e-12 for the dose count of
    single-dose training) made any other value an input of +-3e11. The network
    never saw that input vary, so any scale is right for the training data.
    """
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        shape = x.shape[1:] if axis == 0 and x.ndim > 1 else ()
        return np.zeros(shape), np.ones(shape)
    mean, sd = x.mean(axis=axis), x.std(axis=axis)
    flat = _degenerate(sd, mean)
    first = np.take(x, 0, axis=axis)
    return np.where(flat, first, mean), np.where(flat, 1.0, sd)


def _repair(mean, sd, x0):
    """Mean and SD with degenerate entries replaced, keeping the training input.

    Files saved before :func:`_mean_sd` centred a constant ``x0`` on its
    round-off mean: the network saw ``c0 = (x0 - mean) / sd`` (about +-1, an
    O(1) constant). The repair keeps that input for ``x0`` and gives every
    other value ``c0 + (x - x0)``.
    """
    mean, sd = np.atleast_1d(np.asarray(mean, float)), np.atleast_1d(np.asarray(sd, float))
    x0 = np.where(np.isfinite(x0), x0, mean)
    flat = _degenerate(sd, mean)
    with np.errstate(all="ignore"):
        c0 = np.where(sd > 0, (x0 - mean) / sd, 0.0)
    return np.where(flat, x0 - c0, mean), np.where(flat, 1.0, sd)


class Encoder:
    """Set encoding of padded populations with stored standardisation.

    Build it with :meth:`fit` on training designs and the training prior;
    :meth:`to_dict` and :meth:`from_dict` give a JSON-serialisable form.
    """

    def __init__(self, state):
        self.state = dict(state)

    # ----------------------------------------------------------- training
    @classmethod
    def fit(cls, padded, covariates, prior_mean, prior_std):
        """Standardisation statistics of training data and of the training prior."""
        vm = padded.value_mask()
        dm = padded.dose_mask
        times = np.concatenate([padded.times[padded.obs_mask], padded.dose_times[dm]])
        t_scale = float(times.max()) if times.size and times.max() > 0 else 1.0
        k = padded.n_outputs
        v_mean, v_sd = np.zeros(k), np.ones(k)
        # standardised on the uncensored values: the limits of censored ones are
        # one repeated number per study and would shrink the SD
        seen = vm & ~padded.censored
        for j in range(k):
            keep = seen[..., j] if seen[..., j].any() else vm[..., j]
            v_mean[j], v_sd[j] = _mean_sd(padded.values[..., j][keep])
        a_mean, a_sd = _mean_sd(np.log(padded.dose_amounts[dm]))
        raw = cls._raw_conditions(padded, covariates)
        c_mean, c_sd = _mean_sd(raw)
        covariates = np.asarray(covariates, dtype=float).reshape(padded.n_individuals, -1)
        state = {
            "n_outputs": k,
            "n_covariates": covariates.shape[1],
            "t_scale": t_scale,
            "value_mean": v_mean.tolist(),
            "value_sd": v_sd.tolist(),
            "amount_mean": float(a_mean),
            "amount_sd": float(a_sd),
            "cond_mean": np.atleast_1d(c_mean).tolist(),
            "cond_sd": np.atleast_1d(c_sd).tolist(),
            "max_obs": int(padded.obs_mask.sum(1).max()),
            "max_doses": int(dm.sum(1).max()) if dm.size else 0,
            "cov_min": covariates.min(0).tolist() if covariates.shape[1] else [],
            "cov_max": covariates.max(0).tolist() if covariates.shape[1] else [],
            "param_mean": np.asarray(prior_mean, dtype=float).tolist(),
            "param_sd": np.asarray(prior_std, dtype=float).tolist(),
            "censored_channel": True,
        }
        return cls(state)

    @staticmethod
    def _raw_conditions(padded, covariates):
        n = padded.n_individuals
        counts = np.log1p(padded.value_mask().sum(1))  # (n, k)
        doses = np.log1p(padded.dose_mask.sum(1))[:, None]
        cov = np.asarray(covariates, dtype=float).reshape(n, -1)
        return np.concatenate([counts, doses, cov], axis=1)

    def to_dict(self):
        """JSON-serialisable state."""
        return dict(self.state)

    @classmethod
    def from_dict(cls, state, prior_mean=None, prior_std=None, envelope=None):
        """Inverse of :meth:`to_dict`.

        Degenerate SDs of older files are repaired (:func:`_repair`): the
        constant training input is known from its structure (counts are
        integers), the saved covariate range, or the training ``envelope``
        (constant dose amount).

        States saved before the encoder held the parameter standardisation lack
        ``param_mean``/``param_sd``: they are taken from ``prior_mean`` and
        ``prior_std`` (the model's training prior).
        """
        state = cls._repaired(dict(state), envelope)
        for key, value in (("param_mean", prior_mean), ("param_sd", prior_std)):
            if key not in state:
                if value is None:
                    raise ValueError(f"encoder state lacks {key!r}; pass the training prior")
                state[key] = np.asarray(value, dtype=float).tolist()
        return cls(state)

    @staticmethod
    def _repaired(state, envelope):
        k, mean = state["n_outputs"], np.asarray(state["cond_mean"], float)
        x0 = np.full(mean.shape, np.nan)
        x0[: k + 1] = np.log1p(np.round(np.expm1(mean[: k + 1])))  # log1p(count)
        lo, hi = np.asarray(state["cov_min"], float), np.asarray(state["cov_max"], float)
        x0[k + 1 :] = np.where(lo == hi, lo, np.nan)
        m, sd = _repair(mean, state["cond_sd"], x0)
        state["cond_mean"], state["cond_sd"] = m.tolist(), sd.tolist()
        amounts = (envelope or {}).get("dose_amounts")
        a0 = np.log(amounts[0]) if amounts and amounts[0] == amounts[1] else np.nan
        m, sd = _repair(state["amount_mean"], state["amount_sd"], a0)
        state["amount_mean"], state["amount_sd"] = float(m[0]), float(sd[0])
        m, sd = _repair(state["value_mean"], state["value_sd"], np.nan)
        state["value_mean"], state["value_sd"] = m.tolist(), sd.tolist()
        return state

    # ---------------------------------------------------------- parameters
    def standardize(self, phi):
        """Standardised parameters ``(phi - mean) / sd`` (float32) of model-scale ``phi``."""
        s = self.state
        phi = np.asarray(phi, dtype=float)
        return ((phi - np.asarray(s["param_mean"])) / np.asarray(s["param_sd"])).astype(np.float32)

    def unstandardize(self, std):
        """Model-scale parameters (float32) of standardised ``std``."""
        s = self.state
        sd = np.asarray(s["param_sd"]).astype(np.float32)
        return std * sd + np.asarray(s["param_mean"]).astype(np.float32)

    def log_abs_det(self):
        """``log |d std / d phi|``: add it to a density of ``std`` to get one of ``phi``."""
        return -float(np.log(np.asarray(self.state["param_sd"])).sum())

    @property
    def n_features(self):
        """Number of features of a set element."""
        k = self.state["n_outputs"]
        return 1 + (3 if self.censored_channel else 2) * k + 3

    @property
    def censored_channel(self):
        """Whether set elements carry censored indicators (encoders fit since they do)."""
        return bool(self.state.get("censored_channel", False))

    @property
    def n_conditions(self):
        """Number of direct conditions."""
        return len(self.state["cond_mean"])

    # ---------------------------------------------------------- inference
    def encode(self, padded, covariates):
        """Network inputs of a padded population.

        Returns
        -------
        set_x : ndarray of shape (n, T + D, n_features), float32
        mask : ndarray of shape (n, T + D), float32
        conditions : ndarray of shape (n, n_conditions), float32
        """
        s = self.state
        n, T, k = padded.values.shape
        D = padded.dose_times.shape[1]
        if k != s["n_outputs"]:
            raise ValueError(f"data have {k} outputs, the network was trained on {s['n_outputs']}")
        vm = padded.value_mask()
        cens = padded.censored & vm
        if cens.any() and not self.censored_channel:
            # the old layout has no indicator: a censored value enters as missing
            padded = padded.replace(
                values=np.where(cens, np.nan, padded.values), censored=np.zeros_like(cens)
            )
            vm = padded.value_mask()
        z = (padded.values - np.asarray(s["value_mean"])) / np.asarray(s["value_sd"])
        obs = np.zeros((n, T, self.n_features), dtype=np.float32)
        obs[..., 0] = padded.times / s["t_scale"]
        obs[..., 1 : 1 + k] = np.where(vm, z, 0.0)
        obs[..., 1 + k : 1 + 2 * k] = vm
        if self.censored_channel:
            obs[..., 1 + 2 * k : 1 + 3 * k] = cens
        obs[..., -3] = 1.0
        obs[~padded.obs_mask] = 0.0
        dose = np.zeros((n, D, self.n_features), dtype=np.float32)
        dm = padded.dose_mask
        if D:
            amounts = np.log(np.where(dm, padded.dose_amounts, 1.0))
            dose[..., 0] = padded.dose_times / s["t_scale"]
            dose[..., -2] = 1.0
            dose[..., -1] = (amounts - s["amount_mean"]) / s["amount_sd"]
            dose[~dm] = 0.0
        set_x = np.concatenate([obs, dose], axis=1)
        mask = np.concatenate([padded.obs_mask, dm], axis=1)
        order = np.argsort(np.where(mask, set_x[..., 0], np.inf), axis=1, kind="stable")
        set_x = np.take_along_axis(set_x, order[..., None], axis=1)
        mask = np.take_along_axis(mask, order, axis=1).astype(np.float32)
        raw = self._raw_conditions(padded, covariates)
        cond = (raw - np.asarray(s["cond_mean"])) / np.asarray(s["cond_sd"])
        return set_x, mask, cond.astype(np.float32)


def set_size(n_elements, trained):
    """Padded set size of one individual with ``n_elements`` elements.

    ``trained`` (the training set size) when the individual fits in it, else
    the next multiple of 8: it depends on the individual alone, not on the
    other rows passed with it.
    """
    n_elements = np.asarray(n_elements)
    return np.where(n_elements <= trained, trained, -(-n_elements // 8) * 8)


def pad_sets(arrays, size):
    """Right-pad encoded ``(set_x, mask)`` pairs to ``size`` elements (zeros, mask 0).

    A wider array whose rows each hold at most ``size`` real elements (the
    observation and dose blocks are as wide as the longest of each, which two
    different individuals can set: Quinidine, 40 doses and 11 samples against
    31 and 19 in the widest rows, 51 columns with at most 50 elements) has each
    row's real elements moved to the front first, which a set summary does not
    see (it is invariant to the order of the elements), and is cut to ``size``.

    Examples
    --------
    >>> import numpy as np
    >>> set_x = np.arange(8.0).reshape(2, 4, 1)
    >>> mask = np.array([[1, 0, 0, 1], [0, 1, 0, 0]], dtype=float)
    >>> x, m = pad_sets((set_x, mask), 2)
    >>> x[..., 0].tolist(), m.tolist()
    ([[0.0, 3.0], [5.0, 4.0]], [[1.0, 1.0], [1.0, 0.0]])
    """
    set_x, mask = arrays
    extra = size - set_x.shape[1]
    if extra < 0:
        order = np.argsort(np.asarray(mask) == 0, axis=1, kind="stable")
        set_x = np.take_along_axis(set_x, order[..., None], axis=1)
        mask = np.take_along_axis(mask, order, axis=1)
        if np.any(mask[:, size:]):
            raise ValueError(f"set of {int((mask != 0).sum(1).max())} elements does not fit {size}")
        set_x, mask = set_x[:, :size], mask[:, :size]
        extra = 0
    if extra:
        set_x = np.pad(set_x, ((0, 0), (0, extra), (0, 0)))
        mask = np.pad(mask, ((0, 0), (0, extra)))
    return set_x, mask


def as_padded(X, covariates=None):
    """Return ``(padded, covariates DataFrame or None)`` for a :class:`Padded` or a pair."""
    if isinstance(X, Padded):
        return X, covariates
    if isinstance(X, tuple) and len(X) == 2 and isinstance(X[0], Padded):
        return X
    raise TypeError(f"expected Padded or (Padded, covariates), got {type(X).__name__}")
