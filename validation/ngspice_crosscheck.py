#!/usr/bin/python3
"""Cross-check of xbar's direct solver against ngspice on the canonical crossbar circuit.

Usage: ngspice_crosscheck.py XBAR_BINARY REPO_ROOT

For every case below (a card of cards/, ideal.yaml unless named, plus --set overrides) this runs,
in a temporary directory:
  xbar simulate CARD -o trace.h5 -q            -> /reads/0000/i_out (B x C, or P x B x C bit-serial)
  xbar spice CARD -o net.cir --read K          -> netlist of the programmed array and input vector K
  ngspice -b net.cir                           -> prints i(vsense_j) for every column j
and requires, for every column j of input vector K (last DAC plane when bit-serial),
  |i_ngspice - i_xbar| / max(|i_ngspice|, 1e-9 * max_j |i_ngspice|) <= 1e-6.
As a diagnostic it also solves linear netlists itself (dense modified nodal analysis in numpy), so
a disagreement shows whether the netlist, ngspice's precision or xbar's solver is off. Nonlinear
cells (behavioural B sources) are compared with ngspice's Newton only.

Exit status: 0 all cases pass; 1 a case fails; 2 ngspice (or xbar) missing or failed.
"""

import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

REL_TOL = 1e-6     # required agreement per column
FLOOR_FRACTION = 1e-9  # of the largest column current: the denominator floor for ~0 currents

BASE = ["solver.method=direct"]

# (name, --set overrides, --read K[, card]); the card defaults to cards/ideal.yaml
CASES = [
    ("5x9 1ohm", ["tile.rows=5", "tile.cols=9"], 0),
    ("12x7 1ohm", ["tile.rows=12", "tile.cols=7"], 0),
    ("16x24 1ohm", ["tile.rows=16", "tile.cols=24"], 0),
    ("9x5 all 0.01ohm", ["tile.rows=9", "tile.cols=5", "tile.wires.r_wl_segment=0.01",
                         "tile.wires.r_bl_segment=0.01"], 0),
    ("16x24 all 0.01ohm", ["tile.rows=16", "tile.cols=24", "tile.wires.r_wl_segment=0.01",
                           "tile.wires.r_bl_segment=0.01", "tile.wires.r_source=0.01",
                           "tile.wires.r_sense=0.01"], 0),
    ("12x7 all 100ohm", ["tile.rows=12", "tile.cols=7", "tile.wires.r_wl_segment=100",
                         "tile.wires.r_bl_segment=100", "tile.wires.r_source=100",
                         "tile.wires.r_sense=100"], 0),
    ("16x24 all 100ohm g 1e-7..1e-3", ["tile.rows=16", "tile.cols=24", "tile.wires.r_wl_segment=100",
                                       "tile.wires.r_bl_segment=100", "tile.wires.r_source=100",
                                       "tile.wires.r_sense=100", "device.g_min=1e-7",
                                       "device.g_max=1e-3"], 0),
    ("7x12 wl 0.01 / bl 100", ["tile.rows=7", "tile.cols=12", "tile.wires.r_wl_segment=0.01",
                               "tile.wires.r_bl_segment=100"], 0),
    ("16x9 wl 100 / bl 0.01", ["tile.rows=16", "tile.cols=9", "tile.wires.r_wl_segment=100",
                               "tile.wires.r_bl_segment=0.01"], 0),
    ("10x14 source 50 / sense 20", ["tile.rows=10", "tile.cols=14", "tile.wires.r_source=50",
                                    "tile.wires.r_sense=20"], 0),
    ("8x6 all wires 0 (shorts)", ["tile.rows=8", "tile.cols=6", "tile.wires.r_wl_segment=0",
                                  "tile.wires.r_bl_segment=0", "tile.wires.r_source=0",
                                  "tile.wires.r_sense=0"], 0),
    ("11x13 g 1e-7..1e-3", ["tile.rows=11", "tile.cols=13", "device.g_min=1e-7", "device.g_max=1e-3"], 0),
    ("13x11 g 1e-7..2e-7", ["tile.rows=13", "tile.cols=11", "device.g_min=1e-7", "device.g_max=2e-7"], 0),
    ("14x10 g 1e-7..2e-7 wires 100", ["tile.rows=14", "tile.cols=10", "device.g_min=1e-7",
                                      "device.g_max=2e-7", "tile.wires.r_wl_segment=100",
                                      "tile.wires.r_bl_segment=100"], 0),
    ("16x24 1T1R r_on 5k", ["tile.rows=16", "tile.cols=24", "tile.access.type=transistor",
                            "tile.access.r_on=5000"], 0),
    ("9x12 1T1R g 1e-7..1e-3 src 50/sense 20", ["tile.rows=9", "tile.cols=12", "tile.access.type=transistor",
                                                "tile.access.r_on=5000", "device.g_min=1e-7",
                                                "device.g_max=1e-3", "tile.wires.r_source=50",
                                                "tile.wires.r_sense=20"], 0),
    ("12x7 input vector 2", ["tile.rows=12", "tile.cols=7"], 2),
    ("10x15 reference mapping", ["tile.rows=10", "tile.cols=15", "mapping.scheme=reference"], 0),
    ("12x8 bit-serial 4b", ["tile.rows=12", "tile.cols=8", "dac.encoding=bit_serial", "dac.bits=4"], 0),
    # Stochastic linear devices: the netlist holds the conductances read 0 of the trace saw.
    ("12x14 PCM (Joshi 2020), 1 day", ["tile.rows=12", "tile.cols=14", "workload.read_times=[86400]",
                                       "workload.inputs.count=3"], 1, "pcm-joshi2020.yaml"),
    # Nonlinear cells: Newton-Raphson against ngspice's behavioural current sources (B elements).
    ("10x12 compact RRAM sinh I-V, 1R", ["tile.rows=10", "tile.cols=12", "tile.access.type=none",
                                         "dac.v_read=0.6", "workload.inputs.count=2"], 0, "rram-stanford-pku.yaml"),
    ("9x8 compact RRAM sinh I-V, 1T1R", ["tile.rows=9", "tile.cols=8", "dac.v_read=0.8",
                                         "workload.inputs.count=2"], 1, "rram-stanford-pku.yaml"),
    ("9x8 sinh I-V, 1T1R, iterative Newton", ["tile.rows=9", "tile.cols=8", "dac.v_read=0.8",
                                              "workload.inputs.count=2", "solver.method=iterative"], 1,
     "rram-stanford-pku.yaml"),
    ("12x16 linear, iterative", ["tile.rows=12", "tile.cols=16", "solver.method=iterative",
                                 "tile.wires.r_source=20", "tile.wires.r_sense=5"], 0),
    ("12x16 linear, effective", ["tile.rows=12", "tile.cols=16", "solver.method=effective",
                                 "tile.wires.r_source=20", "tile.wires.r_sense=5"], 0),
    ("12x10 polynomial I-V, 50-225 uS", ["tile.rows=12", "tile.cols=10", "device.model=rram-hfox-ibm",
                                         "device.g_min=50e-6", "device.g_max=225e-6", "device.iv=polynomial",
                                         "device.iv_nl2=0.3", "device.iv_nl3=1.5", "dac.v_read=0.5",
                                         "dac.encoding=amplitude", "dac.bits=8", "tile.access.type=none",
                                         "workload.read_times=[1]", "workload.inputs.count=2"], 0,
     "rram-wan2022.yaml"),
]

CURRENT_LINE = re.compile(
    r"^\s*i\(\s*vsense_(\d+)\s*\)\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$",
    re.IGNORECASE | re.MULTILINE)


class Failure(Exception):
    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def run(command, what, cwd):
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as error:
        raise Failure(f"{what}: cannot run {command[0]}: {error}", 2)
    except subprocess.TimeoutExpired:
        raise Failure(f"{what}: {' '.join(command)} timed out after 300 s", 2)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise Failure(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n"
                      f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}", 2)
    return done, seconds


def parse_ngspice(stdout, stderr, cols):
    """Column currents from the `print i(vsense_j)` lines; every column exactly once."""
    errors = [line for line in (stdout + "\n" + stderr).splitlines()
              if re.search(r"\berror\b|singular|timestep too small|not converge", line, re.IGNORECASE)]
    if errors:
        raise Failure("ngspice reported errors:\n" + "\n".join(errors) +
                      f"\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}", 2)
    found = {}
    for match in CURRENT_LINE.finditer(stdout):
        j = int(match.group(1))
        if j in found:
            raise Failure(f"ngspice printed i(vsense_{j}) twice")
        found[j] = float(match.group(2))
    missing = [j for j in range(cols) if j not in found]
    extra = [j for j in found if j >= cols]
    if missing or extra:
        raise Failure(f"ngspice output lacks i(vsense_j) for columns {missing}"
                      f"{f' and has unexpected columns {extra}' if extra else ''}\n"
                      f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}", 2)
    return np.array([found[j] for j in range(cols)])


def significant_digits(stdout):
    """Fewest significant digits among the printed nonzero currents."""
    digits = []
    for m in CURRENT_LINE.finditer(stdout):
        mantissa = re.sub(r"[^0-9]", "", m.group(2).lower().split("e")[0]).lstrip("0")
        if mantissa:
            digits.append(len(mantissa))
    return min(digits) if digits else 0


def solve_netlist(path, cols):
    """Dense MNA solve of the netlist's R and DC V elements: i(vsense_j), as ngspice defines it
    (the current flowing through the source from its + to its - node)."""
    resistors, sources = [], []
    with open(path) as netlist:
        for line in netlist:
            line = line.strip()
            if line.lower() in (".control", ".end"):
                break
            if not line or line[0] in "*.":
                continue
            fields = line.split()
            kind = fields[0][0].upper()
            if kind == "B":
                return None  # behavioural sources: no linear diagnostic solve
            if kind == "R":
                resistors.append((fields[1].lower(), fields[2].lower(), float(fields[3])))
            elif kind == "V":
                value = float(fields[4] if fields[3].upper() == "DC" else fields[3])
                sources.append((fields[0].lower(), fields[1].lower(), fields[2].lower(), value))
            else:
                raise Failure(f"{path}: the diagnostic solver does not know the element {fields[0]}")
    nodes = {}
    for a, b, _ in resistors:
        for n in (a, b):
            if n != "0":
                nodes.setdefault(n, len(nodes))
    for _, a, b, _ in sources:
        for n in (a, b):
            if n != "0":
                nodes.setdefault(n, len(nodes))
    n, m = len(nodes), len(sources)
    A = np.zeros((n + m, n + m))
    rhs = np.zeros(n + m)
    for a, b, r in resistors:
        g = 1.0 / r
        ia, ib = nodes.get(a), nodes.get(b)
        if ia is not None:
            A[ia, ia] += g
        if ib is not None:
            A[ib, ib] += g
        if ia is not None and ib is not None:
            A[ia, ib] -= g
            A[ib, ia] -= g
    for k, (_, a, b, v) in enumerate(sources):
        ia, ib = nodes.get(a), nodes.get(b)
        if ia is not None:
            A[ia, n + k] += 1
            A[n + k, ia] += 1
        if ib is not None:
            A[ib, n + k] -= 1
            A[n + k, ib] -= 1
        rhs[n + k] = v
    x = np.linalg.solve(A, rhs)
    index = {name: k for k, (name, _, _, _) in enumerate(sources)}
    return np.array([x[n + index[f"vsense_{j}"]] for j in range(cols)])


def rel_err(a, b):
    """Per-column |a-b| / max(|b|, floor), floor = FLOOR_FRACTION * max|b|."""
    floor = FLOOR_FRACTION * np.max(np.abs(b))
    if floor == 0:
        floor = np.finfo(float).tiny
    return np.abs(a - b) / np.maximum(np.abs(b), floor)


def check_case(xbar, card, ngspice, name, sets, read, workdir):
    args = []
    for s in BASE + sets:
        args += ["--set", s]
    trace = os.path.join(workdir, "trace.h5")
    netlist = os.path.join(workdir, "net.cir")
    _, xbar_s = run([xbar, "simulate", card, "-o", trace, "-q"] + args, f"{name}: xbar simulate", workdir)
    run([xbar, "spice", card, "-o", netlist, "--read", str(read)] + args, f"{name}: xbar spice", workdir)
    done, ngspice_s = run([ngspice, "-b", netlist], f"{name}: ngspice", workdir)

    with h5py.File(trace, "r") as h5:
        rows = int(h5["/array"].attrs["rows"])
        cols = int(h5["/array"].attrs["cols"])
        r_access = float(h5["/array"].attrs["r_access"])
        g = h5["/reads/0000/conductance"][()]
        i_out = h5["/reads/0000/i_out"][()]
        encoding = h5["/dac"].attrs["encoding"]
        if isinstance(encoding, bytes):
            encoding = encoding.decode()
        wires = [float(h5["/array"].attrs[k]) for k in ("r_wl_segment", "r_bl_segment", "r_source", "r_sense")]
    if encoding == "bit_serial":
        if i_out.ndim != 3:
            raise Failure(f"{name}: bit-serial trace i_out has shape {i_out.shape}, expected P x B x C")
        xbar_i = i_out[-1, read, :]
    else:
        if i_out.ndim != 2:
            raise Failure(f"{name}: trace i_out has shape {i_out.shape}, expected B x C")
        xbar_i = i_out[read, :]
    if xbar_i.shape != (cols,):
        raise Failure(f"{name}: trace i_out row has {xbar_i.shape} columns, the array has {cols}")

    spice_i = parse_ngspice(done.stdout, done.stderr, cols)
    digits = significant_digits(done.stdout)
    if digits < 12:
        raise Failure(f"{name}: ngspice printed only {digits} significant digits; the check needs >= 12", 2)
    if not np.all(np.isfinite(spice_i)) or not np.all(np.isfinite(xbar_i)):
        raise Failure(f"{name}: non-finite currents\nngspice {spice_i}\nxbar    {xbar_i}")

    err = rel_err(xbar_i, spice_i)
    netlist_i = solve_netlist(netlist, cols)
    if netlist_i is None:  # nonlinear cells
        netlist_i = np.full(cols, np.nan)
    err_xbar_mna = float(np.max(rel_err(xbar_i, netlist_i)))
    err_spice_mna = float(np.max(rel_err(spice_i, netlist_i)))
    g_pos = g[g > 0]
    row = {
        "name": name,
        "size": f"{rows}x{cols}",
        "wires": "/".join(f"{w:g}" for w in wires),
        "g": f"{g_pos.min():.2g}..{g_pos.max():.2g}" if g_pos.size else "-",
        "access": f"1T1R {r_access:g}" if r_access > 0 else "1R",
        "max_err": float(np.max(err)),
        "err_xbar_mna": err_xbar_mna,
        "err_spice_mna": err_spice_mna,
        "ngspice_s": ngspice_s,
        "xbar_s": xbar_s,
        "ok": bool(np.all(err <= REL_TOL)),
    }
    if not row["ok"]:
        lines = [f"{name}: columns disagreeing beyond {REL_TOL:g} (read {read}):",
                 f"{'col':>4} {'ngspice':>24} {'xbar':>24} {'netlist (numpy)':>24} {'rel err':>10}"]
        for j in range(cols):
            mark = "  <--" if err[j] > REL_TOL else ""
            lines.append(f"{j:4d} {spice_i[j]:24.16e} {xbar_i[j]:24.16e} {netlist_i[j]:24.16e} {err[j]:10.2e}{mark}")
        lines.append(f"max rel err vs numpy solve of the netlist: xbar {err_xbar_mna:.2e}, ngspice {err_spice_mna:.2e}")
        row["detail"] = "\n".join(lines)
    return row


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    xbar = os.path.abspath(argv[1])
    root = os.path.abspath(argv[2])
    ngspice = shutil.which("ngspice") or ("/usr/bin/ngspice" if os.path.exists("/usr/bin/ngspice") else None)
    if ngspice is None:
        print("FAIL: ngspice is not installed (scripts/setup.sh installs it: apt-get install ngspice)",
              file=sys.stderr)
        return 2
    if not os.access(xbar, os.X_OK):
        print(f"FAIL: xbar binary {xbar} is not executable", file=sys.stderr)
        return 2

    header = (f"{'case':<40} {'size':>6} {'wires wl/bl/src/sense':>22} {'g (S)':>16} {'access':>11} "
              f"{'max rel err':>11} {'xbar-mna':>9} {'spice-mna':>9} {'ngspice s':>9} {'xbar s':>7}")
    print(f"ngspice cross-check: {len(CASES)} cases, tolerance {REL_TOL:g} per column "
          f"(floor {FLOOR_FRACTION:g} x max |i|)")
    print(header)
    failures = []
    for name, sets, read, *card_name in CASES:
        card = os.path.join(root, "cards", card_name[0] if card_name else "ideal.yaml")
        with tempfile.TemporaryDirectory(prefix="xbar_ngspice_") as workdir:
            try:
                row = check_case(xbar, card, ngspice, name, sets, read, workdir)
            except Failure as failure:
                print(f"FAIL {name}: {failure}", file=sys.stderr)
                if failure.status == 2:
                    return 2
                failures.append(name)
                continue
        print(f"{name:<40} {row['size']:>6} {row['wires']:>22} {row['g']:>16} {row['access']:>11} "
              f"{row['max_err']:11.2e} {row['err_xbar_mna']:9.1e} {row['err_spice_mna']:9.1e} "
              f"{row['ngspice_s']:9.3f} {row['xbar_s']:7.3f}{'' if row['ok'] else '  FAIL'}")
        if not row["ok"]:
            print(row["detail"], file=sys.stderr)
            failures.append(name)
    sys.stdout.flush()
    if failures:
        print(f"FAIL: {len(failures)} of {len(CASES)} cases failed (see above): "
              + ", ".join(failures), file=sys.stderr)
        return 1
    print(f"OK: all {len(CASES)} cases agree with ngspice to <= {REL_TOL:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
