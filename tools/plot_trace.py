#!/usr/bin/python3
"""Plot one read of an xbar HDF5 trace as a four-panel PNG.

Usage: /usr/bin/python3 tools/plot_trace.py TRACE.h5 -o PICTURE.png [--read K]

Panels: conductance map, voltage across the cells (IR drop), column currents
with vs. without wire resistance, digital outputs vs. the exact product.
Errors (missing file, not HDF5, missing group/dataset) print one line on
stderr and exit 2; the output PNG is then neither created nor touched.
"""
import argparse
import os
import sys

from h5plot import FileError, dataset, num, open_hdf5, save_png, text  # first: selects the Agg backend
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

import h5py


def load(path, k):
    """Collect everything the picture needs from read k of the trace."""
    with open_hdf5(path) as h5:
        grp = f"/reads/{k:04d}"
        if not isinstance(h5.get(grp), h5py.Group):
            have = sorted(h5["reads"].keys()) if isinstance(h5.get("reads"), h5py.Group) else []
            hint = (f" (trace has {len(have)} reads: {have[0]} … {have[-1]})" if have
                    else " (trace has no reads)")
            raise FileError(f"missing group {grp}{hint}")
        if not isinstance(h5.get("/array"), h5py.Group):
            raise FileError("missing group /array")
        d = {n: dataset(h5, f"{grp}/{n}")
             for n in ("conductance", "v_cell", "i_out", "i_ideal", "y", "y_ideal")}
        for n in ("conductance", "v_cell"):
            if d[n].ndim != 2:
                raise FileError(f"{grp}/{n} is not 2-D (shape {d[n].shape})")
        for a, b in (("i_out", "i_ideal"), ("y", "y_ideal")):
            if d[a].shape != d[b].shape:
                raise FileError(f"{grp}/{a} shape {d[a].shape} != {b} shape {d[b].shape}")
        arr, rd = h5["/array"], h5[grp]
        b = rd["v_cell"].attrs.get("batch_index", "?")
        d["batch_index"] = b.item() if isinstance(b, np.ndarray) and b.size == 1 else b
        d["encoding"] = text(rd.attrs.get("encoding", "?"))
        d["solver"] = text(rd.attrs.get("solver", "?"))
        d["time_s"] = num(rd, "time_s")
        d["err_mean"] = num(rd, "ir_drop_err_mean")
        d["err_max"] = num(rd, "ir_drop_err_max")
        d["card_file"] = text(h5.attrs.get("card_file", os.path.basename(path)))
        d["r_wl"], d["r_bl"] = num(arr, "r_wl_segment"), num(arr, "r_bl_segment")
        # Applied row voltages of the plotted vector (the most significant plane
        # of a bit-serial read), for the share of it the wires take.
        b, vin = d["batch_index"], rd.get("v_in")
        d["v_applied"] = None
        if isinstance(vin, h5py.Dataset) and vin.ndim in (2, 3):
            rows_of = vin[-1] if vin.ndim == 3 else vin
            if (rows_of.shape[1] == d["v_cell"].shape[0]
                    and isinstance(b, (int, np.integer)) and 0 <= b < rows_of.shape[0]):
                d["v_applied"] = np.asarray(rows_of[int(b)], dtype=float)
    return d


def image(fig, ax, data, title, unit, cmap, symmetric=False):
    """Matrix panel: rows (word lines) down the y axis, columns along x."""
    limits = {}
    if symmetric and np.isfinite(data).any():
        extent = np.nanmax(np.abs(data)) or 1.0
        limits = {"vmin": -extent, "vmax": extent}
    im = ax.imshow(data, cmap=cmap, aspect="auto", interpolation="nearest", **limits)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("column (bit line)")
    ax.set_ylabel("row (word line)")
    # Integer ticks only; every index on tiny arrays (MaxNLocator would give
    # fractional ticks on a 1-wide axis).
    for axis, n in ((ax.xaxis, data.shape[1]), (ax.yaxis, data.shape[0])):
        if n <= 8:
            axis.set_ticks(range(n))
        else:
            axis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    fig.colorbar(im, ax=ax, label=unit)


def identity(ax, *arrays):
    """Draw y = x across the range of the data (padded if it is a single value)."""
    vals = np.concatenate([a.ravel() for a in arrays])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return
    lo, hi = vals.min(), vals.max()
    pad = 0.05 * (hi - lo) or 0.05 * max(abs(hi), 1e-30)
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)


def points(ax, x, y, **kw):
    """Scatter via plot(): much faster than scatter() for ~1e6 points."""
    ms = 4 if x.size < 2000 else 1.5
    ax.plot(x.ravel(), y.ravel(), ".", ms=ms, alpha=0.7, rasterized=True, **kw)


def pct(v):
    return "n/a" if not np.isfinite(v) else f"{100 * v:.3g} %"


def draw(d, k):
    rows, cols = d["conductance"].shape
    fig, axs = plt.subplots(1, 5, figsize=(17.5, 4.5), dpi=120)

    image(fig, axs[0], d["conductance"] * 1e6, "Conductance", "G (µS)", "viridis")
    plane = ", MSB plane" if d["encoding"] == "bit_serial" else ""
    title = f"Cell voltage, input vector {d['batch_index']}{plane}"
    if d["v_applied"] is not None:
        drop = d["v_applied"][:, None] - d["v_cell"]
        title += f"\nmax drop V_in − V_cell = {1e3 * np.nanmax(drop):.3g} mV"
    image(fig, axs[1], d["v_cell"] * 1e3, title, "V_cell (mV)", "magma")

    # The IR drop itself: the part of each row's applied voltage that does not
    # reach the cell (word-line drop plus bit-line rise), on a symmetric scale.
    ax = axs[2]
    if d["v_applied"] is not None:
        lost = 1e3 * (d["v_applied"][:, None] - d["v_cell"])
        image(fig, ax, lost, f"Voltage lost to the wires, input vector {d['batch_index']}",
              "V_in − V_cell (mV)", "coolwarm", symmetric=True)
    else:
        ax.set_axis_off()
        ax.set_title("Voltage lost to the wires\n(no v_in in the trace)", fontsize=10)

    # Column currents; bit-serial reads are P x B x C, coloured by bit plane.
    ax, io, ii = axs[3], d["i_out"] * 1e6, d["i_ideal"] * 1e6
    if io.ndim == 3 and io.shape[0] <= 16:
        for p in range(io.shape[0]):
            points(ax, ii[p], io[p], label=f"plane {p}")
    else:
        points(ax, ii, io)
    identity(ax, ii, io)
    ax.set_title(f"Column currents\nIR-drop error mean {pct(d['err_mean'])}, "
                 f"max {pct(d['err_max'])}", fontsize=10)
    ax.set_xlabel("I ideal, no wire R (µA)")
    ax.set_ylabel("I out, with wire R (µA)")
    ax.legend(fontsize="small", markerscale=2)

    # Digital outputs vs. the exact float product W·x.
    ax, y, yi = axs[4], d["y"], d["y_ideal"]
    points(ax, yi, y, color="C3")
    identity(ax, yi, y)
    scale = np.nanmax(np.abs(yi)) if np.isfinite(yi).any() else 0.0
    rms = np.sqrt(np.nanmean((y - yi) ** 2)) / scale if scale > 0 else float("nan")
    ax.set_title(f"Digital outputs\nRMS error {pct(rms)} of max |y_ideal|", fontsize=10)
    ax.set_xlabel("y_ideal = W·x (weight units)")
    ax.set_ylabel("y, digital (weight units)")
    ax.legend(fontsize="small")

    fig.suptitle(f"{d['card_file']}  —  {rows}×{cols}  —  wire R {d['r_wl']:.3g} / "
                 f"{d['r_bl']:.3g} Ω per WL/BL segment  —  solver {d['solver']}  —  "
                 f"read {k} ({d['encoding']}) at t = {d['time_s']:.4g} s")
    fig.tight_layout()
    return fig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace", help="HDF5 trace written by xbar")
    ap.add_argument("-o", "--output", required=True, help="PNG file to write")
    ap.add_argument("--read", type=int, default=0, help="index K of /reads/KKKK (default 0)")
    args = ap.parse_args()
    if args.read < 0:
        ap.error("--read must be >= 0")

    try:
        d = load(args.trace, args.read)
    except FileError as e:
        print(f"plot_trace: {args.trace}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # I/O failure while reading a (corrupt?) HDF5 file
        print(f"plot_trace: {args.trace}: cannot read ({e})", file=sys.stderr)
        return 2

    try:
        save_png(draw(d, args.read), args.output)
    except OSError as e:
        print(f"plot_trace: {args.output}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
