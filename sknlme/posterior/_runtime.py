"""Build, train and run the networks of an :class:`AmortizedPosterior`.

Inference calls the Keras layers statelessly inside ``jax.jit`` on chunks of a
fixed size: one compiled function per input shape, so sampling 10,000
individuals x 100 draws is a few hundred vectorised calls rather than a million
eager ones. Chunk shapes and set sizes depend on each individual alone, so an
individual's draws are bit-identical whichever other rows are passed with it.
Base draws are keyed by individual (the caller's seed and ID) and coupling-flow
inverses are deterministic, so equal seeds give equal draws, also after
save/load.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from ._compile_cache import enable_compilation_cache
from ._networks import build_inference_network, build_summary_network
from ._online import OnlineBatches
from ._training import Batches, network_inputs

# Every chunk has the same shape whatever the number of rows: XLA's results for
# a row change with the batch shape (shipped one-compartment network, 12 vs 720
# individuals in one call: up to 2.9e-6), never with the row's position in a
# chunk of fixed shape (0.0 measured). 2**12 rows: one individual x 100 draws
# 27 ms, 1200 x 100 in 0.69 s on 2 CPU cores (2**16 rows: 543 ms and 1.07 s).
CHUNK_ROWS = 2**12


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture and input sizes of a posterior's networks."""

    summary_network: str | None
    summary_dim: int
    widths: tuple
    inference_network: str
    flow_depth: int
    n_params: int
    set_size: int
    n_features: int
    n_conditions: int


@dataclass(frozen=True)
class TrainingSettings:
    """Optimiser and stopping settings of :meth:`NetworkRuntime.train`."""

    epochs: int
    batch_size: int
    learning_rate: float
    early_stopping: bool
    patience: int
    callbacks: tuple = ()
    verbose: int = 0


class NetworkRuntime:
    """Networks of a posterior and their compiled inference functions."""

    def __init__(self, estimator, with_summary):
        self.estimator = estimator
        self.with_summary = with_summary
        self._compiled = {}

    @classmethod
    def build(cls, config):
        """Create and build the networks of a :class:`NetworkConfig`."""
        import bayesflow as bf

        enable_compilation_cache()  # before the initialisers compile
        c = config
        summary = build_summary_network(c.summary_network, c.summary_dim, c.widths)
        inference = build_inference_network(c.inference_network, c.widths, c.flow_depth)
        estimator = bf.BasicEstimator(
            inference_network=inference, summary_network=summary, standardize=None
        )
        size = c.set_size
        shapes = {"inference_variables": (1, c.n_params)}
        if summary is None:
            shapes["inference_conditions"] = (1, size * (c.n_features + 1) + c.n_conditions)
        else:
            shapes["summary_variables"] = (1, size, c.n_features)
            shapes["summary_mask"] = (1, size)
            shapes["inference_conditions"] = (1, c.n_conditions)
        estimator.build(shapes)
        return cls(estimator, summary is not None)

    # ------------------------------------------------------------ training
    def train(self, settings, set_x, mask, cond, target, n_val, rng, stream=None):
        """Fit to standardised parameters ``target`` with Keras; returns the loss history.

        ``stream(epoch, n)`` (online training), when given, returns ``n`` fresh
        training rows ``(set_x, mask, cond, target)`` for each epoch after the first.
        """
        import keras

        data = network_inputs(set_x, mask, cond, self.with_summary)
        data["inference_variables"] = target
        order = rng.permutation(len(target))
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        first = {k: v[train_idx] for k, v in data.items()}
        if stream is None:
            train = Batches(first, settings.batch_size, rng)
        else:

            def refresh(epoch):
                set_e, mask_e, cond_e, target_e = stream(epoch, len(train_idx))
                fresh = network_inputs(set_e, mask_e, cond_e, self.with_summary)
                return {**fresh, "inference_variables": target_e}

            train = OnlineBatches(first, settings.batch_size, rng, refresh)
        val = None
        if n_val:
            val = Batches({k: v[val_idx] for k, v in data.items()}, 512, rng, shuffle=False)
        steps = settings.epochs * len(train)
        schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps)
        self.estimator.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0))
        callbacks = [*settings.callbacks, keras.callbacks.TerminateOnNaN()]
        if settings.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=settings.patience, restore_best_weights=True
                )
            )
        history = self.estimator.fit(
            dataset=train,
            epochs=settings.epochs,
            validation_data=val,
            callbacks=callbacks,
            verbose=settings.verbose,
        )
        self._compiled = {}
        history = {key: [float(v) for v in values] for key, values in history.history.items()}
        losses = history.get("loss", []) + history.get("val_loss", [])
        if not losses or not np.all(np.isfinite(losses)):
            raise ValueError(
                f"training failed: the loss became non-finite after {len(history.get('loss', []))} "
                "epochs (non-finite simulations or parameters, or a too large learning_rate); "
                "the network is unusable"
            )
        if not all(np.all(np.isfinite(v)) for v in self.get_weights().values()):
            raise ValueError("training failed: non-finite network weights; the network is unusable")
        return history

    # ------------------------------------------------------------- weights
    def layers(self):
        """The summary network (or None) and the inference network."""
        return self.estimator.summary_network, self.estimator.inference_network

    def get_weights(self):
        """All network variables as ``{path: array}`` (a stable order)."""
        return {key: np.asarray(v.numpy()) for key, v in self._variables().items()}

    def _variables(self):
        # keys: layer/position/path without Keras' auto-numbering (dense_7 -> dense)
        out = {}
        for i, layer in enumerate(self.layers()):
            if layer is not None:
                for j, v in enumerate(layer.weights):
                    path = "/".join(re.sub(r"_\d+$", "", part) for part in v.path.split("/")[1:])
                    out[f"{i}/{j}/{path}"] = v
        return out

    def set_weights(self, weights):
        """Assign variables saved by :meth:`get_weights`; raises on any mismatch."""
        mine = self._variables()
        if set(mine) != set(weights):
            extra, missing = sorted(set(weights) - set(mine)), sorted(set(mine) - set(weights))
            raise ValueError(
                f"saved weights do not match the network (unexpected {extra[:3]}, "
                f"missing {missing[:3]}): incompatible or corrupted file"
            )
        for key, var in mine.items():
            value = weights[key]
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(
                    f"saved weight {key} has shape {value.shape}, network expects {var.shape}: "
                    "incompatible or corrupted file"
                )
            var.assign(value)
        self._compiled = {}

    # ----------------------------------------------------------- inference
    def _state(self):
        summary, inference = self.layers()

        def values(layer, trainable):
            if layer is None:
                return []
            vs = layer.trainable_variables if trainable else layer.non_trainable_variables
            return [v.value for v in vs]

        return (
            values(summary, True),
            values(summary, False),
            values(inference, True),
            values(inference, False),
        )

    def _function(self, kind):
        if kind in self._compiled:
            return self._compiled[kind]
        import jax
        import jax.numpy as jnp

        summary, inference = self.layers()

        def conditions(state, set_x, mask, cond, repeats):
            if summary is None:
                flat = jnp.concatenate([set_x.reshape(set_x.shape[0], -1), mask, cond], axis=1)
                c = flat
            else:
                s, _ = summary.stateless_call(state[0], state[1], set_x, mask=mask)
                c = jnp.concatenate([cond, s], axis=-1)
            return jnp.repeat(c, repeats, axis=0)

        if kind == "sample":

            def fn(state, set_x, mask, cond, z):
                c = conditions(state, set_x, mask, cond, z.shape[0] // set_x.shape[0])
                out, _ = inference.stateless_call(state[2], state[3], z, conditions=c, inverse=True)
                return out

        else:

            def fn(state, set_x, mask, cond, phi):
                c = conditions(state, set_x, mask, cond, phi.shape[0] // set_x.shape[0])
                (_, lp), _ = inference.stateless_call(
                    state[2], state[3], phi, conditions=c, inverse=False, density=True
                )
                return lp

        self._compiled[kind] = jax.jit(fn)
        return self._compiled[kind]

    def _run(self, kind, set_x, mask, cond, values, sizes=None):
        """Apply ``kind`` to per-individual draws ``values`` (n, K, ...).

        Rows are run in groups of equal padded set size ``sizes`` (each group's
        sets cut to its size), in chunks of a fixed number of rows.
        """
        if sizes is None:
            sizes = np.full(len(values), set_x.shape[1])
        out = None
        for size in np.unique(sizes):
            rows = np.flatnonzero(sizes == size)
            part = self._chunks(
                kind, set_x[rows, :size], mask[rows, :size], cond[rows], values[rows]
            )
            if out is None:
                out = np.empty((len(values),) + part.shape[1:], part.dtype)
            out[rows] = part
        return out

    def _chunks(self, kind, set_x, mask, cond, values):
        n, K = values.shape[:2]
        per_chunk = max(1, CHUNK_ROWS // K)  # depends on K only, never on n
        fn = self._function(kind)
        state = self._state()
        out = []
        for start in range(0, n, per_chunk):
            stop = min(start + per_chunk, n)
            pad = per_chunk - (stop - start)

            def take(a, pad=pad, start=start, stop=stop):
                part = a[start:stop]
                return np.pad(part, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) if pad else part

            v = take(values).reshape((per_chunk * K,) + values.shape[2:])
            res = np.asarray(fn(state, take(set_x), take(mask), take(cond), v))
            out.append(res.reshape((per_chunk, K) + res.shape[1:])[: stop - start])
        return np.concatenate(out, axis=0)

    def sample(self, set_x, mask, cond, z, sizes=None):
        """Standardised draws, shape (n, K, d)."""
        return self._run("sample", set_x, mask, cond, z, sizes)

    def log_prob(self, set_x, mask, cond, phi, sizes=None):
        """Log density of standardised ``phi`` (n, K, d), shape (n, K)."""
        return self._run("log_prob", set_x, mask, cond, phi, sizes)


def redraw_outliers(std, draw, limit, rounds, ids=None):
    """Replace draws beyond ``limit`` in any coordinate (or NaN) by fresh ones.

    ``draw(rows, r)`` gives round ``r``'s draws (n_rows, K, d) of those rows;
    only the bad draws of a row are replaced. Warns when more than 1 % of
    the draws needed it or some remain after ``rounds`` rounds, naming (from
    ``ids``) the individuals with draws left beyond the limit.
    """
    bad = ~(np.abs(std) <= limit).all(-1)  # NaN counts as bad
    n_bad = int(bad.sum())
    for r in range(1, rounds + 1):
        if not bad.any():
            break
        rows = np.flatnonzero(bad.any(1))
        new = draw(rows, r)
        block = std[rows]
        block[bad[rows]] = new[bad[rows]]
        std[rows] = block
        bad = ~(np.abs(std) <= limit).all(-1)
    if bad.any() or n_bad > 0.01 * bad.size:
        left = np.flatnonzero(bad.any(1))
        who = ""
        if left.size and ids is not None:
            names = ", ".join(repr(ids[i]) for i in left[:5]) + (" ..." if left.size > 5 else "")
            who = f" of ID {names}"
        warnings.warn(
            f"{n_bad} of {bad.size} draws were beyond {limit:g} prior SDs and redrawn; "
            f"{int(bad.sum())}{who} remain (the network extrapolates poorly for these data)",
            UserWarning,
            stacklevel=3,
        )
    return std
