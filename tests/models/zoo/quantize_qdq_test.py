#!/usr/bin/python3
"""models/zoo/quantize_qdq.py on a planted Conv -> Relu -> MaxPool -> Flatten -> Gemm -> Relu -> Gemm model: which
tensors get QuantizeLinear/DequantizeLinear, their scales and types (the engine's rules), per-channel int8 weights
within half a step of the originals, int32 biases, an `fp32` record honoured, errors. Variants: MatMul layers
with constant [K, N] weights (one scale per column), and an LRN after the pool (its input stays fp32 as in the
engine; --outputs ranged quantizes the Relu before it). Exit 0 when all pass."""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
SCRIPT = os.path.join(ROOT, "models", "zoo", "quantize_qdq.py")
RANGES = {"x": (-2.0, 3.0), "c": (-4.0, 5.0), "r": (0.0, 5.0), "p": (0.0, 5.0), "n": (0.0, 4.0), "f": (0.0, 5.0),
          "m": (-1.5, 2.5), "g": (-1.0, 2.0), "h": (0.0, 2.0), "y": (-3.0, 3.0)}


def planted_model(matmul=False, lrn=False):
    """The planted model; matmul: MatMul (+ Add) instead of the Gemms; lrn: an LRN between MaxPool and Flatten."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 3, 3, 3)).astype(np.float32)
    w[5] = 0.0  # a zero channel: scale 1
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(size=(4, 8 * 4 * 4)).astype(np.float32), "fw"),
             numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "fb"),
             numpy_helper.from_array(rng.normal(size=(4, 2)).astype(np.float32), "gw")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["h"]),
             helper.make_node("Gemm", ["h", "gw"], ["y"])]
    if matmul:  # fw as [K, N]: the same layer as Gemm transB=1 on fw [N, K]
        inits[2] = numpy_helper.from_array(numpy_helper.to_array(inits[2]).T.copy(), "fw")
        nodes[4:5] = [helper.make_node("MatMul", ["f", "fw"], ["m"]), helper.make_node("Add", ["m", "fb"], ["g"])]
        nodes[-1] = helper.make_node("MatMul", ["h", "gw"], ["y"])
    if lrn:
        nodes[3:4] = [helper.make_node("LRN", ["p"], ["n"], size=3), helper.make_node("Flatten", ["n"], ["f"])]
    graph = helper.make_graph(nodes, "planted", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


class QuantizeQdqTest(unittest.TestCase):
    def run_script(self, fp32=(), planted=None, extra=()):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        model, calibration, out = (os.path.join(self.tmp.name, n) for n in ("m.onnx", "c.txt", "q.onnx"))
        onnx.save(planted or planted_model(), model)
        with open(calibration, "w") as f:
            f.write("version 1\nmethod minmax\nimages 4 planted\n")
            f.writelines("range %r %r %s\n" % (lo, hi, name) for name, (lo, hi) in RANGES.items())
            f.writelines("fp32 %s\n" % name for name in fp32)
        proc = subprocess.run([sys.executable, SCRIPT, model, calibration, out] + list(extra), capture_output=True,
                              text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        q = onnx.load(out)
        onnx.checker.check_model(q)
        return proc.stdout, q, {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}

    def test_activations_weights_and_biases(self):
        out, q, inits = self.run_script()
        self.assertIn("3 layers int8, 0 fp32", out)
        quantized = sorted(n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear")
        # What a Conv/Gemm reads, and what passes through MaxPool/Flatten on the way (not c, g, y: fused ReLUs
        # and the fp32 output).
        self.assertEqual(quantized, ["f", "h", "p", "r", "x"])
        self.assertEqual(inits["x_qdq_zero"].dtype, np.int8)  # negative values: s8, 127 / 3
        self.assertAlmostEqual(float(inits["x_qdq_scale"]), 3.0 / 127, places=7)
        self.assertEqual(inits["h_qdq_zero"].dtype, np.uint8)  # never negative: u8, 255 / 2
        self.assertAlmostEqual(float(inits["h_qdq_scale"]), 2.0 / 255, places=7)
        for passed in ("p", "f"):  # a pass-through op keeps the scale of its input
            self.assertEqual(float(inits[passed + "_qdq_scale"]), float(inits["r_qdq_scale"]))
        w = numpy_helper.to_array(planted_model().graph.initializer[0])
        wq, ws = inits["w_int8"], inits["w_scale"]
        self.assertEqual(wq.dtype, np.int8)
        self.assertEqual(ws[5], 1.0)
        np.testing.assert_allclose(ws[0], np.abs(w[0]).max() / 127, rtol=1e-6)
        self.assertLessEqual(np.abs(wq * ws.reshape(-1, 1, 1, 1) - w).max(), ws.max() / 2 + 1e-6)
        self.assertEqual(inits["b_int32"].dtype, np.int32)
        np.testing.assert_allclose(inits["b_scale"], float(inits["x_qdq_scale"]) * ws, rtol=1e-6)
        self.assertEqual(inits["gw_scale"].shape, (2,))  # Gemm without transB: one scale per column of [K, N]

    def test_fp32_record_keeps_its_layer_in_fp32(self):
        out, q, inits = self.run_script(fp32=["h"])
        self.assertIn("2 layers int8, 1 fp32", out)
        self.assertNotIn("h_qdq_scale", inits)
        self.assertIn("gw", inits)  # the last Gemm keeps its fp32 weights

    def test_matmul_weights_per_column(self):
        out, q, inits = self.run_script(planted=planted_model(matmul=True))
        self.assertIn("3 layers int8, 0 fp32", out)
        self.assertEqual(sorted(n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"),
                         ["f", "h", "p", "r", "x"])
        fw = numpy_helper.to_array(planted_model(matmul=True).graph.initializer[2])  # [K, N] = [128, 4]
        fq, fs = inits["fw_int8"], inits["fw_scale"]
        self.assertEqual((fq.dtype, fq.shape, fs.shape), (np.int8, (128, 4), (4,)))
        np.testing.assert_allclose(fs, np.abs(fw).max(axis=0) / 127, rtol=1e-6)
        self.assertLessEqual(np.abs(fq * fs.reshape(1, -1) - fw).max(), fs.max() / 2 + 1e-6)
        dq = next(n for n in q.graph.node if n.output[0] == "fw_dq")
        self.assertEqual((dq.op_type, helper.get_attribute_value(dq.attribute[0])), ("DequantizeLinear", 1))
        matmuls = [n for n in q.graph.node if n.op_type == "MatMul"]
        self.assertEqual([list(n.input) for n in matmuls], [["f_dq", "fw_dq"], ["h_dq", "gw_dq"]])

    def test_lrn_input_stays_fp32_unless_outputs_ranged(self):
        out, q, _ = self.run_script(planted=planted_model(lrn=True))
        self.assertIn("3 layers int8, 0 fp32", out)
        # The Conv's output goes through MaxPool to LRN, which runs in fp32: r and p are not quantized.
        self.assertEqual(sorted(n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"),
                         ["f", "h", "n", "x"])
        out, q, inits = self.run_script(planted=planted_model(lrn=True), extra=["--outputs", "ranged"])
        self.assertIn("3 layers int8, 0 fp32", out)
        self.assertEqual(sorted(n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"),
                         ["f", "h", "n", "r", "x"])  # not y: a graph output stays fp32
        self.assertEqual(inits["r_qdq_zero"].dtype, np.uint8)
        self.assertAlmostEqual(float(inits["r_qdq_scale"]), 5.0 / 255, places=7)
        pool = next(n for n in q.graph.node if n.op_type == "MaxPool")
        self.assertEqual(list(pool.input), ["r_dq"])

    def test_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "c.txt")
            with open(bad, "w") as f:
                f.write("version 1\nscale 3 x\n")
            proc = subprocess.run([sys.executable, SCRIPT, "/nonexistent.onnx", bad, os.path.join(tmp, "o.onnx")],
                                  capture_output=True, text=True)
            self.assertEqual(proc.returncode, 1)
            self.assertIn("c.txt:2: unknown record 'scale'", proc.stderr)
            self.assertEqual(subprocess.run([sys.executable, SCRIPT], capture_output=True).returncode, 2)
            self.assertEqual(subprocess.run([sys.executable, SCRIPT, "a", "b", "c", "--outputs", "all"],
                                            capture_output=True).returncode, 2)


if __name__ == "__main__":
    unittest.main()
