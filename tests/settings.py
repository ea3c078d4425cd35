"""The production settings, with what the test suite needs: a secret of its own and plain HTTP (the
test client and the servers the tests start speak HTTP). Subprocesses the tests start inherit both."""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-only-secret-9f1c2a7e5b3d4c6a8e0f1b2d3c4a5e6f7a8b9c0d")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

from experiments_api.settings import *  # noqa: F403
