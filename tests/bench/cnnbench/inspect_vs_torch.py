#!/usr/bin/python3
"""Checks `cnnbench inspect`'s parameter total against PyTorch's own count for
zoo architectures exported by torch.onnx.export the ways a new user would
(several opsets, with and without a dynamic batch axis, with and without
constant folding), straight from torch: no cnnserve post-processing, so the
Identity nodes torch writes for de-duplicated initializers (VGG's zero
biases) stay in the file.

    inspect_vs_torch.py CNNBENCH MODEL:OPSET:DYNAMIC:FOLD ...

e.g. vgg11:13:1:1 (the PyTorch 1.13 default export with a dynamic batch).
Exit 0 when every total matches; 1 otherwise, with the numbers.
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import warnings

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "models", "zoo"))

try:
    import torch
except ImportError:
    print("inspect_vs_torch: torch is missing: install python3-torch (the zoo needs it too)")
    sys.exit(1)
import architectures as arch  # noqa: E402


def export(model, shape, path, opset, dynamic, fold):
    c, h, w = shape
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, c, h, w), buf, opset_version=opset,
                          do_constant_folding=fold, input_names=["input"],
                          output_names=["output"], dynamic_axes=axes)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return buf.getvalue().count(b"Identity")


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    cnnbench = argv[1]
    torch.set_num_threads(1)
    failed = 0
    models = {}
    with tempfile.TemporaryDirectory(prefix="inspect_vs_torch.") as tmp:
        for spec in argv[2:]:
            name, opset, dynamic, fold = spec.split(":")
            if name not in models:
                torch.manual_seed(0)
                models[name] = arch.build(name).eval()
            model = models[name]
            expected = arch.count_params(model)
            path = os.path.join(tmp, "%s.onnx" % name)
            identities = export(model, arch.info(name).input_shape, path, int(opset),
                                dynamic == "1", fold == "1")
            out = subprocess.run([cnnbench, "inspect", path, "--json"], capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                print("%s: cnnbench inspect failed: %s" % (spec, out.stderr.strip()))
                failed += 1
                continue
            stats = json.loads(out.stdout)
            got = stats["total_params"]
            ops = sorted({layer["op"] for layer in stats["layers"]})
            ok = got == expected and "Identity" not in ops
            print("%-16s torch %12s  inspect %12s  layers %3d  Identity nodes in file: %s  %s"
                  % (spec, format(expected, ","), format(got, ","), len(stats["layers"]),
                     "yes" if identities else "no", "ok" if ok else "MISMATCH"))
            failed += 0 if ok else 1
            os.remove(path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
