from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from sluice.errors import ValidationError
from sluice.lineage import build_info, code_version, collect, data_version


def git(checkout: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "-c", "user.name=ci", "-c", "user.email=ci@example.com",
         *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "train.py").write_text("print('train')\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    git(root, "remote", "add", "origin", "https://git.example.com/ml/churn.git")
    return root


def test_the_commit_and_dirty_flag_of_a_real_checkout(checkout: Path) -> None:
    head = git(checkout, "rev-parse", "HEAD")
    assert code_version(checkout) == (head, False, "https://git.example.com/ml/churn.git")
    (checkout / "notes.txt").write_text("untracked files do not make the tree dirty")
    assert code_version(checkout)[1] is False
    (checkout / "train.py").write_text("print('changed')\n")
    assert code_version(checkout)[:2] == (head, True)
    (checkout / "sub").mkdir()
    assert code_version(checkout / "sub")[0] == head  # from anywhere inside


def test_outside_a_checkout_there_is_no_code_version(tmp_path: Path) -> None:
    assert code_version(tmp_path) == (None, None, None)


def test_data_versions_are_content_hashes(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(b"a,b\n1,2\n")
    version = data_version(str(data))
    assert version.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert (version.uri, version.size_bytes) == (data.as_uri(), 8)
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "0.csv").write_bytes(b"1\n")
    (folder / "1.csv").write_bytes(b"2\n")
    before = data_version(folder.as_uri())
    assert before.size_bytes == 4
    (folder / "1.csv").write_bytes(b"3\n")
    assert data_version(str(folder)).sha256 != before.sha256  # any byte changes it
    with pytest.raises(ValidationError, match="does not exist"):
        data_version(str(tmp_path / "missing.csv"))


def test_build_ids_from_ci_variables() -> None:
    github = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "ml/churn"}
    assert build_info(github) == (
        "42", "github-actions", "https://github.com/ml/churn/actions/runs/42",
    )  # fmt: skip
    gitlab = {"GITLAB_CI": "true", "CI_PIPELINE_ID": "7", "CI_JOB_URL": "https://gl/j/9"}
    assert build_info(gitlab) == ("7", "gitlab-ci", "https://gl/j/9")
    jenkins = {"JENKINS_URL": "https://ci", "BUILD_TAG": "jenkins-churn-5", "BUILD_URL": "u"}
    assert build_info(jenkins) == ("jenkins-churn-5", "jenkins", "u")
    assert build_info({}) == (None, None, None)
    assert build_info({**github, "SLUICE_BUILD_ID": "b-1"}) == ("b-1", "custom", None)


def test_collect_puts_it_together(checkout: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x\n")
    found = collect(checkout, [str(data)], {"C": 0.5}, "churn/3", {"BUILDKITE": "true",
                    "BUILDKITE_BUILD_ID": "bk-1"})  # fmt: skip
    assert found.code_commit == git(checkout, "rev-parse", "HEAD")
    assert found.code_dirty is False and found.parent == "churn/3"
    assert found.parameters == {"C": 0.5} and found.build_id == "bk-1"
    assert [d.uri for d in found.data] == [data.as_uri()]
