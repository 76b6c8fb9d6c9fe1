"""Runs one test of an unmodified Paho interoperability script (client_test.py,
client_test5.py), or lists the script's tests.

    python3 -B paho_wrapper.py list SCRIPT
    python3 -B paho_wrapper.py run SCRIPT HOST PORT [FILTER] TEST

The scripts parse their options from sys.argv and then call unittest.main(), which reads
sys.argv again and would reject those options (and take -h for help). So the script sees
its options, and unittest.main sees only the test name. Standard library only; nothing is
written beside the script (run with -B).
"""

import ast
import os
import runpy
import sys
import unittest


def list_tests(script):
    with open(script, encoding="utf-8") as source:
        tree = ast.parse(source.read(), script)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Test":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                    print(item.name)


def run_test(script, host, port, refused_filter, test):
    # Not -h: the scripts test `o in ("--help")`, a substring test that "-h" passes.
    options = ["--hostname", host, "-p", port]
    if refused_filter:
        options += ["-n", refused_filter]
    real_main = unittest.main

    def main_with_only_the_test(*args, **kwargs):
        sys.argv = [script, "Test." + test]
        return real_main(*args, **kwargs)

    unittest.main = main_with_only_the_test
    sys.argv = [script] + options
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    # unittest.main exits; getting here means the script stopped before running tests.
    sys.exit(f"{script} returned without running {test}")


def main(argv):
    if len(argv) == 2 and argv[0] == "list":
        list_tests(argv[1])
    elif len(argv) in (5, 6) and argv[0] == "run":
        script, host, port = argv[1:4]
        refused_filter = argv[4] if len(argv) == 6 else None
        run_test(script, host, port, refused_filter, argv[-1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
