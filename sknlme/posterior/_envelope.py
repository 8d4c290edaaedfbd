"""The envelope of a posterior's training designs, and checks of data against it.

A network only learns the designs it was trained on. At fit the posterior
records, per training individual, a few design statistics and keeps their
ranges (the *envelope*); every individual passed later is checked against
them. Ranges get a relative margin of ``MARGIN`` of their width (times: of
the training time span), because a statistic a little past the extremes of
10,000 or more training draws is still interpolated by the network; a
constant training statistic (one dose count, one dose amount) has no margin
beyond float round-off: the network never saw another value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

# 10 % of a range: theophylline's 4-of-11 sampling has a median spacing of
# 4.9-7.1 h against 0.5-1.5 h in training and 320 mg doses against 3-6 mg/kg,
# far outside any margin; draws from the training designs themselves stay inside
# (tests/test_posterior_envelope.py measures the false-positive rate).
MARGIN = 0.1
# observed values: the full range over the training individuals; the 0.5 and
# 99.5 percentiles of the per-individual extremes flagged 0.25-0.4 % of fresh
# simulations of the shipped networks' own designs, 0.05/99.95 still 0.5 %
# (heavy-tailed noise), i.e. warnings on ordinary data. The check is for units
# (values 1000 times larger), not for tails.
ENVELOPE_DESIGNS = 20_000  # designs drawn for files saved without an envelope
CHECKS = (
    "n_observations",
    "n_doses",
    "first_time",
    "last_time",
    "spacing",
    "dose_amounts",
    "dose_times",
    "covariates",
    "values",
    "missing",
    "censored",
)


def _statistics(padded, covariates):
    """Per-individual design statistics (dict of arrays, NaN where undefined)."""
    vm = padded.value_mask()
    seen = vm.any(-1)  # an observation time with at least one observed value
    n_obs = seen.sum(1)
    t = np.where(seen, padded.times, np.nan)
    # an individual with fewer than two observations has no spacing (NaN, no warning)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        first = np.nanmin(np.where(n_obs[:, None] > 0, t, 0.0), axis=1)
        last = np.nanmax(np.where(n_obs[:, None] > 0, t, 0.0), axis=1)
        ts = np.sort(t, axis=1)  # NaN last
        spacing = np.nanmedian(np.diff(ts, axis=1), axis=1) if ts.shape[1] > 1 else first * np.nan
    first, last = np.where(n_obs > 0, first, np.nan), np.where(n_obs > 0, last, np.nan)
    dm = padded.dose_mask
    amounts = np.where(dm, padded.dose_amounts, np.nan)
    dose_t = np.where(dm, padded.dose_times, np.nan)
    k = padded.n_outputs
    vals = np.where(vm, padded.values, np.nan)
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
            v_min = np.nanmin(vals, axis=1) if vals.shape[1] else np.full((len(n_obs), k), np.nan)
            v_max = np.nanmax(vals, axis=1) if vals.shape[1] else np.full((len(n_obs), k), np.nan)
            a_min, a_max = (
                np.nanmin(amounts, 1, initial=np.inf),
                np.nanmax(amounts, 1, initial=-np.inf),
            )
            d_min, d_max = (
                np.nanmin(dose_t, 1, initial=np.inf),
                np.nanmax(dose_t, 1, initial=-np.inf),
            )
    n_times = np.maximum(padded.obs_mask.sum(1) * k, 1)
    missing = 1.0 - vm.sum((1, 2)) / n_times
    censored = (padded.censored & vm).sum((1, 2)) / np.maximum(vm.sum((1, 2)), 1)
    cov = np.asarray(covariates if covariates is not None else np.zeros((len(n_obs), 0)), float)
    return {
        "n_observations": n_obs,
        "n_doses": dm.sum(1),
        "first_time": first,
        "last_time": last,
        "spacing": spacing,
        "amount_min": np.where(np.isfinite(a_min), a_min, np.nan),
        "amount_max": np.where(np.isfinite(a_max), a_max, np.nan),
        "dose_time_min": np.where(np.isfinite(d_min), d_min, np.nan),
        "dose_time_max": np.where(np.isfinite(d_max), d_max, np.nan),
        "value_min": v_min,
        "value_max": v_max,
        "missing": missing,
        "censored": censored,
        "covariates": cov.reshape(len(n_obs), -1),
    }


def _range(x):
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return [float(x.min()), float(x.max())] if x.size else None


def design_envelope(padded, covariates):
    """The envelope (a JSON-serialisable dict) of training individuals."""
    s = _statistics(padded, covariates)
    values = [
        _range(np.concatenate([s["value_min"][:, j], s["value_max"][:, j]]))
        for j in range(padded.n_outputs)
    ]
    dose_times = _range(np.concatenate([s["dose_time_min"], s["dose_time_max"]]))
    amounts = _range(np.concatenate([s["amount_min"], s["amount_max"]]))
    return {
        "n_observations": _range(s["n_observations"]),
        "n_doses": _range(s["n_doses"]),
        "first_time": _range(s["first_time"]),
        "last_time": _range(s["last_time"]),
        "spacing": _range(s["spacing"]),
        "dose_amounts": amounts,
        "dose_times": dose_times,
        "covariates": [_range(c) for c in s["covariates"].T],
        "values": values,
        "missing": _range(s["missing"]),
        "censored": _range(s["censored"]),
    }


def _outside(x, rng, margin):
    """True where finite ``x`` lies beyond ``rng`` widened by ``margin``."""
    x = np.asarray(x, float)
    if rng is None:
        return np.isfinite(x)
    lo, hi = rng
    tol = margin + 1e-9 * max(1.0, abs(lo), abs(hi))  # float round-off of saved ranges
    with np.errstate(invalid="ignore"):
        return np.isfinite(x) & ((x < lo - tol) | (x > hi + tol))


def _fmt(rng):
    if rng is None:
        return "none"
    lo, hi = rng
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}-{hi:.3g}"


def _span(rng):
    return 0.0 if rng is None else rng[1] - rng[0]


def check_envelope(envelope, padded, covariates, ids, reads_censored=True):
    """Per-individual checks against ``envelope``: DataFrame (True = outside) and reasons.

    ``reads_censored`` False (a network without the censored channel) says in
    the reason that its censored values are read as missing.
    """
    e = envelope
    s = _statistics(padded, covariates)
    n = len(s["n_observations"])
    times = [r for r in (e["first_time"], e["last_time"], e["dose_times"]) if r is not None]
    t_span = (max(r[1] for r in times) - min(r[0] for r in times)) if times else 0.0
    tm = MARGIN * t_span
    out, why = {}, [[] for _ in range(n)]

    def record(name, bad, text):
        out[name] = np.asarray(bad, bool)
        for i in np.flatnonzero(bad):
            why[i].append(text(i))

    count = s["n_observations"]
    record(
        "n_observations",
        _outside(count, e["n_observations"], 0.0),
        lambda i: f"{count[i]} observations (trained on {_fmt(e['n_observations'])})",
    )
    doses = s["n_doses"]
    record(
        "n_doses",
        _outside(doses, e["n_doses"], 0.0),
        lambda i: f"{doses[i]} doses (trained on {_fmt(e['n_doses'])})",
    )
    for name, label in (("first_time", "first"), ("last_time", "last")):
        x = s[name]
        record(
            name,
            _outside(x, e[name], tm),
            lambda i, x=x, name=name, label=label: (
                f"{label} observation time {x[i]:.3g} (trained on {_fmt(e[name])})"
            ),
        )
    sp = s["spacing"]
    record(
        "spacing",
        _outside(sp, e["spacing"], MARGIN * _span(e["spacing"])),
        lambda i: f"median spacing {sp[i]:.3g} (trained on {_fmt(e['spacing'])})",
    )
    am = MARGIN * _span(e["dose_amounts"])
    bad_a = _outside(s["amount_min"], e["dose_amounts"], am)
    bad_a |= _outside(s["amount_max"], e["dose_amounts"], am)
    record(
        "dose_amounts",
        bad_a,
        lambda i: (
            f"doses {_fmt([s['amount_min'][i], s['amount_max'][i]])} "
            f"(trained on {_fmt(e['dose_amounts'])})"
        ),
    )
    bad_t = _outside(s["dose_time_min"], e["dose_times"], tm)
    bad_t |= _outside(s["dose_time_max"], e["dose_times"], tm)
    record(
        "dose_times",
        bad_t,
        lambda i: (
            f"dose times {_fmt([s['dose_time_min'][i], s['dose_time_max'][i]])} "
            f"(trained on {_fmt(e['dose_times'])})"
        ),
    )
    cov = s["covariates"]
    bad_c = np.zeros((n, len(e["covariates"])), bool)
    for j, rng in enumerate(e["covariates"]):
        bad_c[:, j] = _outside(cov[:, j], rng, MARGIN * _span(rng))
    record(
        "covariates",
        bad_c.any(1),
        lambda i: "; ".join(
            f"covariate {j + 1} = {cov[i, j]:.3g} (trained on {_fmt(e['covariates'][j])})"
            for j in np.flatnonzero(bad_c[i])
        ),
    )
    bad_v = np.zeros((n, len(e["values"])), bool)
    for j, rng in enumerate(e["values"]):
        vm = MARGIN * _span(rng)
        bad_v[:, j] = _outside(s["value_min"][:, j], rng, vm)
        bad_v[:, j] |= _outside(s["value_max"][:, j], rng, vm)
    record(
        "values",
        bad_v.any(1),
        lambda i: "; ".join(
            f"output {j + 1} values {_fmt([s['value_min'][i, j], s['value_max'][i, j]])} "
            f"(trained on {_fmt(e['values'][j])})"
            for j in np.flatnonzero(bad_v[i])
        ),
    )
    miss = s["missing"]
    record(
        "missing",
        _outside(miss, e["missing"], 0.0),
        lambda i: f"{miss[i]:.0%} missing values (trained on {_fmt(e['missing'])})",
    )
    # envelopes recorded before censoring was: their networks never saw any
    cens_range = e.get("censored", [0.0, 0.0])
    cens = s["censored"]
    note = "; retrain with AmortizedPosterior(censoring=)"
    if not reads_censored:
        note = "; this network predates censored inputs and reads them as missing" + note
    record(
        "censored",
        _outside(cens, cens_range, MARGIN * _span(cens_range)) if cens_range[1] > 0 else cens > 0,
        lambda i: (
            f"{cens[i]:.0%} censored values (trained on {_fmt(cens_range)})"
            if cens_range[1] > 0
            else f"{cens[i]:.0%} censored values (trained on none{note})"
        ),
    )
    table = pd.DataFrame(out, index=pd.Index(ids, name="ID"))
    table["reason"] = ["; ".join(w) for w in why]
    return table


def outside_message(table, limit=5):
    """One line per individual outside (at most ``limit``), or "" when none is."""
    bad = table[table["reason"] != ""]
    if bad.empty:
        return ""
    lines = [f"ID {i}: {r}" for i, r in bad["reason"].iloc[:limit].items()]
    more = f"\n... and {len(bad) - limit} more" if len(bad) > limit else ""
    return (
        f"{len(bad)} of {len(table)} individuals lie outside the network's training designs "
        "(its posterior is unreliable for them):\n" + "\n".join(lines) + more
    )


def sampled_envelope(model, n=ENVELOPE_DESIGNS, seed=0):
    """Envelope of ``n`` simulations from ``model``'s design distribution (fixed seed)."""
    from sklearn.utils import check_random_state

    rng = check_random_state(seed)
    design, cov = model.sample_design(n, rng)
    phi = model.sample_prior(n, rng)
    values = model.simulate_padded(phi, design, cov, rng)
    # uncensored, as those networks were trained (a resampled study's flags dropped)
    padded = design.replace(values=values, censored=np.zeros(values.shape, bool))
    return design_envelope(padded, model.covariate_array(cov, n))


class EnvelopeChecks:
    """Checks of data against the training envelope (a mixin of the posterior)."""

    def check_envelope(self, X):
        """Which individuals lie outside the designs the network was trained on.

        Each individual's numbers of observations and doses, first and last
        observation times, median spacing, dose amounts and times, simulator
        covariates, observed values and fractions of missing and of censored
        values are
        compared with their ranges over the training individuals
        (``envelope_``), widened by 10 % of each range (times: of the training
        time span); a count (observations, doses) must lie within its
        training range exactly. :meth:`sample`, :meth:`transform` and
        :meth:`log_prob` run this check and warn or raise (``on_outside``).

        Parameters
        ----------
        X : DataFrame or Study
            Individuals table.

        Returns
        -------
        DataFrame
            Indexed by ID, one boolean column per check (True: outside)
            and ``reason``, a text naming what is outside ("" when inside).

        Examples
        --------
        >>> from sknlme.datasets import load_theophylline, pretrained
        >>> post = pretrained("one-compartment-oral")
        >>> X = load_theophylline()
        >>> table = post.check_envelope(X)
        >>> bool(table["n_observations"].any()), table.shape
        (False, (12, 12))
        >>> from sknlme.data import IndividualRecords
        >>> keep = [0, 3, 6, 10]
        >>> X["records"] = [IndividualRecords(r.times[keep], r.values[keep], r.dose_times,
        ...                 r.dose_amounts) for r in X["records"]]
        >>> print(post.check_envelope(X)["reason"].iloc[0])
        4 observations (trained on 10-11); ...
        """
        check_is_fitted(self)
        study = self.model.prepare(X, require_values=False)
        return self._envelope_table(self._to_training_units(study)[0])  # rescale_units

    def _envelope_table(self, study):
        return check_envelope(
            self.envelope_,
            study.padded,
            study.simulator_covariates,
            list(study.ids),
            self.encoder_.censored_channel,
        )

    def _check_outside(self, study):
        """Warn or raise (``on_outside``) about individuals outside the envelope."""
        message = outside_message(self._envelope_table(study))
        if message and self.on_outside == "raise":
            raise ValueError(message)
        if message:
            warnings.warn(message, UserWarning, stacklevel=4)
