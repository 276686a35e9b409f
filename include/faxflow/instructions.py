"""Step 1 of a production: the fax instruction table (docs/physics.md "Instruction and truth files").

:func:`make_instructions` builds the table for one production from a variant's resolved
settings dict; :func:`write_instructions` writes it as the pax CSV read by
``WaveformSimulatorFromCSV`` (header exactly ``instruction,recoil_type,x,y,depth,s1_photons,
s2_electrons,t``).

Three sources (``settings["instructions"]["source"]``):

``uniform``
    The 2017 ``CreateFake``, with its defects fixed: positions uniform in the *fiducial
    volume* (r² ~ U(0, r_max²), φ ~ U(−π, π), depth ~ U(depth_min, depth_max); never below
    the cathode), photons ~ integer-uniform [low, high), electrons ~ integer-uniform
    [low, high), ``t = interaction_time_ns`` for every row.
``table``
    Events from a real-data table (CSV, Parquet, hax minitree ROOT, or pickle when
    explicitly allowed) with columns ``event_number, x, y, z, cs1, cs2`` (``x_pax``/``y_pax``
    accepted for ``x``/``y``): ``s1_photons = round(cs1 / g1)``, ``s2_electrons =
    round(cs2 / g2)``, ``depth = −z``. Production ``p`` takes rows ``[p·n, (p+1)·n)``.
``nest``
    Produced photons and electrons from NEST (nestpy) yields for a flat or line energy
    spectrum, at uniform positions in the fiducial volume.

``correlated`` applies to every source:

* ``True``: one row per event carrying both the S1 photons and the S2 electrons.
* ``"S1"``: one row per event, ``s2_electrons = 0``.
* ``"S2"``: one row per event, ``s1_photons = 0``. ``t`` stays ``interaction_time_ns``:
  fax adds the drift time itself (the 2017 script added depth/0.144 — µs — to a time in ns).
* ``False``: two consecutive rows with the same ``instruction`` (so both are in one fax
  event): first an S1-only row (photons, 0 electrons) at the event's position, then an
  S2-only row (0 photons, electrons) at an *independent* uniform position in the fiducial
  volume. Both rows have ``t = interaction_time_ns``. For the table source the S1 row keeps
  the table position; for NEST both rows take the quanta of the same energy deposit.

Every random number comes from the ``numpy.random.Generator`` passed in; NEST's own
generator is seeded from it, so the same seed gives byte-identical CSV files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from faxflow import limits
from faxflow.errors import BadInputError
from faxflow.geometry import DEFAULT_FIDUCIAL_VOLUME, TPC_SIZE_CM

#: The pax instruction CSV header, in this exact order.
INSTRUCTION_COLUMNS = ["instruction", "recoil_type", "x", "y", "depth", "s1_photons", "s2_electrons", "t"]
#: Columns a real-data table must provide (after aliasing).
TABLE_COLUMNS = ["event_number", "x", "y", "z", "cs1", "cs2"]
#: hax minitree spellings accepted for a missing canonical column.
TABLE_ALIASES = {"x": "x_pax", "y": "y_pax"}
#: Float format of the CSV: fixed, so the same draws give the same bytes.
FLOAT_FORMAT = "%.6f"
#: Mean energy per quantum in liquid xenon (eV), for reference in tests and docs.
W_VALUE_EV = 13.7


def make_instructions(settings: dict, n_events: int, production_index: int, rng: np.random.Generator,
                      base_dir: Union[str, Path]) -> pd.DataFrame:
    """The instruction table of one production.

    ``settings`` is a variant's resolved settings dict, ``n_events`` the events per production,
    ``production_index`` selects the slice of a data table, ``rng`` is the only source of
    randomness and ``base_dir`` resolves a relative table path. Returns a DataFrame with
    exactly :data:`INSTRUCTION_COLUMNS`; ``instruction`` runs 0..m−1 (m = n_events except for
    a table with fewer remaining rows), rows of one instruction are consecutive.
    """
    if n_events <= 0:
        raise BadInputError(f"n_events must be > 0, got {n_events}")
    source = settings.get("instructions") or {"source": "uniform"}
    kind = source.get("source", "uniform")
    fv = _fiducial_volume(settings)
    recoil_type = settings.get("recoil_type", "ER")
    t = float(settings.get("interaction_time_ns", 1000.0))

    if kind == "uniform":
        x, y, depth = _uniform_positions(rng, n_events, fv)
        photons_range = settings.get("photon_number") or {"low": 50, "high": 100}
        electrons_range = settings.get("electron_number") or {"low": 10, "high": 100}
        photons = rng.integers(int(photons_range["low"]), int(photons_range["high"]), n_events, dtype=np.int64)
        electrons = rng.integers(int(electrons_range["low"]), int(electrons_range["high"]), n_events, dtype=np.int64)
    elif kind == "table":
        x, y, depth, photons, electrons, dropped = _from_table(source, n_events, production_index, Path(base_dir),
                                                               _table_volume(settings, source, fv))
    elif kind == "nest":
        x, y, depth = _uniform_positions(rng, n_events, fv)
        photons, electrons = _nest_quanta(source, recoil_type, n_events, rng)
    else:
        raise BadInputError(f"unknown instruction source {kind!r} (allowed: uniform, table, nest)")

    frame = _assemble(settings.get("correlated", True), recoil_type, t, x, y, depth, photons, electrons, rng, fv)
    frame.attrs["rows_dropped"] = dropped if kind == "table" else 0
    return frame


def write_instructions(df: pd.DataFrame, path: Union[str, Path]) -> Path:
    """Write the pax instruction CSV: exact header, no index, fixed float format, ``\\n`` lines."""
    missing = [column for column in INSTRUCTION_COLUMNS if column not in df.columns]
    if missing:
        raise BadInputError(f"instruction table lacks columns {missing} (has {list(df.columns)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = df[INSTRUCTION_COLUMNS].astype({"instruction": "int64", "s1_photons": "int64", "s2_electrons": "int64",
                                            "x": "float64", "y": "float64", "depth": "float64", "t": "float64"})
    frame.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return path


# --------------------------------------------------------------------------------------------
# pieces


def _fiducial_volume(settings: dict) -> dict:
    fv = settings.get("fiducial_volume") or DEFAULT_FIDUCIAL_VOLUME[settings.get("detector", "XENON1T")]
    return {key: float(fv[key]) for key in ("r_max_cm", "depth_min_cm", "depth_max_cm")}


def _uniform_positions(rng: np.random.Generator, n: int, fv: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, depth uniform in the fiducial cylinder: r² ~ U(0, r_max²), φ ~ U(−π, π), depth ~ U(min, max)."""
    r = np.sqrt(rng.uniform(0.0, fv["r_max_cm"] ** 2, n))
    phi = rng.uniform(-math.pi, math.pi, n)
    depth = rng.uniform(fv["depth_min_cm"], fv["depth_max_cm"], n)
    return r * np.cos(phi), r * np.sin(phi), depth


def _assemble(correlated: Any, recoil_type: str, t: float, x, y, depth, photons, electrons,
              rng: np.random.Generator, fv: dict) -> pd.DataFrame:
    n = len(x)
    photons = np.asarray(photons, dtype=np.int64)
    electrons = np.asarray(electrons, dtype=np.int64)
    instruction = np.arange(n, dtype=np.int64)
    if correlated is False:
        # S1-only row at the event position, then an S2-only row at an independent position.
        x2, y2, depth2 = _uniform_positions(rng, n, fv)
        zeros = np.zeros(n, dtype=np.int64)
        instruction = np.repeat(instruction, 2)
        x = _interleave(x, x2)
        y = _interleave(y, y2)
        depth = _interleave(depth, depth2)
        photons, electrons = _interleave(photons, zeros), _interleave(zeros, electrons)
    elif correlated == "S1":
        electrons = np.zeros(n, dtype=np.int64)
    elif correlated == "S2":
        photons = np.zeros(n, dtype=np.int64)
    elif correlated is not True:
        raise BadInputError(f"correlated must be true, false, 'S1' or 'S2', got {correlated!r}")
    rows = len(instruction)
    return pd.DataFrame({
        "instruction": instruction,
        "recoil_type": np.full(rows, recoil_type, dtype=object),
        "x": np.asarray(x, dtype=np.float64),
        "y": np.asarray(y, dtype=np.float64),
        "depth": np.asarray(depth, dtype=np.float64),
        "s1_photons": photons,
        "s2_electrons": electrons,
        "t": np.full(rows, t, dtype=np.float64),
    }, columns=INSTRUCTION_COLUMNS)


def _interleave(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    out = np.empty(2 * len(first), dtype=np.result_type(first, second))
    out[0::2] = first
    out[1::2] = second
    return out


# --------------------------------------------------------------------------------------------
# table source

_SUFFIX_FORMATS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet", ".root": "root",
                   ".pkl": "pickle", ".pickle": "pickle"}


def _table_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zip") and len(suffixes) > 1:
        suffixes = suffixes[:-1]
    fmt = _SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise BadInputError(f"{path}: cannot tell the table format from the suffix {path.suffix!r} "
                            f"(known: {', '.join(sorted(_SUFFIX_FORMATS))}); set instructions.format")
    return fmt


def read_table(source: dict, base_dir: Union[str, Path] = ".") -> pd.DataFrame:
    """Read a data table's columns :data:`TABLE_COLUMNS` (aliases applied), in file order.

    Raises :class:`BadInputError` for a missing/unreadable file, a refused pickle, a missing
    ROOT tree, or missing columns (naming the file, the missing and the found columns).
    """
    path = Path(source["path"])
    if not path.is_absolute():
        path = Path(base_dir) / path
    fmt = _table_format(path, source.get("format", "auto"))
    if fmt == "pickle" and not source.get("allow_pickle", False):
        raise BadInputError(f"{path}: pickle input can run arbitrary code and is refused; set "
                            f"instructions.allow_pickle: true to read it (or convert it to Parquet/CSV)")
    if not path.is_file():
        raise BadInputError(f"{path}: data table not found")
    try:
        if fmt == "csv":
            frame = pd.read_csv(path)
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "pickle":
            frame = pd.read_pickle(path)  # noqa: S301 - only when the campaign sets allow_pickle: true
            if not isinstance(frame, pd.DataFrame):
                raise BadInputError(f"{path}: the pickle holds a {type(frame).__name__}, not a pandas DataFrame")
        elif fmt == "root":
            frame = _read_root(path, source.get("tree", "Basics"))
        else:
            raise BadInputError(f"{path}: unknown table format {fmt!r} (allowed: csv, parquet, root, pickle)")
    except BadInputError:
        raise
    except Exception as error:  # noqa: BLE001 - any reader failure means the file is unusable
        raise BadInputError(f"{path}: cannot read as {fmt}: {type(error).__name__}: {error}") from None

    frame = frame.rename(columns=_alias_map(frame.columns))
    _check_columns(path, frame.columns)
    return frame[TABLE_COLUMNS].reset_index(drop=True)


def _alias_map(columns) -> dict:
    """x_pax → x and y_pax → y, only where the canonical name is absent."""
    return {alias: canonical for canonical, alias in TABLE_ALIASES.items()
            if canonical not in columns and alias in columns}


def _check_columns(path: Path, columns) -> None:
    renamed = set(columns) | {canonical for canonical, alias in TABLE_ALIASES.items() if alias in columns}
    missing = [column for column in TABLE_COLUMNS if column not in renamed]
    if missing:
        raise BadInputError(f"{path}: missing columns {missing} (found columns: {[str(c) for c in columns]}; "
                            f"x/y may also be named x_pax/y_pax)")


def _read_root(path: Path, tree_name: str) -> pd.DataFrame:
    import uproot

    with uproot.open(path) as file:
        if tree_name not in file:
            trees = [key.split(";")[0] for key, cls in file.classnames().items() if cls == "TTree"]
            raise BadInputError(f"{path}: no tree {tree_name!r} (trees found: {trees}); set instructions.tree")
        tree = file[tree_name]
        names = list(tree.keys())
        _check_columns(path, names)
        wanted = [name for name in TABLE_COLUMNS + list(TABLE_ALIASES.values()) if name in names]
        arrays = tree.arrays(wanted, library="np")
        return pd.DataFrame({name: arrays[name] for name in wanted})


def _tpc(settings: dict) -> dict:
    """TPC radius and length (cm): the physics overrides for XENON1T, the fixed geometry otherwise."""
    detector = settings.get("detector", "XENON1T")
    physics = settings.get("physics") or {}
    if detector == "XENON1T" and "tpc_radius_cm" in physics:
        return {"radius": float(physics["tpc_radius_cm"]), "length": float(physics["tpc_length_cm"])}
    return TPC_SIZE_CM[detector]


def _table_volume(settings: dict, source: dict, fv: dict) -> dict:
    """The cylinder table rows must lie in: r ≤ r_max, depth_min ≤ depth ≤ depth_max (cm)."""
    if source.get("volume", "tpc") == "fiducial":
        return {**fv, "name": "fiducial volume"}
    tpc = _tpc(settings)
    return {"r_max_cm": tpc["radius"], "depth_min_cm": 0.0, "depth_max_cm": tpc["length"], "name": "TPC"}


def _numbers(frame: pd.DataFrame, column: str, path, first_row: int) -> np.ndarray:
    """A table column as floats; a value that is not a number names the file, column and row."""
    values = frame[column]
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BadInputError(f"{path}: column {column}, row {first_row + row}: {values.iloc[row]!r} is not a number")
    return numeric.to_numpy(dtype=np.float64)


def _from_table(source: dict, n_events: int, production_index: int, base_dir: Path, volume: dict):
    """Rows [p·n, (p+1)·n) of the table → (x, y, depth, photons, electrons, rows dropped).

    A NaN (or negative) cs1 gives 0 photons and a NaN (or negative) cs2 gives 0 electrons:
    the event stays, with that signal absent (as in the data). Rows whose x, y or z is not
    finite cannot be placed and are dropped from the slice (the slice boundaries do not move).
    Rows outside ``volume`` are an error naming them, or dropped and counted when
    ``outside_rows: drop``. Row numbers count data rows from 0.
    """
    return _table_slice(read_table(source, base_dir), source, n_events, production_index, volume)


def _table_slice(table: pd.DataFrame, source: dict, n_events: int, production_index: int, volume: dict):
    start = production_index * n_events
    chunk = table.iloc[start:start + n_events]
    path = source["path"]
    if chunk.empty:
        raise BadInputError(f"{path}: production {production_index} needs rows [{start}, {start + n_events}) "
                            f"but the table has only {len(table)} rows")
    x, y, z, cs1, cs2 = (_numbers(chunk, column, path, start) for column in ("x", "y", "z", "cs1", "cs2"))
    rows = np.arange(start, start + len(chunk))
    placeable = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    if not placeable.any():
        raise BadInputError(f"{path}: rows [{start}, {start + len(chunk)}) have no finite x, y, z")
    x, y, z, cs1, cs2, rows = (values[placeable] for values in (x, y, z, cs1, cs2, rows))
    depth = -z
    inside = ((np.hypot(x, y) <= volume["r_max_cm"]) & (depth >= volume["depth_min_cm"])
              & (depth <= volume["depth_max_cm"]))
    dropped = int((~inside).sum())
    if dropped and source.get("outside_rows", "error") != "drop":
        first = ", ".join(f"{row} (r {np.hypot(x[i], y[i]):.1f} cm, z {z[i]:.1f} cm)"
                          for i, row in zip(np.flatnonzero(~inside)[:5], rows[~inside][:5]))
        raise BadInputError(f"{path}: {dropped} row(s) lie outside the {volume['name']} (r ≤ {volume['r_max_cm']} cm, "
                            f"{volume['depth_min_cm']} ≤ -z ≤ {volume['depth_max_cm']} cm), first: {first}; "
                            "set instructions.outside_rows: drop to skip them")
    if not inside.any():
        raise BadInputError(f"{path}: no row of [{start}, {start + len(chunk)}) lies inside the {volume['name']}")
    x, y, depth, cs1, cs2, rows = (values[inside] for values in (x, y, depth, cs1, cs2, rows))
    g1 = float(source.get("g1_pe_per_photon", 0.12))
    g2 = float(source.get("g2_pe_per_electron", 23.0))
    photons = _count(cs1 / g1, limits.MAX_PHOTONS_PER_INTERACTION, path, "cs1", rows)
    electrons = _count(cs2 / g2, limits.MAX_ELECTRONS_PER_INTERACTION, path, "cs2", rows)
    return x, y, depth, photons, electrons, dropped


def table_problems(settings: dict, base_dir: Union[str, Path]) -> list[str]:
    """Everything certain to fail later in a variant's table source (file, format, columns, contents, rows)."""
    source = settings.get("instructions") or {}
    if source.get("source") != "table":
        return []
    volume = _table_volume(settings, source, _fiducial_volume(settings))
    try:
        table = read_table(source, base_dir)
        for index in range(settings["number_job"]):
            _table_slice(table, source, settings["number_event_per_job"], index, volume)
    except BadInputError as error:
        return [f"instructions.path: {error}"]
    return []


def _count(values: np.ndarray, ceiling: int, path, column: str, rows: np.ndarray) -> np.ndarray:
    """round() to the nearest integer (ties to even); NaN and negative values → 0; above ``ceiling`` refused."""
    values = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    too_many = values > ceiling
    if too_many.any():
        raise BadInputError(f"{path}: column {column}, row {int(rows[too_many][0])}: {values[too_many][0]:.3g} quanta "
                            f"is above the {ceiling} allowed per interaction")
    return np.rint(values).astype(np.int64)


# --------------------------------------------------------------------------------------------
# NEST source

#: recoil_type → (nestpy interaction name, A, Z). ER uses the NEST beta model (electron recoils
#: from β/Compton electrons; ``gammaRay`` differs by a few per cent at tens of keV); alpha is an
#: ion with A = 4, Z = 2, which NEST routes to its alpha model.
NEST_INTERACTIONS = {"ER": ("beta", 131.293, 54.0), "NR": ("NR", 131.293, 54.0), "alpha": ("ion", 4.0, 2.0)}


def _nest_quanta(source: dict, recoil_type: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Produced photons and electrons from NEST for n energies (flat or line spectrum).

    NEST keeps its own global random generator; it is seeded with one 63-bit integer drawn
    from ``rng`` before the first call (its seed lock is released first), so the result is a
    function of ``rng`` alone. No detector efficiency is applied: fax wants produced quanta.
    """
    if recoil_type not in NEST_INTERACTIONS:
        raise BadInputError(f"NEST has no {recoil_type} yields (recoil_type must be ER, NR or alpha "
                            f"for instructions.source nest)")
    try:
        import nestpy
    except ImportError as error:  # pragma: no cover - nestpy is a dependency
        raise BadInputError(f"instructions.source nest needs nestpy: {error}") from None
    name, mass_number, atomic_number = NEST_INTERACTIONS[recoil_type]
    interaction = getattr(nestpy.interactions, name)
    if source.get("spectrum", "flat") == "line":
        low = high = float(source["energy_kev"])
    else:
        low, high = (float(value) for value in source["energy_range_kev"])
    valid_low, valid_high = limits.NEST_ENERGY_RANGE_KEV[recoil_type]
    if not valid_low <= low <= high <= valid_high:
        raise BadInputError(f"NEST energies [{low}, {high}] keV are outside its {recoil_type} range "
                            f"[{valid_low}, {valid_high}] keV")
    energies = np.full(n, low) if low == high else rng.uniform(low, high, n)
    density = float(source.get("density_g_per_cm3", 2.862))
    field = float(source.get("drift_field_v_per_cm", 120.0))

    seed = int(rng.integers(0, 2 ** 63 - 1))
    generator = nestpy.RandomGen.rndm()
    generator.unlock_seed()
    generator.set_seed(seed)
    calc = nestpy.NESTcalc(nestpy.detectors.VDetector())
    photons = np.empty(n, dtype=np.int64)
    electrons = np.empty(n, dtype=np.int64)
    for i, energy in enumerate(energies):
        yields = calc.GetYields(interaction, float(energy), density, field, mass_number, atomic_number)
        quanta = calc.GetQuanta(yields, density)
        photons[i] = max(int(quanta.photons), 0)
        electrons[i] = max(int(quanta.electrons), 0)
    return photons, electrons
