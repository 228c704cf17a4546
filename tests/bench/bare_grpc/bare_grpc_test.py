#!/usr/bin/python3
"""bench/bare_grpc's server answers cnnload's requests, and with --decode it really decodes them.

    bare_grpc_test.py BARE_GRPC_SERVER CNNLOAD IMAGE_SEED

IMAGE_SEED: a PNG seed of the image-input fuzz corpus (a selector byte, then the file). Without --decode, the server
answers every request OK, a truncated PNG as well (it looks at nothing); with --decode it answers the whole PNG OK
and the truncated one INVALID_ARGUMENT (cnnserve's PrepareItem found the missing end), and a bad --input-shape
for --decode is refused at start-up. Batches of raw tensors (`cnnload --synthetic --batch 4`, one tensor of shape
[4, C, H, W] per request) get one result per image, which cnnload checks. Prints "ok" when every check holds.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

REQUESTS = 20


def start(server, *flags):
    proc = subprocess.Popen([server, "--address", "127.0.0.1:0", *flags], stdout=subprocess.PIPE, text=True)
    m = re.match(r"bare_grpc_server listening on (\S+)", proc.stdout.readline())
    if not m:
        proc.kill()
        sys.exit("bare_grpc_server %s did not start" % " ".join(flags))
    return proc, m.group(1)


def outcome(cnnload, address, image, *flags):
    """(OK answers, {code: count}) of REQUESTS requests of `image` (None: --synthetic)."""
    inputs = ["--images", image] if image else ["--synthetic"]
    out = subprocess.run([cnnload, "--server", address, "--model", "m", *inputs, *flags, "--requests",
                          str(REQUESTS), "--warmup", "0", "--json", "--quiet"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit("cnnload failed: " + out.stderr.strip())
    row = json.loads(out.stdout)["rows"][0]
    return row["ok_requests"], row.get("errors", {})


def main():
    server, cnnload, seed = sys.argv[1:4]
    failures = []
    with tempfile.TemporaryDirectory(prefix="bare-grpc-test-") as work:
        png = open(seed, "rb").read()[1:]
        whole, truncated = os.path.join(work, "whole.png"), os.path.join(work, "truncated.png")
        open(whole, "wb").write(png)
        open(truncated, "wb").write(png[:len(png) - 20])  # loses IEND
        expected = {
            (): {whole: (REQUESTS, {}), truncated: (REQUESTS, {})},
            ("--decode",): {whole: (REQUESTS, {}), truncated: (0, {"INVALID_ARGUMENT": REQUESTS})},
        }
        for flags, cases in expected.items():
            proc, address = start(server, *flags)
            try:
                for image, want in cases.items():
                    got = outcome(cnnload, address, image)
                    if got != want:
                        failures.append("%s %s: got %s, want %s" % (" ".join(flags) or "(no flags)",
                                                                    os.path.basename(image), got, want))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        proc, address = start(server, "--input-shape", "3,8,8")
        try:
            for batch in ("1", "4"):
                got = outcome(cnnload, address, None, "--batch", batch)
                if got != (REQUESTS, {}):
                    failures.append("--synthetic --batch %s: got %s, want %s" % (batch, got, (REQUESTS, {})))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    bad = subprocess.run([server, "--decode", "--input-shape", "1,0,32"], capture_output=True, text=True, timeout=30)
    if bad.returncode != 2 or "--input-shape" not in bad.stderr:
        failures.append("--decode --input-shape 1,0,32: exit %d, stderr %r" % (bad.returncode, bad.stderr))
    for failure in failures:
        print("FAIL " + failure)
    if failures:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
