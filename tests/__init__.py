"""The test suite writes bytecode caches even where PYTHONDONTWRITEBYTECODE is set (this machine
and CI set it).

Without them every xdist worker re-parses, re-rewrites and re-compiles every test module and
every bot module it imports, and every `liqbot run` subprocess compiles bot/* from source: one
worker's collection cost 13 s of CPU instead of 5.5 s with the caches. This package is imported
before conftest.py and before any test or bot module, so all of them are cached; the
environment variable goes too, for the subprocesses the tests start. The caches go where
Python puts them by default (__pycache__/, ignored by git)."""

import os
import sys

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
