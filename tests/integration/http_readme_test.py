"""README.md's HTTP examples, run as written against a real cnnserve (--http-address 127.0.0.1:0).

The shell block after the `<!-- http-examples -->` marker in README.md's "HTTP" section is run by bash (-e,
pipefail) in the Fashion-MNIST test images' folder, with `localhost:8000` replaced by the server's address and
curl made to fail on an HTTP error (--fail-with-body). Its output must show the answers the examples promise.
"""

import os
import re
import subprocess
import unittest
import urllib.parse

import kserve_support as ks

MARKER = "<!-- http-examples -->"


def readme_examples():
    with open(os.path.join(ks.env("CNNSERVE_SOURCE_DIR"), "README.md")) as f:
        text = f.read()
    at = text.index(MARKER)
    match = re.compile(r"```sh\n(.*?)```", re.S).search(text, at)
    assert match, "no ```sh block after " + MARKER
    return match.group(1)


class ReadmeHttpExamplesTest(unittest.TestCase):
    def test_examples_run(self):
        script = readme_examples()
        self.assertIn("curl", script)
        server = ks.Server(["--http-address", "127.0.0.1:0", "--metrics-address", "none"])
        try:
            address = urllib.parse.urlparse(server.http_url).netloc
            prelude = 'curl() { command curl --fail-with-body --max-time 60 "$@"; }\n'
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c",
                                     prelude + script.replace("localhost:8000", address)],
                                    cwd=ks.env("CNNSERVE_TESTDATA_DIR"), capture_output=True, text=True,
                                    timeout=300)
            self.assertEqual(result.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (result.stdout, result.stderr))
            out = result.stdout
            self.assertIn('{"ready":true}', out)
            self.assertIn('"Ankle boot"', out)          # fashion_00000.png, label 9, through /v1 and KServe
            self.assertIn('"agreement"', out)           # the ensemble's answer
            self.assertIn("receptive", out)             # the layer table
            self.assertIn(":9:Ankle boot", out)         # the classification extension
            self.assertIn('"model_stats"', out)
            self.assertNotIn('{"error":', out)  # no error answer (members carry an empty "error" field)
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
