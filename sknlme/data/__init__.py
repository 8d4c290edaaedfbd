"""Individuals tables: records, long-table conversion, NONMEM files, validation."""

from ._long import from_long, to_long
from ._nonmem import read_nonmem
from ._padded import Padded, fixed_design
from ._records import (
    ID_NAME,
    RECORDS_COLUMN,
    IndividualRecords,
    check_individuals,
    covariate_columns,
    make_individuals,
)
from ._stack import from_padded, pad_records, to_padded
from ._study import Study, as_study, id_keys
from ._validation import validate_individuals
from ._wide import from_arrays

__all__ = [
    "ID_NAME",
    "RECORDS_COLUMN",
    "IndividualRecords",
    "Padded",
    "Study",
    "as_study",
    "check_individuals",
    "covariate_columns",
    "from_arrays",
    "from_long",
    "fixed_design",
    "from_padded",
    "id_keys",
    "make_individuals",
    "pad_records",
    "read_nonmem",
    "to_long",
    "to_padded",
    "validate_individuals",
]
