"""Build, train and run the networks of an :class:`AmortizedPosterior`.

Inference calls the Keras layers statelessly inside ``jax.jit`` on chunks of a
fixed size: one compiled function per input shape, so sampling 10,000
individuals x 100 draws is a handful of large vectorised calls rather than
hundreds of eager ones. Base draws come from NumPy (the caller's
``random_state``) and coupling-flow inverses are deterministic, so equal seeds
give equal draws, also after save/load.
"""

from __future__ import annotations

import re

import numpy as np

from ._networks import build_inference_network, build_summary_network
from ._training import Batches, network_inputs

CHUNK_ROWS = 2**16


class NetworkRuntime:
    """Networks of a posterior and their compiled inference functions."""

    def __init__(self, estimator, with_summary):
        self.estimator = estimator
        self.with_summary = with_summary
        self._compiled = {}

    @classmethod
    def build(cls, post, n_features, n_conditions):
        """Create and build the networks for inputs of the given sizes."""
        import bayesflow as bf

        widths = post._widths()
        summary = build_summary_network(post.summary_network, post._summary_dim(), widths)
        inference = build_inference_network(post.inference_network, widths, post.flow_depth)
        estimator = bf.BasicEstimator(
            inference_network=inference, summary_network=summary, standardize=None
        )
        size = post.set_size_
        shapes = {"inference_variables": (1, post.model.n_params)}
        if summary is None:
            shapes["inference_conditions"] = (1, size * (n_features + 1) + n_conditions)
        else:
            shapes["summary_variables"] = (1, size, n_features)
            shapes["summary_mask"] = (1, size)
            shapes["inference_conditions"] = (1, n_conditions)
        estimator.build(shapes)
        return cls(estimator, summary is not None)

    # ------------------------------------------------------------ training
    def train(self, post, set_x, mask, cond, phi, n_val, rng):
        """Fit with Keras; returns the loss history."""
        import keras

        prior_mean, prior_std = post.model.prior_mean, post.model.prior_std
        target = ((phi - prior_mean) / prior_std).astype(np.float32)
        data = network_inputs(set_x, mask, cond, self.with_summary)
        data["inference_variables"] = target
        order = rng.permutation(len(target))
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        train = Batches({k: v[train_idx] for k, v in data.items()}, post.batch_size, rng)
        val = None
        if n_val:
            val = Batches({k: v[val_idx] for k, v in data.items()}, 512, rng, shuffle=False)
        steps = post.epochs * len(train)
        schedule = keras.optimizers.schedules.CosineDecay(post.learning_rate, steps)
        self.estimator.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0))
        callbacks = list(post.callbacks or [])
        if post.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=post.patience, restore_best_weights=True
                )
            )
        history = self.estimator.fit(
            dataset=train,
            epochs=post.epochs,
            validation_data=val,
            callbacks=callbacks,
            verbose=post.verbose,
        )
        self._compiled = {}
        return {key: [float(v) for v in values] for key, values in history.history.items()}

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

    def _run(self, kind, set_x, mask, cond, values):
        """Apply ``kind`` to per-individual draws ``values`` (n, K, ...) in fixed chunks."""
        n, K = values.shape[:2]
        per_chunk = max(1, CHUNK_ROWS // K)
        if n < per_chunk:
            per_chunk = max(8, 1 << int(np.ceil(np.log2(max(n, 1)))))
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

    def sample(self, set_x, mask, cond, z):
        """Standardised draws, shape (n, K, d)."""
        return self._run("sample", set_x, mask, cond, z)

    def log_prob(self, set_x, mask, cond, phi):
        """Log density of standardised ``phi`` (n, K, d), shape (n, K)."""
        return self._run("log_prob", set_x, mask, cond, phi)
