"""What the training comparisons bench/train_compare.py, bench/seed_sweep.py and
bench/charlm_compare.py share: running xbar with a log (and training and scoring only what
--reuse does not keep), the method labels and their options, reading a run's metrics, picking a
read time's scores from `xbar eval --json`, and printing Markdown tables (among them the training-cost table of nat,
nat-full and ste).

Imported by those scripts from their own folder; not a program of its own.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

COST_METHODS = ["nat", "nat-full", "ste"]
STE_CAL = "ste cal-trained"  # ste with --train-calibrate-columns --train-read-time T
STE_AGED = "ste aged"  # ste with --train-read-time T: trained on the hardware as read when scored
STE_CAL_HALF = "ste cal-half"  # STE_CAL calibrated in half of the training steps, raw in the others
STE_CAL_NOMINAL = "ste cal-nominal"  # STE_CAL calibrated onto the nominal hardware instead of the ideal layer
TIME_NAMES = {1.0: "1 s", 3600.0: "1 h", 86400.0: "1 day", 2592000.0: "1 month"}


def slug(label):
    """A file-name part for a method label: "ste (clean)" -> "ste-clean"."""
    return label.replace(" ", "-").replace("(", "").replace(")", "")


def method_variants(ste_cal_read_time_s):
    """The method labels of the comparisons and what each trains with: label -> (`xbar train
    --method`, extra options). STE_CAL is STE with column calibration in training, on hardware read
    at ste_cal_read_time_s (s) after programming; STE_AGED plain STE on hardware read then;
    STE_CAL_HALF STE_CAL with only half of the steps calibrated; STE_CAL_NOMINAL STE_CAL onto the
    nominal hardware."""
    read_time = ["--train-read-time", f"{ste_cal_read_time_s:g}"]
    return {"nat": ("nat", []), "nat-full": ("nat-full", []), "ste": ("ste", []),
            STE_CAL: ("ste", ["--train-calibrate-columns"] + read_time), STE_AGED: ("ste", read_time),
            STE_CAL_HALF: ste_calibrated_fraction("0.5", ste_cal_read_time_s),
            STE_CAL_NOMINAL: ("ste", ["--train-calibrate-columns", "--train-calibrate-onto", "nominal"] + read_time)}


def ste_calibrated_fraction(fraction, ste_cal_read_time_s):
    """STE_CAL with a drawn fraction of the training steps calibrated (`fraction`, the text of
    `--train-calibrate-fraction`): (`xbar train --method`, extra options)."""
    return ("ste", ["--train-calibrate-columns", "--train-calibrate-fraction", fraction, "--train-read-time",
                    f"{ste_cal_read_time_s:g}"])


def method_variant(label, ste_cal_read_time_s):
    """What the method `label` trains with, as in method_variants, which also accepts "ste cal-F":
    STE_CAL calibrated in a drawn fraction F of the training steps (`--train-calibrate-fraction
    F`, e.g. "ste cal-0.8"). None for an unknown label."""
    variants = method_variants(ste_cal_read_time_s)
    if label in variants:
        return variants[label]
    fraction = re.fullmatch(r"ste cal-(0\.[0-9]+)", label)
    return None if fraction is None else ste_calibrated_fraction(fraction.group(1), ste_cal_read_time_s)


def method_variants_of(labels, ste_cal_read_time_s):
    """label -> method_variant(label) for each of `labels`; exits with a message naming --methods
    and the known labels if one is unknown."""
    variants = {label: method_variant(label, ste_cal_read_time_s) for label in labels}
    unknown = [label for label, variant in variants.items() if variant is None]
    if unknown:
        raise SystemExit(f"--methods: unknown method '{unknown[0]}' (expected one of "
                         f"{', '.join(method_variants(ste_cal_read_time_s))}, or 'ste cal-F' with F in (0, 1))")
    return variants


def accuracy_cell(score):
    """An accuracy score of `xbar eval --json` as "mean ± std" in percent."""
    return f"{100 * score['mean']:.1f} ± {100 * score['std']:.1f}"


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


def evaluate(cmd, path, tag, log, reuse, folder=None):
    """The scores of `xbar eval --json` (cmd) of the run `path`. They are kept as
    <run>.eval-<tag>.json, beside the run or in `folder`, with the command that made them; with
    reuse, a file made by the same command after both the run and the program (cmd[0]) were last
    written is read instead of evaluating again: a run continued since, or a rebuilt xbar, is
    scored again."""
    name = os.path.splitext(path)[0]
    if folder:
        name = os.path.join(folder, os.path.basename(name))
    saved = f"{name}.eval-{tag}.json"
    newest_input = max(os.path.getmtime(path), os.path.getmtime(shutil.which(cmd[0]) or cmd[0]))
    if reuse and os.path.exists(saved) and os.path.getmtime(saved) >= newest_input:
        with open(saved) as f:
            kept = json.load(f)
        if kept["command"] == cmd:
            print(f"reusing {saved}", flush=True)
            return kept["scores"]
    scores = json.loads(run(cmd, log))
    with open(saved + ".tmp", "w") as f:
        json.dump({"command": cmd, "scores": scores}, f, indent=1)
    os.replace(saved + ".tmp", saved)
    return scores


def score_image_run(xbar, args, card, path, times, log):
    """The scores of `xbar eval --json` of the image run `path` on `card` at `times`, raw and with
    --calibrate-columns (the scoring options of add_image_recipe_arguments): {"raw": scores, "cal":
    scores}. evaluate() keeps them beside the run as <run>.eval-<card>-<times>s-raw|cal.json; the
    card is in the name because one run (the ideal one) may be scored on several cards."""
    card_name = os.path.splitext(os.path.basename(card))[0]
    when = times_argument(times).replace(",", "_")
    scored = {}
    for kind, extra in (("raw", []), ("cal", ["--calibrate-columns", str(args.calibrate_columns)])):
        cmd = xbar + ["eval", "--card", card, "--checkpoint", path, "--times", times_argument(times), "--repeats",
                      str(args.repeats), "--test-limit", str(args.test_limit), "--json"] + extra
        scored[kind] = evaluate(cmd, path, f"{card_name}-{when}s-{kind}", log, args.reuse)
    return scored


def add_image_recipe_arguments(parser):
    """The options of the image-classification comparisons (bench/train_compare.py,
    bench/seed_sweep.py): the xbar binary, model, cards, training recipe, scoring and threads."""
    parser.add_argument("--xbar", default="build/tools/xbar")
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--cards", default="cards/train-harsh.yaml,cards/train-mild.yaml")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--test-limit", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calibrate-columns", type=int, default=256)
    parser.add_argument("--ste-cal-read-time", type=float, default=86400.0,
                        help="read time (s) of the training hardware of the column-calibrated STE runs")
    parser.add_argument("--threads", type=int, default=2)


def add_fine_tuning_arguments(parser):
    """The options of pretrain() and the step-size decay (recipe_text reads them)."""
    parser.add_argument("--lr-decay", type=float, default=1.0,
                        help="step-size factor per epoch (xbar train --lr-decay)")
    parser.add_argument("--pretrain-epochs", type=int, default=0,
                        help="if > 0, every method starts (xbar train --init) from one `nat` run of this many epochs "
                             "on --pretrain-limit images per card and seed (`ideal` from an `ideal` one), and trains "
                             "--epochs more: hardware-aware fine-tuning of a network trained cheaply first")
    parser.add_argument("--pretrain-limit", type=int, default=0, help="images of the pre-training (0: all 60000)")


def pretrain(xbar, args, card, seed, out, log, method="nat"):
    """The `xbar train` options that start a method of the image recipe (add_image_recipe_arguments,
    add_fine_tuning_arguments) on `card` with `seed`: ["--init", RUN] of the card's and seed's
    pre-training run by `method` (trained here unless --reuse keeps it, named
    pre-s<seed>-<card>-<method>.h5 in `out`), or none without --pretrain-epochs."""
    if args.pretrain_epochs <= 0:
        return []
    name = os.path.splitext(os.path.basename(card))[0]
    path = os.path.join(out, f"pre-s{seed}-{name}-{method}.h5")
    train(xbar + ["train", "--card", card, "--model", args.model, "--data", "fashion-mnist", "--method", method,
                  "--epochs", str(args.pretrain_epochs), "--batch", str(args.batch), "--lr", str(args.lr),
                  "--train-limit", str(args.pretrain_limit), "--test-limit", str(args.test_limit),
                  "--seed", str(seed), "-o", path], path, log, args.reuse)
    return ["--init", path]


def recipe_text(args):
    """The training recipe of add_image_recipe_arguments and add_fine_tuning_arguments in words, for
    the tables' captions."""
    text = f"{args.model}, {args.epochs} epochs on {args.train_limit} images"
    if args.lr_decay != 1:
        text += f", step size {args.lr} x {args.lr_decay}^(epoch-1)"
    if args.pretrain_epochs > 0:
        images = args.pretrain_limit or 60000
        text = f"{text}, started from nat trained {args.pretrain_epochs} epochs on {images} images"
    return text


def train(cmd, path, log, reuse):
    """Runs a training command unless reuse is set and its checkpoint already exists."""
    if reuse and os.path.exists(path):
        print(f"reusing {path}", flush=True)
        return
    run(cmd, log)


def read_metrics(path, names):
    """The datasets /metrics/<name> of a training run, as float arrays keyed by name."""
    with h5py.File(path, "r") as f:
        metrics = f["metrics"]
        return {name: np.asarray(metrics[name][()], dtype=float) for name in names}


def run_summary(path, time_metric, time_key, last_metric, last_key):
    """What the comparisons keep of a training run: the median of /metrics/<time_metric> as
    time_key, the peak resident memory (bytes) as "peak_rss_bytes", and the last entry of
    /metrics/<last_metric> as last_key."""
    m = read_metrics(path, [time_metric, "peak_resident_memory_bytes", last_metric])
    return {time_key: float(np.median(m[time_metric])), "peak_rss_bytes": float(m["peak_resident_memory_bytes"].max()),
            last_key: float(m[last_metric][-1])}


def times_argument(times):
    """Read times (s) as the value of `xbar eval --times`."""
    return ",".join(f"{t:g}" for t in times)


def score_at(scores, time_s):
    """The row of `xbar eval --json` output for read time `time_s` (s)."""
    return next(s for s in scores if abs(s["time_s"] - time_s) < 1e-9)


def print_table(header, rows):
    """A Markdown table: the header cells, a separator, then each row's cells."""
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_cost_table(cost, time_key, time_header, time_format):
    """The training cost of nat, nat-full and ste side by side: time (cost[method][time_key], in
    time_format) and peak memory, and both relative to nat-full; rows in the order of `cost`."""
    full = cost["nat-full"]
    rows = []
    for method in cost:
        c = cost[method]
        ratio = full[time_key] / c[time_key]
        saved = 1 - c["peak_rss_bytes"] / full["peak_rss_bytes"]
        rows.append([method, format(c[time_key], time_format), f"{c['peak_rss_bytes'] / 2**20:.0f}", f"{ratio:.2f}x",
                     f"{100 * saved:.0f} %"])
    print_table(["method", time_header, "peak memory (MB)", "nat-full / method time", "memory saved vs nat-full"],
                rows)
