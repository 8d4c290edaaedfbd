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
# Draws per probe: max(PROBE_FACTOR K, PROBE_MIN). With the defensive mixture
# every weight is bounded, so few draws judge a proposal as well as many.
# Measured (flagged below 0.25 on 250 / 1,000 / 16,000 draws):
# - linear-Gaussian, proposals 10-100x too narrow in SD, 1 and 3 dimensions:
#   all flagged at each size; at the borderline 0.2x (1-d) 0.398 / 0.405 / 0.427;
# - shipped one-compartment network, N = 2,000, at the amortized estimate:
#   0.243 / 0.244 / 0.238 flagged, and no individual with a true ESS below 0.15
#   missed at any size (40 / 19 borderline misses between 0.15 and 0.25).
# With 10 K and 1,000 the probes were 35 % of an N = 10,000 fit (13.5 of 39 s).
PROBE_FACTOR, PROBE_MIN = 4, 400


def probe_ess(objective, x, seed, rows=None):
    """ESS fractions on ``max(4 K, 400)`` fresh draws (of individuals ``rows``: all when None).

    More draws than the objective's own: a proposal too narrow can look fine on
    the few draws it is fitted with. The defensive fifth of the draws (from the
    population distribution) bounds every weight, so a probe of a few hundred
    draws reads the ESS fraction as one of thousands does (see ``PROBE_FACTOR``).

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
    probe = sub.with_draws(max(PROBE_FACTOR * objective.K, PROBE_MIN), random_state=seed)
    blocks = probe.shards.blocks(probe.n, max(1, _PROBE_BLOCK_DRAWS // probe.K))
    parts = probe.shards.map(_block_ess, probe, blocks, np.asarray(x, dtype=float))
    return np.concatenate(parts) / probe.K


def _block_ess(objective, rows, x):
    """Effective sample sizes of ``objective`` at ``x`` for individuals ``rows``."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_w = objective._batch(x[None], rows)[1][0]
    w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
    return 1.0 / np.sum(w**2, axis=1)
