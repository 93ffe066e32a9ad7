#!/usr/bin/python3
"""Side-by-side training comparison of issue 5: extended STE against noise-aware training.

Trains the same model on the same data with the same seed by `ideal`, `nat`, `ste` and `ste` with
column calibration in training (`--train-calibrate-columns`, the network meant to be scored with
`xbar eval --calibrate-columns`, trained on hardware read at `--ste-cal-read-time`, by default the
1 day of the claim) on each card, scores every run on fresh simulated hardware of that card
(several programmings, read times from 1 s to a month, with and without per-column calibration),
and measures the training cost of `nat`, `nat-full` and both `ste` runs (wall time per epoch,
peak resident memory) in the same run. Prints the tables and writes them as JSON next to the runs.

    bench/train_compare.py [--xbar build/tools/xbar] [--model lenet] [--epochs 10]
        [--train-limit 10000] [--test-limit 1000] [--repeats 5] [--ste-cal-read-time 86400]
        [--methods "ste cal-0.9"] [--pretrain-epochs N [--pretrain-limit M]] [--lr-decay F]
        [--out bench-out/train]

With --reuse, runs already in --out are kept, and so are their scores
(<run>.eval-<card>-<times>s-raw|cal.json) unless the run or xbar is newer.

With --pretrain-epochs every method starts from a network trained first (`nat`, and `ideal` for
the ideal row) and trains --epochs more, as in bench/seed_sweep.py; keep such runs in their own
--out.

The defaults are the measurement in the README (about two hours on two idle cores); after 3
epochs plain STE is still behind NAT (it learns more slowly through the full simulation).

This is a benchmark, not a test: a full comparison takes tens of minutes to hours (the STE forward
runs the full tile simulation of every mini-batch). Absolute times depend on the machine; compare
the ratios measured in one run.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import (COST_METHODS, STE_CAL, TIME_NAMES, accuracy_cell,  # noqa: E402
                           add_fine_tuning_arguments, add_image_recipe_arguments, method_variants_of,
                           pretrain, print_cost_table, print_table, recipe_text, run_summary, score_at,
                           score_image_run, slug, train)

TIMES = [1.0, 3600.0, 86400.0, 2592000.0]


def run_metrics(path):
    """Wall time per epoch (s, median over the epochs), peak resident memory (bytes) and the last
    training loss of a run."""
    return run_summary(path, "train_time_s", "epoch_s", "train_loss", "final_loss")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_recipe_arguments(parser)
    add_fine_tuning_arguments(parser)
    parser.add_argument("--cost-train-limit", type=int, default=1280,
                        help="images of the one-epoch runs that measure time and memory of nat, nat-full, ste")
    parser.add_argument("--cost-only", action="store_true",
                        help="only the training-cost runs and their table (a couple of minutes)")
    parser.add_argument("--ste-backwards", default="clean,programmed",
                        help="extra STE backward variants trained on the harsh card (the default backward always is)")
    parser.add_argument("--methods", default="",
                        help="more method labels trained and scored on every card, e.g. 'ste cal-0.9'")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="bench-out/train")
    parser.add_argument("--reuse", action="store_true",
                        help="keep training runs already in --out, and their scores unless the run or xbar changed since")
    args = parser.parse_args()
    extra_labels = [label for label in args.methods.split(",") if label]

    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "log.txt")
    xbar = [args.xbar, "--threads", str(args.threads)]
    common = ["--model", args.model, "--data", "fashion-mnist", "--batch", str(args.batch), "--lr", str(args.lr),
              "--seed", str(args.seed)]
    cards = args.cards.split(",")
    results = {"settings": vars(args), "accuracy": {}, "cost": {}}

    # 1. Training cost side by side: one epoch of the same images for each method.
    harsh = cards[0]
    variants = method_variants_of(COST_METHODS + [STE_CAL] + extra_labels, args.ste_cal_read_time)
    for label in COST_METHODS + [STE_CAL]:
        method, extra = variants[label]
        path = os.path.join(args.out, f"cost-{slug(label)}.h5")
        train(xbar + ["train", "--card", harsh, "--method", method, "--epochs", "1",
                      "--train-limit", str(args.cost_train_limit), "-o", path] + common + extra, path, log, args.reuse)
        results["cost"][label] = run_metrics(path)

    cost = results["cost"]
    if args.cost_only:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        print_cost(cost, args.cost_train_limit, harsh)
        return

    # 2. Accuracy on each card: ideal once, nat and ste per card.
    common += ["--lr-decay", str(args.lr_decay)]
    runs = {"ideal": os.path.join(args.out, "ideal.h5")}
    start = pretrain(xbar, args, harsh, args.seed, args.out, log, method="ideal")
    train(xbar + ["train", "--card", harsh, "--method", "ideal", "--epochs", str(args.epochs),
                  "--train-limit", str(args.train_limit), "-o", runs["ideal"]] + common + start, runs["ideal"], log,
          args.reuse)
    for card in cards:
        name = os.path.splitext(os.path.basename(card))[0]
        card_runs = dict(runs)
        start = pretrain(xbar, args, card, args.seed, args.out, log)
        # On the first (harsh) card every STE backward, to pick the best; elsewhere the default.
        card_variants = [(label, *variants[label]) for label in ["nat", "ste", STE_CAL] + extra_labels]
        if card == harsh:
            card_variants += [(f"ste ({b})", "ste", ["--ste-backward", b]) for b in args.ste_backwards.split(",") if b]
        for label, method, extra in card_variants:
            path = os.path.join(args.out, f"{name}-{slug(label)}.h5")
            cmd = xbar + ["train", "--card", card, "--method", method, "--epochs", str(args.epochs),
                          "--train-limit", str(args.train_limit), "-o", path] + common + start + extra
            train(cmd, path, log, args.reuse)
            card_runs[label] = path
        results["accuracy"][name] = {}
        for method, path in card_runs.items():
            scored = score_image_run(xbar, args, card, path, TIMES, log)
            results["accuracy"][name][method] = scored["raw"]
            results["accuracy"][name][method + " + column cal."] = scored["cal"]

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    # Tables.
    print(f"\nTest accuracy (%) on simulated hardware, mean ± std over {args.repeats} programmings "
          f"({recipe_text(args)}{', ideal from ideal' if args.pretrain_epochs > 0 else ''}, "
          f"{args.test_limit} test images)")
    for name, by_method in results["accuracy"].items():
        print(f"\n{name}")
        rows = [[method] + [accuracy_cell(score_at(scores, t)) for t in TIMES] for method, scores in by_method.items()]
        print_table(["method"] + [TIME_NAMES[t] for t in TIMES], rows)
        day = {m: score_at(scores, 86400.0)["mean"] for m, scores in by_method.items()}
        print(f"STE − NAT at 1 day: {100 * (day['ste'] - day['nat']):+.1f} points; with column calibration: "
              f"{100 * (day['ste + column cal.'] - day['nat + column cal.']):+.1f} points; STE trained through "
              f"calibrated hardware, scored with column calibration: "
              f"{100 * (day[STE_CAL + ' + column cal.'] - day['nat + column cal.']):+.1f} points")

    print_cost(cost, args.cost_train_limit, harsh)


def print_cost(cost, images, card):
    """The table of the training cost measurements (one epoch of `images` images on `card`)."""
    print(f"\nTraining cost, one epoch of {images} images on {card} (same run)")
    print_cost_table(cost, "epoch_s", "time per epoch (s)", ".1f")


if __name__ == "__main__":
    main()
