#!/usr/bin/python3
"""Export the cnnserve model zoo to ONNX, with labels, metadata and reference
input/output tensors for the C++ engine's parity tests.

    /usr/bin/python3 models/zoo/export.py --out DIR [--models a,b,...|all]
        [--seed 0] [--weights FILE] [--opset 13] [--reference-batches 1,3]
        [--threads 1] [--force]

Files written per model NAME (see README.md):
    DIR/NAME.onnx                 the model (input "input" Nx C x H x W float32,
                                  output "logits" Nx num_classes, N dynamic;
                                  large weights 64-byte aligned, align_onnx.py)
    DIR/NAME.labels.txt           one class label per line
    DIR/NAME.json                 metadata sidecar (written last)
    DIR/NAME.b<B>.input.npy       reference input,  float32 B x C x H x W
    DIR/NAME.b<B>.output.npy      reference logits, float32 B x num_classes

A model whose NAME.onnx exists and whose NAME.json records the same seed,
weights (by sha256), opset and zoo source version is not exported again
unless --force; missing reference batches are still generated.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import time
import warnings
import zlib

import numpy as np
import onnx
import torch
import torch.nn as nn

sys.dont_write_bytecode = True          # keep models/zoo/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import architectures as arch  # noqa: E402
import align_onnx  # noqa: E402

BIAS_RANGE = 0.05
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def die(msg):
    print("export.py: error: %s" % msg, file=sys.stderr)
    sys.exit(2)


def sha256_file(path, chunk=1 << 22):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def zoo_version():
    """Hash of the zoo's generator sources: any change re-exports."""
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for fn in ("architectures.py", "export.py", "align_onnx.py"):
        with open(os.path.join(here, fn), "rb") as f:
            h.update(f.read())
    h.update(torch.__version__.encode())
    h.update(onnx.__version__.encode())
    return h.hexdigest()[:16]


def atomic_write_bytes(path, data):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_save_npy(path, array):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def imagenet_categories():
    from torchvision.models import AlexNet_Weights
    cats = list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(cats) == 1000, len(cats)
    return cats


def labels_for(info):
    if info.labels == "digits":
        return [str(i) for i in range(10)]
    if info.labels == "imagenet":
        return imagenet_categories()
    raise ValueError(info.labels)


# --------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------

def he_init_(model, seed):
    """Seeded He (kaiming normal, fan_in, ReLU gain) weights for every Conv and
    Linear layer, biases uniform(-BIAS_RANGE, BIAS_RANGE).  Deterministic:
    one CPU generator, modules visited in definition order."""
    g = torch.Generator().manual_seed(int(seed))
    covered = set()
    with torch.no_grad():
        for _, m in model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight
                fan_in = w[0].numel()        # (in/groups) * kh * kw, or in_features
                std = (2.0 / fan_in) ** 0.5
                w.copy_(torch.randn(w.shape, generator=g) * std)
                covered.add(id(w))
                if m.bias is not None:
                    b = m.bias
                    b.copy_((torch.rand(b.shape, generator=g) * 2 - 1) * BIAS_RANGE)
                    covered.add(id(b))
    for n, p in model.named_parameters():
        if id(p) not in covered:
            raise RuntimeError("he_init_: parameter %s not initialised" % n)


def load_weights_(model, path, name):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        die("cannot load weights %s: %s" % (path, e))
    # Accept a bare state_dict or a checkpoint wrapping one.
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        die("%s does not contain a state_dict (a dict of tensors)" % path)
    want = model.state_dict()
    missing = [k for k in want if k not in obj]
    unexpected = [k for k in obj if k not in want]
    shapes = ["%s: file %s, %s expects %s" % (k, tuple(obj[k].shape), name,
                                              tuple(want[k].shape))
              for k in want if k in obj and torch.is_tensor(obj[k])
              and tuple(obj[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or shapes:
        lines = ["weights %s do not match architecture %s:" % (path, name)]
        if missing:
            lines.append("  missing keys (%d): %s" % (len(missing), ", ".join(missing[:12])
                                                       + (" ..." if len(missing) > 12 else "")))
        if unexpected:
            lines.append("  unexpected keys (%d): %s" % (len(unexpected),
                                                          ", ".join(unexpected[:12])
                                                          + (" ..." if len(unexpected) > 12 else "")))
        for s in shapes[:12]:
            lines.append("  shape mismatch " + s)
        lines.append("  expected keys: %s" % ", ".join(list(want)[:8])
                     + (" ..." if len(want) > 8 else ""))
        die("\n".join(lines))
    state = {k: obj[k].to(torch.float32) for k in want}
    model.load_state_dict(state, strict=True)


def make_model(name, seed, weights):
    torch.manual_seed(int(seed))      # any stray default-RNG use stays seeded
    model = arch.build(name)
    if weights:
        load_weights_(model, weights, name)
    else:
        he_init_(model, seed)
    return model.eval()


# --------------------------------------------------------------------------
# ONNX post-processing
# --------------------------------------------------------------------------

def fold_initializer_identities(graph):
    """torch's exporter de-duplicates identical initializers by inserting
    Identity nodes; make consumers read the shared initializer directly."""
    inits = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {}
    keep = []
    for n in graph.node:
        if (n.op_type == "Identity" and len(n.input) == 1 and n.input[0] in inits
                and n.output[0] not in outputs):
            alias[n.output[0]] = n.input[0]
        else:
            keep.append(n)
    if not alias:
        return 0
    for n in keep:
        for i, x in enumerate(n.input):
            if x in alias:
                n.input[i] = alias[x]
    del graph.node[:]
    graph.node.extend(keep)
    return len(alias)


def rename_textbook(graph):
    """Rename nodes '/conv1/Conv' -> 'conv1' (the nn.Module attribute, which is
    the textbook layer name) and their output tensors likewise."""
    used = set()
    value_map = {}
    protected = {INPUT_NAME, OUTPUT_NAME} | {i.name for i in graph.initializer}
    for n in graph.node:
        parts = [p for p in n.name.split("/") if p]
        base = parts[-2] if len(parts) >= 2 else (parts[0] if parts else n.op_type.lower())
        new = base
        k = 1
        while new in used:
            k += 1
            new = "%s_%d" % (base, k)
        used.add(new)
        n.name = new
        for j, out in enumerate(n.output):
            if out in protected:
                continue
            value_map[out] = new if len(n.output) == 1 else "%s_%d" % (new, j)
    for n in graph.node:
        for i, x in enumerate(n.input):
            if x in value_map:
                n.input[i] = value_map[x]
        for i, x in enumerate(n.output):
            if x in value_map:
                n.output[i] = value_map[x]
    for vi in graph.value_info:
        if vi.name in value_map:
            vi.name = value_map[vi.name]


def export_onnx(model, info, opset):
    c, h, w = info.input_shape
    dummy = torch.zeros(1, c, h, w)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # g.op deprecation note
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(model, dummy, buf,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"},
                                        OUTPUT_NAME: {0: "batch"}},
                          opset_version=opset, do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)
    proto = onnx.load_from_string(buf.getvalue())
    del buf
    fold_initializer_identities(proto.graph)
    if not info.torchvision:
        rename_textbook(proto.graph)
    proto.graph.name = info.name
    return proto


# --------------------------------------------------------------------------
# reference tensors
# --------------------------------------------------------------------------

def reference_input(name, seed, batch, shape):
    """Sample i of every batch comes from its own stream (seed, model, i), so
    the B=1 input equals row 0 of the B=3 input."""
    tag = zlib.crc32(name.encode())
    rows = [np.random.default_rng([int(seed), tag, i]).standard_normal(shape, dtype=np.float32)
            for i in range(batch)]
    return np.stack(rows).astype(np.float32, copy=False)


def ref_paths(out, name, b):
    return (os.path.join(out, "%s.b%d.input.npy" % (name, b)),
            os.path.join(out, "%s.b%d.output.npy" % (name, b)))


def write_references(model, info, seed, batches, out):
    for b in batches:
        x = reference_input(info.name, seed, b, info.input_shape)
        with torch.no_grad():
            y = model(torch.from_numpy(x)).numpy().astype(np.float32, copy=False)
        assert y.shape == (b, info.num_classes), y.shape
        if not np.all(np.isfinite(y)):
            raise RuntimeError("%s: non-finite reference logits" % info.name)
        pin, pout = ref_paths(out, info.name, b)
        atomic_save_npy(pin, x)
        atomic_save_npy(pout, y)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--models", default="all",
                   help="comma separated list or 'all' (%s)" % ",".join(arch.NAMES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=None,
                   help="local PyTorch state_dict to export instead of seeded "
                        "weights (exactly one model)")
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--reference-batches", default="",
                   help="comma separated batch sizes for reference tensors, e.g. 1,3")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--force", action="store_true", help="re-export even if up to date")
    a = p.parse_args(argv)

    if a.models.strip() == "all":
        a.models = list(arch.NAMES)
    else:
        a.models = [m.strip() for m in a.models.split(",") if m.strip()]
        bad = [m for m in a.models if m not in arch.MODELS]
        if bad or not a.models:
            p.error("unknown model(s) %s; known: %s, all" % (",".join(bad) or "''",
                                                            ",".join(arch.NAMES)))
        a.models = list(dict.fromkeys(a.models))
    if a.weights:
        if len(a.models) != 1:
            p.error("--weights needs exactly one model in --models")
        if not os.path.isfile(a.weights):
            p.error("--weights %s: no such file" % a.weights)
        a.weights = os.path.abspath(a.weights)
    try:
        a.batches = sorted({int(b) for b in a.reference_batches.split(",") if b.strip()})
    except ValueError:
        p.error("--reference-batches must be comma separated integers")
    if any(b < 1 for b in a.batches):
        p.error("--reference-batches must be positive")
    if a.opset < 9:
        p.error("--opset must be >= 9")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(max(1, a.threads))
    os.makedirs(a.out, exist_ok=True)
    version = zoo_version()
    weights_sha = sha256_file(a.weights) if a.weights else None
    total = time.time()

    for name in a.models:
        t0 = time.time()
        info = arch.info(name)
        onnx_path = os.path.join(a.out, name + ".onnx")
        json_path = os.path.join(a.out, name + ".json")
        labels_path = os.path.join(a.out, name + ".labels.txt")

        want = {"seed": a.seed, "weights_sha256": weights_sha, "opset": a.opset,
                "zoo_version": version}
        old = None
        if not a.force and os.path.exists(onnx_path) and os.path.exists(json_path):
            try:
                with open(json_path) as f:
                    old = json.load(f)
            except (OSError, ValueError):
                old = None
            if old is not None and any(old.get(k) != v for k, v in want.items()):
                old = None

        model = None
        if old is not None:
            status = "up to date"
            params = old["params"]
            missing = [b for b in a.batches
                       if not all(os.path.exists(p) for p in ref_paths(a.out, name, b))]
            if missing:
                model = make_model(name, a.seed, a.weights)
                write_references(model, info, a.seed, missing, a.out)
                status = "up to date, references b%s added" % ",b".join(map(str, missing))
            meta = old
            meta["reference_batches"] = sorted(set(meta.get("reference_batches", []))
                                               | set(a.batches))
            if missing:
                atomic_write_bytes(json_path, (json.dumps(meta, indent=2) + "\n").encode())
        else:
            status = "exported"
            if os.path.exists(json_path):
                os.unlink(json_path)          # invalid until everything is rewritten
            # stale reference tensors of an earlier export
            for fn in os.listdir(a.out):
                if fn.startswith(name + ".b") and fn.endswith(".npy"):
                    os.unlink(os.path.join(a.out, fn))
            model = make_model(name, a.seed, a.weights)
            params = arch.count_params(model)
            proto = export_onnx(model, info, a.opset)
            data = align_onnx.align(proto)  # weights 64-byte aligned: bf16/int8 plans read them in place
            del proto
            atomic_write_bytes(onnx_path, data)
            del data
            atomic_write_bytes(labels_path, ("\n".join(labels_for(info)) + "\n").encode())
            write_references(model, info, a.seed, a.batches, a.out)
            meta = {
                "name": name,
                "input_shape": list(info.input_shape),
                "num_classes": info.num_classes,
                "params": params,
                "opset": a.opset,
                "seed": a.seed,
                "weights": a.weights,
                "weights_sha256": weights_sha,
                "input_name": INPUT_NAME,
                "output_name": OUTPUT_NAME,
                "labels": os.path.basename(labels_path),
                "reference_batches": a.batches,
                "description": info.description,
                "zoo_version": version,
                "torch_version": torch.__version__,
            }
            atomic_write_bytes(json_path, (json.dumps(meta, indent=2) + "\n").encode())
        del model

        size = os.path.getsize(onnx_path)
        print("%-10s params %12s  %7.2f s  %14s bytes  %s" % (
            name, format(params, ","), time.time() - t0, format(size, ","), status),
            flush=True)
    print("total %.2f s" % (time.time() - total), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
