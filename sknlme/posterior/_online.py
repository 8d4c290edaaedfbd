"""Where training simulations come from: once in memory, fresh every epoch, or from disk.

Online training (``training="online"``) draws the first epoch exactly as
offline training does: those ``n_simulations`` simulations fix the encoder's
standardisation, the set size, the envelope and the validation split. Every
later epoch replaces the training part by as many fresh simulations, drawn
with a seed that is a function of the fit's seed and the epoch alone, so a
fit is reproducible from ``random_state`` and a network never sees the same
training simulation twice. With ``epochs=1`` online and offline training are
the same fit.

Fixing the standardisation from the first epoch is enough: it only has to be
one fixed affine map of the inputs, not the exact moments of the design
distribution, and for the shipped mRNA configuration the first epoch's
100,000 individuals x 180 values pin means and SDs to a relative error of
about ``1 / sqrt(1.8e7)``, 2e-4. Fresh individuals with more set elements than
the first epoch's largest (ragged designs) lie outside the recorded envelope:
they are left out and replaced, so the network trains on the designs its
envelope claims.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ._encoding import pad_sets
from ._presimulate import read_presimulated
from ._training import (
    Batches,
    censoring_limits,
    drop_failed,
    encode_chunks,
    fit_encoder,
    simulate_rounds,
    training_chunks,
    training_designs,
)

# rounds of top-up draws per epoch before giving up on oversized designs: each
# round draws what the share kept so far says is missing (plus 10 %, at most
# 4 n), so 10
# rounds fail only when almost no fresh design fits the first epoch's sets
_TOP_UP_ROUNDS = 10


def _epoch_seed(seed, epoch):
    """Seed of epoch ``epoch``'s simulations (a function of ``seed`` and ``epoch`` only)."""
    return int(np.random.SeedSequence([int(seed), 0x0A11E, int(epoch)]).generate_state(1)[0])


def training_source(post, X_sim, phi_sim, rng, seed):
    """First training chunks and, for online training, the stream of later epochs.

    Parameters
    ----------
    post : AmortizedPosterior
        Read for ``model``, ``training``, ``n_simulations``, ``censoring`` and
        ``verbose``; the stream reads its ``encoder_`` and ``set_size_`` when
        training starts.
    X_sim, phi_sim : as in :meth:`AmortizedPosterior.fit`
    rng : RandomState
        The fit's generator (draws the first, or only, simulations).
    seed : int
        The fit's seed, from which per-epoch seeds are derived.

    Returns
    -------
    chunks : list of (Padded, covariates ndarray, phi ndarray)
    stream : OnlineStream or None
    """
    model, training = post.model, post.training
    mode = training if isinstance(training, str) and training in ("offline", "online") else None
    if mode != "offline" and (X_sim is not None or phi_sim is not None):
        raise ValueError(
            f"fit got simulations (X_sim, phi_sim) but training={training!r} brings its own; "
            "pass them with training='offline'"
        )
    if mode is None:
        if not os.path.isdir(os.fspath(training)):
            raise FileNotFoundError(
                f"training={training!r} is neither 'offline', 'online' nor the directory of "
                "a presimulated training set (write one with presimulate)"
            )
        padded, cov, phi = read_presimulated(os.fspath(training), model)
        cov_df = pd.DataFrame(cov, columns=list(model.covariate_names))
        X_sim, phi_sim = (padded, cov_df), phi
    chunks = training_chunks(
        model, X_sim, phi_sim, post.n_simulations, rng, post.verbose, post.censoring
    )
    if mode != "online":
        return chunks, None
    return chunks, OnlineStream(post, seed)


def training_data(post, X_sim, phi_sim, rng, seed):
    """Training designs, fitted encoder, encoded arrays, validation size and online stream.

    Returns ``(designs, encoder, (set_x, mask, cond, phi), n_val, stream)``; see
    :func:`training_source` for the arguments.
    """
    chunks, stream = training_source(post, X_sim, phi_sim, rng, seed)
    encoder = fit_encoder(chunks, post.model.prior_mean, post.model.prior_std)
    arrays = encode_chunks(encoder, chunks)
    n = len(arrays[3])
    n_val = int(round(post.validation_fraction * n))
    if post.validation_fraction > 0 and (n_val < 1 or n - n_val < 1):
        raise ValueError(f"{n} simulations are too few for validation_fraction")
    return training_designs(chunks), encoder, arrays, n_val, stream


class OnlineStream:
    """Fresh encoded training simulations for each epoch of an online fit."""

    def __init__(self, post, seed):
        self.post = post
        self.seed = seed
        self.limits = censoring_limits(post.censoring, post.model.n_outputs)

    def __call__(self, epoch, n):
        """``n`` fresh training rows of epoch ``epoch`` as (set_x, mask, cond, target)."""
        model, encoder = self.post.model, self.post.encoder_
        size = int(self.post.set_size_)
        rng = np.random.RandomState(_epoch_seed(self.seed, epoch))
        parts, have, drawn = [], 0, 0
        for _ in range(_TOP_UP_ROUNDS):
            # after the first round draw what the share kept so far says is missing,
            # at most 4 n per round (memory: a round is encoded whole before dropping)
            need = (n - have) * drawn / max(have, 1) * 1.1 if drawn else n
            m = int(min(np.ceil(need), 4 * n))
            drawn += m
            chunks = simulate_rounds(model, m, rng, 0, self.limits)
            for padded, cov, phi in drop_failed(chunks, f"simulations of epoch {epoch + 1}"):
                set_x, mask, cond = encoder.encode(padded, cov)
                keep = mask.sum(1) <= size
                set_x, mask = set_x[keep, :size], mask[keep, :size]
                set_x, mask = pad_sets((set_x, mask), size)
                parts.append((set_x, mask, cond[keep], encoder.standardize(phi[keep])))
                have += int(keep.sum())
            if have >= n:
                break
        else:
            raise ValueError(
                f"online training: after {_TOP_UP_ROUNDS} rounds only {have} of {n} fresh "
                f"simulations of epoch {epoch + 1} fit the first epoch's set size {size}"
            )
        return tuple(np.concatenate(a)[:n] for a in zip(*parts, strict=True))


class OnlineBatches(Batches):
    """Shuffled mini-batches whose data are replaced by fresh simulations every epoch.

    ``refresh(epoch)`` gives the data dict of epoch ``epoch`` (0-based), with
    the keys and row count of ``data`` (epoch 0's).
    """

    def __init__(self, data, batch_size, rng, refresh):
        super().__init__(data, batch_size, rng)
        self.refresh = refresh
        self.epoch = -1  # counted in on_epoch_begin: Keras also calls on_epoch_end on reset
        self.loaded = 0

    def on_epoch_begin(self):
        self.epoch += 1

    def __getitem__(self, i):
        # simulated when the epoch's first batch is asked for, not at an epoch's
        # end: the end of the last epoch would simulate an epoch nobody trains on
        epoch = max(self.epoch, 0)
        if self.loaded != epoch:
            self.data, self.loaded = self.refresh(epoch), epoch
        return super().__getitem__(i)
