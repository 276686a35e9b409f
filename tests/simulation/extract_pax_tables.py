"""Extract the detector tables the builtin engine ships from a pax checkout's ``pax/config``.

``python tests/simulation/extract_pax_tables.py <pax>/pax/config`` rewrites the package's
``pax_tables.json`` (docs/physics.md, "Detector tables"). Only numbers are taken: per-channel
gains of SR1 and SR0, the per-channel ZLE thresholds and the per-PMT afterpulse table.
"""

import ast
import json
import re
import sys
from pathlib import Path

from faxflow.engines.builtin import detector

AFTERPULSE_TABLE = "pmt_afterpulses/sr1_run16347.ini"
_UNITS_NS = {"ns": 1.0, "us": 1000.0}


def channel_gains(parameters_ini: str) -> list[float]:
    block = parameters_ini[parameters_ini.index("gains = ["):]
    block = block[:block.index("]")]
    pairs = {int(channel): float(value) for value, channel in re.findall(r"([\d.eE+-]+),?\s*# PMT ID = (\d+)", block)}
    return [pairs[channel] for channel in range(detector.N_TPC_CHANNELS)]


def special_thresholds(xenon1t_ini: str) -> dict[int, int]:
    literal = re.search(r"^special_thresholds\s*=\s*(\{.*\})", xenon1t_ini, re.MULTILINE).group(1)
    table = ast.literal_eval(literal)
    return {int(k): int(v) for k, v in table.items() if int(k) < detector.N_TPC_CHANNELS}


def afterpulse_table(afterpulse_ini: str) -> dict:
    text = afterpulse_ini[afterpulse_ini.index("each_pmt_afterpulse_types"):]
    text = text[text.index("{"):]
    text = re.sub(r"([\d.eE+-]+)\s*\*\s*(ns|us)", lambda m: repr(float(m.group(1)) * _UNITS_NS[m.group(2)]), text)
    text = re.sub(r"dict\(([^)]*)\)", lambda m: "{" + re.sub(r"(\w+)\s*=", r"'\1':", m.group(1)) + "}", text)
    table = ast.literal_eval(text)
    names = [t.name for t in detector.AFTERPULSE_TYPES]
    keys = ("probability", "delay_a_ns", "delay_b_ns", "amplitude_mean", "amplitude_rms")
    columns = {key: [[0.0] * len(names) for _ in range(detector.N_TPC_CHANNELS)] for key in keys}
    for channel in range(detector.N_TPC_CHANNELS):
        for name, entry in table.get(channel, {}).items():
            if not entry or not entry["p"]:
                continue
            k = names.index(name)
            time = entry["time_parameters"]
            values = (entry["p"], time.get("low", time.get("loc")), time.get("high", time.get("scale")),
                      entry.get("amp_mean", 1.0), entry.get("amp_rms", 0.0))
            for key, value in zip(keys, values):
                columns[key][channel][k] = float(f"{value:.7g}")
    return {"types": names, **columns}


def extract(config_dir: Path) -> dict:
    xenon1t = (config_dir / "XENON1T.ini").read_text()
    return {
        "gains_electrons_per_pe": {period: channel_gains((config_dir / f"{period}_parameters.ini").read_text())
                                   for period in ("SR1", "SR0")},
        "zle_special_thresholds_adc": special_thresholds(xenon1t),
        "afterpulses": afterpulse_table((config_dir / AFTERPULSE_TABLE).read_text()),
        "sources": {"gains": "pax/config/SR1_parameters.ini, SR0_parameters.ini [DEFAULT] gains",
                    "zle": "pax/config/XENON1T.ini [ZLE] special_thresholds",
                    "afterpulses": f"pax/config/{AFTERPULSE_TABLE} [WaveformSimulator] each_pmt_afterpulse_types"},
    }


if __name__ == "__main__":
    out = Path(detector.__file__).parent / detector.PAX_TABLES_FILE
    out.write_text(json.dumps(extract(Path(sys.argv[1])), separators=(",", ":")) + "\n")
    print(f"wrote {out}")
