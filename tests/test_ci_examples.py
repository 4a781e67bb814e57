"""The CI examples cannot rot: the GitHub workflow's ``run:`` steps run in order on the demo
checkpoint (the install step is left out: this environment has landscape installed already, and
its ``landscape`` is first on PATH), and the GitLab job runs the same command."""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CI = os.path.join(ROOT, "examples", "ci")


def _flat(script: str) -> str:
    return " ".join(script.replace("\\\n", " ").split())


def test_github_workflow_run_steps_pass_on_the_demo_checkpoint(tmp_path):
    flow = yaml.safe_load(open(os.path.join(CI, "github-actions.yml")))
    job = flow["jobs"]["curvature-gate"]
    steps = [s for s in job["steps"] if "run" in s]
    assert [s["name"] for s in steps][0] == "Install landscape" and len(steps) == 3
    for name in ("data/demo_a.pt", "data/digits.npz"):
        os.makedirs(tmp_path / "data", exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    shutil.copytree(CI, tmp_path / "examples" / "ci")
    env = dict(os.environ, **{k: str(v) for k, v in job["env"].items()})
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    for step in steps[1:]:
        assert "pip install" not in step["run"]
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (step["name"], done.stdout, done.stderr)
    assert (tmp_path / "examples/ci/baseline.h5").exists()
    suite = ET.parse(tmp_path / "landscape-junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert "All 3 rules hold" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "landscape-check.h5").exists()
    upload = [s for s in job["steps"] if "upload-artifact" in s.get("uses", "")][0]
    assert "landscape-check.h5" in upload["with"]["path"]


def test_gitlab_job_runs_the_same_check():
    job = yaml.safe_load(open(os.path.join(CI, "gitlab-ci.yml")))["landscape-check"]
    flow = yaml.safe_load(open(os.path.join(CI, "github-actions.yml")))
    github = [s["run"] for s in flow["jobs"]["curvature-gate"]["steps"] if "run" in s]
    assert _flat(job["script"][-1]) == _flat(github[-1])
    assert job["variables"] == flow["jobs"]["curvature-gate"]["env"]
    assert job["artifacts"]["reports"]["junit"] == "landscape-junit.xml"
    assert "--junit landscape-junit.xml" in _flat(job["script"][-1])
