"""Reading and validating fax instruction CSVs (docs/physics.md "Instruction and truth files").

Header (any order): ``instruction,recoil_type,x,y,depth,s1_photons,s2_electrons,t``. Consecutive
rows with the same ``instruction`` value form one event, numbered 0, 1, ... in file order. ``x``
(then ``y`` is ignored) and ``depth`` may be the string ``random``; they become NaN here and are
drawn by the simulator.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from faxflow.engines.builtin.simulation.s1 import RECOIL_CODES
from faxflow.errors import BadInputError
from faxflow.instructions import INSTRUCTION_COLUMNS

COLUMNS = tuple(INSTRUCTION_COLUMNS)
RANDOM = "random"
_INTEGER_COLUMNS = ("instruction", "s1_photons", "s2_electrons")
_FLOAT_COLUMNS = ("x", "y", "depth", "t")


def read_instructions(path: Path) -> pd.DataFrame:
    """Read an instruction CSV; see :func:`parse_instructions` for the result.

    Raises BadInputError naming the file (and row/column) for anything unusable.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as error:
        raise BadInputError(f"{path}: instruction file does not exist") from error
    except pd.errors.EmptyDataError as error:
        raise BadInputError(f"{path}: instruction file is empty (no header)") from error
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        raise BadInputError(f"{path}: cannot parse instruction CSV: {error}") from error
    unexpected = sorted(set(table.columns) - set(COLUMNS))
    if unexpected:
        raise BadInputError(f"{path}: unexpected column(s) {unexpected}; the header must be exactly "
                            f"{','.join(COLUMNS)}")
    # Data row i is line i + 2 of the file (line 1 is the header).
    return parse_instructions(table, source=str(path), first_row_number=2)


def _row_problem(source: str, row_numbers, bad, column: str, values, what: str) -> BadInputError:
    first = np.flatnonzero(bad)[0]
    return BadInputError(f"{source}: row {row_numbers[first]}, column {column!r}: "
                         f"{values[first]!r} is not {what}")


def parse_instructions(table: pd.DataFrame, source: str = "<instructions>",
                       first_row_number: int = 0) -> pd.DataFrame:
    """Validate an instruction table (strings or numbers) and return it typed.

    Result columns: ``event`` (0-based group index), ``instruction``, ``recoil_type`` (lower
    case), ``x``, ``y``, ``depth`` (float cm, NaN = random), ``s1_photons``, ``s2_electrons``
    (int64) and ``t`` (float ns). ``first_row_number`` is the number reported for row 0.
    """
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise BadInputError(f"{source}: missing column(s) {missing}; the header must be exactly "
                            f"{','.join(COLUMNS)}")
    row_numbers = np.arange(len(table)) + first_row_number
    parsed = {}
    for column in COLUMNS:
        values = table[column].to_numpy(dtype=object)
        if column == "recoil_type":
            lowered = np.array([str(v).strip().lower() for v in values], dtype=object)
            bad = ~np.isin(lowered, list(RECOIL_CODES))
            if bad.any():
                raise _row_problem(source, row_numbers, bad, column, values,
                                   "a recoil type (ER, NR, alpha or LED)")
            parsed[column] = lowered.astype(str)
            continue
        text = np.array([str(v).strip().lower() for v in values], dtype=object)
        is_random = np.zeros(len(text), dtype=bool)
        if column in ("x", "depth"):  # 'random', or NaN in an already parsed table
            is_random = (text == RANDOM) | np.array([isinstance(v, float) and v != v for v in values], dtype=bool)
        numbers = pd.to_numeric(pd.Series(np.where(is_random, "nan", text)), errors="coerce").to_numpy(float)
        bad = ~np.isfinite(numbers) & ~is_random
        if column == "y":  # ignored (may be anything) when x is random
            x_random = np.isnan(parsed["x"])
            bad &= ~x_random
            numbers = np.where(x_random, np.nan, numbers)
        if bad.any():
            what = "a number or 'random'" if column in ("x", "depth") else "a finite number"
            raise _row_problem(source, row_numbers, bad, column, values, what)
        if column in _INTEGER_COLUMNS:
            bad = (numbers != np.round(numbers)) | ((numbers < 0) & (column != "instruction"))
            if bad.any():
                raise _row_problem(source, row_numbers, bad, column, values,
                                   "a non-negative integer" if column != "instruction" else "an integer")
            numbers = numbers.astype(np.int64)
        if column == "depth":
            bad = numbers < 0
            if bad.any():
                raise _row_problem(source, row_numbers, bad, column, values, "a depth >= 0 cm")
        parsed[column] = numbers
    result = pd.DataFrame(parsed, columns=list(COLUMNS))
    new_event = np.ones(len(result), dtype=bool)
    new_event[1:] = result["instruction"].to_numpy()[1:] != result["instruction"].to_numpy()[:-1]
    result.insert(0, "event", np.cumsum(new_event) - 1)
    return result
