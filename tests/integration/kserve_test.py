#!/usr/bin/python3
"""KServe v2 / Open Inference Protocol against a live cnnserve, with a client that is not the server's code:
Python stubs generated from proto/inference/*.proto, Debian's python3-grpcio.

Every RPC of inference.GRPCInferenceService is called; inference with raw FP32, fp32_contents, UINT8 (gray and
RGB) and BYTES (raw framing and bytes_contents) inputs and the classification output is checked against the
native cnnserve.v1 Classify of the same images (top-1 equal, probabilities within 1e-5); every malformed request
gets INVALID_ARGUMENT with a precise message while the server keeps serving; statistics count exactly; models
are unloaded and loaded while another model keeps serving; an ensemble is served too.

Run through ctest (tests/integration/CMakeLists.txt sets the environment kserve_support.py reads).
"""

import os
import shutil
import threading
import time
import unittest

import numpy as np

import kserve_support as ks
from kserve_support import MODEL, NUM_CLASSES, grpc, pb, model_config_pb2

EXTENSIONS = {"classification", "model_configuration", "model_repository", "statistics"}
PROBABILITY_TOLERANCE = 1e-5
SCORE_TOLERANCE = 1e-4


def call_error(fn, *args, **kwargs):
    """The grpc.RpcError a call raises (fails the test when it succeeds)."""
    try:
        fn(*args, timeout=60, **kwargs)
    except grpc.RpcError as e:
        return e
    raise AssertionError("the call succeeded")


class KServeTest(unittest.TestCase):
    """One server on the default repository (other models may be there too)."""

    @classmethod
    def setUpClass(cls):
        repository = os.path.join(ks.env("CNNSERVE_SOURCE_DIR"), "models", "repository")
        cls.server = ks.Server(["--model-repository", repository, "--metrics-address", "none"])
        cls.stub = cls.server.kserve
        cls.images = ks.TestImages()
        cls.pngs = cls.images.files(".png", 8)
        cls.jpgs = cls.images.files(".jpg", 4)

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        assert code == 0, "cnnserve exited with %s; its log:\n%s" % (code, cls.server.log())

    def infer(self, request):
        return self.stub.ModelInfer(request, timeout=60)

    def assert_matches_native(self, response, image_names, output_index=0):
        """The FP32 output rows equal the native Classify of the same image files."""
        rows = ks.output_rows(response, output_index)
        native = ks.native_classify(self.server, [self.images.read(n) for n in image_names])
        self.assertEqual(rows.shape, (len(image_names), NUM_CLASSES))
        probabilities = ks.softmax(rows)
        for i, expected in enumerate(native):
            self.assertEqual(int(np.argmax(rows[i])), expected["top1"], image_names[i])
            np.testing.assert_allclose(rows[i], expected["scores"], atol=SCORE_TOLERANCE, rtol=0,
                                       err_msg=image_names[i])
            np.testing.assert_allclose(probabilities[i], expected["probabilities"], atol=PROBABILITY_TOLERANCE,
                                       rtol=0, err_msg=image_names[i])

    # --- health and metadata ---------------------------------------------------------------------------------

    def test_server_live_ready_and_metadata(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)
        metadata = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
        self.assertEqual(metadata.name, "cnnserve")
        self.assertRegex(metadata.version, r"^\d+\.\d+\.\d+")
        self.assertEqual(set(metadata.extensions), EXTENSIONS)

    def test_model_ready(self):
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=10).ready)
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name=MODEL, version="1"), timeout=10).ready)
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name=MODEL, version="7"), timeout=10).ready)
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name="no_such_model"), timeout=10).ready)
        e = call_error(self.stub.ModelReady, pb.ModelReadyRequest(name=MODEL, version="one"))
        self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("version 'one'", e.details())

    def test_model_metadata(self):
        metadata = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
        self.assertEqual(metadata.name, MODEL)
        self.assertIn("1", metadata.versions)
        self.assertEqual(metadata.platform, "onnx")
        self.assertEqual(len(metadata.inputs), 1)
        self.assertEqual(metadata.inputs[0].name, "input")
        self.assertEqual(metadata.inputs[0].datatype, "FP32")
        self.assertEqual(list(metadata.inputs[0].shape), [-1, 1, 32, 32])
        self.assertEqual(len(metadata.outputs), 1)
        self.assertEqual(metadata.outputs[0].datatype, "FP32")
        self.assertEqual(list(metadata.outputs[0].shape), [-1, NUM_CLASSES])
        e = call_error(self.stub.ModelMetadata, pb.ModelMetadataRequest(name="no_such_model"))
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
        e = call_error(self.stub.ModelMetadata, pb.ModelMetadataRequest(name=MODEL, version="9"))
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)

    def test_model_config(self):
        config = self.stub.ModelConfig(pb.ModelConfigRequest(name=MODEL), timeout=10).config
        self.assertEqual(config.name, MODEL)
        self.assertEqual(config.platform, "onnx")
        self.assertEqual(config.max_batch_size, 64)
        self.assertEqual(len(config.input), 1)
        self.assertEqual(config.input[0].name, "input")
        self.assertEqual(config.input[0].data_type, model_config_pb2.TYPE_FP32)
        self.assertEqual(config.input[0].format, model_config_pb2.ModelInput.FORMAT_NCHW)
        self.assertEqual(list(config.input[0].dims), [1, 32, 32])
        self.assertEqual(len(config.output), 1)
        metadata = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
        self.assertEqual(config.output[0].name, metadata.outputs[0].name)
        self.assertEqual(config.output[0].data_type, model_config_pb2.TYPE_FP32)
        self.assertEqual(list(config.output[0].dims), [NUM_CLASSES])
        self.assertEqual(config.output[0].label_filename, "labels.txt")
        self.assertEqual(len(config.instance_group), 1)
        self.assertEqual(config.instance_group[0].count, 1)
        self.assertEqual(config.instance_group[0].kind, model_config_pb2.ModelInstanceGroup.KIND_CPU)
        self.assertEqual(list(config.dynamic_batching.preferred_batch_size), [8, 32])
        self.assertEqual(config.dynamic_batching.max_queue_delay_microseconds, 500)
        e = call_error(self.stub.ModelConfig, pb.ModelConfigRequest(name="no_such_model"))
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)

    def test_repository_index(self):
        index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
        rows = [(m.name, m.version, m.state) for m in index.models]
        self.assertIn((MODEL, "1", "READY"), rows)
        ready = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10)
        self.assertTrue(all(m.state == "READY" for m in ready.models))
        self.assertIn(MODEL, [m.name for m in ready.models])

    # --- inference -------------------------------------------------------------------------------------------

    def test_infer_raw_fp32_matches_native(self):
        tensors = [self.images.tensor(n) for n in self.pngs]
        response = self.infer(ks.fp32_request(tensors, request_id="raw-fp32"))
        self.assertEqual(response.model_name, MODEL)
        self.assertEqual(response.model_version, "1")
        self.assertEqual(response.id, "raw-fp32")
        self.assertEqual(len(response.outputs), 1)
        self.assertEqual(list(response.outputs[0].shape), [len(self.pngs), NUM_CLASSES])
        self.assert_matches_native(response, self.pngs)

    def test_infer_fp32_contents_matches_native(self):
        names = self.pngs[:3]
        batch = np.stack([self.images.tensor(n) for n in names]).astype(np.float32)
        request = ks.infer_request(datatype="FP32", shape=batch.shape, version="1")
        request.inputs[0].contents.fp32_contents.extend(batch.ravel().tolist())
        self.assert_matches_native(self.infer(request), names)

    def test_infer_uint8_matches_native(self):
        for channels in (1, 3):
            pixels = np.stack([self.images.pixels(n, channels) for n in self.pngs])
            self.assertEqual(pixels.shape, (len(self.pngs), 28, 28, channels))
            request = ks.infer_request(datatype="UINT8", shape=pixels.shape, raw=pixels.tobytes())
            self.assert_matches_native(self.infer(request), self.pngs)
        # Typed: uint_contents, one value per pixel.
        pixels = self.images.pixels(self.pngs[0], 1)[np.newaxis]
        request = ks.infer_request(datatype="UINT8", shape=pixels.shape)
        request.inputs[0].contents.uint_contents.extend(pixels.ravel().tolist())
        self.assert_matches_native(self.infer(request), self.pngs[:1])

    def test_infer_bytes_matches_native(self):
        names = self.pngs[:4] + self.jpgs
        encoded = [self.images.read(n) for n in names]
        raw = ks.infer_request(datatype="BYTES", shape=[len(encoded)], raw=ks.frame_bytes(encoded))
        self.assert_matches_native(self.infer(raw), names)
        typed = ks.infer_request(datatype="BYTES", shape=[len(encoded), 1])
        typed.inputs[0].contents.bytes_contents.extend(encoded)
        self.assert_matches_native(self.infer(typed), names)

    def test_classification_output(self):
        names = self.pngs[:3] + self.jpgs[:2]
        encoded = [self.images.read(n) for n in names]
        output_name = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10).outputs[0].name
        native = ks.native_classify(self.server, encoded)
        for k, expected_k in ((3, 3), (1, 1), (25, NUM_CLASSES)):
            request = ks.infer_request(datatype="BYTES", shape=[len(encoded)], raw=ks.frame_bytes(encoded),
                                       outputs=[(output_name, k)])
            response = self.infer(request)
            self.assertEqual(response.outputs[0].name, output_name)
            self.assertEqual(list(response.outputs[0].shape), [len(names), expected_k])
            rows = ks.classification_rows(response)
            for i, row in enumerate(rows):
                self.assertEqual([index for _, index, _ in row], native[i]["order"][:expected_k], names[i])
                for score, index, label in row:
                    self.assertEqual(label, native[i]["labels"][index])
                    self.assertAlmostEqual(score, native[i]["scores"][index], delta=SCORE_TOLERANCE)
        # The same output without the parameter is the FP32 tensor.
        plain = self.infer(ks.infer_request(datatype="BYTES", shape=[1], raw=ks.frame_bytes(encoded[:1]),
                                            outputs=[(output_name, None)]))
        self.assertEqual(plain.outputs[0].datatype, "FP32")

    def test_stream_infer_answers_every_request_with_its_id(self):
        tensors = [self.images.tensor(n) for n in self.pngs]
        requests = []
        for i in range(6):
            requests.append(ks.fp32_request(tensors[i:i + 2], request_id="s%d" % i))
        bad = ks.infer_request(datatype="INT32", shape=[1, 1, 32, 32], raw=bytes(4096), request_id="bad")
        requests.insert(3, bad)
        responses = list(self.stub.ModelStreamInfer(iter(requests), timeout=120))
        self.assertEqual(len(responses), len(requests))
        by_id = {r.infer_response.id: r for r in responses}
        self.assertEqual(set(by_id), {r.id for r in requests})
        self.assertIn("INVALID_ARGUMENT", by_id["bad"].error_message)
        self.assertIn("datatype 'INT32' is not supported", by_id["bad"].error_message)
        for i in range(6):
            response = by_id["s%d" % i]
            self.assertEqual(response.error_message, "")
            self.assert_matches_native(response.infer_response, self.pngs[i:i + 2])
        # The stream keeps working after the bad request, and unary calls too.
        self.assert_matches_native(self.infer(ks.fp32_request(tensors[:1])), self.pngs[:1])

    def test_errors_that_are_not_invalid_argument(self):
        tensors = [self.images.tensor(self.pngs[0])]
        e = call_error(self.stub.ModelInfer, ks.fp32_request(tensors, model="no_such_model"))
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("no_such_model", e.details())
        e = call_error(self.stub.ModelInfer, ks.fp32_request(tensors, version="5"))
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
        # The default --model-control-mode none refuses model control whatever the name.
        e = call_error(self.stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="no_such_model"))
        self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("--model-control-mode none", e.details())
        e = call_error(self.stub.ModelStatistics, pb.ModelStatisticsRequest(name="no_such_model"))
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)

    def test_malformed_requests_are_invalid_argument_and_the_server_keeps_serving(self):
        tensor = self.images.tensor(self.pngs[0])
        good_raw = np.ascontiguousarray(tensor[np.newaxis].astype("<f4")).tobytes()
        png = self.images.read(self.pngs[0])
        output_name = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10).outputs[0].name

        def typed_and_raw():
            r = ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32], raw=good_raw)
            r.inputs[0].contents.fp32_contents.extend([0.0] * 1024)
            return r

        def no_input():
            return pb.ModelInferRequest(model_name=MODEL)

        def two_inputs():
            r = ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32], raw=good_raw)
            second = r.inputs.add(name="extra", datatype="FP32")
            second.shape.extend([1, 1, 32, 32])
            r.raw_input_contents.append(good_raw)
            return r

        def short_fp32_contents():
            r = ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32])
            r.inputs[0].contents.fp32_contents.extend([0.0] * 1000)
            return r

        def fp32_in_int_contents():
            r = ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32])
            r.inputs[0].contents.int_contents.extend([0] * 1024)
            return r

        def bad_classification():
            r = ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32], raw=good_raw)
            out = r.outputs.add(name=output_name)
            out.parameters["classification"].string_param = "three"
            return r

        catalogue = [
            ("wrong datatype", ks.infer_request(datatype="FP64", shape=[1, 1, 32, 32], raw=bytes(8192)),
             ["input 'input'", "datatype 'FP64' is not supported", "FP32 [N,1,32,32]"]),
            ("shape mismatch", ks.infer_request(datatype="FP32", shape=[1, 3, 32, 32], raw=bytes(3 * 4096)),
             ["input 'input'", "FP32 shape [1,3,32,32] does not match the model's FP32 [N,1,32,32]"]),
            ("shape without batch", ks.infer_request(datatype="FP32", shape=[1, 32, 32], raw=good_raw),
             ["FP32 shape [1,32,32] does not match the model's FP32 [N,1,32,32]"]),
            ("byte size mismatch", ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32], raw=good_raw[:-4]),
             ["input 'input'", "raw_input_contents[0] holds 4092 bytes", "FP32 [1,1,32,32] needs 4096"]),
            ("byte size of two images", ks.infer_request(datatype="FP32", shape=[2, 1, 32, 32], raw=good_raw),
             ["holds 4096 bytes", "FP32 [2,1,32,32] needs 8192"]),
            ("element count mismatch", short_fp32_contents(),
             ["contents.fp32_contents has 1000 values", "FP32 [1,1,32,32] needs 1024"]),
            ("wrong typed field", fp32_in_int_contents(),
             ["datatype FP32 takes its values in contents.fp32_contents", "not in contents.int_contents"]),
            ("raw and typed contents mixed", typed_and_raw(),
             ["input 'input'", "both raw_input_contents and contents.fp32_contents are set"]),
            ("missing input", no_input(), ["missing input 'input'"]),
            ("unknown input name", ks.infer_request(name="image", datatype="FP32", shape=[1, 1, 32, 32],
                                                    raw=good_raw),
             ["unknown input 'image'", "missing input 'input'"]),
            ("two inputs", two_inputs(), ["takes exactly one input, 'input'", "'input', 'extra'"]),
            ("unknown output name", ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32], raw=good_raw,
                                                     outputs=[("probabilities", None)]),
             ["unknown output 'probabilities' requested"]),
            ("classification k 0", ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32], raw=good_raw,
                                                    outputs=[(output_name, 0)]),
             ["parameter 'classification' is 0; it must be >= 1"]),
            ("classification not an integer", bad_classification(),
             ["parameter 'classification' must be an int64_param >= 1"]),
            ("negative dimension", ks.infer_request(datatype="FP32", shape=[-1, 1, 32, 32], raw=good_raw),
             ["negative dimension"]),
            ("batch over the limit", ks.infer_request(datatype="FP32", shape=[257, 1, 32, 32],
                                                      raw=good_raw * 257),
             ["batch size 257", "exceeds the limit of 256 images per request"]),
            ("UINT8 channels", ks.infer_request(datatype="UINT8", shape=[1, 28, 28, 2], raw=bytes(28 * 28 * 2)),
             ["UINT8 shape [1,28,28,2] is not [N,H,W,C]"]),
            ("UINT8 byte size", ks.infer_request(datatype="UINT8", shape=[1, 28, 28, 1], raw=bytes(700)),
             ["raw_input_contents[0] holds 700 bytes; UINT8 [1,28,28,1] needs 784"]),
            ("BYTES length beyond the data", ks.infer_request(datatype="BYTES", shape=[1],
                                                              raw=ks.frame_bytes([png])[:-10]),
             ["BYTES element 0 declares %d bytes but only %d remain" % (len(png), len(png) - 10)]),
            ("BYTES element count", ks.infer_request(datatype="BYTES", shape=[2], raw=ks.frame_bytes([png])),
             ["holds 1 BYTES element(s); shape [2] needs 2"]),
            ("BYTES not an image", ks.infer_request(datatype="BYTES", shape=[1],
                                                    raw=ks.frame_bytes([b"this is not a picture"])),
             ["input 'input'[0]"]),
            ("non-numeric version", ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32], raw=good_raw,
                                                     version="latest"),
             ["model_version 'latest'"]),
        ]

        for what, request, parts in catalogue:
            with self.subTest(what):
                e = call_error(self.stub.ModelInfer, request)
                self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT, "%s: %s" % (what, e.details()))
                for part in parts:
                    self.assertIn(part, e.details(), what)
                # Still serving after each one.
                ok = self.infer(ks.infer_request(datatype="FP32", shape=[1, 1, 32, 32], raw=good_raw))
                self.assertEqual(len(ok.raw_output_contents), 1)
        self.assertTrue(self.server.running())
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)

    # --- statistics ------------------------------------------------------------------------------------------

    def statistics(self, version=""):
        response = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL, version=version), timeout=10)
        self.assertEqual(len(response.model_stats), 1)
        return response.model_stats[0]

    def test_statistics_count_exactly(self):
        before = self.statistics()
        self.assertEqual(before.name, MODEL)
        self.assertEqual(before.version, "1")
        sizes = [1, 2, 3, 5]
        tensors = [self.images.tensor(n) for n in self.pngs]
        for size in sizes:
            self.infer(ks.fp32_request(tensors[:size]))
        bad = ks.infer_request(datatype="BYTES", shape=[1], raw=ks.frame_bytes([b"not an image"]))
        self.assertEqual(call_error(self.stub.ModelInfer, bad).code(), grpc.StatusCode.INVALID_ARGUMENT)
        after = self.statistics("1")
        images = sum(sizes)
        self.assertEqual(after.inference_count - before.inference_count, images)
        self.assertEqual(after.inference_stats.success.count - before.inference_stats.success.count, len(sizes))
        self.assertGreater(after.inference_stats.success.ns, before.inference_stats.success.ns)
        self.assertEqual(after.inference_stats.fail.count - before.inference_stats.fail.count, 1)
        executions = after.execution_count - before.execution_count
        self.assertGreaterEqual(executions, 1)
        self.assertLessEqual(executions, len(sizes))
        self.assertGreaterEqual(after.last_inference, before.last_inference)
        self.assertGreater(after.last_inference, 1_600_000_000_000)  # milliseconds since the epoch

        def batched(stats):
            return (sum(b.batch_size * b.compute_infer.count for b in stats.batch_stats),
                    sum(b.compute_infer.count for b in stats.batch_stats))

        images_before, batches_before = batched(before)
        images_after, batches_after = batched(after)
        self.assertEqual(images_after - images_before, images)
        self.assertEqual(batches_after - batches_before, executions)
        self.assertEqual(after.inference_stats.compute_infer.count - before.inference_stats.compute_infer.count,
                         executions)
        every = self.stub.ModelStatistics(pb.ModelStatisticsRequest(), timeout=10)
        self.assertIn(MODEL, [s.name for s in every.model_stats])


class RepositoryTest(unittest.TestCase):
    """Load and unload on a repository of two copies of the model and an ensemble of them."""

    ENSEMBLE = """name: "vote"
platform: "ensemble"
ensemble {
  members { model: "lenet_a" }
  members { model: "lenet_b" }
  strategy: SOFT_MEAN
}
"""

    @classmethod
    def setUpClass(cls):
        cls.repository = ks.make_repository({"lenet_a": None, "lenet_b": None, "vote": cls.ENSEMBLE})
        cls.server = ks.Server(["--model-repository", cls.repository, "--metrics-address", "127.0.0.1:0",
                                "--model-control-mode", "explicit"])
        cls.stub = cls.server.kserve
        cls.images = ks.TestImages()
        cls.pngs = cls.images.files(".png", 4)

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        shutil.rmtree(cls.repository, ignore_errors=True)
        assert code == 0, "cnnserve exited with %s; its log:\n%s" % (code, cls.server.log())

    def request(self, model):
        tensors = [self.images.tensor(n) for n in self.pngs]
        return ks.fp32_request(tensors, model=model)

    def ready(self, model):
        return self.stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=10).ready

    def test_unload_and_load_without_disturbing_the_other_model(self):
        expected = ks.output_rows(self.stub.ModelInfer(self.request("lenet_b"), timeout=60))
        failures = []
        served = [0]
        stop = threading.Event()

        def traffic():
            while not stop.is_set():
                try:
                    rows = ks.output_rows(self.stub.ModelInfer(self.request("lenet_b"), timeout=60))
                    if not np.allclose(rows, expected, atol=1e-5):
                        failures.append("different result")
                    served[0] += 1
                except grpc.RpcError as e:
                    failures.append("%s: %s" % (e.code(), e.details()))

        thread = threading.Thread(target=traffic)
        thread.start()
        try:
            time.sleep(0.2)
            self.assertTrue(self.ready("lenet_a"))
            self.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="lenet_a"), timeout=60)
            self.assertFalse(self.ready("lenet_a"))
            # Strict readiness: a model of the repository is unavailable.
            self.assertFalse(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)
            e = call_error(self.stub.ModelInfer, self.request("lenet_a"))
            self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE, e.details())
            index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
            states = {(m.name, m.state) for m in index.models}
            self.assertIn(("lenet_a", "UNAVAILABLE"), states)
            self.assertIn(("lenet_b", "READY"), states)
            self.assertTrue(self.ready("lenet_b"))

            self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="lenet_a"), timeout=300)
            self.assertTrue(self.ready("lenet_a"))
            self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)
            rows = ks.output_rows(self.stub.ModelInfer(self.request("lenet_a"), timeout=60))
            np.testing.assert_allclose(rows, expected, atol=1e-5)
            time.sleep(0.2)
        finally:
            stop.set()
            thread.join()
        self.assertEqual(failures, [])
        self.assertGreater(served[0], 0)

    def test_ensemble_is_served_like_a_model(self):
        index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
        reasons = [m.reason for m in index.models if m.name == "vote"]
        if reasons and "not served by this server yet" in reasons[0]:
            self.skipTest("InferenceService does not serve ensembles yet: " + reasons[0])
        self.assertTrue(self.ready("vote"), reasons)
        metadata = self.stub.ModelMetadata(pb.ModelMetadataRequest(name="vote"), timeout=10)
        self.assertEqual(metadata.platform, "ensemble")
        self.assertEqual(list(metadata.inputs[0].shape), [-1, 1, 32, 32])
        encoded = [self.images.read(n) for n in self.pngs]
        native = ks.native_classify(self.server, encoded, model="vote")
        request = ks.infer_request(model="vote", datatype="BYTES", shape=[len(encoded)],
                                   raw=ks.frame_bytes(encoded), outputs=[(metadata.outputs[0].name, 3)])
        rows = ks.classification_rows(self.stub.ModelInfer(request, timeout=60))
        for i, row in enumerate(rows):
            self.assertEqual([index for _, index, _ in row], native[i]["order"][:3])
        tensor = self.stub.ModelInfer(ks.fp32_request([self.images.tensor(n) for n in self.pngs], model="vote"),
                                      timeout=60)
        scores = ks.output_rows(tensor)
        for i in range(len(self.pngs)):
            self.assertEqual(int(np.argmax(scores[i])), native[i]["top1"])
            np.testing.assert_allclose(scores[i], native[i]["scores"], atol=1e-5)
        stats = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name="vote"), timeout=10)
        self.assertEqual(len(stats.model_stats), 1)
        self.assertGreaterEqual(stats.model_stats[0].inference_stats.success.count, 2)
        if self.server.metrics_url:
            _, samples, types = ks.scrape(self.server.metrics_url)
            self.assertEqual(types.get("cnnserve_ensemble_agreement"), "histogram")
            count = ks.sample(samples, "cnnserve_ensemble_agreement_count", model="vote",
                              version=stats.model_stats[0].version)
            self.assertIsNotNone(count)
            self.assertGreaterEqual(count, 2 * len(self.pngs))


if __name__ == "__main__":
    unittest.main(verbosity=2)
