#!/usr/bin/env python3
"""Tests of tools/scripts/check_deps.py on small planted trees (a copy of the real layout's folders)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "scripts")
SCRIPT = os.path.join(SCRIPTS, "check_deps.py")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, SCRIPTS)
import check_deps  # noqa: E402

# A tree that follows the table: every include points down, every library sits in its folder.
CLEAN_TREE = {
    "engine/common/status.h": "#include <string>\n",
    "engine/tensor/tensor.h": '#include "engine/common/status.h"\n',
    "engine/backend/dnnl/dnnl_backend.cc": '#include "dnnl.hpp"\n#include "engine/tensor/tensor.h"\n',
    "engine/runtime/model.h": '#include "engine/backend/dnnl/dnnl_backend.h"\n',
    "models/onnx/onnx_importer.cc": '#include <onnx/onnx_pb.h>\n#include "engine/runtime/model.h"\n',
    "server/batching/task.h": '#include "engine/common/status.h"\n',
    "server/preprocess/preprocess.cc": '#include <opencv2/core.hpp>\n#include "engine/tensor/tensor.h"\n',
    "server/servables/servable.h": ('#include "cnnserve/v1/model_config.pb.h"\n#include "server/batching/task.h"\n'
                                    '#include "models/onnx/onnx_importer.h"\n'),
    "server/service/inference_service.h": '#include "server/servables/servable.h"\n',
    "server/kserve/codec.cc": ('#include "inference/grpc_service.pb.h"\n'
                               '#include "server/service/inference_service.h"\n'),
    "server/transport/grpc_server.cc": ('#include <grpcpp/grpcpp.h>\n#include "cnnserve/v1/classifier.grpc.pb.h"\n'
                                        '#include "server/kserve/codec.h"\n'),
    "server/main.cc": '#include "server/transport/grpc_server.h"\n#include "tools/common/flags.h"\n',
    "tools/cnnctl/cnnctl.cc": '#include <grpcpp/grpcpp.h>\n#include "tools/common/flags.h"\n',
    "tests/engine/anything_test.cc": '#include "server/transport/grpc_server.h"\n#include <grpcpp/grpcpp.h>\n',
}


def run(root):
    return subprocess.run([sys.executable, SCRIPT, "--root", root], capture_output=True, text=True, timeout=60)


class CheckDepsTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="check_deps_test_")
        self.addCleanup(shutil.rmtree, self.root)
        for path, text in CLEAN_TREE.items():
            self.write(path, text)

    def write(self, path, text):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)

    def test_a_tree_that_follows_the_table_passes(self):
        result = run(self.root)
        self.assertEqual((result.returncode, result.stdout), (0, ""), result.stderr)

    def test_upward_include_and_grpc_in_the_service_layer_fail(self):
        self.write("engine/common/x.h", '#pragma once\n#include <vector>\n#include "server/batching/task.h"\n')
        self.write("server/service/model_control.cc",
                   '#include "server/service/inference_service.h"\n  #  include <grpcpp/grpcpp.h>\n')
        result = run(self.root)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertEqual(result.stdout.splitlines(), [
            "engine/common/x.h:3: engine/common may not include server/batching/task.h "
            "(upward: server/batching is not below engine/common)",
            "server/service/model_control.cc:2: server/service may not include grpcpp/grpcpp.h "
            "(gRPC only in the gRPC front ends, tools and bench)",
            "engine/common/x.h:3: engine/common may not include server/batching "
            "(folder cycle: engine/common -> server/batching (engine/common/x.h:3); "
            "server/batching -> engine/common (server/batching/task.h:1))"])

    def test_wire_headers_and_libraries_outside_their_folders_fail(self):
        self.write("server/service/native.cc", '#include "cnnserve/v1/classifier.pb.h"\n')
        self.write("server/http/rest.cc", '#include "inference/grpc_service.pb.h"\n#include <grpcpp/grpcpp.h>\n')
        self.write("server/servables/resize.cc", '#include <opencv2/imgproc.hpp>\n')
        self.write("engine/ops/conv.cc", '#include "dnnl.hpp"\n#include <google/protobuf/message.h>\n')
        self.write("models/repository/bad.cc", '#include "server/servables/servable.h"\n')
        result = run(self.root)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertEqual(sorted(result.stdout.splitlines()), [
            "engine/ops/conv.cc:1: engine/ops may not include dnnl.hpp (oneDNN only in engine/backend/dnnl)",
            "engine/ops/conv.cc:2: engine/ops may not include google/protobuf/message.h "
            "(no protobuf in the engine)",
            "models/repository/bad.cc:1: models/repository may not include server/servables/servable.h "
            "(upward: server/servables is not below models/repository)",
            "server/http/rest.cc:2: server/http may not include grpcpp/grpcpp.h "
            "(gRPC only in the gRPC front ends, tools and bench)",
            "server/servables/resize.cc:1: server/servables may not include opencv2/imgproc.hpp "
            "(OpenCV only in server/preprocess)",
            "server/service/native.cc:1: server/service may not include cnnserve/v1/classifier.pb.h "
            "(native wire protocol only in its front end)"])

    def test_a_folder_outside_the_table_is_reported(self):
        self.write("server/explain/occlusion.cc", "int x;\n")
        self.write("engine/common/y.h", '#include "server/explain/occlusion.h"\n')
        result = run(self.root)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout.splitlines(), [
            "engine/common/y.h:1: engine/common may not include server/explain/occlusion.h "
            "(in no unit of the dependency table)",
            "server/explain/occlusion.cc:1: server/explain/occlusion.cc is in no unit of the dependency table "
            "(add its folder to LAYERS in tools/scripts/check_deps.py)"])

    def test_the_table_itself_has_no_cycle_and_reaches_down(self):
        reach = check_deps.reachable(check_deps.LAYERS)
        self.assertIn("engine/common", reach["server/transport"])
        self.assertIn("server/servables", reach["server/http"])
        self.assertNotIn("server/transport", reach["server/http"])
        self.assertNotIn("server/service", reach["server/ensemble"])
        with self.assertRaisesRegex(check_deps.TableError, "cycle: a -> b -> a"):
            check_deps.reachable({"a": ["b"], "b": ["a"]})


if __name__ == "__main__":
    unittest.main()
