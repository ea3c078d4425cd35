"""Installing the pinned npm packages some tests run (PostHog's agent toolkit, posthog-node)."""

import shutil
import subprocess
from pathlib import Path


def npm_ci(directory: Path) -> None:
    """`npm ci` the `package-lock.json` in `directory` unless the installed tree already matches it."""
    lock = directory / "package-lock.json"
    installed = directory / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    assert npm, f"Node.js and npm are needed to run the tests in {directory.name}/ (https://nodejs.org)"
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=600,
    )
