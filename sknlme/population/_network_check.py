"""Does the network's posterior agree with the exact one? The check of amortized fits.

The amortized likelihood ``(1/K) sum_k p(phi_ik | theta) / p0(phi_ik)`` over
draws of ``q(phi | y_i)`` is the marginal likelihood (up to a constant) only
where ``q`` is the posterior under the training prior ``p0``. Where the model
has a likelihood that is checked directly: the self-normalised importance
weights ``w_ik ~ p(y_i | phi_ik) p0(phi_ik) / q(phi_ik | y_i)`` of the
network's own draws are flat for an exact posterior (effective sample size
``K``) and collapse where ``q`` is off. For Gaussians the ESS fraction is
``exp(-delta^2)`` for a mean off by ``delta`` posterior SDs and ``0.66`` per
coordinate for a posterior twice too wide, so ``AGREEMENT_FRACTION = 0.1``
flags a mean 1.5 SDs off, or a posterior twice too wide in five coordinates.
Measured on theophylline: the broad ``one-compartment-oral-trans4`` network,
whose amortized fit is visibly off, has ESS fractions of 0.4-5.4 % for all 12
subjects (see ``tests/test_network_check.py``). A posterior too *narrow* is
caught less reliably: its weights have infinite variance, which 50 draws need
not show (a posterior 100x too narrow gave ESS fractions of 2-55 %); the
importance likelihood probes with more draws for that reason.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import logsumexp

__all__ = [
    "AGREEMENT_FRACTION",
    "check_network",
    "network_agreement",
    "warn_network_disagreement",
]

AGREEMENT_FRACTION = 0.1
# draws per individual judged (a log-density pass of the flow costs about what a draw
# does, so the check adds at most half the fit's sampling)
_CHECK_DRAWS = 50


def network_agreement(posterior, model, study, samples, offsets, skip_rows=()):
    """ESS fraction per individual of its draws' weights against the exact posterior.

    Parameters
    ----------
    posterior : estimator
        The fit's posterior (``log_prob(study, phi)``).
    model : Model
        With an observation likelihood (``has_likelihood``).
    study : Study
    samples : ndarray of shape (n, K, d)
        The fit's draws of ``posterior``.
    offsets : ndarray of shape (n, K)
        Their amortized offsets ``-log p0(phi_ik)``.
    skip_rows : array-like of int, default=()
        Rows whose draws are not the posterior's (Laplace fallbacks): NaN.

    Returns
    -------
    Series
        By ID: ``1 / (K' sum_k w_ik^2)`` on the first ``K' = min(K, 50)`` draws.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import amortized_offsets
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(3, random_state=0)
    >>> study = model.prepare(X)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> phi = post.sample(X, 20, random_state=0)
    >>> c = amortized_offsets(phi, model.prior_mean, model.prior_cov)
    >>> np.round(network_agreement(post, model, study, phi, c).to_numpy(), 6).tolist()
    [1.0, 1.0, 1.0]
    """
    k = min(samples.shape[1], _CHECK_DRAWS)
    phi = np.asarray(samples[:, :k], dtype=float)
    log_q = np.asarray(posterior.log_prob(study, phi), dtype=float)
    with np.errstate(all="ignore"):
        ll = model.log_likelihood_padded(phi, study.padded, study.covariates)
        log_w = ll - offsets[:, :k] - log_q
        log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
        w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
        ess = 1.0 / np.sum(w**2, axis=1) / k
    ess[~np.isfinite(ess)] = 0.0  # no finite weight: no agreement at all
    ess[np.asarray(skip_rows, dtype=np.intp)] = np.nan
    return pd.Series(ess, index=study.index, name="network_ess_fraction")


def check_network(posterior, model, study, samples, offsets, skip_rows=()):
    """An amortized fit's check: warn where the network disagrees with the exact posterior.

    Nothing happens for a model without likelihood or a posterior without
    ``log_prob``. Returns the agreement (see :func:`network_agreement`) or None.

    Examples
    --------
    >>> from sknlme.models import MRNATransfectionSDE
    >>> check_network(None, MRNATransfectionSDE(), None, None, None) is None
    True
    """
    if not model.has_likelihood or not hasattr(posterior, "log_prob"):
        return None
    agreement = network_agreement(posterior, model, study, samples, offsets, skip_rows)
    warn_network_disagreement(agreement, stacklevel=4)
    return agreement


def warn_network_disagreement(agreement, fraction=AGREEMENT_FRACTION, stacklevel=3):
    """Warn, naming them, about individuals whose ESS fraction is below ``fraction``.

    Examples
    --------
    >>> import warnings
    >>> import pandas as pd
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_network_disagreement(pd.Series([0.9, 0.02], index=["a", "b"]))
    >>> "'b' (2.0%)" in str(w[0].message)
    True
    """
    low = agreement[agreement < fraction]
    if not len(low):
        return
    shown = ", ".join(f"{i!r} ({v:.1%})" for i, v in low.head(10).items())
    more = f" and {len(low) - 10} more" if len(low) > 10 else ""
    warnings.warn(
        f"likelihood='amortized': the network's posterior disagrees with the exact posterior "
        f"of the model for {len(low)} of {agreement.notna().sum()} individual(s) (importance "
        f"ESS of its draws below {fraction:.0%}): {shown}{more}. The amortized estimates assume "
        "that they agree and can be biased; likelihood='importance' corrects them (the "
        "default 'auto' uses it where the model has a likelihood)",
        RuntimeWarning,
        stacklevel=stacklevel,
    )
