#!/usr/bin/env python3
"""Tests of tools/scripts/check_sizes.py: the scanner on tricky C++ and the limits on planted trees."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "scripts")
SCRIPT = os.path.join(SCRIPTS, "check_sizes.py")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, SCRIPTS)
import check_sizes  # noqa: E402


def functions(source):
    """{name: (name line, body lines)} of the definitions the scanner finds in the source."""
    found = check_sizes.find_functions(check_sizes.strip_code(textwrap.dedent(source).lstrip("\n")))
    return {name: (name_line, close - open_ + 1) for name, name_line, open_, close in found}


def run(root, *args):
    return subprocess.run([sys.executable, SCRIPT, "--root", root, *args], capture_output=True, text=True,
                          timeout=60)


class StripTest(unittest.TestCase):
    def test_keeps_every_line_and_blanks_literals_and_comments(self):
        source = 'int a = 1; // { one\nconst char* s = "}{\\"{";\n/* {\n } */ char c = \'{\';\n'
        clean = check_sizes.strip_code(source)
        self.assertEqual(clean.count("\n"), source.count("\n"))
        self.assertEqual(len(clean), len(source))
        self.assertNotIn("{", clean)
        self.assertNotIn("}", clean)
        self.assertIn('s = ""', clean)
        self.assertIn("c = ''", clean)

    def test_raw_string_ends_at_its_own_delimiter(self):
        clean = check_sizes.strip_code('auto s = R"x(a { )" } \n )x"; int b;\n')
        self.assertEqual(clean.count("\n"), 2)
        self.assertNotIn("{", clean)
        self.assertIn("int b;", clean)

    def test_digit_separators_are_not_character_literals(self):
        clean = check_sizes.strip_code("int n = 1'000'000; char c = '{'; int m = 0x1'F;\n")
        self.assertIn("1'000'000", clean)
        self.assertIn("c = ''", clean)
        self.assertIn("0x1'F", clean)
        self.assertNotIn("{", clean)

    def test_preprocessor_lines_and_continuations_are_blank(self):
        clean = check_sizes.strip_code("#define OPEN(x) { \\\n  x; \\\n }\nint a;\n  #  if 1\nint b;\n")
        self.assertEqual([line.strip() for line in clean.split("\n")], ["", "", "", "int a;", "", "int b;", ""])


class FunctionTest(unittest.TestCase):
    def test_lengths_run_from_opening_to_closing_brace(self):
        found = functions("""
            int Add(int a,
                    int b) {
              return a + b;
            }
            void Empty() {}
            """)
        self.assertEqual(found, {"Add": (1, 3), "Empty": (5, 1)})

    def test_braces_in_literals_comments_and_directives_do_not_count(self):
        found = functions(r'''
            const char* Text() {
              const char* a = "}}}";  // }
              char b = '}';
              /* } */
            #define CLOSE }
              return R"raw(}
            )")raw";
            }
            int After() { return 1; }
            ''')
        self.assertEqual(found, {"Text": (1, 8), "After": (9, 1)})

    def test_lambdas_and_local_classes_count_toward_their_function(self):
        found = functions("""
            void Outer() {
              auto f = [](int x) {
                return x;
              };
              struct Local {
                int Get() { return 1; }
              };
            }
            """)
        self.assertEqual(found, {"Outer": (1, 8)})

    def test_namespaces_classes_and_inline_methods(self):
        found = functions("""
            namespace a::b {
            namespace {
            int Hidden() { return 0; }
            }  // namespace
            template <typename T, typename = std::enable_if_t<(sizeof(T) > 4)>>
            class Box : public Base<decltype(Hidden())> {
             public:
              explicit Box(T v) : value_{v}, other_(v), list_{{1}, {2}} {
                Check();
              }
              ~Box() override = default;
              bool operator==(const Box& o) const noexcept(true) { return value_ == o.value_; }
              T operator()() const { return value_; }
              auto Get() const -> const T& {
                return value_;
              }
              struct Inner {
                void Run() {}
              };
             private:
              T value_{};
              std::function<void()> hook_ = [] {
                Hook();
              };
            };
            template <typename T>
            Box<T>::Inner* Box<T>::Make(std::vector<int> v = {1, 2}) {
              return nullptr;
            }
            Box<int>::~Box() {
            }
            }  // namespace a::b
            """)
        self.assertEqual(found, {
            "Hidden": (3, 1), "Box": (8, 3), "operator==": (12, 1), "operator()": (13, 1), "Get": (14, 3),
            "Run": (18, 1), "hook_": (22, 3), "Box<T>::Make": (27, 3), "Box<int>::~Box": (30, 2)})

    def test_initializers_enums_and_extern_blocks(self):
        found = functions("""
            const int kTable[] = {1, 2, 3};
            const std::map<int, int> kMap{{1, 2}};
            enum class Kind : int { kA = 1, kB = sizeof(int) };
            struct Point { int x; int y; } kOrigin = {0, 0};
            extern "C" {
            int CEntry(void) { return 0; }
            }
            struct Point* MakePoint() {
              return nullptr;
            }
            const auto kSquare = [](int x) { return x * x; };
            const auto kAdd = [base = Base{2}](int x) {
              return x + base.v;
            };
            template <int N = (1 > 0)>
            struct Fixed {
              int Size() const { return N; }
            };
            """)
        self.assertEqual(found, {"CEntry": (6, 1), "MakePoint": (8, 3), "kSquare": (11, 1), "kAdd": (12, 3),
                                 "Size": (17, 1)})


class TreeTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="check_sizes_test_")
        self.addCleanup(shutil.rmtree, self.root)

    def write(self, path, text):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)

    def function_of(self, name, body_lines):
        return f"int {name}() {{\n" + "  ++n;\n" * (body_lines - 2) + "}\n"

    def test_within_the_limits_passes(self):
        self.write("engine/common/ok.cc", self.function_of("Fits", 120) + "// x\n" * 679)
        self.write("tests/engine/huge_test.cc", self.function_of("HugeTest", 500) + "// x\n" * 1000)
        result = run(self.root)
        self.assertEqual((result.returncode, result.stdout), (0, ""), result.stderr)

    def test_oversize_file_and_function_fail_with_their_lines(self):
        self.write("server/service/big.cc", "// x\n" * 801)
        self.write("models/onnx/long.cc", "// header\n\n" + self.function_of("TooLong", 121))
        self.write("bench/fine.cc", self.function_of("Fine", 120))
        result = run(self.root)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertEqual(result.stdout.splitlines(), [
            "models/onnx/long.cc:3: function TooLong is 121 lines (limit 120)",
            "server/service/big.cc:1: file is 801 lines (limit 800)"])

    def test_bad_root_is_a_usage_error(self):
        result = run(os.path.join(self.root, "missing"))
        self.assertEqual(result.returncode, 2)
        self.assertIn("is not a directory", result.stderr)


if __name__ == "__main__":
    unittest.main()
