#!/usr/bin/python3
"""Side-by-side training comparison of issue 5: extended STE against noise-aware training.

Trains the same model on the same data with the same seed by `ideal`, `nat` and `ste` on each
card, scores every run on fresh simulated hardware of that card (several programmings, read
times from 1 s to a month, with and without per-column calibration), and measures the training
cost of `nat`, `nat-full` and `ste` (wall time per epoch, peak resident memory) in the same run.
Prints the tables and writes them as JSON next to the runs.

    bench/train_compare.py [--xbar build/tools/xbar] [--model lenet] [--epochs 3]
        [--train-limit 10000] [--test-limit 2000] [--repeats 5] [--out bench-out/train]

This is a benchmark, not a test: a full comparison takes tens of minutes to hours (the STE forward
runs the full tile simulation of every mini-batch). Absolute times depend on the machine; compare
the ratios measured in one run.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np

TIMES = [1.0, 3600.0, 86400.0, 2592000.0]
TIME_NAMES = {1.0: "1 s", 3600.0: "1 h", 86400.0: "1 day", 2592000.0: "1 month"}


def run(cmd, log):
    """Runs a command, echoing it; its stdout is returned and both streams go to the log."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + proc.stdout + proc.stderr + "\n")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    print(f"  done in {time.monotonic() - start:.0f} s", flush=True)
    return proc.stdout


def train(cmd, path, log, reuse):
    """Runs a training command unless --reuse and its checkpoint already exists."""
    if reuse and os.path.exists(path):
        print(f"reusing {path}", flush=True)
        return
    run(cmd, log)


def run_metrics(path):
    """Per-epoch wall time (s) and the peak resident memory (bytes) stored in a training run."""
    with h5py.File(path, "r") as f:
        metrics = f["metrics"]
        wall = np.asarray(metrics["train_time_s"][()], dtype=float)
        peak = np.asarray(metrics["peak_resident_memory_bytes"][()], dtype=float)
        loss = np.asarray(metrics["train_loss"][()], dtype=float)
    return {"epoch_s": float(np.median(wall)), "peak_rss_bytes": float(peak.max()), "final_loss": float(loss[-1])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xbar", default="build/tools/xbar")
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--cards", default="cards/train-harsh.yaml,cards/train-mild.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calibrate-columns", type=int, default=256)
    parser.add_argument("--cost-train-limit", type=int, default=1280,
                        help="images of the one-epoch runs that measure time and memory of nat, nat-full, ste")
    parser.add_argument("--ste-backwards", default="clean,programmed",
                        help="extra STE backward variants trained on the harsh card (the default backward always is)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench-out/train")
    parser.add_argument("--reuse", action="store_true",
                        help="keep training runs already in --out (e.g. to re-score them after an evaluation change)")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "log.txt")
    xbar = [args.xbar, "--threads", str(args.threads)]
    common = ["--model", args.model, "--data", "fashion-mnist", "--batch", str(args.batch), "--lr", str(args.lr),
              "--seed", str(args.seed)]
    cards = args.cards.split(",")
    results = {"settings": vars(args), "accuracy": {}, "cost": {}}

    # 1. Training cost side by side: one epoch of the same images for each method.
    harsh = cards[0]
    for method in ["nat", "nat-full", "ste"]:
        path = os.path.join(args.out, f"cost-{method}.h5")
        train(xbar + ["train", "--card", harsh, "--method", method, "--epochs", "1",
                      "--train-limit", str(args.cost_train_limit), "-o", path] + common, path, log, args.reuse)
        results["cost"][method] = run_metrics(path)

    # 2. Accuracy on each card: ideal once, nat and ste per card.
    runs = {"ideal": os.path.join(args.out, "ideal.h5")}
    train(xbar + ["train", "--card", harsh, "--method", "ideal", "--epochs", str(args.epochs),
                  "--train-limit", str(args.train_limit), "-o", runs["ideal"]] + common, runs["ideal"], log, args.reuse)
    for card in cards:
        name = os.path.splitext(os.path.basename(card))[0]
        card_runs = dict(runs)
        # On the first (harsh) card every STE backward, to pick the best; elsewhere the default.
        variants = [("nat", "nat", None), ("ste", "ste", None)]
        if card == harsh:
            variants += [(f"ste ({b})", "ste", b) for b in args.ste_backwards.split(",") if b]
        for label, method, backward in variants:
            path = os.path.join(args.out, f"{name}-{label.replace(' ', '-').replace('(', '').replace(')', '')}.h5")
            cmd = xbar + ["train", "--card", card, "--method", method, "--epochs", str(args.epochs),
                          "--train-limit", str(args.train_limit), "-o", path] + common
            if backward:
                cmd += ["--ste-backward", backward]
            train(cmd, path, log, args.reuse)
            card_runs[label] = path
        results["accuracy"][name] = {}
        for method, path in card_runs.items():
            for calibrated in (False, True):
                cmd = xbar + ["eval", "--card", card, "--checkpoint", path, "--times",
                              ",".join(f"{t:g}" for t in TIMES), "--repeats", str(args.repeats), "--test-limit",
                              str(args.test_limit), "--json"]
                if calibrated:
                    cmd += ["--calibrate-columns", str(args.calibrate_columns)]
                scores = json.loads(run(cmd, log))
                key = method + (" + column cal." if calibrated else "")
                results["accuracy"][name][key] = scores

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    # Tables.
    print(f"\nTest accuracy (%) on simulated hardware, mean ± std over {args.repeats} programmings "
          f"({args.model}, {args.epochs} epochs on {args.train_limit} images, {args.test_limit} test images)")
    for name, by_method in results["accuracy"].items():
        print(f"\n{name}")
        print("| method | " + " | ".join(TIME_NAMES[t] for t in TIMES) + " |")
        print("| --- |" + " --- |" * len(TIMES))
        for method, scores in by_method.items():
            cells = []
            for t in TIMES:
                s = next(s for s in scores if abs(s["time_s"] - t) < 1e-9)
                cells.append(f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}")
            print(f"| {method} | " + " | ".join(cells) + " |")
        day = {m: next(s["mean"] for s in scores if abs(s["time_s"] - 86400.0) < 1e-9) for m, scores in by_method.items()}
        print(f"STE − NAT at 1 day: {100 * (day['ste'] - day['nat']):+.1f} points; with column calibration: "
              f"{100 * (day['ste + column cal.'] - day['nat + column cal.']):+.1f} points")

    cost = results["cost"]
    print(f"\nTraining cost, one epoch of {args.cost_train_limit} images on {harsh} (same run)")
    print("| method | time per epoch (s) | peak memory (MB) | nat-full / method time | memory saved vs nat-full |")
    print("| --- | --- | --- | --- | --- |")
    for method in ["nat", "nat-full", "ste"]:
        c = cost[method]
        ratio = cost["nat-full"]["epoch_s"] / c["epoch_s"]
        saved = 1 - c["peak_rss_bytes"] / cost["nat-full"]["peak_rss_bytes"]
        print(f"| {method} | {c['epoch_s']:.1f} | {c['peak_rss_bytes'] / 2**20:.0f} | {ratio:.2f}x | {100 * saved:.0f} % |")


if __name__ == "__main__":
    main()
