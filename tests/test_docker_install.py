"""docker/install.sh, the image's install steps, run into a throwaway virtual environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "docker" / "install.sh"
DOCKERFILE = REPO / "docker" / "Dockerfile"


def _install(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def test_install_script_is_valid_bash_and_explains_its_usage(tmp_path: Path) -> None:
    assert subprocess.run(["bash", "-n", str(INSTALL)]).returncode == 0
    done = _install()
    assert done.returncode == 1 and "usage:" in done.stderr
    done = _install(sys.executable, "conda", str(REPO))
    assert done.returncode == 1 and "TORCH must be a wheel index URL, 'cpu' or 'pip'" in done.stderr
    untrained = tmp_path / "lsm_sss"
    (untrained / "configs").mkdir(parents=True)
    done = _install(sys.executable, "pip", str(REPO), str(untrained))
    assert done.returncode == 1
    assert "models/model.pt is missing: train the bundle first (python -m monai.bundle run" in done.stderr


def test_dockerfile_follows_the_image_contract() -> None:
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^ARG BASE_IMAGE=(\S+)", text, flags=re.MULTILINE)
    assert bases and bases[0].startswith("nvidia/cuda:") and "runtime" in bases[0]
    assert "ARG BUNDLE=bundles/lsm_sss" in text
    assert "models/model.pt is missing" in text  # the build fails clearly without weights
    assert "bash /opt/lsmseg/install.sh /opt/venv/bin/python" in text
    assert "python3.11" in text and "ENV LSMSEG_BUNDLES=/opt/lsmseg/bundles" in text
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert text.rstrip().splitlines()[-2] == 'ENTRYPOINT ["lsmseg"]'
    ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    for path in ("!lsmseg/", "!pyproject.toml", "!README.md", "!docker/install.sh", "!bundles/"):
        assert path in ignore
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            if not source.startswith("$"):
                assert (REPO / source).exists(), (
                    f"the Dockerfile copies {source}, which is not in the repository"
                )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_install_script_gives_a_working_lsmseg_in_a_fresh_venv(tmp_path: Path) -> None:
    """The CPU torch wheel (2.13.0, from the machine's wheel folder) plus lsmseg, non-editable."""
    from tests.helpers.clinical import tiny_bundle

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    bundle = shutil.copytree(tiny_bundle(), tmp_path / "tiny_sss")
    before = {p.name for p in REPO.iterdir()}
    env = {**os.environ, "TORCH_VERSION": "2.13.0", "PYTHONPATH": ""}
    done = _install(str(python), "pip", str(REPO), str(bundle), timeout=800, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "install.sh: lsmseg segment measured two phantom slices with the bundle" in done.stdout
    assert "install.sh: done" in done.stdout
    assert {p.name for p in REPO.iterdir()} == before, "the install wrote into the source tree"

    where = subprocess.run(
        [str(python), "-c", "import lsmseg, torch; print(lsmseg.__file__); print(torch.__version__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and where[1].startswith("2.13.0")
    assert (
        subprocess.run([str(venv / "bin" / "lsmseg"), "segment", "--help"], capture_output=True).returncode
        == 0
    )
