"""Individuals tables: records, long-table conversion, NONMEM files, validation."""

from ._padded import Padded, from_padded, pad_records, to_padded
from ._records import (
    ID_NAME,
    RECORDS_COLUMN,
    IndividualRecords,
    check_individuals,
    covariate_columns,
    make_individuals,
)

__all__ = [
    "ID_NAME",
    "RECORDS_COLUMN",
    "IndividualRecords",
    "Padded",
    "check_individuals",
    "covariate_columns",
    "from_padded",
    "make_individuals",
    "pad_records",
    "to_padded",
]
