"""The ``sknlme`` command: ``demo``, ``fit`` and ``train``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time


def _parse_covariates(text):
    """Parse ``"WT:log_CL,WT:log_V,SEX:log_CL"`` into ``{"WT": [...], "SEX": [...]}``.

    An item ``COLUMN:PARAMETER:MODEL[:CENTER]`` (``MODEL`` ``linear`` or
    ``log``) gives the column a centred or power model (the estimator's
    dict form); every item of one column must then agree on it.

    Examples
    --------
    >>> _parse_covariates("WT:log_Cl,WT:log_ka")
    {'WT': ['log_Cl', 'log_ka']}
    >>> _parse_covariates("WT:log_Cl:log:70")
    {'WT': {'params': ['log_Cl'], 'model': 'log', 'center': 70.0}}
    """
    if not text:
        return None
    params, forms = {}, {}
    for item in text.split(","):
        parts = [p.strip() for p in item.strip().split(":")]
        if len(parts) < 2 or len(parts) > 4 or not all(parts):
            raise SystemExit(
                f"--covariates: expected COLUMN:PARAMETER[:MODEL[:CENTER]], got {item!r}"
            )
        cov, param = parts[:2]
        form = None
        if len(parts) > 2:
            if parts[2] not in ("linear", "log"):
                raise SystemExit(f"--covariates: MODEL must be linear or log, got {item!r}")
            try:
                center = float(parts[3]) if len(parts) == 4 else None
            except ValueError:
                raise SystemExit(f"--covariates: CENTER must be a number, got {item!r}") from None
            form = (parts[2], center)
        if cov in forms and form is not None and forms[cov] not in (None, form):
            raise SystemExit(f"--covariates: column {cov!r} has two models ({item!r})")
        forms[cov] = form if form is not None else forms.get(cov)
        params.setdefault(cov, []).append(param)
    return {
        c: p if forms[c] is None else {"params": p, "model": forms[c][0], "center": forms[c][1]}
        for c, p in params.items()
    }


def _parse_pairs(text, option, parse):
    """``"A=1,B=2"`` -> ``{"A": parse("1"), ...}``; ValueError naming the bad item."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, sep, value = (p.strip() for p in item.partition("="))
        try:
            if not (sep and name):
                raise ValueError
            out[name] = parse(value)
        except ValueError:
            raise ValueError(f"{option}: expected {_PAIR_FORMS[option]}, got {item!r}") from None
    return out


def _number(text):
    value = float(text)
    if value != value:  # NaN
        raise ValueError
    return value


def _interval(text):
    lo, sep, hi = text.partition(":")
    lo, hi = _number(lo), _number(hi) if sep else float("nan")
    if not lo < hi:
        raise ValueError
    return (lo, hi)


_PAIR_FORMS = {"--fixed": "NAME=VALUE", "--bounds": "NAME=LO:HI with LO < HI"}


def _load_posterior(model_name, path):
    """The saved posterior at ``path`` (its model checked against ``model_name``),
    or the shipped network of the built-in ``model_name``."""
    from .datasets import pretrained
    from .models import load_model
    from .posterior import AmortizedPosterior

    if not path:
        if not model_name:
            raise ValueError("give --model (a built-in model) or --posterior (a saved network)")
        return pretrained(model_name)
    if not model_name:
        return AmortizedPosterior.load(path)
    model = load_model(model_name)
    post = AmortizedPosterior.load(path, model=model)  # checks parameters and prior
    if type(post.model) is not type(model) or post.model.name != model.name:
        raise ValueError(f"--model {model_name} disagrees with {path}'s model {post.model!r}")
    return post


def _network_provenance(model_name, path):
    """The network's file and SHA-256 (the shipped one when ``path`` is None)."""
    from importlib import resources

    from ._report import file_sha256

    if not path:
        ref = resources.files("sknlme.datasets") / "data" / f"{model_name}.posterior.zip"
        with resources.as_file(ref) as shipped:
            return {"network": f"shipped {model_name}", "network_sha256": file_sha256(shipped)}
    return {"network": os.path.abspath(path), "network_sha256": file_sha256(path)}


def _fit_and_report(X, posterior, args, random_effects=None, provenance=None):
    from sklearn.frozen import FrozenEstimator

    from ._report import describe_loglik, describe_starts, write_report
    from .population import NLMEPopulationEstimator

    if args.n_samples < 1:
        raise ValueError(f"--n-samples must be positive, got {args.n_samples}")
    start = time.perf_counter()
    est = NLMEPopulationEstimator(
        FrozenEstimator(posterior),
        covariance=args.covariance,
        random_effects=random_effects,
        covariates=_parse_covariates(args.covariates),
        fixed=_parse_pairs(args.fixed, "--fixed", _number),
        bounds=_parse_pairs(args.bounds, "--bounds", _interval),
        n_samples=args.n_samples,
        likelihood=args.likelihood,
        n_starts=args.n_starts,
        random_state=args.random_state,
    ).fit(X)
    fit_time = time.perf_counter() - start
    print(est.summary().to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"\n{describe_loglik(est)}  ({describe_starts(est)}; fit {fit_time:.1f} s)")
    if args.out:
        files = write_report(
            est,
            X,
            args.out,
            profile=not args.no_profile,
            random_state=args.random_state,
            provenance=provenance,
            units=_parse_units(args.units),
        )
        print(f"report: {len(files)} files in {args.out}")
    return est


def _parse_units(text):
    """``"h,mg/L"`` -> ``{"time": "h", "conc": "mg/L"}``; None when not given."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--units must be TIME,CONCENTRATION (e.g. h,mg/L), got {text!r}")
    return {"time": parts[0], "conc": parts[1]}


def _add_fit_options(p):
    p.add_argument("--covariance", default="diag", choices=["diag", "cholesky"])
    p.add_argument(
        "--covariates",
        default=None,
        help="COLUMN:PARAMETER[:MODEL[:CENTER]] items, comma separated (MODEL linear or "
        "log: log(COLUMN/CENTER), a power model; e.g. WT:log_Cl:log:70)",
    )
    p.add_argument(
        "--likelihood",
        default="auto",
        choices=["auto", "amortized", "importance"],
        help="auto: importance where the model has a likelihood, else amortized",
    )
    p.add_argument("--fixed", default=None, help="NAME=VALUE items held fixed, e.g. beta_x=0")
    p.add_argument("--bounds", default=None, help="NAME=LO:HI items of optimiser bounds")
    p.add_argument("--n-samples", type=int, default=100, help="posterior draws per individual")
    p.add_argument("--n-starts", type=int, default=10)
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--no-profile", action="store_true", help="skip profile likelihoods")
    p.add_argument(
        "--units",
        default=None,
        help="figure units TIME,CONCENTRATION, e.g. h,mg/L (the demo: h,mg/L)",
    )


def _cmd_demo(args):
    from .datasets import load_theophylline

    X = load_theophylline()
    if args.units is None:
        args.units = "h,mg/L"  # theophylline: hours and mg/L (doses in mg/kg)
    print("Theophylline (12 subjects), one-compartment oral model, shipped network")
    posterior = _load_posterior("one-compartment-oral", None)
    # R nlme's SSfol fit: random effects on the three PK parameters, residual SD fixed effect.
    provenance = {"data": "theophylline (sknlme.datasets.load_theophylline)"}
    provenance.update(_network_provenance("one-compartment-oral", None))
    return _fit_and_report(
        X, posterior, args, random_effects=["log_ke", "log_ka", "log_Cl"], provenance=provenance
    )


def _cmd_fit(args):
    from .data import read_nonmem

    if not os.path.isfile(args.data):
        raise FileNotFoundError(f"no data file {args.data!r}")
    posterior = _load_posterior(args.model, args.posterior)
    # read the columns the fit uses: the covariate effects asked for and the simulator's
    columns = list(_parse_covariates(args.covariates) or {})
    columns += [c for c in posterior.model.covariate_names if c not in columns]
    X = read_nonmem(args.data, covariates=columns)
    random_effects = args.random_effects.split(",") if args.random_effects else None
    provenance = {"data": os.path.abspath(args.data)}
    provenance.update(_network_provenance(args.model, args.posterior))
    return _fit_and_report(X, posterior, args, random_effects=random_effects, provenance=provenance)


def _cmd_train(args):
    from .data import read_nonmem
    from .models import load_model
    from .posterior import AmortizedPosterior

    if args.design:
        if not os.path.isfile(args.design):
            raise FileNotFoundError(f"no design file {args.design!r}")
        # the simulator's covariates are read with the designs (a model without designs
        # names them); the factory then gets the study: design=X
        columns = list(load_model(args.model).covariate_names)
        model = load_model(args.model, design=read_nonmem(args.design, covariates=columns))
    else:
        model = load_model(args.model)
    post = AmortizedPosterior(
        model,
        summary_network=args.summary_network,
        hidden_units=tuple(int(w) for w in args.hidden_units.split(",")),
        n_simulations=args.n_simulations,
        epochs=args.epochs,
        random_state=args.random_state,
        verbose=1,
    ).fit()
    post.save(args.out)
    print(f"saved posterior for {model.name} to {args.out}")
    return post


def build_parser():
    """The argument parser of the ``sknlme`` command.

    Returns
    -------
    argparse.ArgumentParser
        With the subcommands ``demo``, ``fit`` and ``train``.

    Examples
    --------
    >>> from sknlme.cli import build_parser
    >>> args = build_parser().parse_args(["train", "one-compartment-oral", "--out", "post.zip"])
    >>> args.command, args.model, args.epochs
    ('train', 'one-compartment-oral', 50)
    """
    from . import __version__

    parser = argparse.ArgumentParser(prog="sknlme", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sknlme {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="fit theophylline with the shipped network")
    _add_fit_options(demo)
    demo.add_argument("--out", default="sknlme-demo", help="report folder ('' for none)")
    demo.set_defaults(func=_cmd_demo)

    fit = sub.add_parser("fit", help="fit a NONMEM-style data file")
    fit.add_argument("data", help="NONMEM-style CSV (ID, TIME, DV, AMT, EVID, ...)")
    fit.add_argument(
        "--model",
        default=None,
        help="built-in model name or module:Class (optional with --posterior: its model)",
    )
    fit.add_argument("--posterior", default=None, help="saved posterior (default: shipped one)")
    fit.add_argument("--random-effects", default=None, help="parameters with random effects")
    fit.add_argument("--out", default="sknlme-fit", help="report folder ('' for none)")
    _add_fit_options(fit)
    fit.set_defaults(func=_cmd_fit)

    train = sub.add_parser("train", help="train and save a posterior network")
    train.add_argument("model", help="built-in model name, or module:Class / module:factory")
    train.add_argument(
        "--design",
        default=None,
        help="NONMEM-style CSV whose designs (times, doses, covariates) training resamples",
    )
    train.add_argument("--out", required=True, help="file to save the posterior to")
    train.add_argument(
        "--summary-network",
        default="deepset",
        choices=["deepset", "conv", "set_transformer", "time_series"],
        help="deepset for sparse designs, conv for dense time series (see AmortizedPosterior)",
    )
    train.add_argument("--hidden-units", default="64,64", help="comma-separated widths")
    train.add_argument("--n-simulations", type=int, default=20_000)
    train.add_argument("--epochs", type=int, default=50)
    train.add_argument("--random-state", type=int, default=0)
    train.set_defaults(func=_cmd_train)
    return parser


def _quiet_logging():
    """Log warnings and errors only, unless logging is configured already.

    BayesFlow calls ``logging.basicConfig(level=INFO)`` on import (and logs its
    backend at INFO), after which JAX's backend probing shows as INFO lines too.
    Configuring the root logger first makes BayesFlow's call a no-op; the
    handler's level also holds back loggers that set their own level (BayesFlow's).
    Where the root logger has handlers (a program or test runner calling
    :func:`main`), nothing changes.
    """
    if logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def main(argv=None):
    """Entry point of the ``sknlme`` command.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit status: 0, or 2 after a one-line error on bad data, files or
        settings (argparse exits with status 2 on bad arguments).

    Examples
    --------
    >>> from sknlme.cli import main
    >>> try:  # doctest: +ELLIPSIS
    ...     main(["--help"])
    ... except SystemExit as exc:
    ...     print("exit status", exc.code)
    usage: sknlme [-h] [--version] {demo,fit,train} ...
    ...
    exit status 0
    """
    args = build_parser().parse_args(argv)
    _quiet_logging()
    try:
        args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        # bad data, files or settings: one line naming the cause, as argparse does for
        # bad arguments (the traceback helps no user; SKNLME_TRACEBACK=1 shows it)
        if os.environ.get("SKNLME_TRACEBACK"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"sknlme {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
