"""Network builders: masked summary networks and BayesFlow inference networks.

The summary networks read a padded *set* of observation/dose elements of
shape (batch, set_size, n_features) with a padding ``mask`` of shape
(batch, set_size) (1 = real element). BayesFlow 2.1's ``DeepSet`` pools with an
unmasked mean (padding changes its output) and its ``TimeSeriesTransformer``
has no padding mask (bayesflow issue #713), so sknlme uses

* ``"deepset"``: :class:`MaskedDeepSet`, a two-stage deep set whose poolings
  (mean and max) only see real elements: padded elements cannot change the
  output, whatever their features;
* ``"set_transformer"``: BayesFlow's ``SetTransformer``, which turns ``mask``
  into a key-padding attention mask and masks its attention pooling;
* ``"time_series"``: :class:`MaskedGRU`, a GRU over the elements in time order
  that skips masked steps (Keras masking);
* ``"conv"``: :class:`MaskedConvNet`, strided 1-d convolutions along the
  time-ordered elements (local features such as successive differences, which
  carry the noise level and onsets of dense time series), then masked pooling;
* ``None``: no summary network; the flattened set is a direct condition (only
  for designs of one fixed size).
"""

from __future__ import annotations

import keras
from bayesflow.networks import CouplingFlow, FlowMatching, SetTransformer, SummaryNetwork

SUMMARY_NETWORKS = ("deepset", "set_transformer", "time_series", "conv", None)
INFERENCE_NETWORKS = ("coupling_flow", "flow_matching")


def _mlp(widths, out=None, name=None):
    layers = [keras.layers.Dense(w, activation="silu") for w in widths]
    if out is not None:
        layers.append(keras.layers.Dense(out))
    return keras.Sequential(layers, name=name)


def _float_mask(x, mask):
    if mask is None:
        return keras.ops.ones(keras.ops.shape(x)[:-1] + (1,), dtype=x.dtype)
    return keras.ops.expand_dims(keras.ops.cast(mask, x.dtype), -1)


def _masked_pool(h, m):
    """Masked mean and max over the set axis; both 0 for an empty set."""
    count = keras.ops.sum(m, axis=1)
    mean = keras.ops.sum(h * m, axis=1) / keras.ops.maximum(count, 1.0)
    big = keras.ops.max(keras.ops.where(m > 0, h, -1e9), axis=1)
    big = keras.ops.where(count > 0, big, 0.0)
    return keras.ops.concatenate([mean, big], axis=-1)


@keras.saving.register_keras_serializable(package="sknlme")
class MaskedDeepSet(SummaryNetwork):
    """Two-stage deep set with masked mean/max pooling.

    ``h = f1(x)``; ``g = f2([h, pool(h)])``; output ``f3(pool(g))`` where
    ``pool`` concatenates the mean and the maximum over real elements only.
    The first layer of ``f2`` is split into a per-element and a per-set part
    (``W [h, p] = W_h h + W_p p``), so the pooled vector is transformed once
    per set, not once per element.

    Parameters
    ----------
    summary_dim : int
        Number of learned summary statistics.
    widths : tuple of int
        Hidden widths of the element-wise and output MLPs.
    """

    def __init__(self, summary_dim=16, widths=(64, 64), **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.summary_dim = int(summary_dim)
        self.widths = tuple(int(w) for w in widths)
        self.f1 = _mlp(self.widths, name="element")
        self.f2_element = keras.layers.Dense(self.widths[0], name="equivariant_element")
        self.f2_set = keras.layers.Dense(self.widths[0], use_bias=False, name="equivariant_set")
        self.f2 = _mlp(self.widths[1:], name="equivariant") if len(self.widths) > 1 else None
        self.f3 = _mlp(self.widths, out=self.summary_dim, name="output")

    def call(self, x, training=False, mask=None):
        m = _float_mask(x, mask)
        h = self.f1(x, training=training)
        pooled = self.f2_set(_masked_pool(h, m))
        g = keras.ops.silu(self.f2_element(h) + keras.ops.expand_dims(pooled, 1))
        if self.f2 is not None:
            g = self.f2(g, training=training)
        return self.f3(_masked_pool(g, m), training=training)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        base = super().get_config()
        return base | {"summary_dim": self.summary_dim, "widths": list(self.widths)}


@keras.saving.register_keras_serializable(package="sknlme")
class MaskedGRU(SummaryNetwork):
    """A GRU over time-ordered elements that skips padded steps.

    Parameters
    ----------
    summary_dim : int
        Number of learned summary statistics.
    widths : tuple of int
        ``widths[0]`` is the GRU state size; all widths form the output MLP.
    """

    def __init__(self, summary_dim=16, widths=(64, 64), **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.summary_dim = int(summary_dim)
        self.widths = tuple(int(w) for w in widths)
        self.embed = _mlp(self.widths[:1], name="element")
        self.gru = keras.layers.GRU(self.widths[0])
        self.head = _mlp(self.widths, out=self.summary_dim, name="output")

    def call(self, x, training=False, mask=None):
        if mask is None:
            mask = keras.ops.ones(keras.ops.shape(x)[:-1])
        h = self.embed(x, training=training)
        h = self.gru(h, mask=keras.ops.cast(mask, "bool"), training=training)
        return self.head(h, training=training)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        base = super().get_config()
        return base | {"summary_dim": self.summary_dim, "widths": list(self.widths)}


@keras.saving.register_keras_serializable(package="sknlme")
class MaskedConvNet(SummaryNetwork):
    """Strided 1-d convolutions over time-ordered elements, then masked pooling.

    Layer ``j`` is a ``Conv1D(widths[j], kernel_size, stride 2)`` over the
    sequence zero-padded by ``kernel_size // 2`` on both sides, so output ``i``
    always reads inputs ``2i - kernel_size // 2 .. 2i + kernel_size // 2`` and
    the sequence halves at every layer. Inputs and outputs are zero on padded
    elements; an output counts as real when its centre element is real. The
    summary is an MLP of the masked mean and max over the last layer. Padding
    sits after the real elements (see :mod:`sknlme.posterior._encoding`), so a
    real output sees the same zeros whatever the number of pads: the output
    does not depend on padding.

    Parameters
    ----------
    summary_dim : int
        Number of learned summary statistics.
    widths : tuple of int
        Channels of the convolution layers; also the widths of the output MLP.
    kernel_size : int, default=5
        An odd window length.
    """

    def __init__(self, summary_dim=16, widths=(64, 64), kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.summary_dim = int(summary_dim)
        self.widths = tuple(int(w) for w in widths)
        self.kernel_size = int(kernel_size)
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.convs = [
            keras.layers.Conv1D(w, self.kernel_size, strides=2, activation="silu")
            for w in self.widths
        ]
        self.head = _mlp(self.widths, out=self.summary_dim, name="output")

    def call(self, x, training=False, mask=None):
        m = _float_mask(x, mask)
        h = x * m
        half = self.kernel_size // 2
        for conv in self.convs:
            h = conv(keras.ops.pad(h, ((0, 0), (half, half), (0, 0))))
            m = m[:, ::2]
            h = h * m
        return self.head(_masked_pool(h, m), training=training)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        base = super().get_config()
        return base | {
            "summary_dim": self.summary_dim,
            "widths": list(self.widths),
            "kernel_size": self.kernel_size,
        }


def build_summary_network(kind, summary_dim, widths):
    """Summary network named ``kind`` (see :data:`SUMMARY_NETWORKS`), or None."""
    widths = tuple(int(w) for w in widths)
    if kind is None:
        return None
    if kind == "deepset":
        return MaskedDeepSet(summary_dim=summary_dim, widths=widths)
    if kind == "time_series":
        return MaskedGRU(summary_dim=summary_dim, widths=widths)
    if kind == "conv":
        return MaskedConvNet(summary_dim=summary_dim, widths=widths)
    if kind == "set_transformer":
        return SetTransformer(
            summary_dim=summary_dim,
            embed_dims=(widths[0], widths[0]),
            num_heads=(4, 4),
            dropout=0.0,
        )
    raise ValueError(f"summary_network must be one of {SUMMARY_NETWORKS}, got {kind!r}")


def build_inference_network(kind, widths, depth):
    """Inference network named ``kind`` (see :data:`INFERENCE_NETWORKS`)."""
    widths = tuple(int(w) for w in widths)
    if kind == "coupling_flow":
        return CouplingFlow(
            depth=int(depth),
            transform="affine",
            subnet_kwargs={"widths": widths, "dropout": 0.0},
        )
    if kind == "flow_matching":
        return FlowMatching(
            subnet_kwargs={"widths": widths, "dropout": 0.0},
            integrate_kwargs={"method": "rk45", "steps": 50},
        )
    raise ValueError(f"inference_network must be one of {INFERENCE_NETWORKS}, got {kind!r}")
