#!/usr/bin/python3
"""The TaOx calibration workflow end to end: import the measured ramps with the held-out split of
../shared/data/measured/README.md (SET 28-39, RESET 29-40), `xbar calibrate` cards/rram-taox-pulse.yaml
on the fitting split, `xbar validate --json` the fitted and the uncalibrated card on the held-out
split, print every metric against the issue's targets (RMSE < 5 % of the range, KS < 0.15 in every
populated bin, coverage >= 80 %).

Usage: taox_calibration.py XBAR REPO_ROOT
Exit 1 when the workflow fails, any target is missed, or the uncalibrated card does not score clearly
worse.
"""
import json
import os
import subprocess
import sys
import tempfile

xbar, root = sys.argv[1], sys.argv[2]
data = os.path.join(root, "tests", "data", "measured", "rram_taox_pulse_ramps")
base_card = os.path.join(root, "cards", "rram-taox-pulse.yaml")
TARGETS = (("rmse_rel", "<", 0.05), ("ks_max", "<", 0.15), ("coverage", ">=", 0.80))


def run(*args):
    done = subprocess.run([xbar, *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"xbar {' '.join(args)}: exit {done.returncode}\n{done.stderr}", file=sys.stderr)
        sys.exit(1)
    return done.stdout


with tempfile.TemporaryDirectory() as tmp:
    measured, fitted = os.path.join(tmp, "taox.h5"), os.path.join(tmp, "taox-fitted.yaml")
    run("import", "ramps", "--set", os.path.join(data, "set.csv"), "--reset", os.path.join(data, "reset.csv"),
        "--read-voltage", "0.1", "--heldout-set", "28-39", "--heldout-reset", "29-40",
        "--licence", os.path.join(data, "LICENSE.md"), "-o", measured)
    print(run("calibrate", "--card", base_card, "--measured", measured, "--split", "fit", "-o", fitted), end="")
    calibrated = json.loads(run("validate", "--card", fitted, "--measured", measured, "--split", "heldout", "--json"))
    uncalibrated = json.loads(run("validate", "--card", base_card, "--measured", measured, "--split", "heldout",
                                  "--json"))

failures = []
print(f"{'experiment':<10} {'metric':<9} {'calibrated':>11} {'target':>8} {'uncalibrated':>13}")
for experiment in ("set", "reset"):
    cal, unc = calibrated[experiment], uncalibrated[experiment]
    for metric, op, target in TARGETS:
        value = cal[metric]
        ok = value is not None and (value < target if op == "<" else value >= target)
        print(f"{experiment:<10} {metric:<9} {value if value is not None else float('nan'):>11.4f} "
              f"{op + ' ' + str(target):>8} {unc[metric] if unc[metric] is not None else float('nan'):>13.4f}"
              f"{'' if ok else '   FAILS the target'}")
        if not ok:
            failures.append(f"{experiment} {metric} = {value} (target {op} {target})")
    if not (unc["rmse_rel"] >= 2 * cal["rmse_rel"] and unc["ks_max"] >= 2 * cal["ks_max"]
            and unc["coverage"] <= cal["coverage"] - 0.2):
        failures.append(f"{experiment}: the uncalibrated card does not score clearly worse")
if failures:
    print("FAILED: " + "; ".join(failures))
    sys.exit(1)
print("all targets met")
