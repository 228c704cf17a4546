#!/usr/bin/python3
"""Check exported zoo models.

    /usr/bin/python3 models/zoo/check_onnx.py FILE.onnx [FILE.onnx ...]
        [--nodes] [--shapes] [--run] [--expect-lrn auto|yes|no] [--strict]

For every file: run onnx.checker.check_model, print the op histogram and
assert structural expectations:
  * alexnet / zfnet / zfnet512 (or --expect-lrn yes): at least one ``LRN``
    node, and no ``If`` or ``Pad`` node (i.e. LRN exported as one op and
    padding folded into Conv/MaxPool);
  * every model: a single input ``input`` and a single output ``logits`` with
    a symbolic batch dimension.
  * --strict: fail on any op outside the set the engine is expected to run.

--nodes   list node names, op types and attributes
--shapes  run ONNX shape inference and print each node's output shape
--run     evaluate the graph with an independent float64 NumPy interpreter on
          the sibling reference inputs NAME.b<B>.input.npy and compare with
          NAME.b<B>.output.npy (written by export.py from PyTorch), which
          validates the ONNX semantics of the exported graph (e.g. LRN).
"""

import argparse
import collections
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

LRN_MODELS = {"alexnet", "zfnet", "zfnet512"}
ENGINE_OPS = {"Conv", "Relu", "MaxPool", "LRN", "Flatten", "Gemm", "Dropout",
              "Reshape", "AveragePool", "Identity"}


class CheckFailed(Exception):
    pass


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


# --------------------------------------------------------------------------
# NumPy reference interpreter (only the ops the zoo uses)
# --------------------------------------------------------------------------

def _windows(x, kh, kw, sh, sw, dh=1, dw=1):
    """x: N,C,H,W (already padded) -> N,C,OH,OW,kh,kw view."""
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    v = np.lib.stride_tricks.sliding_window_view(x, (ekh, ekw), axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw]


def _pads(a, nd=2):
    p = a.get("pads", [0] * (2 * nd))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("auto_pad")
    return p


def op_conv(node, x, w, b=None):
    a = attrs(node)
    g = a.get("group", 1)
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    pt, pl, pb, pr = _pads(a)
    m, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    win = _windows(xp, kh, kw, sh, sw, dh, dw)
    mg = m // g
    outs = []
    for gi in range(g):
        wi = win[:, gi * cg:(gi + 1) * cg]
        outs.append(np.einsum("ncxykl,mckl->nmxy", wi, w[gi * mg:(gi + 1) * mg],
                              optimize=True))
    y = np.concatenate(outs, axis=1)
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def op_maxpool(node, x):
    a = attrs(node)
    if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise NotImplementedError("MaxPool ceil_mode/dilations")
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    pt, pl, pb, pr = _pads(a)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=-np.inf)
    return _windows(xp, kh, kw, sh, sw).max(axis=(4, 5))


def op_averagepool(node, x):
    a = attrs(node)
    if a.get("ceil_mode", 0):
        raise NotImplementedError("AveragePool ceil_mode")
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    pt, pl, pb, pr = _pads(a)
    pw = ((0, 0), (0, 0), (pt, pb), (pl, pr))
    s = _windows(np.pad(x, pw), kh, kw, sh, sw).sum(axis=(4, 5))
    if a.get("count_include_pad", 0):
        return s / (kh * kw)
    ones = np.pad(np.ones((1, 1) + x.shape[2:]), pw)
    return s / _windows(ones, kh, kw, sh, sw).sum(axis=(4, 5))


def op_lrn(node, x):
    # ONNX spec: square_sum[c] = sum x[c']^2 for
    # c' in [max(0, c - floor((size-1)/2)), min(C-1, c + ceil((size-1)/2))]
    a = attrs(node)
    size = a["size"]
    alpha, beta, bias = a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0)
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    c = x.shape[1]
    sq = x * x
    ss = np.zeros_like(x)
    for ci in range(c):
        ss[:, ci] = sq[:, max(0, ci - lo):min(c - 1, ci + hi) + 1].sum(axis=1)
    return x / (bias + alpha / size * ss) ** beta


def op_gemm(node, a_, b_, c_=None):
    a = attrs(node)
    if a.get("transA", 0):
        a_ = a_.T
    if a.get("transB", 0):
        b_ = b_.T
    y = a.get("alpha", 1.0) * (a_ @ b_)
    if c_ is not None:
        y = y + a.get("beta", 1.0) * c_
    return y


def op_flatten(node, x):
    ax = attrs(node).get("axis", 1)
    return x.reshape(int(np.prod(x.shape[:ax])), -1)


def op_reshape(node, x, shape):
    shape = [x.shape[i] if (s == 0 and not attrs(node).get("allowzero", 0)) else s
             for i, s in enumerate(shape.astype(np.int64).tolist())]
    return x.reshape(shape)


OPS = {
    "Conv": op_conv,
    "Relu": lambda n, x: np.maximum(x, 0),
    "MaxPool": op_maxpool,
    "AveragePool": op_averagepool,
    "LRN": op_lrn,
    "Gemm": op_gemm,
    "Flatten": op_flatten,
    "Reshape": op_reshape,
    "Dropout": lambda n, x, *rest: x,
    "Identity": lambda n, x: x,
}


def run_numpy(model, x):
    env = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    env[model.graph.input[0].name] = x.astype(np.float64)
    for n in model.graph.node:
        if n.op_type == "Constant":
            env[n.output[0]] = numpy_helper.to_array(attrs(n)["value"])
            continue
        if n.op_type not in OPS:
            raise NotImplementedError("numpy interpreter: op %s (node %s)" % (n.op_type, n.name))
        args = [env[i] if i else None for i in n.input]
        env[n.output[0]] = OPS[n.op_type](n, *args)
    return env[model.graph.output[0].name]


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------

def model_name(path):
    stem = os.path.basename(path)
    if stem.endswith(".onnx"):
        stem = stem[:-5]
    side = os.path.join(os.path.dirname(path), stem + ".json")
    if os.path.exists(side):
        try:
            with open(side) as f:
                return json.load(f).get("name", stem)
        except (OSError, ValueError):
            pass
    return stem


def check_file(path, args):
    name = model_name(path)
    print("== %s (%s, %s bytes)" % (path, name, format(os.path.getsize(path), ",")))
    onnx.checker.check_model(path)
    model = onnx.load(path)
    g = model.graph
    hist = collections.Counter(n.op_type for n in g.node)
    print("   checker OK; opset %s; %d nodes; %d initializers; %s params" % (
        ",".join("%s:%d" % (o.domain or "ai.onnx", o.version) for o in model.opset_import),
        len(g.node), len(g.initializer),
        format(sum(int(np.prod(i.dims)) for i in g.initializer), ",")))
    print("   ops: " + ", ".join("%s x%d" % (k, v) for k, v in sorted(hist.items())))

    problems = []
    init_names = {i.name for i in g.initializer}
    real_inputs = [i for i in g.input if i.name not in init_names]
    if [i.name for i in real_inputs] != ["input"] or [o.name for o in g.output] != ["logits"]:
        problems.append("expected inputs ['input'] and outputs ['logits'], got %s / %s" % (
            [i.name for i in real_inputs], [o.name for o in g.output]))
    else:
        d0 = real_inputs[0].type.tensor_type.shape.dim[0]
        if not d0.dim_param:
            problems.append("input batch dimension is not symbolic")
    names = [n.name for n in g.node]
    if len(set(names)) != len(names) or not all(names):
        problems.append("node names are not unique/non-empty")

    expect_lrn = (name in LRN_MODELS) if args.expect_lrn == "auto" else args.expect_lrn == "yes"
    if expect_lrn:
        if hist.get("LRN", 0) == 0:
            problems.append("no LRN node")
        for bad in ("If", "Pad"):
            if hist.get(bad):
                problems.append("%d %s node(s) present" % (hist[bad], bad))
    extra = sorted(set(hist) - ENGINE_OPS)
    if extra:
        msg = "ops outside the engine set: %s" % ", ".join(extra)
        if args.strict:
            problems.append(msg)
        else:
            print("   note: " + msg)

    if args.nodes:
        for n in g.node:
            a = attrs(n)
            a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in a.items()}
            print("   %-34s %-12s %s" % (n.name, n.op_type, a if a else ""))

    if args.shapes:
        inferred = shape_inference.infer_shapes(model)
        vis = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}

        def fmt(v):
            return "x".join(d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim)
        for n in g.node:
            o = n.output[0]
            print("   %-34s %-12s %s" % (n.name, n.op_type, fmt(vis[o]) if o in vis else "?"))

    if args.run:
        stem = path[:-5] if path.endswith(".onnx") else path
        found = False
        for b in range(1, 65):
            pin, pout = "%s.b%d.input.npy" % (stem, b), "%s.b%d.output.npy" % (stem, b)
            if not (os.path.exists(pin) and os.path.exists(pout)):
                continue
            found = True
            x, ref = np.load(pin), np.load(pout)
            t0 = time.time()
            y = run_numpy(model, x)
            err = float(np.abs(y - ref).max())
            scale = float(np.abs(ref).max())
            top1 = float((y.argmax(1) == ref.argmax(1)).mean())
            ok = y.shape == ref.shape and err <= 1e-4 * max(1.0, scale)
            print("   run b%d: max|onnx(numpy f64) - torch| = %.3g (max|logit| %.3g), "
                  "top1 agree %.0f%%, %.1f s %s" % (b, err, scale, 100 * top1,
                                                   time.time() - t0, "OK" if ok else "MISMATCH"))
            if not ok:
                problems.append("b%d output mismatch (max abs err %.3g)" % (b, err))
        if not found:
            print("   run: no reference tensors next to %s" % path)

    if problems:
        raise CheckFailed("%s: %s" % (path, "; ".join(problems)))
    print("   PASS")


def main():
    p = argparse.ArgumentParser(description="check exported zoo ONNX models")
    p.add_argument("files", nargs="+")
    p.add_argument("--nodes", action="store_true")
    p.add_argument("--shapes", action="store_true")
    p.add_argument("--run", action="store_true")
    p.add_argument("--expect-lrn", choices=("auto", "yes", "no"), default="auto")
    p.add_argument("--strict", action="store_true")
    args = p.parse_args()
    failed = 0
    for f in args.files:
        try:
            check_file(f, args)
        except (CheckFailed, onnx.checker.ValidationError, NotImplementedError) as e:
            print("   FAIL: %s" % e)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
