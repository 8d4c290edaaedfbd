"""ESS probes: how well importance proposals do, judged on many fresh draws."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._resample import subset_objective

__all__ = ["LOW_ESS_FRACTION", "probe_ess"]

# An individual whose ESS under the network-based proposal is below this fraction of
# the draws gets a Laplace proposal too (kept only where its ESS is higher).
LOW_ESS_FRACTION = 0.25
_PROBE_BLOCK_DRAWS = 2**20  # draws per block of an ESS probe


def probe_ess(objective, x, seed, rows=None):
    """ESS fractions on ``max(10 K, 1000)`` fresh draws (of individuals ``rows``: all when None).

    A proposal too narrow looks fine on few draws (they all land where the
    weights are flat); more draws reach into the t tails where the weights
    grow. Measured on a linear-Gaussian posterior 50x too narrow: ESS 5-20 of
    20 fit draws, about 2 % on 50,000.

    The draws are keyed by individual, so a row's probe is the same whether
    probed alone or with all. Only ``rows`` are drawn, in blocks whose draws
    are dropped once their ESS is taken (at N = 10,000 a probe of all rows
    kept 10 million draws, 400 MB, to read 10,000 numbers off them).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(4, random_state=0)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
    >>> obj = ImportanceObjective(base, model, X, 50, random_state=0)
    >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
    >>> ess = probe_ess(obj, x, seed=1)
    >>> bool(np.all((ess > 0.25) & (ess <= 1.0)))
    True
    >>> bool(np.allclose(probe_ess(obj, x, seed=1, rows=[3, 1]), ess[[3, 1]]))
    True
    """
    if rows is None:
        sub = objective
    else:
        rows = np.asarray(rows, dtype=np.intp).reshape(-1)
        if rows.size == 0:
            return np.empty(0)
        sub = subset_objective(objective, rows)
    probe = sub.with_draws(max(10 * objective.K, 1000), random_state=seed)
    blocks = probe.shards.blocks(probe.n, max(1, _PROBE_BLOCK_DRAWS // probe.K))
    parts = probe.shards.map(_block_ess, probe, blocks, np.asarray(x, dtype=float))
    return np.concatenate(parts) / probe.K


def _block_ess(objective, rows, x):
    """Effective sample sizes of ``objective`` at ``x`` for individuals ``rows``."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_w = objective._batch(x[None], rows)[1][0]
    w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
    return 1.0 / np.sum(w**2, axis=1)
