"""PostHog's agent toolkit (npm `@posthog/agent-toolkit`, the code behind PostHog's MCP server) runs
its flag and experiment tool handlers, unchanged, against a live server (issue 11, item 5).

The toolkit is installed from the committed `package.json` / `package-lock.json` into
`tests/toolkit/node_modules` on the first run (`npm ci`), so a clean checkout needs only Node.js.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from accounts.models import OrganizationMembership
from accounts.services import personal_api_key_create
from experiments.models import Experiment
from flags.models import FeatureFlag
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.npm import npm_ci

pytestmark = pytest.mark.django_db(transaction=True)

TOOLKIT_DIR = Path(__file__).parent
FLAG_TOOLS = {
    "create-feature-flag",
    "feature-flag-get-all",
    "feature-flag-get-definition",
    "update-feature-flag",
    "delete-feature-flag",
}
EXPERIMENT_TOOLS = {"experiment-create", "experiment-get", "experiment-get-all", "experiment-update"}


@pytest.fixture(scope="module")
def toolkit_installed() -> None:
    npm_ci(TOOLKIT_DIR)


def run_toolkit(host: str, secret: str) -> dict:
    completed = subprocess.run(
        [shutil.which("node") or "node", str(TOOLKIT_DIR / "run_tools.mjs")],
        cwd=TOOLKIT_DIR,
        env={**os.environ, "POSTHOG_HOST": host, "POSTHOG_PERSONAL_API_KEY": secret},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_the_toolkit_flag_and_experiment_tools_work_unchanged(toolkit_installed, live_server):
    project = ProjectFactory()
    user = UserFactory(current_project=project)
    MembershipFactory(organization=project.organization, user=user, level=OrganizationMembership.Level.OWNER)
    secret = personal_api_key_create(user=user, label="toolkit", scopes=["*"]).secret

    report = run_toolkit(live_server.url, secret)

    assert set(report["tools"]) >= FLAG_TOOLS | EXPERIMENT_TOOLS
    failed = [step for step in report["steps"] if not step["ok"]]
    assert not failed, json.dumps(failed, indent=2)
    steps = {step["label"]: step["result"] for step in report["steps"]}
    assert len(steps) == 13

    flag = FeatureFlag.objects.get(project=project, key="toolkit-flag")
    assert flag.name == "Toolkit flag, renamed"
    assert flag.active is False and flag.deleted is True
    assert steps["get flag by id"]["key"] == "toolkit-flag"
    assert "toolkit-flag" in [listed["key"] for listed in steps["list flags"]]

    experiment = Experiment.objects.select_related("feature_flag").get(project=project)
    assert experiment.name == "Toolkit experiment, renamed"
    assert experiment.description == "Clearer hypothesis"
    assert experiment.start_date is not None and experiment.end_date is not None
    assert experiment.conclusion == "won" and experiment.conclusion_comment == "Test wins"
    assert experiment.archived is True
    assert [metric["source"]["event"] for metric in experiment.metrics] == ["$pageview"]
    assert experiment.feature_flag.key == "toolkit-experiment"
    assert experiment.feature_flag.active is True
    assert steps["get experiment"]["id"] == experiment.id
    assert [listed["id"] for listed in steps["list experiments"]] == [experiment.id]
