"""Compiled simulators (numba): closed forms and per-individual random streams."""

from ._closed_form import (
    bateman,
    mrna_predict,
    mrna_simulate,
    oral1c_predict,
    oral1c_simulate,
)
from ._linear_ode import expm_small, linear_dosed_solve
from ._linear_pk import linear_pk_loglik, linear_pk_predict, linear_pk_simulate
from ._random import draw_seed, keyed_standard_normal, keyed_standard_t, standard_normal

__all__ = [
    "bateman",
    "draw_seed",
    "expm_small",
    "keyed_standard_normal",
    "keyed_standard_t",
    "linear_pk_loglik",
    "linear_pk_predict",
    "linear_pk_simulate",
    "linear_dosed_solve",
    "mrna_predict",
    "mrna_simulate",
    "oral1c_predict",
    "oral1c_simulate",
    "standard_normal",
]
