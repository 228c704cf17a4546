#!/usr/bin/python3
"""PyTorch (1.13, eager CPU) peer runner for the cnnserve benchmarks.

Builds the architecture named by the ONNX file (or --model) with
models/zoo/architectures.py's build(name), then measures it exactly like
ort_run.js and `cnnbench run`, printing the same JSON lines (--json) or a
readable table.  Weights do not matter for speed; --verify loads the ONNX
file's initializers (or --weights STATE_DICT.pt) so outputs can be compared.

Needs the interpreter that has torch/numpy (/usr/bin/python3 here).
See README.md for the measurement method.
"""

import argparse
import json
import math
import mmap
import os
import re
import resource
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZOO = os.path.join(REPO, "models", "zoo")

# ------------------------------------------------------------------ CLI


def batch_list(s):
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        v = int(part)
        if v < 1:
            raise argparse.ArgumentTypeError("bad batch size %r" % part)
        out.append(v)
    if not out:
        raise argparse.ArgumentTypeError("empty --batch list")
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="torch_run.py",
        description="PyTorch peer runner: same CLI and JSON lines as ort_run.js.",
        epilog="Benchmark: build (timed as load_ms), warm up until both --warmup-runs runs and "
        "--warmup-seconds have passed, then run batches back to back for --seconds (and at "
        "least --repeats runs). Verify: exit 0 iff max|out-Y| <= rtol*max|Y| + atol and the "
        "top-5 per row match.")
    p.add_argument("model_path", nargs="?", help="MODEL.onnx (its basename names the architecture) or a name")
    p.add_argument("--batch", type=batch_list, default=[1], help="comma list, e.g. 1,8,32")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (inter-op is 1)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=5, help="time slices for images_per_s (>= 5)")
    p.add_argument("--warmup-runs", type=int, default=3)
    p.add_argument("--warmup-seconds", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--model", help="architecture name for build(); default: ONNX basename")
    p.add_argument("--input-shape", help="C,H,W; default: read from the ONNX graph input")
    p.add_argument("--weights", help="state_dict .pt to load (default for --verify: ONNX initializers)")
    p.add_argument("--verify", metavar="X.npy")
    p.add_argument("--expect", metavar="Y.npy")
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--save-output", metavar="OUT.npy")
    p.add_argument("--save-input", metavar="IN.b{batch}.npy")
    p.add_argument("--selftest", action="store_true",
                   help="use a tiny built-in conv net (3x32x32 input) instead of architectures.py")
    a = p.parse_args(argv)
    if a.repeats < 5:
        p.error("--repeats must be >= 5")
    if a.threads < 1:
        p.error("--threads must be >= 1")
    if a.model_path is None and not a.selftest and not a.model:
        p.error("MODEL.onnx, a name or --model NAME is required unless --selftest")
    return a


# ------------------------------------------------- ONNX graph input shape
# A tiny protobuf walker over an mmap of the file: reads only the graph's
# input ValueInfos and initializer names, skipping tensor payloads, so a
# 500 MB model costs a few pages rather than a full parse.


def _varint(buf, pos):
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start, end):
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
            yield num, wire, val
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            yield num, wire, (pos, pos + n)
            pos += n
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unsupported protobuf wire type %d" % wire)


def _string(buf, span):
    return bytes(buf[span[0]:span[1]]).decode("utf-8")


def onnx_inputs(path):
    """[(name, elem_type, [dim int|str|None, ...])] of graph inputs that are not initializers."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        graph = None
        for num, wire, val in _fields(buf, 0, len(buf)):
            if num == 7 and wire == 2:
                graph = val
        if graph is None:
            raise ValueError("%s: no graph in ONNX file" % path)
        inits, inputs = set(), []
        for num, wire, val in _fields(buf, *graph):
            if wire != 2:
                continue
            if num == 5:  # initializer TensorProto: name is field 8
                for n2, w2, v2 in _fields(buf, *val):
                    if n2 == 8 and w2 == 2:
                        inits.add(_string(buf, v2))
                        break
            elif num == 11:  # input ValueInfoProto
                name, elem, dims = None, None, []
                for n2, w2, v2 in _fields(buf, *val):
                    if n2 == 1 and w2 == 2:
                        name = _string(buf, v2)
                    elif n2 == 2 and w2 == 2:  # TypeProto
                        for n3, w3, v3 in _fields(buf, *v2):
                            if n3 == 1 and w3 == 2:  # tensor_type
                                for n4, w4, v4 in _fields(buf, *v3):
                                    if n4 == 1 and w4 == 0:
                                        elem = v4
                                    elif n4 == 2 and w4 == 2:  # TensorShapeProto
                                        for n5, w5, v5 in _fields(buf, *v4):
                                            if n5 == 1 and w5 == 2:  # Dimension
                                                d = None
                                                for n6, w6, v6 in _fields(buf, *v5):
                                                    if n6 == 1 and w6 == 0:
                                                        d = v6
                                                    elif n6 == 2 and w6 == 2:
                                                        d = _string(buf, v6)
                                                dims.append(d)
                inputs.append((name, elem, dims))
        return [i for i in inputs if i[0] not in inits]


# ------------------------------------------------------------ model


def build_selftest():
    import torch.nn as nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    return Tiny(), (3, 32, 32)


def import_architectures():
    if ZOO not in sys.path:
        sys.path.insert(0, ZOO)
    try:
        import architectures  # noqa: E402  (models/zoo/architectures.py)
    except ImportError as e:
        raise SystemExit("error: cannot import %s/architectures.py (%s); use --selftest to test "
                         "without it" % (ZOO, e))
    return architectures


def arch_input_shape(arch, name, module):
    """Optional hints from architectures.py, if it offers any."""
    for getter in (lambda: arch.info(name).input_shape, lambda: arch.MODELS[name].input_shape,
                   lambda: module.input_shape):
        try:
            s = tuple(int(d) for d in getter())
        except Exception:
            continue
        return s[1:] if len(s) == 4 else s
    return None


def load_onnx_weights(module, path):
    """Copy ONNX initializers into the module's state_dict by name (torch export keeps names)."""
    import onnx
    from onnx import numpy_helper
    import torch

    m = onnx.load(path)
    init = {t.name: t for t in m.graph.initializer}
    sd = module.state_dict()
    missing, bad = [], []
    new = {}
    for k, v in sd.items():
        t = init.get(k)
        if t is None:
            missing.append(k)
            continue
        a = numpy_helper.to_array(t)
        if tuple(a.shape) != tuple(v.shape):
            bad.append("%s %s vs %s" % (k, tuple(a.shape), tuple(v.shape)))
            continue
        new[k] = torch.from_numpy(a.copy()).to(v.dtype)
    if missing or bad:
        raise SystemExit("error: cannot map ONNX initializers onto the module (missing: %s; shape "
                         "mismatch: %s); pass --weights STATE_DICT.pt" % (missing[:8], bad[:8]))
    module.load_state_dict(new)


# ------------------------------------------------------- shared helpers
# Mirrors of common.js; keep them in step.


def seeded_input(shape, seed):
    """Counter-based: h = lowbias32((i + seed*0x9E3779B9) mod 2^32); x = (h >> 8) / 2^23 - 1."""
    import numpy as np

    count = int(np.prod(shape))
    base = np.uint32((seed * 0x9E3779B9) & 0xFFFFFFFF)
    with np.errstate(over="ignore"):
        x = np.arange(count, dtype=np.uint32) + base
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    v = (x >> np.uint32(8)).astype(np.float64) / 8388608.0 - 1.0
    return v.astype(np.float32).reshape(shape)


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    pos = (len(sorted_vals) - 1) * (q / 100.0)
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def median(vals):
    return percentile(sorted(vals), 50)


def slice_throughput(intervals, batch, t0, t1, repeats):
    """Median over `repeats` equal slices of [t0,t1] of images credited per second;
    each batch's images are spread uniformly over its [start, end]."""
    width = (t1 - t0) / repeats
    credit = [0.0] * repeats
    for s, e in intervals:
        length = e - s
        first = max(0, int(math.floor((s - t0) / width)))
        last = min(repeats - 1, int(math.floor((e - t0) / width)))
        for k in range(first, last + 1):
            a = max(s, t0 + k * width)
            b = min(e, t0 + (k + 1) * width)
            if b > a and length > 0:
                credit[k] += batch * (b - a) / length
    return median([c / width for c in credit])


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"^VmHWM:\s+(\d+)\s+kB", f.read(), re.M)
        if m:
            return int(m.group(1)) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def topk(row, k):
    import numpy as np
    # descending value, ties broken by lower index (stable sort of -row)
    return [int(i) for i in np.argsort(-row, kind="stable")[:k]]


def compare_outputs(got, want, rtol, atol):
    import numpy as np

    res = {"ok": True, "reasons": [], "max_diff": float("nan"), "max_ref": float("nan"),
           "bound": float("nan"), "top5_mismatch": []}
    if got.shape != want.shape:
        res["ok"] = False
        res["reasons"].append("shape mismatch: got %s expected %s" % (list(got.shape), list(want.shape)))
        return res
    g = got.astype(np.float32).ravel()
    w = want.astype(np.float32).ravel()
    d = np.abs(g - w)
    res["max_diff"] = float(np.nanmax(d)) if not np.isnan(d).any() else float("inf")
    res["max_ref"] = float(np.max(np.abs(w))) if w.size else 0.0
    res["bound"] = rtol * res["max_ref"] + atol
    if not np.isfinite(g).all():
        res["ok"] = False
        res["reasons"].append("output has NaN/Inf")
    if not res["max_diff"] <= res["bound"]:
        res["ok"] = False
        res["reasons"].append("max|diff| %.3e > bound %.3e" % (res["max_diff"], res["bound"]))
    rows = want.shape[0] if want.ndim > 0 else 1
    gr, wr = g.reshape(rows, -1), w.reshape(rows, -1)
    k = min(5, gr.shape[1])
    for r in range(rows):
        a, b = topk(gr[r], k), topk(wr[r], k)
        if a != b:
            res["top5_mismatch"].append((r, a, b))
    if res["top5_mismatch"]:
        res["ok"] = False
        res["reasons"].append("top-%d differs in %d of %d rows" % (k, len(res["top5_mismatch"]), rows))
    return res


COLS = [("batch", 5, 0), ("threads", 7, 0), ("images/s", 10, 1), ("p50 ms", 9, 2), ("p90 ms", 9, 2),
        ("p99 ms", 9, 2), ("load ms", 9, 1), ("peak MB", 8, 1), ("runs", 6, 0), ("cpu/wall", 8, 2)]


def table_header():
    return " ".join(n.rjust(w) for n, w, _ in COLS)


def table_row(vals):
    return " ".join(("%.*f" % (d, v) if isinstance(v, (int, float)) else str(v)).rjust(w)
                    for (_, w, d), v in zip(COLS, vals))


# ---------------------------------------------------------------- main


def model_name(args):
    if args.model:
        return args.model
    if args.selftest and not args.model_path:
        return "selftest"
    base = os.path.basename(args.model_path)
    return base[:-5] if base.lower().endswith(".onnx") else base


def resolve_shape(args, arch, name, module):
    """Per-sample (C,H,W) and the graph's fixed batch (None if dynamic)."""
    fixed = None
    onnx_shape = None
    if args.model_path and os.path.isfile(args.model_path):
        ins = onnx_inputs(args.model_path)
        if len(ins) != 1:
            raise SystemExit("error: model has %d inputs (%s); expected 1"
                             % (len(ins), ", ".join(str(i[0]) for i in ins)))
        iname, elem, dims = ins[0]
        if elem not in (None, 1):
            raise SystemExit("error: input %r has ONNX elem_type %s, expected float (1)" % (iname, elem))
        if dims:
            if isinstance(dims[0], int) and dims[0] > 0:
                fixed = dims[0]
            rest = dims[1:]
            if all(isinstance(d, int) and d > 0 for d in rest):
                onnx_shape = tuple(rest)
    if args.input_shape:
        return tuple(int(d) for d in re.split(r"[,x]", args.input_shape)), fixed
    if onnx_shape:
        return onnx_shape, fixed
    if arch is not None:
        s = arch_input_shape(arch, name, module)
        if s:
            return s, fixed
    raise SystemExit("error: cannot determine the input shape; pass --input-shape C,H,W")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    import numpy as np
    import torch

    # Before any parallel work: intra-op = --threads, inter-op = 1.
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)

    name = model_name(args)
    arch = None
    tl = time.perf_counter()
    if args.selftest:
        module, default_shape = build_selftest()
    else:
        arch = import_architectures()
        try:
            module, default_shape = arch.build(name), None
        except (ValueError, KeyError) as e:
            raise SystemExit("error: architectures.build(%r): %s" % (name, e))
    module.eval()
    if args.weights:
        module.load_state_dict(torch.load(args.weights, map_location="cpu"))
    elif args.verify and args.model_path and args.model_path.lower().endswith(".onnx"):
        load_onnx_weights(module, args.model_path)
    load_ms = (time.perf_counter() - tl) * 1000.0

    if args.verify:
        return run_verify(args, module, name)

    if default_shape is not None and not (args.model_path and os.path.isfile(args.model_path)) \
            and not args.input_shape:
        dims, fixed = default_shape, None
    else:
        dims, fixed = resolve_shape(args, arch, name, module)

    if args.json:
        sys.stderr.write("# torch %s model=%s input=[%s,%s] threads=%d\n"
                         % (torch.__version__, name, fixed or "N", ",".join(map(str, dims)),
                            torch.get_num_threads()))
    else:
        print("torch %s  model %s  input [%s,%s]  threads %d (interop %d)  seconds %g  repeats %d"
              % (torch.__version__, name, fixed or "N", ",".join(map(str, dims)), torch.get_num_threads(),
                 torch.get_num_interop_threads(), args.seconds, args.repeats))
        print(table_header())
    sys.stdout.flush()

    failed = 0
    for batch in args.batch:
        if fixed is not None and batch != fixed:
            sys.stderr.write("error: %s: batch dim is fixed at %d in the ONNX graph; skipping batch %d "
                             "(for parity with ort_run.js)\n" % (name, fixed, batch))
            failed += 1
            continue
        shape = (batch,) + tuple(dims)
        xin = seeded_input(shape, args.seed)
        if args.save_input:
            np.save(args.save_input.replace("{batch}", str(batch)), xin)
        x = torch.from_numpy(xin)
        try:
            r = bench_one(module, x, batch, args)
        except Exception as e:  # a shape error in the architecture, OOM, ...
            sys.stderr.write("error: %s batch %d: %s\n" % (name, batch, e))
            failed += 1
            continue
        rss = peak_rss_mb()
        if args.json:
            print(json.dumps({
                "runtime": "pytorch", "model": name, "batch": batch, "threads": args.threads,
                "images_per_s": round(r["images_per_s"], 3), "p50_ms": round(r["p50_ms"], 4),
                "p90_ms": round(r["p90_ms"], 4), "p99_ms": round(r["p99_ms"], 4),
                "load_ms": round(load_ms, 3), "peak_rss_mb": round(rss, 2), "repeats": args.repeats,
            }))
        else:
            print(table_row([batch, args.threads, r["images_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"],
                             load_ms, rss, r["runs"], r["cpu_per_wall"]]))
        sys.stdout.flush()
    return 1 if failed else 0


def bench_one(module, x, batch, args):
    import torch

    now = time.perf_counter
    with torch.inference_mode():
        n, tw = 0, now()
        while n < args.warmup_runs or now() - tw < args.warmup_seconds:
            module(x)
            n += 1
        intervals = []
        c0 = time.process_time()
        t0 = t = now()
        while True:
            s = now()
            module(x)
            t = now()
            intervals.append((s, t))
            if t - t0 >= args.seconds and len(intervals) >= args.repeats:
                break
        cpu = time.process_time() - c0
    lat = sorted((e - s) * 1000.0 for s, e in intervals)
    return {
        "images_per_s": slice_throughput(intervals, batch, t0, t, args.repeats),
        "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99),
        "runs": len(intervals), "cpu_per_wall": cpu / (t - t0),
    }


def run_verify(args, module, name):
    import numpy as np
    import torch

    if not args.expect:
        raise SystemExit("error: --verify needs --expect Y.npy")
    x = np.load(args.verify).astype(np.float32)
    y = np.load(args.expect).astype(np.float32)
    with torch.inference_mode():
        out = module(torch.from_numpy(x)).float().numpy()
    if args.save_output:
        np.save(args.save_output, out)
    res = compare_outputs(out, y, args.rtol, args.atol)
    if args.json:
        print(json.dumps({
            "runtime": "pytorch", "model": name, "verify": "pass" if res["ok"] else "fail",
            "max_abs_diff": res["max_diff"], "max_abs_ref": res["max_ref"], "bound": res["bound"],
            "rtol": args.rtol, "atol": args.atol, "top5_mismatch_rows": len(res["top5_mismatch"]),
            "shape": list(out.shape)}))
    else:
        print("verify %s: %s  max|diff|=%.4e  bound=%.4e (rtol=%g * max|Y|=%.4e + atol=%g)  output %s"
              % (name, "PASS" if res["ok"] else "FAIL", res["max_diff"], res["bound"], args.rtol,
                 res["max_ref"], args.atol, list(out.shape)))
        for r in res["reasons"]:
            print("  " + r)
        for r, a, b in res["top5_mismatch"][:5]:
            print("  row %d: top-5 got %s expected %s" % (r, a, b))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
