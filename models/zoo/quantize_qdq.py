#!/usr/bin/python3
"""Writes an int8 QDQ copy of an fp32 ONNX model with the scales of a cnnserve calibration file, so that ONNX
Runtime runs the same quantization as `cnnbench run --precision int8` (the peer of bench/engine_vs_peers.py).

    /usr/bin/python3 models/zoo/quantize_qdq.py MODEL.onnx CALIBRATION.txt OUT.onnx

The rules are the engine's (engine/backend/dnnl/dnnl_emit_int8.cc), in ONNX's QuantizeLinear/DequantizeLinear
form (opset >= 13, zero points 0):
- An activation is quantized where a Conv or Gemm reads it (directly, or through MaxPool, AveragePool, Flatten
  or Reshape, whose outputs keep their input's scale): uint8 with scale max/255 when its calibrated range has no
  negative value, else int8 with scale max(|min|, |max|)/127. Tensors the file lists as `fp32`, or without a
  range, stay fp32 (and so do the layers reading them).
- Weights of those Conv/Gemm nodes: int8, one scale per output channel (absmax/127, 1 for a zero channel);
  the bias: int32 with scale input_scale x weight_scale (what ONNX Runtime needs to fuse QLinearConv/QGemm).
- Inputs and outputs of the graph stay fp32.
Prints one line: how many layers were quantized and how many stayed fp32. Exit 0, 1 on an error, 2 on usage.
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

LAYERS = ("Conv", "Gemm")
PASS_THROUGH = ("MaxPool", "AveragePool", "Flatten", "Reshape")


def read_calibration(path):
    """(ranges {name: (lo, hi)}, fp32 tensor names) of a cnnserve calibration file."""
    ranges, fp32 = {}, set()
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            if word == "range":
                lo, hi, name = rest.split(None, 2)
                ranges[name.strip()] = (float(lo), float(hi))
            elif word == "fp32":
                fp32.add(rest.strip())
            elif word not in ("version", "method", "images"):
                raise ValueError("%s:%d: unknown record %r" % (path, number, word))
    if not ranges:
        raise ValueError("%s: no range lines" % path)
    return ranges, fp32


def activation_quant(lo, hi):
    """(numpy zero-point dtype, scale) of a tensor with range [lo, hi]."""
    if lo >= 0:
        return np.uint8, (hi / 255.0 if hi > 0 else 1.0)
    return np.int8, max(abs(lo), abs(hi)) / 127.0


def wanted_tensors(graph, ranges, fp32):
    """Tensor -> the tensor whose scale it uses, for every activation stored in int8 (see the module doc)."""
    consumers = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    usable = lambda t: t in ranges and t not in fp32
    wanted = {}
    # Backwards: a pass-through op's input is wanted when its output is.
    for node in reversed(graph.node):
        for out in node.output:
            for consumer, index in consumers.get(out, []):
                if index == 0 and (consumer.op_type in LAYERS and usable(out)
                                   or consumer.op_type in PASS_THROUGH and consumer.output[0] in wanted):
                    wanted[out] = out
    for name in graph.input:
        for consumer, index in consumers.get(name.name, []):
            if index == 0 and (consumer.op_type in LAYERS and usable(name.name)
                               or consumer.op_type in PASS_THROUGH and consumer.output[0] in wanted):
                wanted[name.name] = name.name
    # Forwards: a pass-through op's output keeps the scale of its input.
    for node in graph.node:
        if node.op_type in PASS_THROUGH and node.input[0] in wanted and node.output[0] in wanted:
            wanted[node.output[0]] = wanted[node.input[0]]
    return {t: s for t, s in wanted.items() if usable(s)}


def weight_quant(w, axis):
    """(int8 weights, per-channel scales) along `axis`."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    largest = np.abs(moved).max(axis=1)
    scales = np.where(largest > 0, largest / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


class Builder:
    def __init__(self, model):
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.new_inits = []
        self.nodes = []

    def const(self, name, array):
        self.new_inits.append(numpy_helper.from_array(array, name))
        return name

    def qdq(self, tensor, dtype, scale):
        """Q then DQ of `tensor`; returns the DQ output."""
        s = self.const(tensor + "_qdq_scale", np.array(scale, dtype=np.float32))
        z = self.const(tensor + "_qdq_zero", np.array(0, dtype=dtype))
        self.nodes.append(helper.make_node("QuantizeLinear", [tensor, s, z], [tensor + "_q"], tensor + "_Q"))
        self.nodes.append(helper.make_node("DequantizeLinear", [tensor + "_q", s, z], [tensor + "_dq"],
                                           tensor + "_DQ"))
        return tensor + "_dq"

    def quantize_layer(self, node, x_scale):
        """Replaces the node's weights (and bias) by int8 (int32) initializers behind DequantizeLinear."""
        w = numpy_helper.to_array(self.inits[node.input[1]]).astype(np.float32)
        axis = 0
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axis = 0 if trans_b else 1
        q, scales = weight_quant(w, axis)
        name = node.input[1]
        zeros = np.zeros(scales.shape, dtype=np.int8)
        self.nodes.append(helper.make_node(
            "DequantizeLinear", [self.const(name + "_int8", q), self.const(name + "_scale", scales),
                                 self.const(name + "_zero", zeros)], [name + "_dq"], name + "_DQ", axis=axis))
        node.input[1] = name + "_dq"
        if len(node.input) > 2 and node.input[2] in self.inits:
            b = numpy_helper.to_array(self.inits[node.input[2]]).astype(np.float64)
            b_scales = (x_scale * scales).astype(np.float32)
            bq = np.rint(b / b_scales).astype(np.int32)
            bname = node.input[2]
            self.nodes.append(helper.make_node(
                "DequantizeLinear", [self.const(bname + "_int32", bq), self.const(bname + "_scale", b_scales),
                                     self.const(bname + "_zero", np.zeros(b_scales.shape, dtype=np.int32))],
                [bname + "_dq"], bname + "_DQ", axis=0))
            node.input[2] = bname + "_dq"


def quantize(model, ranges, fp32):
    graph = model.graph
    wanted = wanted_tensors(graph, ranges, fp32)
    quant = {t: activation_quant(*ranges[s]) for t, s in wanted.items()}
    b = Builder(model)
    renamed = {}
    for inp in graph.input:
        if inp.name in quant:
            renamed[inp.name] = b.qdq(inp.name, *quant[inp.name])
    layers = kept = 0
    for node in graph.node:
        original_input = node.input[0] if node.input else None
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        if node.op_type in LAYERS:
            if original_input in quant and node.input[1] in b.inits:
                b.quantize_layer(node, quant[original_input][1])
                layers += 1
            else:
                kept += 1
        b.nodes.append(node)
        for out in node.output:
            if out in quant:
                renamed[out] = b.qdq(out, *quant[out])
    del graph.node[:]
    graph.node.extend(b.nodes)
    used = {name for node in graph.node for name in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep + b.new_inits)
    return layers, kept


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    model_path, calibration_path, out_path = argv
    try:
        ranges, fp32 = read_calibration(calibration_path)
        model = onnx.load(model_path)
        if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
            raise ValueError("%s: per-channel DequantizeLinear needs opset >= 13" % model_path)
        layers, kept = quantize(model, ranges, fp32)
        onnx.checker.check_model(model)
        onnx.save(model, out_path)
    except (OSError, ValueError, onnx.checker.ValidationError) as e:
        print("quantize_qdq: %s" % e, file=sys.stderr)
        return 1
    print("%s: %d layers int8, %d fp32 -> %s" % (model_path, layers, kept, out_path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
