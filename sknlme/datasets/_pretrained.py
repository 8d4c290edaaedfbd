"""Pretrained amortized posteriors shipped with sknlme."""

from __future__ import annotations

from importlib import resources

PRETRAINED = {
    "one-compartment-oral": (
        "OneCompartmentOral(error='additive'): theophylline-like designs (one oral dose "
        "3-6 mg/kg, 10-11 samples over 0-25 h); parameters log_ke, log_ka, log_Cl, log_sigma"
    ),
    "one-compartment-oral-trans4": (
        "LinearCompartmental(1, 'oral'), additive error: broad designs (1-20 doses, steady "
        "state, 1-30 samples, BLQ), any units (rescale_units); parameters log_CL, log_V1, "
        "log_ka, log_sigma"
    ),
    "one-compartment-iv": (
        "LinearCompartmental(1, 'iv'), additive error: broad designs (bolus or infusion, 1-20 "
        "doses, steady state, 1-30 samples, BLQ), any units (rescale_units); parameters "
        "log_CL, log_V1, log_sigma"
    ),
    "two-compartment-iv": (
        "LinearCompartmental(2, 'iv'), additive error: broad designs (bolus or infusion, 1-20 "
        "doses, steady state, 1-30 samples, BLQ), any units (rescale_units); parameters "
        "log_CL, log_V1, log_Q, log_V2, log_sigma"
    ),
    "parent-metabolite": (
        "ParentMetabolite(): the original code's sunitinib-type parent-metabolite model, 28 "
        "once-daily doses of 25-50 mg, 12 samples of two log outputs, WT and DOS; 11 "
        "parameters"
    ),
    "mrna-transfection": (
        "MRNATransfection(): 180 log-fluorescence values every 10 min from 1/6 h to 30 h; "
        "parameters log_delta, log_gamma, log_k_m0_scale, log_t0, log_offset, log_sigma"
    ),
    "mrna-transfection-detailed": (
        "MRNATransfectionDetailed(): the original code's ODE model on the same 180-point "
        "series; 11 parameters, of which t0, offset and sigma are well identified"
    ),
    "mrna-transfection-sde": (
        "MRNATransfectionSDE(): the original code's stochastic model on the same 180-point "
        "series; parameters log_delta, log_gamma, log_k, log_m0, log_scale, log_t0, "
        "log_offset, log_sigma"
    ),
}


def _shipped_file(name):
    """Resource of the shipped file of pretrained posterior ``name`` (may be missing)."""
    return resources.files("sknlme.datasets") / "data" / f"{name}.posterior.zip"


def pretrained_names():
    """Names accepted by :func:`pretrained`, with a description of each.

    Returns
    -------
    dict of str to str
        ``{name: description}``.

    Examples
    --------
    >>> from sknlme.datasets import pretrained_names
    >>> "one-compartment-oral" in pretrained_names()
    True
    """
    return dict(PRETRAINED)


def pretrained(name):
    """Load a shipped pretrained :class:`~sknlme.posterior.AmortizedPosterior`.

    No training happens: the networks were trained by
    ``python -m bench.train_pretrained <name>``, whose summary (calibration,
    coverage, training time) is in the package documentation.

    Parameters
    ----------
    name : str
        One of :func:`pretrained_names` (``"one-compartment-oral"``,
        ``"one-compartment-oral-trans4"``, ``"one-compartment-iv"``,
        ``"two-compartment-iv"``, ``"parent-metabolite"`` and the three mRNA models).

    Returns
    -------
    AmortizedPosterior
        Fitted, with its model (``post.model``) rebuilt from the file.

    Examples
    --------
    >>> from sknlme.datasets import load_theophylline
    >>> from sknlme.datasets import pretrained
    >>> post = pretrained("one-compartment-oral")
    >>> post.model.param_names
    ('log_ke', 'log_ka', 'log_Cl', 'log_sigma')
    >>> post.sample(load_theophylline(), 10, random_state=0).shape
    (12, 10, 4)
    """
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained posterior {name!r}; available: {sorted(PRETRAINED)}")
    from ..posterior import AmortizedPosterior

    ref = _shipped_file(name)
    if not ref.is_file():
        raise FileNotFoundError(
            f"the pretrained posterior file for {name!r} is missing from this installation; "
            f"train it with `python -m bench.train_pretrained {name}`"
        )
    with resources.as_file(ref) as path:
        return AmortizedPosterior.load(path)
