"""Group-specific variances and Student t random effects in the parameter layout.

Two extensions of ``phi_i ~ N(m_i, Psi)``, both for a diagonal ``Psi``:

- **variance groups**: the levels of one categorical column each get their own
  log-variance ``log_var(p)[COLUMN=level]`` for the named random effects
  (the other random effects keep one ``log_var(p)``), so individual ``i`` has
  its own ``Psi_i``;
- **Student t random effects**: the random effects are jointly multivariate t
  with ``nu`` degrees of freedom and scale ``Psi_i`` (``nu`` fixed, a constant
  of the model and no parameter, or the free parameter ``log_df = log(nu)``);
  parameters without a random effect keep their independent normal with the
  variance floor.

:class:`GeneralLayoutMixin` gives :class:`Parametrization` the per-individual
standard deviations, the degrees of freedom and the chain rule from gradients
with respect to ``(beta, B, log sd_ij, nu)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DF_BOUNDS", "GeneralLayoutMixin", "DF_START"]

# log_df in [log 1, log 1000]: below 1 the t has no mean; above 1000 it is a normal
# to within 0.1 % in its quantiles up to 4 SD (so a larger df would not be told apart
# on any study size this package fits)
DF_BOUNDS = (0.0, float(np.log(1000.0)))
DF_START = 10.0  # df of packed vectors when none is given


def _grouping(variance_groups, index, random_effects):
    """``(column, levels, grouped parameter indices)`` from ``(column, levels, params)``."""
    if variance_groups is None:
        return None, [], []
    column, levels, params = variance_groups
    params = [params] if isinstance(params, str) else [str(p) for p in params]
    unknown = [p for p in params if p not in index]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} in variance_groups; known: {list(index)}")
    no_re = [p for p in params if p not in set(random_effects)]
    if no_re:
        raise ValueError(f"variance_groups names parameter(s) {no_re} without a random effect")
    levels = [str(v) for v in levels]
    if len(levels) < 1 or len(set(levels)) != len(levels):
        raise ValueError(f"variance group levels must be non-empty and unique, got {levels}")
    return str(column), levels, sorted(index[p] for p in params)


class GeneralLayoutMixin:
    """Per-individual scales, degrees of freedom and their chain rule (diagonal ``Psi``).

    Set up by :meth:`_setup_general`; ``general`` is False for the plain normal
    layout, whose code paths stay as they were.
    """

    def _setup_general(self, variance_groups, distribution, df, index):
        if distribution not in ("normal", "student_t"):
            raise ValueError(
                f"random_effects_distribution must be 'normal' or 'student_t', got {distribution!r}"
            )
        self.distribution = distribution
        self.group_column, self.group_levels, self.grouped = _grouping(
            variance_groups, index, self.random_effects
        )
        self.student = distribution == "student_t"
        self.general = self.student or bool(self.grouped)
        if self.general and not all(len(b) == 1 for b in self.blocks):
            what = "variance_groups" if self.grouped else "random_effects_distribution='student_t'"
            raise ValueError(f"{what} needs covariance='diag' (a full covariance is refused)")
        self.fixed_df = None  # a given df is a constant of the model, not a parameter
        if self.student and df is not None:
            df = float(df)
            if not np.isfinite(df) or df <= 0:
                raise ValueError(f"df must be a positive number, got {df}")
            self.fixed_df = df
        elif df is not None:
            raise ValueError("df is given but random_effects_distribution is 'normal'")
        self.estimate_df = self.student and self.fixed_df is None

    def _general_names(self):
        """Names of the group variances and ``log_df`` (after the covariance entries)."""
        names = []
        self.group_entries = [(j, g) for j in self.grouped for g in range(len(self.group_levels))]
        for j, g in self.group_entries:
            names.append(
                f"log_var({self.param_names[j]})[{self.group_column}={self.group_levels[g]}]"
            )
        if self.estimate_df:
            names.append("log_df")
        return names

    def _general_bounds(self, w):
        lb, ub = [], []
        for j, _ in self.group_entries:
            lb.append(-20.0)
            ub.append(max(2 * np.log(w[j]) + 2, -19.0))
        if self.estimate_df:
            lb.append(DF_BOUNDS[0])
            ub.append(DF_BOUNDS[1])
        return lb, ub

    @property
    def _general_start(self):
        return self._cov_start + len(self.chol_entries)

    # ------------------------------------------------------------ values
    def group_variances(self, x_free):
        """Variances ``(G, d)`` per group level (each level's own for grouped parameters).

        Examples
        --------
        >>> from sknlme.population._parametrization import Parametrization
        >>> par = Parametrization(["a", "b"], variance_groups=("G", ["u", "v"], ["a"]))
        >>> par.x_names
        ['a', 'b', 'log_var(b)', 'log_var(a)[G=u]', 'log_var(a)[G=v]']
        >>> par.group_variances([0.0, 0.0, 0.0, 0.0, np.log(4.0)]).tolist()
        [[1.0, 1.0], [4.0, 1.0]]
        """
        x = self.x_full(x_free)
        _, _, L = self.factors(x_free)
        out = np.tile(np.diag(L) ** 2, (max(1, len(self.group_levels)), 1))
        for t, (j, g) in enumerate(self.group_entries):
            out[g, j] = np.exp(x[self._general_start + t])
        return out

    def df_value(self, x_free):
        """Degrees of freedom ``nu`` of the t random effects (``inf`` for normal ones)."""
        if not self.student:
            return np.inf
        if self.fixed_df is not None:
            return self.fixed_df
        return float(np.exp(self.x_full(x_free)[-1]))

    def sd_rows(self, x_free, codes):
        """Standard deviations ``(n, d)`` of every individual (``codes``: group level index)."""
        sd = np.sqrt(self.group_variances(x_free))
        codes = np.zeros(0, dtype=np.intp) if codes is None else np.asarray(codes, dtype=np.intp)
        return sd[codes] if self.grouped else np.broadcast_to(sd[0], (codes.size, self.d)).copy()

    def t_mask(self):
        """Random effects that share the t (int8 of shape (d,); zeros for normal effects)."""
        mask = np.zeros(self.d, dtype=np.int8)
        if self.student:
            mask[[self.param_names.index(p) for p in self.random_effects]] = 1
        return mask

    def chain_general(self, x_free, g_beta, g_B, g_logsd, codes, g_nu=0.0):
        """Gradient over the free entries from ``d f / d (beta, B, log sd_ij, nu)``.

        ``g_logsd`` (n, d) is the gradient with respect to each individual's
        log standard deviations, summed per parameter (and per group level for
        grouped ones); ``log_var = 2 log sd`` and ``log_df = log nu``.
        """
        g = np.zeros(self.n_full)
        g[: self.d] = g_beta
        for t, (c, j) in enumerate(self.cov_pairs):
            g[self.d + t] = g_B[c, j]
        codes = np.asarray(codes, dtype=np.intp)
        totals = np.asarray(g_logsd).sum(axis=0)
        for t, (j, _, _) in enumerate(self.chol_entries):  # log_var only: Psi is diagonal
            g[self._cov_start + t] = 0.5 * totals[j]
        start = self._general_start
        for t, (j, lev) in enumerate(self.group_entries):
            g[start + t] = 0.5 * g_logsd[codes == lev, j].sum()
        if self.estimate_df:
            g[-1] = self.df_value(x_free) * g_nu
        return g[self.free]
