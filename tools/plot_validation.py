#!/usr/bin/python3
"""Plot an xbar validation report (xbar validate -o REPORT.h5) as a PNG.

Usage: /usr/bin/python3 tools/plot_validation.py REPORT.h5 -o PICTURE.png

Columns SET and RESET. Top: every scored measured ramp (line) over the simulated 5-95 % band of its
own replays (shaded, same colour; replays are simulated reads, with the card's read noise, like the
measured values), with the measured and simulated mean trajectories; the title
gives the metrics. Middle: the same relative to the median of each ramp's replays, where the band
and the ramps' departures from it can be seen. Bottom: the KS statistic of the steps per
conductance bin (grey bars: bins with too few measured steps to count).
Errors (missing file, not HDF5, not a validation report, missing dataset) print one line on stderr
and exit 2; the output PNG is then neither created nor touched.
"""
import argparse
import os
import sys

from h5plot import FileError, dataset, num, open_hdf5, save_png, text  # first: selects the Agg backend
import matplotlib.pyplot as plt
import numpy as np

import h5py

DIRECTIONS = (("set", "SET (potentiation)"), ("reset", "RESET (depression)"))


def load(path):
    """Everything the picture needs, per direction."""
    with open_hdf5(path) as h5:
        if text(h5.attrs.get("kind", "")) != "validation":
            raise FileError("not a validation report (root attribute kind is not 'validation')")
        d = {"card": text(h5.attrs.get("card", "?")), "measured": text(h5.attrs.get("measured", "?")),
             "split": text(h5.attrs.get("split", "?")), "repetitions": num(h5, "repetitions"),
             "g_lo": num(h5, "g_lo"), "g_hi": num(h5, "g_hi")}
        for name, _ in DIRECTIONS:
            grp = h5.get(name)
            if not isinstance(grp, h5py.Group):
                raise FileError(f"missing group /{name}")
            r = {k: num(grp, k) for k in ("ramps", "rmse_rel", "ks_max", "coverage", "populated_bins")}
            for k in ("ks_bin_edges", "ks", "ks_populated", "ks_measured_steps"):
                r[k] = dataset(h5, f"/{name}/{k}")
            if r["ramps"] > 0:
                for k in ("measured", "sim_p05", "sim_p50", "sim_p95", "length", "ramp_id",
                          "mean_measured", "mean_simulated"):
                    r[k] = dataset(h5, f"/{name}/{k}")
                if r["measured"].ndim != 2 or r["sim_p05"].shape != r["measured"].shape:
                    raise FileError(f"/{name}/measured and /{name}/sim_p05 are not matching K x L arrays")
            d[name] = r
    return d


def siemens_scale(g_hi):
    """Factor and unit label for conductances of this size."""
    if not np.isfinite(g_hi) or g_hi >= 1e-3:
        return 1e3, "mS"
    if g_hi >= 1e-6:
        return 1e6, "µS"
    return 1e9, "nS"


def fmt(v, pattern="{:.3f}"):
    return "n/a" if not np.isfinite(v) else pattern.format(v)


def ramps_panel(ax, r, title, scale, unit):
    """Measured ramps over the simulated bands of their replays, and the mean trajectories."""
    if not r["ramps"] > 0:
        ax.set_axis_off()
        ax.set_title(f"{title}\n(no ramps in this split)", fontsize=10)
        return
    k_count = r["measured"].shape[0]
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(k_count, 1)))
    for k in range(k_count):  # every band first, then every line on top
        n = int(r["length"][k])
        ax.fill_between(np.arange(n), r["sim_p05"][k, :n] * scale, r["sim_p95"][k, :n] * scale,
                        color=colours[k], alpha=0.15, lw=0, label="simulated 5-95 % band" if k == 0 else None)
    for k in range(k_count):
        n = int(r["length"][k])
        ax.plot(np.arange(n), r["measured"][k, :n] * scale, color=colours[k], lw=0.9,
                label="measured ramps" if k == 0 else None)
    x = np.arange(r["mean_measured"].size)
    ax.plot(x, r["mean_measured"] * scale, color="k", lw=1.0, label="measured mean")
    ax.plot(x, r["mean_simulated"] * scale, color="C3", lw=1.0, ls="--", label="simulated mean")
    ax.set_xlabel("pulse index")
    ax.set_ylabel(f"G ({unit})")
    ax.set_title(f"{title}: {k_count} ramps\nrmse_rel {fmt(r['rmse_rel'], '{:.4f}')}, ks_max "
                 f"{fmt(r['ks_max'])}, coverage {fmt(100 * r['coverage'], '{:.1f}')} %", fontsize=10)
    ax.legend(fontsize="small", loc="best")


def residual_panel(ax, r, title, scale, unit):
    """Each measured ramp and its band relative to the median of its own replays."""
    if not r["ramps"] > 0:
        ax.set_axis_off()
        return
    k_count = r["measured"].shape[0]
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(k_count, 1)))
    for k in range(k_count):
        n = int(r["length"][k])
        mid = r["sim_p50"][k, :n]
        ax.fill_between(np.arange(n), (r["sim_p05"][k, :n] - mid) * scale, (r["sim_p95"][k, :n] - mid) * scale,
                        color=colours[k], alpha=0.12, lw=0)
    for k in range(k_count):
        n = int(r["length"][k])
        ax.plot(np.arange(n), (r["measured"][k, :n] - r["sim_p50"][k, :n]) * scale, color=colours[k], lw=0.8,
                label=f"ramp {int(r['ramp_id'][k])}" if k in (0, k_count - 1) else None)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("pulse index")
    ax.set_ylabel(f"G − simulated median ({unit})")
    ax.set_title(f"{title}: measured ramps and 5-95 % bands relative to the median of their replays", fontsize=10)
    ax.legend(fontsize="small", loc="best")


def ks_panel(ax, r, title, scale, unit):
    edges = r["ks_bin_edges"] * scale
    ks = np.nan_to_num(r["ks"], nan=0.0)
    populated = r["ks_populated"] > 0
    widths = np.diff(edges)
    ax.bar(edges[:-1], ks, width=widths, align="edge", edgecolor="k", lw=0.5,
           color=np.where(populated, "C0", "0.8"))
    for x, w, n in zip(edges[:-1], widths, r["ks_measured_steps"]):
        ax.annotate(f"{int(n)}", (x + w / 2, 0), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7, color="0.2")
    ax.axhline(0.15, color="C3", lw=0.8, ls=":", label="0.15")
    ax.set_ylim(0, max(0.3, float(np.nanmax(ks)) * 1.1 if ks.size else 0.3))
    ax.set_xlabel(f"G before the pulse ({unit})")
    ax.set_ylabel("KS statistic of ΔG")
    ax.set_title(f"{title}: KS per conductance bin (numbers: measured steps)", fontsize=10)
    ax.legend(fontsize="small", loc="upper right")


def draw(d):
    scale, unit = siemens_scale(d["g_hi"])
    fig, axs = plt.subplots(3, 2, figsize=(13, 12), dpi=110, gridspec_kw={"height_ratios": [2, 1.5, 1.1]})
    for col, (name, title) in enumerate(DIRECTIONS):
        ramps_panel(axs[0, col], d[name], title, scale, unit)
        residual_panel(axs[1, col], d[name], title.split()[0], scale, unit)
        ks_panel(axs[2, col], d[name], title.split()[0], scale, unit)
    reps = "?" if not np.isfinite(d["repetitions"]) else int(d["repetitions"])
    fig.suptitle(f"{os.path.basename(d['card'])} vs {os.path.basename(d['measured'])}  —  split {d['split']}  —  "
                 f"{reps} simulated repetitions per ramp")
    fig.tight_layout()
    return fig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", help="HDF5 report written by xbar validate -o")
    ap.add_argument("-o", "--output", required=True, help="PNG file to write")
    args = ap.parse_args()

    try:
        d = load(args.report)
    except FileError as e:
        print(f"plot_validation: {args.report}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # I/O failure while reading a (corrupt?) HDF5 file
        print(f"plot_validation: {args.report}: cannot read ({e})", file=sys.stderr)
        return 2

    try:
        save_png(draw(d), args.output)
    except OSError as e:
        print(f"plot_validation: {args.output}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
