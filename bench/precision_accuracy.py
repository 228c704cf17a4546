#!/usr/bin/python3
"""Top-1 accuracy of every model of a repository at each precision, served, on the Fashion-MNIST test images.

    /usr/bin/python3 bench/precision_accuracy.py [--repository models/repository] [--precisions FP32,BF16,INT8]
        [--count 10000] [--json FILE] [--cnnserve build/bin/cnnserve] [--max-drop-points P]
        [--calibration-images 512] [--calibration-method minmax|percentile] [-- ARGS FOR ensemble_accuracy.py]

For each precision, makes a copy of the repository in a temporary folder (config files copied, model files
linked) whose every "onnx" model's config.pbtxt says `precision: P`; an ensemble of the copy therefore runs its
members at P. For INT8 the copy's version folders are real folders (files linked) and every onnx model is
calibrated into them with `cnnbench calibrate --model-repository` on the first --calibration-images Fashion-MNIST
*training* images (never the test images it is then measured on). Then runs bench/ensemble_accuracy.py on the copy (a real cnnserve, the images as PNG through the
Classify RPC) and prints one markdown table: each model's accuracy per precision and the change from the first
precision in points. Exit codes: 0 every model measured at every precision (and, with --max-drop-points, none
lost more than P points against the first precision), 1 a model or server failed or lost more, 2 bad arguments.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, os.pardir))
PRECISIONS = ("FP32", "BF16", "INT8")


def is_onnx_model(config_text):
    for line in config_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("platform:"):
            return line.split(":", 1)[1].strip().strip('"') in ("", "onnx")
    return True  # the default platform


def copy_repository(source, target, precision):
    """Copies `source` to `target` with every onnx model set to `precision`; model files are symlinks."""
    for model in sorted(os.listdir(source)):
        src_dir = os.path.join(source, model)
        config = os.path.join(src_dir, "config.pbtxt")
        if not os.path.isfile(config):
            continue
        dst_dir = os.path.join(target, model)
        os.makedirs(dst_dir)
        for name in os.listdir(src_dir):
            path = os.path.join(src_dir, name)
            if os.path.isdir(path) and precision == "INT8":
                # calibration.txt is written into the version folder: link its files, not the folder
                os.makedirs(os.path.join(dst_dir, name))
                for item in os.listdir(path):
                    os.symlink(os.path.abspath(os.path.join(path, item)), os.path.join(dst_dir, name, item))
            elif os.path.isdir(path):
                os.symlink(os.path.abspath(path), os.path.join(dst_dir, name))
            elif name != "config.pbtxt":
                shutil.copyfile(path, os.path.join(dst_dir, name))
        with open(config) as f:
            text = f.read()
        if is_onnx_model(text) and "precision:" not in text:
            text = text.rstrip("\n") + "\nprecision: %s\n" % precision
        with open(os.path.join(dst_dir, "config.pbtxt"), "w") as f:
            f.write(text)


def calibrate_repository(repo, tmp, args):
    """cnnbench calibrate --model-repository for every onnx model of `repo`, on training images."""
    images = os.path.join(tmp, "train-images")
    subprocess.run([sys.executable, os.path.join(ROOT, "models", "zoo", "train_fashion_mnist.py"),
                    "--write-train-images", images, "--count", str(args.calibration_images)],
                   check=True, stdout=sys.stderr)
    for model in sorted(os.listdir(repo)):
        with open(os.path.join(repo, model, "config.pbtxt")) as f:
            if not is_onnx_model(f.read()):
                continue
        cmd = [args.cnnbench, "calibrate", "--model-repository", repo, "--model", model, "--images", images,
               "--count", str(args.calibration_images), "--method", args.calibration_method]
        subprocess.run(cmd, check=True, stdout=sys.stderr)


def measure(precision, args, extra):
    with tempfile.TemporaryDirectory(prefix="cnnserve-precision-") as tmp:
        repo = os.path.join(tmp, "repository")
        os.makedirs(repo)
        copy_repository(args.repository, repo, precision)
        if precision == "INT8":
            calibrate_repository(repo, tmp, args)
        out = os.path.join(tmp, "accuracy.json")
        cmd = [sys.executable, os.path.join(HERE, "ensemble_accuracy.py"), "--repository", repo,
               "--count", str(args.count), "--json", out, "--per-image", "--cnnserve", args.cnnserve] + extra
        print("%s: %s" % (precision, " ".join(cmd)), file=sys.stderr, flush=True)
        rc = subprocess.run(cmd, stdout=sys.stderr).returncode
        if not os.path.exists(out):
            return rc or 1, []
        with open(out) as f:
            return rc, json.load(f)["models"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repository", default=os.path.join(ROOT, "models", "repository"))
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated, of FP32, BF16, INT8 (default all three)")
    p.add_argument("--count", type=int, default=10000, help="first N test images (default all 10,000)")
    p.add_argument("--cnnserve", default=os.path.join(ROOT, "build", "bin", "cnnserve"))
    p.add_argument("--cnnbench", default=os.path.join(ROOT, "build", "bin", "cnnbench"))
    p.add_argument("--calibration-images", type=int, default=512,
                   help="INT8: training images to calibrate on (default 512)")
    p.add_argument("--calibration-method", choices=("minmax", "percentile"), default="minmax")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--max-drop-points", type=float, default=None,
                   help="fail when a model's accuracy falls more than this many points below the first precision")
    args, extra = p.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    precisions = [x.strip().upper() for x in args.precisions.split(",") if x.strip()]
    if not precisions or any(x not in PRECISIONS for x in precisions):
        p.error("--precisions takes %s" % ", ".join(PRECISIONS))
    if args.count < 1 or args.calibration_images < 1:
        p.error("--count and --calibration-images must be positive")

    rc = 0
    by_precision = {}
    for precision in precisions:
        code, models = measure(precision, args, extra)
        rc = rc or code
        by_precision[precision] = {m["model"]: m for m in models}

    names = sorted({name for models in by_precision.values() for name in models})
    first = precisions[0]
    header = "| model | " + " | ".join(precisions) + " | " + " | ".join(
        "%s - %s (points) | same top-1 as %s" % (x, first, first) for x in precisions[1:]) + " |"
    print(header)
    print("|" + "---|" * (1 + 3 * len(precisions) - 2))
    rows = []
    for name in names:
        cells, accuracy = [], {}
        for precision in precisions:
            m = by_precision[precision].get(name)
            if m is None or m.get("error"):
                cells.append("error: %s" % (m or {}).get("error", "not measured"))
                rc = rc or 1
            else:
                accuracy[precision] = 100.0 * m["accuracy"]
                cells.append("%.2f%% (%d/%d)" % (accuracy[precision], m["correct"], m["images"]))
        deltas, agreement = [], {}
        for x in precisions[1:]:
            if x not in accuracy or first not in accuracy:
                deltas.append(" | ")
                continue
            a, b = by_precision[first][name].get("top1", []), by_precision[x][name].get("top1", [])
            agreement[x] = sum(1 for i, j in zip(a, b) if i == j)
            deltas.append("%+.2f | %d / %d" % (accuracy[x] - accuracy[first], agreement[x], len(a)))
            if args.max_drop_points is not None and accuracy[first] - accuracy[x] > args.max_drop_points:
                print("%s at %s: %.2f points below %s, more than --max-drop-points %g"
                      % (name, x, accuracy[first] - accuracy[x], first, args.max_drop_points), file=sys.stderr)
                rc = 1
        print("| %s | %s | %s |" % (name, " | ".join(cells), " | ".join(deltas)))
        rows.append({"model": name, "accuracy_percent": accuracy, "same_top1_as_first": agreement})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"images": args.count, "precisions": precisions, "models": rows}, f, indent=2)
            f.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
