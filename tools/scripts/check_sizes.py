#!/usr/bin/env python3
"""Checks the size limits of DESIGN.md section 5.7: files of one idea, functions of one step.

Over every .h/.cc under engine/, models/, server/, tools/ and bench/ (tests/ is not checked):
  - no file over MAX_FILE_LINES lines;
  - no function body over MAX_FUNCTION_LINES lines, counted from the line of its opening brace to the line of its
    closing brace. Lambdas and local classes count toward the function they are written in.

The scanner blanks comments, string and character literals (raw strings included) and preprocessor lines, keeping
the line structure, then walks the braces: at namespace and class scope it classifies the text before each `{`
as a namespace, a class, a function (a parameter list, optional qualifiers, trailing return type or constructor
initializer list), a lambda assigned to a variable (named after the variable) or an initializer (skipped).

Prints one line per violation (`file:line: function NAME is N lines (limit 120)`, `file:1: file is N lines
(limit 800)`) and exits 1 if there is any. With --list, prints every function found with its length instead.
Python 3 standard library only.

    tools/scripts/check_sizes.py [--root DIR] [--list] [FILE...]
"""

import os
import re
import sys

from source_tree import argument_parser, report, root_error, source_files

MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 120

# ---- Blanking comments, literals and preprocessor lines --------------------------------------------------------

_IDENTIFIER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_RAW_PREFIXES = ("R", "u8R", "uR", "UR", "LR")


def _word_before(text, i):
    """The run of identifier characters (and '.' for numbers) that ends right before text[i]."""
    j = i
    while j > 0 and (text[j - 1] in _IDENTIFIER_CHARS or text[j - 1] == "."):
        j -= 1
    return text[j:i]


def _continued(text, newline):
    """True if the line that ends at text[newline] ends with a backslash (a line continuation)."""
    j = newline - 1
    if j >= 0 and text[j] == "\r":
        j -= 1
    return j >= 0 and text[j] == "\\"


def _blank(text, start, end):
    """text[start:end] with every character but newlines replaced by a space."""
    return "".join("\n" if c == "\n" else " " for c in text[start:end])


def _end_of_quoted(text, i, quote):
    """Index after the closing quote of the literal that opens at text[i]; stops at an unescaped newline."""
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            return j + 1
        if c == "\n":
            return j
        j += 1
    return len(text)


def strip_code(text):
    """The text with comments, literals and preprocessor lines blanked; every newline is kept.

    A string literal becomes `""` and a character literal `''` (followed by spaces for their former contents),
    so that `extern "C"` keeps its shape. Digit separators (1'000'000) stay code.
    """
    out = []
    i, n = 0, len(text)
    line_start = True  # only blanks since the last newline
    directive = False  # inside a preprocessor line (continued by a backslash)

    def emit(chunk):
        out.append(_blank(chunk, 0, len(chunk)) if directive else chunk)

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "\n":
            if directive and not _continued(text, i):
                directive = False
            out.append("\n")
            line_start = True
            i += 1
        elif c == "/" and nxt == "/":
            j = i
            while j < n:  # a line comment that ends with a backslash goes on to the next line
                k = text.find("\n", j)
                if k < 0:
                    j = n
                    break
                j = k
                if not _continued(text, k):
                    break
                j = k + 1
            out.append(_blank(text, i, j))
            i = j
        elif c == "/" and nxt == "*":
            k = text.find("*/", i + 2)
            j = n if k < 0 else k + 2
            out.append(_blank(text, i, j))
            i = j
        elif c == "#" and line_start:
            directive = True
            line_start = False
            out.append(" ")
            i += 1
        elif c == '"':
            word = _word_before(text, i)
            if word in _RAW_PREFIXES:
                open_paren = text.find("(", i + 1)
                delimiter = text[i + 1:open_paren] if open_paren >= 0 else ""
                k = text.find(")" + delimiter + '"', open_paren + 1) if open_paren >= 0 else -1
                j = n if k < 0 else k + len(delimiter) + 2
            else:
                j = _end_of_quoted(text, i, '"')
            literal = '""' + _blank(text, i + 2, j) if j - i >= 2 else _blank(text, i, j)
            emit(literal)
            line_start = False
            i = j
        elif c == "'":
            word = _word_before(text, i)
            if word[:1].isdigit() or (word[:1] == "." and word[1:2].isdigit()):
                emit(c)  # digit separator
                i += 1
            else:
                j = _end_of_quoted(text, i, "'")
                emit("''" + _blank(text, i + 2, j) if j - i >= 2 else _blank(text, i, j))
                i = j
            line_start = False
        else:
            if not c.isspace():
                line_start = False
            emit(c)
            i += 1
    return "".join(out)


# ---- Finding function definitions ------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"""
      (?P<ident>[A-Za-z_~][A-Za-z0-9_]*)
    | (?P<number>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.'])*)
    | (?P<literal>""|'')
    | (?P<punct>::|->|\.\.\.|.)
""", re.VERBOSE)
_CLASS_KEYWORDS = {"class", "struct", "union", "enum"}
# Tokens that may follow a parameter list before the body ("&&" arrives as two "&" tokens).
_TRAILING_QUALIFIERS = {"const", "volatile", "&", "noexcept", "override", "final", "mutable", "constexpr", "try"}
_NOT_FUNCTION_NAMES = {"if", "for", "while", "switch", "catch", "return", "sizeof", "decltype", "alignof",
                       "static_assert", "noexcept", "throw"}


class Token:
    __slots__ = ("text", "line")

    def __init__(self, text, line):
        self.text = text
        self.line = line

    def __repr__(self):
        return f"{self.text}@{self.line}"


def tokenize(clean):
    tokens = []
    for number, line in enumerate(clean.split("\n"), 1):
        for match in _TOKEN_RE.finditer(line):
            if not match.group().isspace():
                tokens.append(Token(match.group(), number))
    return tokens


def _merge_operators(head):
    """Joins `operator` and its symbol or conversion type into one token: operator==, operator(), operator bool."""
    merged = []
    i = 0
    while i < len(head):
        t = head[i]
        if t.text != "operator":
            merged.append(t)
            i += 1
            continue
        j = i + 1
        if j + 1 < len(head) and head[j].text == "(" and head[j + 1].text == ")":
            j += 2
        else:
            while j < len(head) and head[j].text != "(":
                j += 1
        merged.append(Token("operator" + "".join(x.text for x in head[i + 1:j]), t.line))
        i = j
    return merged


def _skip_group(head, i, open_text, close_text):
    """Index after the token that closes the group opening at head[i]; for <>, ignores what is inside ()."""
    depth = 0
    parens = 0
    while i < len(head):
        text = head[i].text
        if open_text == "<" and text in ("(", ")"):
            parens += 1 if text == "(" else -1
        elif parens == 0 and text == open_text:
            depth += 1
        elif parens == 0 and text == close_text:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _drop_attributes(head):
    """Drops [[...]], alignas(...), __attribute__((...)), __declspec(...), access labels and a leading template."""
    out = []
    i = 0
    while i < len(head):
        t = head[i].text
        nxt = head[i + 1].text if i + 1 < len(head) else ""
        if t == "[" and nxt == "[":
            i = _skip_group(head, i, "[", "]")
        elif t in ("alignas", "__attribute__", "__declspec") and nxt == "(":
            i = _skip_group(head, i + 1, "(", ")")
        elif t in ("public", "private", "protected") and nxt == ":":
            i += 2
        elif t == "template" and nxt == "<" and not out:
            i = _skip_group(head, i + 1, "<", ">")
        else:
            out.append(head[i])
            i += 1
    return out


def _depth0(head):
    """(index, token) pairs of the tokens outside () and [] groups of the head, and of the outermost brackets."""
    depth = 0
    for i, t in enumerate(head):
        if t.text in ("(", "["):
            if depth == 0:
                yield i, t
            depth += 1
        elif t.text in (")", "]"):
            depth -= 1
            if depth == 0:
                yield i, t
        elif depth == 0:
            yield i, t


def _qualified_name_before(head, end):
    """The (possibly qualified, templated) name that ends at head[end - 1], and its first token."""
    i = end - 1
    parts = []
    while i >= 0:
        t = head[i].text
        if t == ">" and parts and parts[-1] == "::":
            depth = 0
            while i >= 0:  # template arguments of a qualifier: Foo<T>::bar
                depth += {">": 1, "<": -1}.get(head[i].text, 0)
                parts.append(head[i].text)
                i -= 1
                if depth == 0:
                    break
            continue
        if t == "::" or re.match(r"[A-Za-z_~]", t):
            if parts and re.match(r"[A-Za-z_~]", t) and re.match(r"[A-Za-z_~]", parts[-1]):
                break  # two names in a row: the first is the return type
            parts.append(t)
            i -= 1
            continue
        break
    if not parts:
        return None, None
    return "".join(reversed(parts)), head[i + 1]


def classify(head):
    """What the `{` after this head opens: ("namespace"|"class"|"skip", None) or ("function", (name, token))."""
    head = _drop_attributes(_merge_operators(head))
    texts = [t.text for t in head]
    if not head:
        return "skip", None
    if texts[0] == "namespace" or texts[:2] == ["inline", "namespace"]:
        return "namespace", None
    if texts[0] == "extern" and len(texts) == 2 and texts[1] == '""':
        return "namespace", None
    top = list(_depth0(head))
    first_paren = next((i for i, t in top if t.text == "("), None)
    keyword = next((i for i, t in top if t.text in _CLASS_KEYWORDS), None)
    colon = next((i for i, t in top if t.text == ":"), None)
    if keyword is not None and (first_paren is None or (colon is not None and keyword < colon < first_paren)):
        return ("skip" if texts[keyword] == "enum" else "class"), None
    equals = next((i for i, t in top if t.text == "="), None)
    if equals is not None:
        if equals + 1 < len(head) and texts[equals + 1] == "[":
            name, token = _qualified_name_before(head, equals)
            return ("function", (name, token)) if name else ("skip", None)
        return "skip", None
    # A function: cut the constructor initializer list and a trailing return type, then the qualifiers.
    close_paren = [i for i, t in top if t.text == ")"]
    if colon is not None and close_paren and close_paren[0] < colon:
        head = head[:colon]
    arrow = next((i for i, t in _depth0(head) if t.text == "->"), None)
    if arrow is not None:
        head = head[:arrow]
    while head:
        last = head[-1].text
        if last in _TRAILING_QUALIFIERS:
            head = head[:-1]
        elif last == ")" and len(head) > 1:
            open_index = _matching_open(head, len(head) - 1)
            if open_index > 0 and head[open_index - 1].text in ("noexcept", "throw"):
                head = head[:open_index - 1]
            else:
                break
        else:
            break
    if not head or head[-1].text != ")":
        return "skip", None
    open_index = _matching_open(head, len(head) - 1)
    name, token = _qualified_name_before(head, open_index)
    if not name or name in _NOT_FUNCTION_NAMES:
        return "skip", None
    return "function", (name, token)


def _matching_open(head, close_index):
    depth = 0
    for i in range(close_index, -1, -1):
        if head[i].text == ")":
            depth += 1
        elif head[i].text == "(":
            depth -= 1
            if depth == 0:
                return i
    return 0


def _matching_brace(tokens, i):
    """Index of the `}` that closes the `{` at tokens[i] (the last token if it is never closed)."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == "{":
            depth += 1
        elif tokens[j].text == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


def _in_initializer_list(head):
    """True if a `{` after this head opens a member's brace initializer (`: a_{x}`), not the body."""
    head = _drop_attributes(_merge_operators(head))
    if not head:
        return False
    top = list(_depth0(head))
    close_paren = next((i for i, t in top if t.text == ")"), None)
    colon = next((i for i, t in top if t.text == ":"), None)
    if close_paren is None or colon is None or colon < close_paren:
        return False
    last = head[-1].text
    return bool(re.match(r"[A-Za-z_]", last)) or last == ">"


def find_functions(clean):
    """[(name, name line, opening brace line, closing brace line)] of the function definitions in blanked code."""
    tokens = tokenize(clean)
    functions = []
    head = []
    paren_depth = 0
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.text in ("(", "["):
            paren_depth += 1
        elif t.text in (")", "]"):
            paren_depth = max(0, paren_depth - 1)
        if t.text == ";" and paren_depth == 0:
            head = []
        elif t.text == "}":
            head, paren_depth = [], 0
        elif t.text == "{":
            if paren_depth > 0 or _in_initializer_list(head):
                i = _matching_brace(tokens, i)  # a braced argument or member initializer: part of the head
                head.append(Token("{}", t.line))
            else:
                kind, found = classify(head)
                if kind in ("namespace", "class"):
                    head = []
                else:
                    end = _matching_brace(tokens, i)
                    if kind == "function":
                        name, token = found
                        functions.append((name, token.line, t.line, tokens[end].line))
                        head = []
                    else:
                        head.append(Token("{}", t.line))
                    i = end
        else:
            head.append(t)
        i += 1
    return functions


# ---- The check -------------------------------------------------------------------------------------------------

def check_file(root, path, listing):
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
        text = f.read()
    lines = []
    line_count = len(text.splitlines())
    if line_count > MAX_FILE_LINES and not listing:
        lines.append(f"{path}:1: file is {line_count} lines (limit {MAX_FILE_LINES})")
    for name, name_line, open_line, close_line in find_functions(strip_code(text)):
        length = close_line - open_line + 1
        if listing:
            lines.append(f"{path}:{name_line}: function {name} is {length} lines")
        elif length > MAX_FUNCTION_LINES:
            lines.append(f"{path}:{name_line}: function {name} is {length} lines (limit {MAX_FUNCTION_LINES})")
    return lines


def main(argv):
    parser = argument_parser(__doc__)
    parser.add_argument("--list", action="store_true", help="print every function found and its length")
    parser.add_argument("files", nargs="*", help="files to check, relative to --root (default: the whole tree)")
    args = parser.parse_args(argv)
    if root_error(args.root):
        print(f"check_sizes: {root_error(args.root)}", file=sys.stderr)
        return 2
    paths = args.files or list(source_files(args.root))
    output = []
    for path in paths:
        if not os.path.isfile(os.path.join(args.root, path)):
            print(f"check_sizes: {path!r} is not a file under {args.root}", file=sys.stderr)
            return 2
        output += check_file(args.root, path, args.list)
    if args.list:
        for line in output:
            print(line)
        return 0
    return report("check_sizes", output, "the size limits (DESIGN.md section 5.7)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
