#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (committed; rerun to refresh).

Seeds are small on purpose (libFuzzer's default maximum input length follows the largest seed):
  image_input     PNG (gray, RGB, RGBA, 16-bit, palette, 1-bit, interlaced) and JPEG (baseline, progressive,
                  gray) images of a few pixels, and raw-pixel inputs; byte 0 picks the model and the kind
                  (see fuzz_image_input.cc)
  onnx_import     tiny ONNX graphs made with python3-onnx covering every supported op family
  model_config    the default repository's config.pbtxt files and a few variants
  kserve_request  ModelInferRequest messages (FP32, UINT8, BYTES; raw and typed contents; classification
                  parameter) encoded with protoc --encode; byte 0 picks the model
  classify_request  native ClassifyRequest messages (images, CHW and NCHW tensors, options), likewise
Usage: /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import io
import pathlib
import struct
import subprocess

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = HERE / "corpus"


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def encoded(image, fmt, **kwargs):
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def image_seeds():
    rng = np.random.default_rng(7)
    gray = Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8), "L")
    rgb = Image.fromarray(rng.integers(0, 256, (4, 7, 3), dtype=np.uint8), "RGB")
    images = {
        "gray.png": encoded(gray, "PNG"),
        "rgb.png": encoded(rgb, "PNG"),
        "rgba.png": encoded(rgb.convert("RGBA"), "PNG"),
        "gray16.png": encoded(Image.fromarray(rng.integers(0, 65536, (3, 4), dtype=np.uint16).astype(np.int32),
                                              "I"), "PNG"),
        "palette.png": encoded(rgb.convert("P"), "PNG"),
        "bits1.png": encoded(gray.convert("1"), "PNG"),
        "optimized.png": encoded(rgb, "PNG", optimize=True),
        "baseline.jpg": encoded(rgb.resize((16, 16)), "JPEG", quality=90),
        "progressive.jpg": encoded(rgb.resize((16, 16)), "JPEG", progressive=True),
        "gray.jpg": encoded(gray.resize((8, 8)), "JPEG"),
    }
    for i, (name, data) in enumerate(sorted(images.items())):
        write("image_input", name, bytes([i % 3]) + data)
    # Raw pixels: kind bit, height, width (little-endian 16-bit), channels, samples.
    for i, (h, w, c) in enumerate([(2, 3, 1), (3, 2, 3), (28, 28, 1)]):
        header = bytes([0x80 | i]) + struct.pack("<HHB", h, w, c)
        write("image_input", f"pixels_{h}x{w}x{c}.raw", header + bytes(rng.integers(0, 256, h * w * c, np.uint8)))
    return images


def tensor(name, shape, rng):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def onnx_model(nodes, inits, in_shape, out_shape, name):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


def onnx_seeds():
    rng = np.random.default_rng(11)
    lenet = onnx_model([
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["output"], axis=1),
    ], [tensor("w1", (2, 1, 3, 3), rng), tensor("b1", (2,), rng), tensor("w2", (3, 2 * 2 * 2), rng),
        tensor("b2", (3,), rng)], ["N", 1, 4, 4], ["N", 3], "conv_pool_gemm")
    alex = onnx_model([
        helper.make_node("Conv", ["input", "w1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], group=2),
        helper.make_node("LRN", ["c1"], ["l1"], size=3, alpha=1e-4, beta=0.75, bias=2.0),
        helper.make_node("AveragePool", ["l1"], ["a1"], kernel_shape=[2, 2], ceil_mode=1),
        helper.make_node("GlobalAveragePool", ["a1"], ["g1"]),
        helper.make_node("Reshape", ["g1", "shape"], ["output"]),
    ], [tensor("w1", (4, 1, 3, 3), rng), numpy_helper.from_array(np.array([-1, 4], np.int64), "shape")],
        [1, 2, 9, 9], [1, 4], "groups_lrn_avgpool")
    bn = onnx_model([
        helper.make_node("Conv", ["input", "w1"], ["c1"], kernel_shape=[1, 1], dilations=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["n1"], epsilon=1e-5),
        helper.make_node("Dropout", ["n1"], ["d1"]),
        helper.make_node("Identity", ["d1"], ["i1"]),
        helper.make_node("Flatten", ["i1"], ["f"]),
        helper.make_node("MatMul", ["f", "w2"], ["mm"]),
        helper.make_node("Add", ["mm", "b2"], ["output"]),
    ], [tensor("w1", (2, 1, 1, 1), rng), tensor("s", (2,), rng), tensor("b", (2,), rng), tensor("m", (2,), rng),
        numpy_helper.from_array(np.ones(2, np.float32), "v"), tensor("w2", (8, 3), rng), tensor("b2", (3,), rng)],
        [1, 1, 2, 2], [1, 3], "batchnorm_matmul_add")
    for name, data in {"conv_pool_gemm.onnx": lenet, "groups_lrn_avgpool.onnx": alex,
                       "batchnorm_matmul_add.onnx": bn}.items():
        onnx.checker.check_model(onnx.load_from_string(data))
        write("onnx_import", name, data)


def config_seeds():
    for config in sorted((ROOT / "models" / "repository").glob("*/config.pbtxt")):
        write("model_config", config.parent.name + ".pbtxt", config.read_bytes())
    write("model_config", "minimal.pbtxt", b'name: "m" platform: "onnx" input { dims: [1, 32, 32] }\n')
    write("model_config", "versions.pbtxt", b'platform: "onnx" version_policy { specific: [1, 3] }\n'
          b'input { dims: [1, 32, 32] } instance_group { count: 2 threads: 1 }\n')


def encode(message, proto_file, text):
    """`text` (protobuf text format) as the binary `message`, by protoc --encode."""
    return subprocess.run(["protoc", f"--proto_path={ROOT / 'proto'}", f"--encode={message}", proto_file],
                          input=text.encode(), capture_output=True, check=True).stdout


def octal(data):
    return "".join(f"\\{b:03o}" for b in data)


def kserve_seeds(images):

    png = images["gray.png"]
    floats = struct.pack("<" + "f" * 1024, *np.linspace(-1, 1, 1024, dtype=np.float32))
    messages = {
        "fp32_raw": 'model_name: "lenet5_fashion" inputs { name: "input" datatype: "FP32" shape: [1, 1, 32, 32] }'
                    f' raw_input_contents: "{octal(floats)}"',
        "fp32_typed": 'model_name: "m" model_version: "1" inputs { name: "input" datatype: "FP32" shape: [1, 1, 32, 32]'
                      ' contents { ' + " ".join(f"fp32_contents: {v:.3f}" for v in np.linspace(0, 1, 1024)) + " } }",
        "uint8_raw": 'model_name: "m" inputs { name: "input" datatype: "UINT8" shape: [1, 2, 3, 1] }'
                     ' raw_input_contents: "\\001\\002\\003\\004\\005\\006"',
        "bytes_raw": 'model_name: "m" inputs { name: "input" datatype: "BYTES" shape: [1] }'
                     f' raw_input_contents: "{octal(struct.pack("<I", len(png)) + png)}"',
        "bytes_typed": 'model_name: "m" id: "x" inputs { name: "input" datatype: "BYTES" shape: [2, 1]'
                       f' contents {{ bytes_contents: "{octal(png)}" bytes_contents: "{octal(png)}" }} }}'
                       ' outputs { name: "output" parameters { key: "classification" value { int64_param: 3 } } }',
    }
    for i, (name, text) in enumerate(sorted(messages.items())):
        write("kserve_request", name + ".bin",
              bytes([i % 3]) + encode("inference.ModelInferRequest", "inference/grpc_service.proto", text))


def classify_seeds(images):
    floats = struct.pack("<" + "f" * 1024, *np.linspace(-1, 1, 1024, dtype=np.float32))
    messages = {
        "one_png": f'model: "lenet5_fashion" inputs {{ image: "{octal(images["gray.png"])}" }}',
        "jpeg_and_png": f'model: "m" top_k: 3 include_timings: true inputs {{ image: "{octal(images["gray.jpg"])}" }}'
                        f' inputs {{ image: "{octal(images["rgb.png"])}" }}',
        "tensor_chw": f'model: "m" version: 1 inputs {{ tensor {{ shape: [1, 32, 32] data: "{octal(floats)}" }} }}',
        "tensor_nchw": f'model: "m" request_id: "r" include_member_results: true'
                       f' inputs {{ tensor {{ shape: [1, 1, 32, 32] data: "{octal(floats)}" }} }}',
    }
    for i, (name, text) in enumerate(sorted(messages.items())):
        write("classify_request", name + ".bin",
              bytes([i % 3]) + encode("cnnserve.v1.ClassifyRequest", "cnnserve/v1/classifier.proto", text))


def main():
    images = image_seeds()
    onnx_seeds()
    config_seeds()
    kserve_seeds(images)
    classify_seeds(images)
    for folder in sorted(CORPUS.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
        crashes = HERE / "crashes" / folder.name
        crashes.mkdir(parents=True, exist_ok=True)
        (crashes / ".gitkeep").touch()


if __name__ == "__main__":
    main()
