"""What the source-tree checks (check_deps.py, check_sizes.py) share: which files they read and their --root."""

import argparse
import os
import sys

# The product's source folders; tests/ is not checked (tests may include anything and run long).
SCANNED_ROOTS = ("engine", "models", "server", "tools", "bench")
SOURCE_SUFFIXES = (".h", ".cc")


def source_files(root):
    """Root-relative paths (with "/") of every .h/.cc under SCANNED_ROOTS, in a stable order."""
    for top in SCANNED_ROOTS:
        for directory, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(SOURCE_SUFFIXES):
                    yield os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/")


def argument_parser(doc):
    """A parser with --root (default: the checkout this script is in), described by the doc's first paragraph."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    default_root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    parser.add_argument("--root", default=default_root, help="the source tree to check (default: this checkout)")
    return parser


def root_error(root):
    """A usage error for a --root that is not a directory, or None."""
    return None if os.path.isdir(root) else f"--root {root!r} is not a directory"


def report(tool, violations, what):
    """Prints the violations one a line (and a count on stderr); the exit status: 1 if there is any, else 0."""
    for line in violations:
        print(line)
    if not violations:
        return 0
    print(f"{tool}: {len(violations)} violation(s) of {what}", file=sys.stderr)
    return 1
