#!/usr/bin/python3
"""Writes an int8 QDQ copy of an fp32 ONNX model with the scales of a cnnserve calibration file, so that ONNX
Runtime runs the same quantization as `cnnbench run --precision int8` (the peer of bench/engine_vs_peers.py).

    /usr/bin/python3 models/zoo/quantize_qdq.py MODEL.onnx CALIBRATION.txt OUT.onnx [--outputs engine|ranged]

The rules are the engine's (engine/backend/dnnl/dnnl_emit_int8.cc), in ONNX's QuantizeLinear/DequantizeLinear
form (opset >= 13, zero points 0):
- An activation is quantized where a Conv, Gemm or MatMul (with a constant 2-D B) reads it (directly, or through
  MaxPool, AveragePool, Flatten or Reshape, whose outputs keep their input's scale): uint8 with scale max/255 when
  its calibrated range has no negative value, else int8 with scale max(|min|, |max|)/127. Tensors the file lists
  as `fp32`, or without a range, stay fp32 (and so do the layers reading them).
- Weights of those layers: int8, one scale per output channel (absmax/127, 1 for a zero channel): axis 0 of Conv
  [O, I, kh, kw] and of Gemm transB=1 [N, K], axis 1 of Gemm transB=0 and MatMul [K, N]. The bias: int32 with
  scale input_scale x weight_scale (what ONNX Runtime needs to fuse QLinearConv/QGemm).
- Inputs and outputs of the graph stay fp32.

--outputs engine (the default) quantizes exactly the tensors the engine stores in int8, so both runtimes round
the same values. A layer whose output goes on to an op that stays fp32 (LRN in AlexNet and ZFNet) then keeps an
fp32 output, and ONNX Runtime, which fuses DQ -> Conv -> Q into QLinearConv only with the output Q, runs that
layer as an fp32 Conv on dequantized weights. --outputs ranged also puts Q -> DQ on the output of every quantized
layer (after its Relu) that has a range and is not a graph output: ONNX Runtime then fuses every layer (AlexNet
about 1.4x faster in ONNX Runtime), at the price of one rounding the engine does not do before each such fp32 op.
Prints one line: how many layers were quantized and how many stayed fp32. Exit 0, 1 on an error, 2 on usage.
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

LAYERS = ("Conv", "Gemm", "MatMul")
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


def ranged_outputs(graph, wanted, ranges, fp32):
    """`wanted` plus the output (after a sole Relu consumer) of every layer that reads a wanted tensor, when that
    output has a range and is not a graph output (--outputs ranged)."""
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    wanted = dict(wanted)
    for node in graph.node:
        if node.op_type not in LAYERS or not node.input or node.input[0] not in wanted:
            continue
        out = node.output[0]
        after = consumers.get(out, [])
        if len(after) == 1 and after[0].op_type == "Relu" and out not in graph_outputs:
            out = after[0].output[0]
        if out in ranges and out not in fp32 and out not in graph_outputs:
            wanted.setdefault(out, out)
    return wanted


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

    def weight_axis(self, node):
        """The output-channel axis of the node's constant weights, or None when it has none we can quantize."""
        if len(node.input) < 2 or node.input[1] not in self.inits:
            return None
        rank = len(self.inits[node.input[1]].dims)
        if node.op_type == "Conv":
            return 0
        if node.op_type == "Gemm":
            return 0 if next((a.i for a in node.attribute if a.name == "transB"), 0) else 1
        return 1 if rank == 2 else None  # MatMul: [K, N]; batched B stays fp32

    def quantize_layer(self, node, x_scale):
        """Replaces the node's weights (and bias) by int8 (int32) initializers behind DequantizeLinear."""
        w = numpy_helper.to_array(self.inits[node.input[1]]).astype(np.float32)
        axis = self.weight_axis(node)
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


def quantize(model, ranges, fp32, outputs="engine"):
    graph = model.graph
    wanted = wanted_tensors(graph, ranges, fp32)
    if outputs == "ranged":
        wanted = ranged_outputs(graph, wanted, ranges, fp32)
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
            if original_input in quant and b.weight_axis(node) is not None:
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
    outputs = "engine"
    if len(argv) == 5 and argv[3] == "--outputs" and argv[4] in ("engine", "ranged"):
        outputs = argv[4]
        argv = argv[:3]
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    model_path, calibration_path, out_path = argv
    try:
        ranges, fp32 = read_calibration(calibration_path)
        model = onnx.load(model_path)
        if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
            raise ValueError("%s: per-channel DequantizeLinear needs opset >= 13" % model_path)
        layers, kept = quantize(model, ranges, fp32, outputs)
        onnx.checker.check_model(model)
        onnx.save(model, out_path)
    except (OSError, ValueError, onnx.checker.ValidationError) as e:
        print("quantize_qdq: %s" % e, file=sys.stderr)
        return 1
    print("%s: %d layers int8, %d fp32 -> %s" % (model_path, layers, kept, out_path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
