"""Training data for amortized posteriors: simulation in rounds and Keras batches."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from keras.utils import PyDataset

from ..data import Padded
from ._encoding import Encoder, as_padded, pad_sets

ROUND_SIZE = 5000
# share of failed simulations refused: 1 % dropped from training biases the
# posterior's training prior by at most that much mass; more points at a broken
# simulator or a prior reaching where it fails
MAX_FAILED = 0.01


def drop_failed(chunks, source="simulations"):
    """Chunks without failed individuals; warns about them, raises above ``MAX_FAILED``.

    A simulation failed when a value is infinite, its parameters are not finite
    or it has no finite value at all (NaN values alone are missing values,
    which simulators may draw on purpose).
    """
    failed = [
        np.isinf(p.values).any((1, 2)) | ~p.value_mask().any((1, 2)) | ~np.isfinite(phi).all(1)
        for p, _, phi in chunks
    ]
    n_bad, n = sum(int(f.sum()) for f in failed), sum(len(f) for f in failed)
    if not n_bad:
        return chunks
    share = n_bad / n
    message = f"{n_bad} of {n} {source} ({share:.2%}) failed (infinite values or none finite)"
    if share > MAX_FAILED:
        raise ValueError(f"{message}: more than {MAX_FAILED:.0%}; fix the simulator or prior")
    warnings.warn(f"{message}; they are left out of training", UserWarning, stacklevel=3)
    return [
        (p.take(np.flatnonzero(~f)), c[~f], phi[~f])
        for (p, c, phi), f in zip(chunks, failed, strict=True)
        if (~f).any()
    ]


def censoring_limits(censoring, n_outputs):
    """Per-output lower limits (NaN: no censoring) of ``censoring``, or None.

    ``censoring`` is one limit for every output or one per output (NaN leaves
    an output uncensored).
    """
    if censoring is None or (isinstance(censoring, str) and censoring == "random"):
        return censoring
    limits = np.asarray(censoring, dtype=float).reshape(-1)
    if limits.size == 1:
        limits = np.repeat(limits, n_outputs)
    if limits.shape != (n_outputs,):
        raise ValueError(
            f"censoring must be one limit or one per output ({n_outputs}), got {censoring!r}"
        )
    if np.isinf(limits).any():
        raise ValueError(f"censoring limits must be finite (NaN: none), got {censoring!r}")
    return limits


def random_limits(padded, rng):
    """``censoring="random"``: limits (n, 1, n_outputs) of a third of the individuals.

    Each censored individual's limit is log-uniform between 1 % and 20 % of
    its largest value per output (NaN for the others): relative limits, so
    the training distribution is the same in any concentration unit.
    """
    n, k = padded.n_individuals, padded.n_outputs
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing individuals
        top = np.nanmax(np.where(padded.value_mask(), padded.values, np.nan), axis=1)
    frac = np.exp(rng.uniform(np.log(0.01), np.log(0.2), size=(n, k)))
    pick = rng.uniform(size=(n, 1)) < 1 / 3
    return np.where(pick & (top > 0), top * frac, np.nan)[:, None, :]


def censor(padded, limits):
    """``padded`` with values below ``limits`` censored as the data layer marks them.

    A simulated value below its output's limit becomes the limit and is
    flagged ``censored`` (as an LLOQ column does in :func:`sknlme.data.from_long`);
    flags the design carried (the censored rows of a resampled study) are
    replaced by those of the simulated values.
    """
    if limits is None:
        return padded
    vm = padded.value_mask()
    with np.errstate(invalid="ignore"):
        below = vm & (padded.values < limits)  # NaN limit: never below
    values = np.where(below, limits, padded.values)
    return padded.replace(values=values, censored=below)


def simulate_rounds(model, n, rng, verbose=0, limits=None):
    """Simulate ``n`` individuals from the model's designs and prior, in rounds.

    ``limits`` (per output, see :func:`censoring_limits`) censors the simulated
    values; without them any censoring flags of the designs are dropped.

    Returns
    -------
    chunks : list of (Padded, covariates ndarray, phi ndarray)
    """
    chunks = []
    sizes = [min(ROUND_SIZE, n - start) for start in range(0, n, ROUND_SIZE)]
    progress = None
    if verbose:
        from tqdm.auto import tqdm

        progress = tqdm(total=n, desc=f"Simulating {model.name}", unit="ind")
    for m in sizes:
        design, cov = model.sample_design(m, rng)
        phi = model.sample_prior(m, rng)
        values = model.simulate_padded(phi, design, cov, rng)
        padded = design.replace(values=values, censored=np.zeros(values.shape, bool))
        padded = censor(padded, random_limits(padded, rng) if isinstance(limits, str) else limits)
        cov_arr = model.covariate_array(cov, m)
        chunks.append((padded, cov_arr, phi))
        if progress is not None:
            progress.update(m)
    if progress is not None:
        progress.close()
    return chunks


def training_chunks(model, X_sim, phi_sim, n_simulations, rng, verbose=0, censoring=None):
    """Training chunks: fresh simulations or checked presimulated ones, failures dropped.

    ``censoring`` (see :func:`censoring_limits`) censors fresh and presimulated
    values alike (presimulated ones keep censoring they already carry).
    """
    limits = censoring_limits(censoring, model.n_outputs)
    if X_sim is None:
        if phi_sim is not None:
            raise ValueError("phi_sim given without X_sim")
        chunks = simulate_rounds(model, n_simulations, rng, verbose, limits)
    else:
        if phi_sim is None:
            raise ValueError("X_sim given without phi_sim (the true parameters)")
        chunks = presimulated(model, X_sim, phi_sim)
        if limits is not None:
            lim = [random_limits(p, rng) if isinstance(limits, str) else limits for p, *_ in chunks]
            chunks = [
                (_censor_more(p, m), c, phi) for (p, c, phi), m in zip(chunks, lim, strict=True)
            ]
    return drop_failed(chunks)


def _censor_more(padded, limits):
    """``censor`` keeping the censoring ``padded`` already has."""
    out = censor(padded, limits)
    return out.replace(censored=out.censored | (padded.censored & padded.value_mask()))


def presimulated(model, X_sim, phi_sim):
    """Validate user simulations: an individuals table (or Padded) and true parameters."""
    if isinstance(X_sim, pd.DataFrame):
        study = model.prepare(X_sim, require_values=False)
        padded, cov = study.padded, study.simulator_covariates
    else:
        padded, cov_df = as_padded(X_sim)
        cov = model.covariate_array(cov_df, padded.n_individuals)
    if isinstance(phi_sim, pd.DataFrame):
        missing = [p for p in model.param_names if p not in phi_sim.columns]
        if missing:
            raise ValueError(f"phi_sim lacks parameter columns {missing}")
        if isinstance(X_sim, pd.DataFrame) and not phi_sim.index.equals(X_sim.index):
            raise ValueError("phi_sim must be indexed like X_sim (same IDs in the same order)")
        phi_sim = phi_sim[list(model.param_names)]
    phi = np.asarray(phi_sim, dtype=float)
    if phi.shape != (padded.n_individuals, model.n_params):
        raise ValueError(
            f"phi_sim must have shape ({padded.n_individuals}, {model.n_params}), got {phi.shape}"
        )
    if not np.all(np.isfinite(phi)):
        row = int(np.flatnonzero(~np.isfinite(phi).all(1))[0])
        raise ValueError(f"phi_sim has non-finite values in row {row}")
    return [(padded, cov, phi)]


def training_designs(chunks):
    """All chunks' individuals as one ``(Padded, covariates ndarray)``."""
    padded = Padded.concatenate([c[0] for c in chunks]) if len(chunks) > 1 else chunks[0][0]
    return padded, np.concatenate([c[1] for c in chunks])


def fit_encoder(chunks, prior_mean, prior_std):
    """An :class:`Encoder` fit on all chunks (padded to a common width) and the prior."""
    return Encoder.fit(*training_designs(chunks), prior_mean, prior_std)


def encode_chunks(encoder, chunks):
    """Encoded sets, masks and conditions of all chunks, padded to one set size."""
    encoded = [encoder.encode(p, c) for p, c, _ in chunks]
    size = max(e[0].shape[1] for e in encoded)
    sets, masks = zip(*(pad_sets(e[:2], size) for e in encoded), strict=True)
    return (
        np.concatenate(sets),
        np.concatenate(masks),
        np.concatenate([e[2] for e in encoded]),
        np.concatenate([ch[2] for ch in chunks]),
    )


def network_inputs(set_x, mask, cond, with_summary):
    """Keyword inputs of the BayesFlow estimator."""
    if with_summary:
        return {"summary_variables": set_x, "summary_mask": mask, "inference_conditions": cond}
    flat = np.concatenate([set_x.reshape(len(set_x), -1), mask, cond], axis=1)
    return {"inference_conditions": flat}


class Batches(PyDataset):
    """Shuffled mini-batches of a dict of arrays (reshuffled every epoch)."""

    def __init__(self, data, batch_size, rng, shuffle=True):
        super().__init__()
        self.data = data
        self.batch_size = int(batch_size)
        self.rng = rng
        self.shuffle = shuffle
        self.n = len(next(iter(data.values())))
        self.order = rng.permutation(self.n) if shuffle else np.arange(self.n)

    def __len__(self):
        return int(np.ceil(self.n / self.batch_size))

    def __getitem__(self, i):
        idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
        return {key: value[idx] for key, value in self.data.items()}

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(self.n)
