"""A user-defined model: one compartment, IV bolus doses, Michaelis-Menten elimination.

The ODE ``dC/dt = -Vmax C / (Km + C)`` (concentration C, mg/L) has the exact
solution ``C(t) = Km W((C0 / Km) exp((C0 - Vmax t) / Km))`` with ``W`` the
Lambert W function, written here with scipy's Wright omega function
(``W(exp(z)) = omega(z)``, no overflow for large ``C0 / Km``). A bolus dose
adds ``amount / V`` to C; the volume scales with body weight,
``V = exp(log_V) * WT / 70``. Used by docs/user_guide/user_models.rst.
"""

import numpy as np
from scipy.special import wrightomega

from sknlme.models import FunctionModel

PARAMS = ["log_Vmax", "log_Km", "log_V"]
# prior: Vmax ~ 2 mg/L/h, Km ~ 5 mg/L, V ~ 20 L (factor-of-2 spread, log-SD 0.7)
PRIOR_MEAN = [np.log(2.0), np.log(5.0), np.log(20.0), np.log(0.1)]
PRIOR_VAR = [0.5, 0.5, 0.5, 0.3]


def _decay(c0, km, vmax, dt):
    """C after ``dt`` hours from ``c0`` (arrays of one shape)."""
    with np.errstate(divide="ignore"):
        z = np.log(c0 / km) + (c0 - vmax * dt) / km
    return np.where(c0 > 0, km * np.real(wrightomega(np.where(c0 > 0, z, 0.0))), 0.0)


def mm_bolus(phi, times, dose_times, dose_amounts, covariates):
    """Concentrations (n, T) of the Michaelis-Menten bolus model."""
    vmax, km = np.exp(phi[:, 0:1]), np.exp(phi[:, 1:2])
    v = np.exp(phi[:, 2:3]) * covariates["WT"][:, None] / 70.0
    n, T = times.shape
    out = np.zeros((n, T))
    c, t_last = np.zeros((n, 1)), np.zeros((n, 1))
    order = np.argsort(dose_times, axis=1, kind="stable")
    d_t = np.take_along_axis(dose_times, order, 1)
    d_a = np.take_along_axis(dose_amounts, order, 1)
    # walk the doses in time order: observations before dose j see the state after j - 1
    for j in range(d_t.shape[1] + 1):
        t_next = d_t[:, j : j + 1] if j < d_t.shape[1] else np.full((n, 1), np.inf)
        seg = (times >= t_last) & (times < t_next)
        vm, k = np.broadcast_to(vmax, (n, T)), np.broadcast_to(km, (n, T))
        cs = np.broadcast_to(c, (n, T))
        out = np.where(seg, _decay(cs, k, vm, np.maximum(times - t_last, 0.0)), out)
        if j < d_t.shape[1]:
            c = _decay(c, km, vmax, np.maximum(t_next - t_last, 0.0)) + d_a[:, j : j + 1] / v
            t_last = t_next
    return out


def make_model(design=None):
    """The Michaelis-Menten model; trained on the designs of ``design`` when given."""
    return FunctionModel(
        mm_bolus,
        PARAMS,
        PRIOR_MEAN,
        PRIOR_VAR,
        error="proportional",
        output_names=("conc",),
        covariates=("WT",),
        design=design,
        name="mm-bolus",
    )
