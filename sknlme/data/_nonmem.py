"""Reader for NONMEM data files."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ._long import from_long


def _is_comment(line, prefix):
    first = line.lstrip()[:1]
    if first in ("#", "@"):
        return True
    return prefix == "@" and first.isalpha()


def read_nonmem(path, **from_long_kwargs):
    """Read a NONMEM data file into an individuals table.

    The first non-blank line holds the column names, possibly prefixed with
    ``#`` or ``@`` (the ``IGNORE=#`` / ``IGNORE=@`` conventions of NONMEM).
    Later lines starting with ``#`` or ``@`` are comments; with an ``@``
    header, so are lines whose first character is a letter. Columns are
    separated by commas (when the header has one) or by whitespace; ``.``
    marks a missing value.

    Parameters
    ----------
    path : str or path-like
        The data file.
    **from_long_kwargs
        Passed to :func:`sknlme.data.from_long` (column names, covariates,
        outputs). Error messages name the line of the file.

    Returns
    -------
    X : DataFrame
        Individuals table.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sknlme.data import read_nonmem
    >>> text = '''#ID TIME DV AMT EVID WT
    ... 1 0 . 100 1 70
    ... 1 1 4.2 . 0 70
    ... # a comment
    ... 2 0 . 80 1 61
    ... 2 2 3.0 . 0 61
    ... '''
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "data.csv"
    ...     _ = path.write_text(text)
    ...     X = read_nonmem(path, covariates=["WT"])
    >>> X["WT"].tolist(), X.loc[2, "records"].values.ravel().tolist()
    ([70, 61], [3.0])
    """
    lines = Path(path).read_text().splitlines()
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise ValueError(f"{path}: file is empty")
    header = lines[header_at].strip()
    prefix = header[0] if header[0] in "#@" else None
    if prefix is not None:
        header = header[1:].strip()
    if not header:
        raise ValueError(f"{path}: line {header_at + 1} should hold the column names")
    keep = [
        i
        for i in range(header_at + 1, len(lines))
        if lines[i].strip() and not _is_comment(lines[i], prefix)
    ]
    if "," in header:
        options = {"sep": ",", "skipinitialspace": True}
    else:
        options = {"sep": r"\s+"}
    text = "\n".join([header] + [lines[i].strip() for i in keep])
    try:
        df = pd.read_csv(io.StringIO(text), na_values=["."], keep_default_na=True, **options)
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: cannot parse the data lines: {err}") from err
    df.columns = [str(c).strip() for c in df.columns]
    df.index = pd.Index([i + 1 for i in keep], name="line")
    return from_long(df, **from_long_kwargs)
