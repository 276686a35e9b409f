"""Stand-in hax.minitrees.load: one row per processed event, hax's column names per treemaker."""
import json
import os

import numpy as np
import pandas as pd

import hax

BASICS = ["s1", "s2", "s1_area_fraction_top", "s2_area_fraction_top", "s1_range_50p_area", "s2_range_50p_area",
          "x_pax", "y_pax", "z", "drift_time", "largest_other_s1", "largest_other_s2", "largest_veto",
          "largest_unknown", "largest_coincidence"]
EXTENDED = ["s1_range_80p_area", "s1_range_90p_area", "s1_range_100p_area", "s2_range_80p_area",
            "s1_n_contributing_channels", "s2_n_contributing_channels", "s1_largest_hit_area", "s2_largest_hit_area",
            "s1_largest_hit_channel", "s2_largest_hit_channel", "s1_rise_time", "s2_rise_time",
            "s1_tight_coincidence", "s1_pattern_fit", "s2_pattern_fit", "r_pos_correction", "z_pos_correction",
            "s1_area_fraction_top_probability", "x_nn", "y_nn", "x_tpff", "y_tpff", "sum_s1s_before_main_s2",
            "alt_s1_interaction_drift_time", "alt_s1_interaction_z", "alt_s1_tight_coincidence",
            "alt_s2_interaction_x", "alt_s2_interaction_y", "alt_s2_interaction_z",
            "alt_s2_interaction_s2_range_50p_area", "alt_s2_interaction_s2_range_80p_area",
            "largest_other_s2_delay_main_s1", "largest_other_s2_delay_main_s2", "largest_other_s2_pattern_fit",
            "largest_s2_before_main_s2_area"]


def load(name, treemakers):
    import uproot

    path = os.path.join(hax.config["main_data_paths"][0], name + ".root")
    with uproot.open(path) as handle:
        tree = handle["tree"].arrays(library="np")
        configuration = json.loads(str(handle["pax_metadata"]))["configuration"]
    mc = configuration.get("MC", {})
    if not mc.get("mc_generated_data"):
        raise ValueError(f"fake hax: {name} has no [MC] section, so no run number can be found without a runs db")
    n = len(tree["event_number"])
    frame = {"run_number": np.full(n, int(mc["mc_run_number"])), "event_number": tree["event_number"]}
    for treemaker in treemakers:
        if treemaker == "Fundamentals":
            frame["event_time"] = tree["start_time"]
            frame["event_duration"] = tree["stop_time"] - tree["start_time"]
        elif treemaker in ("Basics", "Extended"):
            columns = BASICS if treemaker == "Basics" else EXTENDED
            for index, column in enumerate(columns):
                frame[column] = tree["s1"] * (index + 1) + tree["s2"] / (index + 2)
        elif treemaker == "Corrections":
            raise KeyError("x_observed_nn_tf")  # what hax 2.5 does on MC data
        else:
            raise ValueError(f"fake hax: unknown treemaker {treemaker}")
    with open(os.path.join(os.environ["FAKEPAX_ENV"], "expect.json")) as handle:
        fault = json.load(handle).get("fault")
    table = pd.DataFrame(frame)
    return table.iloc[:-1] if fault == "lose_row" else table
