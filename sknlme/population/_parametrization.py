"""Population parameter layout: names, bounds, fixed entries and the chain rule.

The population model is ``phi_i ~ N(m_i, Psi)`` with ``m_i = beta + B^T c_i``.
:class:`Parametrization` maps an unconstrained vector ``x`` (fixed effects,
covariate effects, covariance parameters) to ``(beta, B, L)`` with ``Psi = L L^T``
and carries gradients with respect to ``(beta, B, L)`` back to ``x``.

Covariance parameters, per block of parameters with random effects:

- a block of one parameter ``p`` has one log-variance ``log_var(p)``;
- a larger block has a log-Cholesky factor: ``log_chol(p)`` (log of the
  diagonal of ``L``) and ``chol(p_row,p_col)`` (entries below the diagonal).

Parameters without a random effect keep a fixed variance ``variance_floor``
(no free parameter): it keeps ``N(.; m_i, Psi)`` non-degenerate (the original
amortized-NLME code used 0.001) and should be reported with the estimates.
"""

from __future__ import annotations

import numpy as np

from ._layout_general import DF_START, GeneralLayoutMixin

__all__ = ["Parametrization"]


def _check_names(names, known, what):
    unknown = [str(n) for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {list(known)}")


class Parametrization(GeneralLayoutMixin):
    """Layout of the population parameter vector.

    Parameters
    ----------
    param_names : sequence of str
        Individual parameter names (length ``d``).
    covariance : {"diag", "cholesky"} or list of lists of str, default="diag"
        Structure of the random-effects covariance: independent log-variances,
        one full log-Cholesky block, or the given blocks (each a log-Cholesky
        factor; random effects in no block get their own log-variance).
    random_effects : sequence of str, default=None
        Parameters with a random effect (all when None).
    covariate_names : sequence of str, default=()
        Covariate names (columns of ``c_i``).
    covariate_effects : dict, default=None
        Covariate name -> list of parameter names it shifts; each pair is one
        free parameter named ``"{covariate}:{parameter}"``.
    fixed : dict, default=None
        Name (any of :attr:`x_names_full`) -> value held fixed.
    variance_floor : float or array-like of shape (d,), default=1e-3
        Variance of the parameters without random effect (one for all, or one
        per parameter).
    bounds : dict, default=None
        Name -> ``(low, high)``; overrides the defaults (see :meth:`default_bounds`).
    sample_range : array-like of shape (2, d), default=None
        Per-parameter minimum and maximum of the draws, for default bounds.
    covariate_scale : array-like of shape (p,), default=None
        Standard deviation of each covariate, for default bounds.
    variance_groups : tuple (column, levels, params), default=None
        One log-variance per level of ``column`` for the random effects
        ``params``, named ``log_var(p)[column=level]`` (diagonal ``Psi`` only;
        see ``_layout_general``).
    distribution : {"normal", "student_t"}, default="normal"
        Random-effects distribution; ``"student_t"`` adds ``log_df = log(nu)``.
    df : float, default=None
        Fixed degrees of freedom of the t (no ``log_df`` parameter then).

    Examples
    --------
    >>> import numpy as np
    >>> par = Parametrization(["a", "b", "c"], covariance="cholesky", random_effects=["a", "b"])
    >>> par.x_names
    ['a', 'b', 'c', 'log_chol(a)', 'log_chol(b)', 'chol(b,a)']
    >>> cov = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1e-3]])
    >>> x = par.pack(beta=[1.0, 2.0, 3.0], cov=cov)
    >>> np.allclose(par.unpack(x)["cov"], cov)
    True
    """

    def __init__(
        self,
        param_names,
        covariance="diag",
        random_effects=None,
        covariate_names=(),
        covariate_effects=None,
        fixed=None,
        variance_floor=1e-3,
        bounds=None,
        sample_range=None,
        covariate_scale=None,
        variance_groups=None,
        distribution="normal",
        df=None,
    ):
        self.param_names = [str(p) for p in param_names]
        d = self.d = len(self.param_names)
        if d == 0 or len(set(self.param_names)) != d:
            raise ValueError(f"param_names must be non-empty and unique, got {param_names}")
        index = {p: j for j, p in enumerate(self.param_names)}
        self.covariate_names = [str(c) for c in (covariate_names or ())]
        self.p = len(self.covariate_names)
        floor = np.broadcast_to(np.asarray(variance_floor, dtype=float), (d,)).copy()
        if not np.all(np.isfinite(floor) & (floor > 0)):
            raise ValueError(f"variance_floor must be positive numbers, got {variance_floor}")
        self.variance_floor = floor

        if random_effects is None:
            random_effects = list(self.param_names)
        random_effects = [str(p) for p in random_effects]
        _check_names(random_effects, index, "parameter name(s) in random_effects")
        self.random_effects = [p for p in self.param_names if p in set(random_effects)]
        self.blocks = self._make_blocks(covariance, index)
        self._setup_general(variance_groups, distribution, df, index)

        self.cov_pairs = []  # (covariate index, parameter index)
        names = list(self.param_names)
        effects = covariate_effects or {}
        if effects and self.p == 0:
            raise ValueError("covariate_effects given but no covariates")
        _check_names(list(effects), self.covariate_names, "covariate(s) in covariate_effects")
        for c, cname in enumerate(self.covariate_names):
            targets = (
                [effects[cname]] if isinstance(effects.get(cname), str) else effects.get(cname, [])
            )
            _check_names(targets, index, f"parameter name(s) for covariate {cname!r}")
            for pname in self.param_names:
                if pname in set(targets):
                    self.cov_pairs.append((c, index[pname]))
                    names.append(f"{cname}:{pname}")
        self.n_cov_effects = len(self.cov_pairs)
        self._cov_start = len(names)
        self.chol_entries = []  # (row, col, kind) with kind "log_var", "log_chol" or "chol"
        for block in self.blocks:
            if len(block) == 1 and block[0] in set(self.grouped):
                continue  # one log-variance per group level instead (_general_names)
            if len(block) == 1:
                self.chol_entries.append((block[0], block[0], "log_var"))
                continue
            for j in block:
                self.chol_entries.append((j, j, "log_chol"))
            for a, j in enumerate(block):
                for m in block[:a]:
                    self.chol_entries.append((j, m, "chol"))
        for j, m, kind in self.chol_entries:
            pj, pm = self.param_names[j], self.param_names[m]
            names.append(f"chol({pj},{pm})" if kind == "chol" else f"{kind}({pj})")
        names += self._general_names()
        self.x_names_full = names
        self.n_full = len(names)
        self.diagonal = all(len(b) == 1 for b in self.blocks)

        lb, ub = self.default_bounds(sample_range, covariate_scale)
        bounds = dict(bounds or {})
        _check_names(list(bounds), names, "name(s) in bounds")
        pos = {nm: i for i, nm in enumerate(names)}
        for nm, (lo, hi) in bounds.items():
            if not lo < hi:
                raise ValueError(f"bounds for {nm!r} must satisfy low < high, got ({lo}, {hi})")
            lb[pos[nm]], ub[pos[nm]] = float(lo), float(hi)
        self.lb_full, self.ub_full = lb, ub

        fixed = dict(fixed or {})
        _check_names(list(fixed), names, "name(s) in fixed")
        self.free = np.ones(self.n_full, dtype=bool)
        self.fixed_values = np.zeros(self.n_full)
        for nm, value in fixed.items():
            i = pos[nm]
            value = float(value)
            if not lb[i] <= value <= ub[i]:
                raise ValueError(
                    f"fixed value {value} for {nm!r} is outside its bounds ({lb[i]}, {ub[i]})"
                )
            self.free[i] = False
            self.fixed_values[i] = value
        self.x_names = [nm for nm, f in zip(names, self.free, strict=True) if f]
        self.n_x = len(self.x_names)

    def _make_blocks(self, covariance, index):
        re = self.random_effects
        re_set = set(re)
        if isinstance(covariance, str):
            if covariance == "diag":
                return [[index[p]] for p in re]
            if covariance == "cholesky":
                return [[index[p] for p in re]] if re else []
            raise ValueError(
                f"covariance must be 'diag', 'cholesky' or a list of blocks, got {covariance!r}"
            )
        blocks, seen = [], set()
        for block in covariance:
            if isinstance(block, str) or len(block) == 0:
                raise ValueError(f"each covariance block must be a non-empty list, got {block!r}")
            _check_names(block, index, "parameter name(s) in covariance blocks")
            for pname in block:
                if pname not in re_set:
                    raise ValueError(f"{pname!r} is in a covariance block but has no random effect")
                if pname in seen:
                    raise ValueError(f"{pname!r} appears in more than one covariance block")
                seen.add(pname)
            blocks.append(sorted(index[p] for p in block))
        blocks += [[index[p]] for p in re if p not in seen]
        return sorted(blocks)

    def default_bounds(self, sample_range=None, covariate_scale=None):
        """Default bounds over the full vector.

        With ``w_j = max(max_j - min_j, 1)`` the width of the draws of
        parameter ``j`` (at least 1, so that a few identical draws still give
        room; ``w_j = 10`` and centre 0 without ``sample_range``):
        fixed effect ``[min_j - w_j / 2, max_j + w_j / 2]``; covariate effect
        ``+- 2 w_j / sd(covariate)``; ``log_var`` in ``[-20, 2 log w_j + 2]``;
        ``log_chol`` in ``[-10, log w_j + 1]``; ``chol(j, m)`` in ``+- e w_j``
        (``|L_jm| <= sqrt(Psi_jj)``, so these contain every covariance whose
        standard deviations stay below ``e w_j``).
        """
        if sample_range is None:
            lo, hi = np.full(self.d, -5.0), np.full(self.d, 5.0)
        else:
            lo, hi = (np.asarray(v, dtype=float) for v in sample_range)
        w = np.maximum(hi - lo, 1.0)
        scale = np.ones(self.p) if covariate_scale is None else np.asarray(covariate_scale, float)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        lb = list(lo - w / 2)
        ub = list(hi + w / 2)
        for c, j in self.cov_pairs:
            lb.append(-2 * w[j] / scale[c])
            ub.append(2 * w[j] / scale[c])
        for j, _, kind in self.chol_entries:
            low, high = {
                "log_var": (-20.0, 2 * np.log(w[j]) + 2),
                "log_chol": (-10.0, np.log(w[j]) + 1),
                "chol": (-np.e * w[j], np.e * w[j]),
            }[kind]
            lb.append(low)
            ub.append(max(high, low + 1.0))
        if self.general:
            glb, gub = self._general_bounds(w)
            lb, ub = lb + glb, ub + gub
        return np.array(lb), np.array(ub)

    # ----------------------------------------------------------- vectors
    @property
    def bounds(self):
        """``(lb, ub)`` over the free entries."""
        return self.lb_full[self.free].copy(), self.ub_full[self.free].copy()

    def x_full(self, x_free):
        """Full vector from the free entries (fixed entries filled in)."""
        x_free = np.asarray(x_free, dtype=float).reshape(-1)
        if x_free.shape != (self.n_x,):
            raise ValueError(f"x must have {self.n_x} entries, got {x_free.shape[0]}")
        x = self.fixed_values.copy()
        x[self.free] = x_free
        return x

    def x_free(self, x_full):
        """Free entries of a full vector."""
        x_full = np.asarray(x_full, dtype=float).reshape(-1)
        if x_full.shape != (self.n_full,):
            raise ValueError(f"full x must have {self.n_full} entries, got {x_full.shape[0]}")
        return x_full[self.free].copy()

    def factors(self, x_free):
        """``(beta (d,), B (p, d), L (d, d))`` with ``Psi = L L^T``."""
        x = self.x_full(x_free)
        d = self.d
        beta = x[:d].copy()
        B = np.zeros((self.p, d))
        for t, (c, j) in enumerate(self.cov_pairs):
            B[c, j] = x[d + t]
        L = np.diag(np.sqrt(self.variance_floor))
        entries = x[self._cov_start : self._cov_start + len(self.chol_entries)]
        for v, (j, m, kind) in zip(entries, self.chol_entries, strict=True):
            if kind == "log_var":
                L[j, j] = np.exp(0.5 * v)
            elif kind == "log_chol":
                L[j, j] = np.exp(v)
            else:
                L[j, m] = v
        for v, (j, g) in zip(x[self._general_start :], self.group_entries, strict=False):
            if g == 0:  # grouped: the first level's (see group_variances for all)
                L[j, j] = np.exp(0.5 * v)
        return beta, B, L

    def unpack(self, x_free):
        """Dictionary with ``beta`` (d,), ``B`` (p, d) and ``cov`` (d, d) (floors included).

        With variance groups ``cov`` holds the first level's variances and
        ``group_var`` (G, d) every level's; ``df`` is the t's degrees of freedom
        (``inf`` for normal random effects).
        """
        beta, B, L = self.factors(x_free)
        out = {"beta": beta, "B": B, "cov": L @ L.T}
        if self.general:
            out["group_var"] = self.group_variances(x_free)
            out["df"] = self.df_value(x_free)
        return out

    def pack(self, beta=None, B=None, cov=None, group_var=None, df=None):
        """Free vector from ``beta``, ``B`` and ``cov`` (zeros / identity where omitted).

        Only the entries of ``cov`` inside the covariance blocks are used. Group
        levels take ``group_var`` (G, d) where given, else ``cov``'s diagonal;
        ``log_df`` takes ``log(df)`` (10 when omitted, unless it is fixed).
        """
        d = self.d
        x = self.fixed_values.copy()
        x[:d] = 0.0 if beta is None else np.asarray(beta, dtype=float)
        if B is not None:
            B = np.asarray(B, dtype=float).reshape(self.p, d)
            for t, (c, j) in enumerate(self.cov_pairs):
                x[d + t] = B[c, j]
        cov = np.eye(d) if cov is None else np.asarray(cov, dtype=float)
        L = np.zeros((d, d))
        for block in self.blocks:
            L[np.ix_(block, block)] = np.linalg.cholesky(cov[np.ix_(block, block)])
        for t, (j, m, kind) in enumerate(self.chol_entries):
            x[self._cov_start + t] = {
                "log_var": 2 * np.log(L[j, j]),
                "log_chol": np.log(L[j, j]),
                "chol": L[j, m],
            }[kind]
        start = self._general_start
        gv = None if group_var is None else np.asarray(group_var, dtype=float)
        for t, (j, g) in enumerate(self.group_entries):
            x[start + t] = np.log(cov[j, j] if gv is None else gv[g, j])
        if self.estimate_df and self.free[-1]:
            x[-1] = np.log(DF_START if df is None else float(df))
        return self.x_free(x)

    def chain(self, x_free, g_beta, g_B, g_L):
        """Gradient over the free entries from gradients w.r.t. ``beta``, ``B`` and ``L``."""
        _, _, L = self.factors(x_free)
        g = np.empty(self.n_full)
        g[: self.d] = g_beta
        for t, (c, j) in enumerate(self.cov_pairs):
            g[self.d + t] = g_B[c, j]
        if self.general:
            raise ValueError("chain() is for the normal layout; use chain_general()")
        for t, (j, m, kind) in enumerate(self.chol_entries):
            if kind == "log_var":  # L_jj = exp(v / 2)
                val = 0.5 * L[j, j] * g_L[j, j]
            elif kind == "log_chol":  # L_jj = exp(v)
                val = L[j, j] * g_L[j, j]
            else:
                val = g_L[j, m]
            g[self._cov_start + t] = val
        return g[self.free]
