"""Hyperparameters of :class:`~sknlme.posterior.AmortizedPosterior`: constraints and configs."""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions

from ._networks import INFERENCE_NETWORKS, SUMMARY_NETWORKS
from ._runtime import NetworkConfig, TrainingSettings

_COUNTS = ("n_simulations", "epochs", "batch_size", "n_samples", "flow_depth", "patience")


class Hyperparameters:
    """Declared constraints, extra checks and network/training configurations."""

    _parameter_constraints = {
        "model": "no_validation",  # checked in _check_params (a sknlme Model)
        "summary_network": [StrOptions({s for s in SUMMARY_NETWORKS if s}), None],
        "inference_network": [StrOptions(set(INFERENCE_NETWORKS))],
        "summary_dim": [Interval(Integral, 1, None, closed="left"), None],
        "hidden_units": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "flow_depth": [Interval(Integral, 1, None, closed="left")],
        "n_simulations": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "patience": [Interval(Integral, 0, None, closed="left")],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "callbacks": [list, tuple, None],
        "max_prior_sd": [Interval(Real, 0, None, closed="neither"), None],
        "censoring": [Real, "array-like", StrOptions({"random"}), None],
        "rescale_units": ["boolean"],
        # "offline", "online" or the path of a presimulate() directory (checked in fit)
        "training": [StrOptions({"offline", "online"}), str, os.PathLike],
        "on_outside": [StrOptions({"warn", "raise"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def _check_params(self):
        """Checks the declared constraints cannot express."""
        if not all(hasattr(self.model, a) for a in ("param_names", "prior_mean", "sample_prior")):
            raise TypeError(f"model must be a sknlme Model, got {type(self.model).__name__}")
        for name in _COUNTS:
            if isinstance(getattr(self, name), bool | np.bool_):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, "
                    f"not a bool; got {getattr(self, name)!r}"
                )
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("early_stopping needs validation_fraction > 0")
        if self.inference_network == "coupling_flow" and self.model.n_params < 2:
            # bayesflow issue #767: a coupling flow on a 1-d target breaks under keras 3.15
            raise ValueError("a model with one parameter needs inference_network='flow_matching'")
        self._widths()
        self._check_units()

    def _widths(self):
        units = self.hidden_units
        widths = (units,) if isinstance(units, int | np.integer) else tuple(units)
        if not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"hidden_units must be positive widths, got {units!r}")
        return tuple(int(w) for w in widths)

    def _summary_dim(self):
        if self.summary_dim is None:
            return max(8, 4 * self.model.n_params)
        return int(self.summary_dim)

    def _network_config(self):
        return NetworkConfig(
            summary_network=self.summary_network,
            summary_dim=self._summary_dim(),
            widths=self._widths(),
            inference_network=self.inference_network,
            flow_depth=int(self.flow_depth),
            n_params=self.model.n_params,
            set_size=int(self.set_size_),
            n_features=self.encoder_.n_features,
            n_conditions=self.encoder_.n_conditions,
        )

    def _training_settings(self):
        return TrainingSettings(
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            learning_rate=float(self.learning_rate),
            early_stopping=bool(self.early_stopping),
            patience=int(self.patience),
            callbacks=tuple(self.callbacks or ()),
            verbose=self.verbose,
        )
