"""The project's modules, for the preloaded run launcher's warm server to import after the
libraries (etl/run_launcher.py), so that a run forked from it starts with them.

Importing this module is its purpose. It notes the fingerprint of the project's files first
(`FINGERPRINT`; a run forked later compares it with the files as they are then, and imports
the project fresh when they changed). A project that cannot be imported (a syntax error, a
release half copied) must not stop the server, which lets only an ImportError pass: each run
then imports the project itself and reports the error.
"""

import contextlib
import importlib

from etl.run_launcher import project_fingerprint

FINGERPRINT = project_fingerprint()

with contextlib.suppress(Exception):
    importlib.import_module("etl.definitions")
