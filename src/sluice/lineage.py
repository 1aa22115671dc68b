"""What a model package came from, read where it is registered (a checkout, a CI job).

Runs on the registering machine, not the server: the git commit and whether the work tree
had changes, the content hash of each training data file or directory, and the build id
of the CI system running it, from the variables those systems set.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sluice.entities import DataVersion, Lineage
from sluice.errors import ValidationError
from sluice.store.artifacts import digest_path
from sluice.store.objects import local_path

# (system, the variable that says a job runs on it, the variables holding its build id)
_CI: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("github-actions", "GITHUB_ACTIONS", ("GITHUB_RUN_ID",)),
    ("gitlab-ci", "GITLAB_CI", ("CI_PIPELINE_ID", "CI_JOB_ID")),
    ("jenkins", "JENKINS_URL", ("BUILD_TAG", "BUILD_NUMBER")),
    ("buildkite", "BUILDKITE", ("BUILDKITE_BUILD_ID",)),
    ("circleci", "CIRCLECI", ("CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM")),
    ("azure-pipelines", "TF_BUILD", ("BUILD_BUILDID",)),
    ("travis", "TRAVIS", ("TRAVIS_BUILD_ID",)),
    ("bitbucket", "BITBUCKET_BUILD_NUMBER", ("BITBUCKET_BUILD_NUMBER",)),
)


def code_version(directory: Path) -> tuple[str | None, bool | None, str | None]:
    """The commit checked out at `directory`, whether the tree has changes, and the origin
    remote's URL; (None, None, None) outside a git checkout."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, bool(status), git("remote", "get-url", "origin") or None


def data_version(uri: str) -> DataVersion:
    """The content hash of a training data file or directory (a path or file:// URI)."""
    path = local_path(uri, "data")
    if not path.exists():
        raise ValidationError(f"training data {uri!r} does not exist", field="data")
    size = (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
    return DataVersion(path.as_uri(), digest_path(path), size)


def build_info(
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None, str | None]:
    """(build id, CI system, build URL) from the CI's variables; Nones outside CI.

    SLUICE_BUILD_ID (and SLUICE_BUILD_URL) override what the CI system says.
    """
    env = os.environ if environ is None else environ
    if env.get("SLUICE_BUILD_ID"):
        return env["SLUICE_BUILD_ID"], "custom", env.get("SLUICE_BUILD_URL")
    for system, marker, ids in _CI:
        if not env.get(marker):
            continue
        build_id = next((env[v] for v in ids if env.get(v)), None)
        return build_id, system, _build_url(system, env)
    return None, None, None


def _build_url(system: str, env: Mapping[str, str]) -> str | None:
    if system == "github-actions" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
    variable = {
        "gitlab-ci": "CI_JOB_URL",
        "jenkins": "BUILD_URL",
        "buildkite": "BUILDKITE_BUILD_URL",
        "circleci": "CIRCLE_BUILD_URL",
    }.get(system)
    return env.get(variable) if variable else None


def collect(
    code_dir: Path | None,
    data: Sequence[str] = (),
    parameters: Mapping[str, Any] | None = None,
    parent: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Lineage:
    """Everything above, as a package's lineage (`code_dir` None: no code version)."""
    commit, dirty, repository = code_version(code_dir) if code_dir else (None, None, None)
    build_id, system, url = build_info(environ)
    return Lineage(
        code_commit=commit,
        code_dirty=dirty,
        code_repository=repository,
        data=tuple(data_version(uri) for uri in data),
        parameters=dict(parameters or {}),
        parent=parent,
        build_id=build_id,
        build_system=system,
        build_url=url,
    )
