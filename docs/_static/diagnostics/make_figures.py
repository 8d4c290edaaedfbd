"""Make the pictures of docs/user_guide/diagnostics.rst (theophylline, shipped network).

Run from the repository root: ``python docs/_static/diagnostics/make_figures.py``.
"""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from sklearn.frozen import FrozenEstimator  # noqa: E402

from sknlme import plotting  # noqa: E402
from sknlme.datasets import load_theophylline, pretrained  # noqa: E402
from sknlme.population import NLMEPopulationEstimator  # noqa: E402

OUT = Path(__file__).parent
UNITS = {"time": "h", "conc": "mg/L"}

warnings.simplefilter("ignore", RuntimeWarning)
X = load_theophylline()
pop = NLMEPopulationEstimator(
    FrozenEstimator(pretrained("one-compartment-oral")),
    likelihood="importance",
    n_samples=100,
    n_starts=4,
    random_state=0,
).fit(X)
model = pop.posterior.model
means = pop.fixed_effects_.to_numpy()
cov = pop.covariance_.to_numpy()
figures = {
    "gof": plotting.plot_gof(pop.observation_table(X, 1000, random_state=0), units=UNITS),
    "individual_fits": plotting.plot_individual_fits(
        model, X, pop.predict(X), population_phi=means, units=UNITS
    ),
    "pcvpc": plotting.plot_vpc(
        model, X, means, cov, pred_corrected=True, units=UNITS, random_state=0
    ),
    "eta_covariates": plotting.plot_eta_covariates(pop.individual_table(X)),
}
for name, fig in figures.items():
    fig.savefig(OUT / f"{name}.png", dpi=60)
