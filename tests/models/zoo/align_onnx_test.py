#!/usr/bin/python3
"""models/zoo/align_onnx.py on a model whose large initializers start at odd offsets (names of varied length, a
small initializer between them): afterwards every initializer of 64 KiB or more starts on a 64-byte boundary, the
model's nodes and tensors are unchanged (onnx.checker passes), small tensors are left where they fall, the file is
replaced by a rename, and a second pass changes nothing. Exit 0 when all pass."""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
SCRIPT = os.path.join(ROOT, "models", "zoo", "align_onnx.py")
sys.path.insert(0, os.path.join(ROOT, "models", "zoo"))
sys.dont_write_bytecode = True
import align_onnx  # noqa: E402


def odd_model():
    rng = np.random.default_rng(1)
    arrays = {"w1": rng.normal(size=(64, 300)).astype(np.float32),       # 76.8 KB
              "b1": rng.normal(size=64).astype(np.float32),              # small: stays where it falls
              "a_much_longer_name_w2": rng.normal(size=(64, 640)).astype(np.float32)}
    inits = [numpy_helper.from_array(arrays["w1"], "w1"), numpy_helper.from_array(arrays["b1"], "b1"),
             numpy_helper.from_array(arrays["a_much_longer_name_w2"], "a_much_longer_name_w2")]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
             helper.make_node("MatMul", ["h", "a_much_longer_name_w2"], ["y"])]
    graph = helper.make_graph(nodes, "odd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 300])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 640])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), arrays


def large_offsets(data):
    model = onnx.load_from_string(data)
    offsets = align_onnx.raw_data_offsets(data)
    return [o for o, t in zip(offsets, model.graph.initializer) if len(t.raw_data) >= align_onnx.MIN_BYTES]


class AlignOnnxTest(unittest.TestCase):
    def test_large_initializers_land_on_64_byte_boundaries_and_the_model_is_unchanged(self):
        model, arrays = odd_model()
        before = large_offsets(model.SerializeToString())
        self.assertEqual(len(before), 2)
        self.assertTrue(any(o % 64 for o in before), "the planted model must start misaligned")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            onnx.save(model, path)
            inode = os.stat(path).st_ino
            out = subprocess.run([sys.executable, SCRIPT, path], capture_output=True, text=True, check=True)
            self.assertIn("2 large initializers, 2 aligned to 64 bytes", out.stdout)
            self.assertNotEqual(os.stat(path).st_ino, inode, "the file is replaced by a rename, not rewritten")
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual([o % 64 for o in large_offsets(data)], [0, 0])
            aligned = onnx.load(path)
            onnx.checker.check_model(aligned)
            self.assertEqual([n.SerializeToString() for n in aligned.graph.node[:-1]],
                             [n.SerializeToString() for n in model.graph.node[:-1]])
            for init in aligned.graph.initializer:
                np.testing.assert_array_equal(numpy_helper.to_array(init), arrays[init.name])
            # Aligned already: a second pass keeps the bytes.
            subprocess.run([sys.executable, SCRIPT, path, os.path.join(tmp, "again.onnx")], check=True,
                           capture_output=True)
            with open(os.path.join(tmp, "again.onnx"), "rb") as f:
                self.assertEqual(f.read(), data)

    def test_usage_without_arguments(self):
        out = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)
        self.assertIn("align_onnx.py MODEL.onnx [OUT.onnx]", out.stderr)


if __name__ == "__main__":
    unittest.main()
