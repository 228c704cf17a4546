#!/usr/bin/python3
"""Prometheus metrics of a live cnnserve, scraped over HTTP (urllib) after a known number of requests: the
counts must match exactly, and agree with the KServe ModelStatistics of the same moment.

Also: --metrics-address none serves no metrics, and an explicit address that cannot be bound stops start-up.
Run through ctest (tests/integration/CMakeLists.txt sets the environment kserve_support.py reads).
"""

import os
import socket
import subprocess
import unittest
import urllib.error
import urllib.request

import kserve_support as ks
from kserve_support import MODEL, classifier_pb2, grpc, pb

COUNTERS = ["cnnserve_request_success_total", "cnnserve_request_failure_total", "cnnserve_inference_count_total",
            "cnnserve_execution_count_total", "cnnserve_inline_execution_count_total",
            "cnnserve_queue_duration_seconds_total",
            "cnnserve_preprocess_duration_seconds_total", "cnnserve_compute_input_duration_seconds_total",
            "cnnserve_compute_infer_duration_seconds_total", "cnnserve_compute_output_duration_seconds_total"]
BATCH_BOUNDS = ["1", "2", "4", "8", "16", "32", "64", "128", "+Inf"]


def repository():
    return os.path.join(ks.env("CNNSERVE_SOURCE_DIR"), "models", "repository")


class MetricsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = ks.Server(["--model-repository", repository(), "--metrics-address", "127.0.0.1:0"])
        cls.images = ks.TestImages()
        cls.pngs = cls.images.files(".png", 8)

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        assert code == 0, "cnnserve exited with %s; its log:\n%s" % (code, cls.server.log())

    def model_stats(self):
        response = self.server.kserve.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL), timeout=10)
        self.assertEqual(len(response.model_stats), 1)
        return response.model_stats[0]

    def test_the_endpoint_and_the_metric_names(self):
        url = self.server.metrics_url
        self.assertRegex(url, r"^http://127\.0\.0\.1:\d+/metrics$")
        text, samples, types = ks.scrape(url)
        for name in COUNTERS:
            self.assertEqual(types.get(name), "counter", name)
            self.assertIsNotNone(ks.sample(samples, name), name)
        self.assertNotIn("_total_total", text)
        self.assertEqual(types.get("cnnserve_queue_depth"), "gauge")
        self.assertEqual(types.get("cnnserve_batch_size"), "histogram")
        for le in BATCH_BOUNDS:
            self.assertIsNotNone(ks.sample(samples, "cnnserve_batch_size_bucket", le=le), le)
        # Only /metrics.
        with self.assertRaises(urllib.error.HTTPError):
            urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)

    def test_counts_match_exactly_after_known_requests(self):
        _, before, _ = ks.scrape(self.server.metrics_url)
        stats_before = self.model_stats()
        tensors = [self.images.tensor(n) for n in self.pngs]
        encoded = [self.images.read(n) for n in self.pngs]

        # Known traffic: 4 KServe requests of 1, 2, 3 and 8 images, 2 native requests of 4 and 1 images, 2 requests
        # that fail inside the model's Run (undecodable images), 1 rejected before it reaches the model.
        sizes = [1, 2, 3, 8]
        for size in sizes:
            self.server.kserve.ModelInfer(ks.fp32_request(tensors[:size]), timeout=60)
        native_sizes = [4, 1]
        for size in native_sizes:
            request = classifier_pb2.ClassifyRequest(model=MODEL)
            for image in encoded[:size]:
                request.inputs.add(image=image)
            self.server.native.Classify(request, timeout=60)
        failing = 2
        for _ in range(failing):
            bad = ks.infer_request(datatype="BYTES", shape=[1], raw=ks.frame_bytes([b"no image here"]))
            with self.assertRaises(grpc.RpcError):
                self.server.kserve.ModelInfer(bad, timeout=60)
        rejected = ks.infer_request(datatype="FP64", shape=[1, 1, 32, 32], raw=bytes(8192))
        with self.assertRaises(grpc.RpcError):
            self.server.kserve.ModelInfer(rejected, timeout=60)

        text, after, _ = ks.scrape(self.server.metrics_url)
        stats_after = self.model_stats()

        def delta(name, **labels):
            a = ks.sample(after, name, **labels)
            b = ks.sample(before, name, **labels)
            self.assertIsNotNone(a, name)
            self.assertIsNotNone(b, name)
            return a - b

        requests = len(sizes) + len(native_sizes)
        images = sum(sizes) + sum(native_sizes)
        self.assertEqual(delta("cnnserve_request_success_total"), requests, text)
        self.assertEqual(delta("cnnserve_request_failure_total"), failing, text)
        self.assertEqual(delta("cnnserve_inference_count_total"), images, text)
        executions = delta("cnnserve_execution_count_total")
        self.assertGreaterEqual(executions, 1)
        self.assertLessEqual(executions, requests)
        self.assertEqual(delta("cnnserve_batch_size_count"), executions)
        # Some of those ran to completion on the receiving thread (how many depends on timing: a request that finds
        # the model idle and its plan under --max-inline-run-us).
        inline = delta("cnnserve_inline_execution_count_total")
        self.assertGreaterEqual(inline, 0)
        self.assertLessEqual(inline, executions)
        self.assertEqual(delta("cnnserve_batch_size_sum"), images)
        self.assertEqual(delta("cnnserve_batch_size_bucket", le="+Inf"), executions)
        self.assertGreater(delta("cnnserve_compute_infer_duration_seconds_total"), 0)
        self.assertGreater(delta("cnnserve_preprocess_duration_seconds_total"), 0)
        self.assertGreaterEqual(delta("cnnserve_queue_duration_seconds_total"), 0)
        self.assertEqual(ks.sample(after, "cnnserve_queue_depth"), 0)

        # The same numbers as ModelStatistics (nothing ran in between).
        self.assertEqual(ks.sample(after, "cnnserve_request_success_total"),
                         stats_after.inference_stats.success.count)
        self.assertEqual(ks.sample(after, "cnnserve_request_failure_total"),
                         stats_after.inference_stats.fail.count)
        self.assertEqual(ks.sample(after, "cnnserve_inference_count_total"), stats_after.inference_count)
        self.assertEqual(ks.sample(after, "cnnserve_execution_count_total"), stats_after.execution_count)
        self.assertAlmostEqual(ks.sample(after, "cnnserve_compute_infer_duration_seconds_total"),
                               stats_after.inference_stats.compute_infer.ns / 1e9, delta=1e-6)
        self.assertEqual(stats_after.inference_count - stats_before.inference_count, images)
        # The histogram's buckets are exact: cumulative counts of the batch sizes that ran.
        sizes_ran = {b.batch_size: b.compute_infer.count for b in stats_after.batch_stats}
        for le in BATCH_BOUNDS:
            bound = float("inf") if le == "+Inf" else float(le)
            expected = sum(count for size, count in sizes_ran.items() if size <= bound)
            self.assertEqual(ks.sample(after, "cnnserve_batch_size_bucket", le=le), expected, le)


class MetricsFlagTest(unittest.TestCase):

    def test_none_disables_the_endpoint(self):
        server = ks.Server(["--model-repository", repository(), "--metrics-address", "none"])
        try:
            self.assertIsNone(server.metrics_url)
            self.assertNotIn("cnnserve metrics on", server.stdout())
        finally:
            self.assertEqual(server.stop(), 0)

    def test_an_address_given_that_cannot_be_bound_stops_start_up(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            address = "127.0.0.1:%d" % busy.getsockname()[1]
            argv = [os.path.join(ks.env("CNNSERVE_BIN_DIR"), "cnnserve"), "--address", "127.0.0.1:0",
                    "--model-repository", repository(), "--metrics-address", address]
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 1, result.stderr.decode(errors="replace"))
        self.assertIn(address, result.stderr.decode(errors="replace"))
        self.assertNotIn(b"cnnserve listening on", result.stdout)

    def test_bad_flag_values_exit_two(self):
        binary = os.path.join(ks.env("CNNSERVE_BIN_DIR"), "cnnserve")
        for value in ["8002", "localhost", "127.0.0.1:99999"]:
            result = subprocess.run([binary, "--metrics-address", value], stdin=subprocess.DEVNULL,
                                    capture_output=True, timeout=30)
            self.assertEqual(result.returncode, 2, value)
            self.assertIn(b"--metrics-address", result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
