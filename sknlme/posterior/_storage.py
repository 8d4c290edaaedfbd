"""Saving, loading and pickling of :class:`~sknlme.posterior.AmortizedPosterior`."""

from __future__ import annotations

import os

import numpy as np
from sklearn.utils.validation import check_is_fitted

from . import _io
from ._encoding import Encoder
from ._envelope import sampled_envelope
from ._runtime import NetworkRuntime

_FITTED = ("set_size_", "n_simulations_", "history_", "training_time_")


class Storage:
    """Files and pickles: the posterior's plain state (see :mod:`._io`) and back."""

    def _to_bytes(self, with_model):
        check_is_fitted(self)
        params = self.get_params(deep=False)
        if isinstance(params.get("training"), os.PathLike):  # a presimulated set's path
            params["training"] = os.fspath(params["training"])
        header = _io.make_header(
            {k: v for k, v in params.items() if k not in ("model", "callbacks")},
            self.encoder_.to_dict(),
            {k: getattr(self, k) for k in _FITTED},
            self.model if with_model else None,
        )
        header["envelope"] = self.envelope_
        if hasattr(self, "unit_scales_"):
            header["unit_scales"] = [float(v) for v in self.unit_scales_]
        return _io.to_bytes(header, self._runtime.get_weights())

    def _restore(self, header, weights):
        """Set the fitted state of a header and weights (parameters already set)."""
        self._validate_params()
        self._check_params()
        for key, value in header["fitted"].items():
            setattr(self, key, value)
        # files saved before the envelope: their networks were trained on the
        # model's design distribution, so its draws give the envelope
        self.envelope_ = header.get("envelope") or sampled_envelope(self.model)
        if header.get("unit_scales") is not None:  # files before rescale_units have none
            self.unit_scales_ = np.asarray(header["unit_scales"], dtype=float)
        elif self.rescale_units:
            raise ValueError("the file has rescale_units=True but no unit scales: corrupted")
        self.encoder_ = Encoder.from_dict(
            header["encoder"], self.model.prior_mean, self.model.prior_std, self.envelope_
        )
        self._runtime = NetworkRuntime.build(self._network_config())
        self._runtime.set_weights(weights)
        self.estimator_ = self._runtime.estimator
        return self

    @classmethod
    def _from_state(cls, header, weights, model):
        """A fitted posterior from a saved header and weights, with ``model``."""
        params = dict(header["params"])
        if isinstance(params.get("hidden_units"), list):
            params["hidden_units"] = tuple(params["hidden_units"])
        return cls(model, **params)._restore(header, weights)

    def save(self, path):
        """Save to one file (zip: JSON header and weights); see :meth:`load`.

        The file records the model by class and constructor arguments. A model
        whose arguments JSON cannot hold (a :class:`~sknlme.models.FunctionModel`
        with a Python function, say) is saved by its parameter names and
        prior only, and must be passed to :meth:`load`.

        Parameters
        ----------
        path : str or Path

        Examples
        --------
        >>> import os, tempfile
        >>> from sknlme.datasets import pretrained
        >>> from sknlme.posterior import AmortizedPosterior
        >>> path = os.path.join(tempfile.mkdtemp(), "post.zip")
        >>> pretrained("one-compartment-oral").save(path)
        >>> AmortizedPosterior.load(path).set_size_
        12
        """
        data = self._to_bytes(with_model=True)
        with open(path, "wb") as fh:
            fh.write(data)

    @classmethod
    def load(cls, path, model=None):
        """Load a posterior saved by :meth:`save`.

        Parameters
        ----------
        path : str or Path
        model : Model, default=None
            Use this model instead of rebuilding the saved one; its parameter
            names and training prior must match the saved ones. Required when
            the saved model could not be recorded.

        Returns
        -------
        AmortizedPosterior

        Examples
        --------
        >>> import os, tempfile
        >>> from sknlme.datasets import pretrained
        >>> from sknlme.posterior import AmortizedPosterior
        >>> post = pretrained("one-compartment-oral")
        >>> path = os.path.join(tempfile.mkdtemp(), "post.zip")
        >>> post.save(path)
        >>> again = AmortizedPosterior.load(path, model=post.model)
        >>> again.model is post.model
        True
        """
        with open(path, "rb") as fh:
            data = fh.read()
        header, weights = _io.from_bytes(data, source=str(path))
        try:
            model = _io.header_model(header, model, source=str(path))
            return cls._from_state(header, weights, model)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path} has an incomplete header (missing {exc})") from None

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if not k.endswith("_") and k != "_runtime"}
        if hasattr(self, "_runtime"):
            state["_sknlme_posterior_bytes"] = self._to_bytes(with_model=False)
        return state

    def __setstate__(self, state):
        state = dict(state)
        data = state.pop("_sknlme_posterior_bytes", None)
        self.__dict__.update(state)
        if data is not None:
            self._restore(*_io.from_bytes(data, source="pickled posterior"))
