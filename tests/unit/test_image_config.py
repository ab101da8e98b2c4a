"""Secrets in an image's config and build history (`findings_in`), on configs and histories shaped
like `docker image inspect` / `docker image history` output of images built by BuildKit and by the
legacy builder."""

from __future__ import annotations

from typing import Any

import pytest

from builder.inspect.config import ConfigFinding, findings_in

# Made up for these tests: shaped like the real formats, valid nowhere.
AWS_KEY_ID = "AKIA" + "IMAGEWRIGHTTEST7"
GITHUB_TOKEN = "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----MIIEowIBAAKCAQEA-----END RSA PRIVATE KEY-----"

# What imagewright's own prod images carry (build/<service>/Dockerfile.prod-*): none of it is secret.
BENIGN_ENV = [
    "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "VIRTUAL_ENV=/opt/venv",
    "PYTHONUNBUFFERED=1",
    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    "IMAGEWRIGHT_HEALTH_URL=http://127.0.0.1:4567/api/health",
    "OTEL_SERVICE_NAME=backend-flask",
    "OTEL_RESOURCE_ATTRIBUTES=service.version=0.1.0,deployment.environment=prod",
    "OTEL_EXPORTER_OTLP_ENDPOINT=https://api.honeycomb.io",
    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
    "OTEL_PYTHON_EXCLUDED_URLS=api/health",
]
BENIGN_LABELS = {
    "org.opencontainers.image.title": "backend-flask",
    "org.opencontainers.image.revision": "49bf6ca",
    "org.opencontainers.image.base.digest": "sha256:" + "ab" * 32,
    "io.imagewright.service": "backend-flask",
    "io.imagewright.variant": "prod",
}
BENIGN_HISTORY = [
    {"CreatedBy": 'HEALTHCHECK &{["CMD" "/opt/venv/bin/python" "-I" "/opt/imagewright/healthcheck.py"]}'},
    {"CreatedBy": "USER 65532:65532"},
    {"CreatedBy": "ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv PYTHONUNBUFFERED=1"},
    {"CreatedBy": "COPY /opt/venv /opt/venv # buildkit"},
    {"CreatedBy": "RUN |1 IMAGEWRIGHT_REVISION=49bf6ca /bin/sh -c python -m compileall -q /app # buildkit"},
    {"CreatedBy": "ARG IMAGEWRIGHT_REVISION=unknown"},
    {"CreatedBy": "/bin/sh -c #(nop)  CMD [\"/bin/bash\"]"},
]


def config(env: list[str] | None = None, labels: dict[str, str] | None = None,
           user: str = "65532:65532") -> dict[str, Any]:
    return {"Env": BENIGN_ENV + (env or []), "Labels": {**BENIGN_LABELS, **(labels or {})},
            "User": user}


def ids(findings: list[ConfigFinding]) -> list[str]:
    return [finding.id for finding in findings]


def test_an_image_like_imagewrights_own_has_no_findings() -> None:
    assert findings_in(config(), BENIGN_HISTORY) == []


def test_an_empty_config_is_only_flagged_for_running_as_root() -> None:
    assert findings_in({}, []) == [ConfigFinding("IW-CFG-004", "USER", "the image runs as root")]


# ---- names that say "credential" ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "db_passwd", "GITHUB_TOKEN",
                                  "HONEYCOMB_API_KEY", "stripe-apikey", "SSH_PRIVATE_KEY",
                                  "GOOGLE_APPLICATION_CREDENTIALS"])
def test_a_secret_looking_env_name_with_a_value_is_flagged(name: str) -> None:
    findings = findings_in(config([f"{name}=s3cr3t-value"]), [])
    assert findings == [ConfigFinding("IW-CFG-001", f"ENV {name}",
                                      "a credential in the image's environment")]


def test_a_secret_looking_label_is_flagged() -> None:
    findings = findings_in(config(labels={"deploy.token": "t0k3n-value"}), [])
    assert findings == [ConfigFinding("IW-CFG-002", "LABEL deploy.token", "a credential in a label")]


@pytest.mark.parametrize("entry", ["HONEYCOMB_API_KEY=", "DB_PASSWORD=$DB_PASSWORD_FILE",
                                   "GITHUB_TOKEN=${GITHUB_TOKEN}"])
def test_an_empty_value_or_a_reference_carries_no_secret(entry: str) -> None:
    assert findings_in(config([entry]), []) == []


@pytest.mark.parametrize("entry", ["KEYBOARD_LAYOUT=us", "PASSENGER_APP_ENV=production",
                                   "CREDIT_LIMIT=10", "PASSAGE=north"])
def test_names_that_only_resemble_credential_names_are_benign(entry: str) -> None:
    assert findings_in(config([entry]), []) == []


# ---- values that look like credentials, whatever their name --------------------------------------

@pytest.mark.parametrize("value", [AWS_KEY_ID, GITHUB_TOKEN, PRIVATE_KEY,
                                   "x-honeycomb-team=abcdEFGH1234"])
def test_a_credential_shaped_env_value_is_flagged_under_any_name(value: str) -> None:
    assert ids(findings_in(config([f"SETTING={value}"]), [])) == ["IW-CFG-001"]


@pytest.mark.parametrize("value", [AWS_KEY_ID, GITHUB_TOKEN, PRIVATE_KEY])
def test_a_credential_shaped_label_value_is_flagged_under_any_name(value: str) -> None:
    assert ids(findings_in(config(labels={"com.example.note": value}), [])) == ["IW-CFG-002"]


@pytest.mark.parametrize("value", ["AKIA-not-a-key", "ghp_short", "akia" + "imagewrighttest7",
                                   "-----BEGIN CERTIFICATE-----", "x-honeycomb-team=${KEY}"])
def test_near_misses_are_not_credentials(value: str) -> None:
    assert findings_in(config([f"SETTING={value}"], {"com.example.note": value}), []) == []


# ---- the build history ----------------------------------------------------------------------------

@pytest.mark.parametrize("created_by", [
    "ARG DB_PASSWORD=hunter2",  # BuildKit
    "RUN |1 DB_PASSWORD=hunter2 /bin/sh -c echo building # buildkit",  # BuildKit, ARG in scope
    "/bin/sh -c #(nop)  ARG DB_PASSWORD=hunter2",  # the legacy builder
    "|1 DB_PASSWORD=hunter2 /bin/sh -c echo building",  # the legacy builder, ARG in scope
])
def test_a_build_arg_leaks_into_the_history(created_by: str) -> None:
    findings = findings_in(config(), [*BENIGN_HISTORY, {"CreatedBy": created_by}])
    assert findings == [ConfigFinding("IW-CFG-003", f"history: {created_by[:80]}",
                                      "DB_PASSWORD has a credential-like value in the build history")]


def test_a_credential_in_a_history_command_is_flagged_once_and_not_shown() -> None:
    created_by = f"/bin/sh -c curl -H 'Authorization: {GITHUB_TOKEN}' https://example.invalid/x"
    findings = findings_in(config(), [{"CreatedBy": created_by}])
    assert findings == [ConfigFinding("IW-CFG-003", f"history: {created_by[:80]}",
                                      "credential-like text ghp_0123… in the build history")]


def test_a_credential_assigned_in_the_history_is_one_finding_not_two() -> None:
    created_by = f"ENV SETTING={AWS_KEY_ID}"
    findings = findings_in(config(), [{"CreatedBy": created_by}])
    assert [(f.id, f.detail) for f in findings] == [
        ("IW-CFG-003", "SETTING has a credential-like value in the build history")]


def test_every_place_is_reported_for_a_secret_baked_in_with_env() -> None:
    """ENV puts a secret into the config and, as the instruction's text, into the history."""
    secret = "AWS_SECRET_ACCESS_KEY=abcdEFGHijklMNOPqrstUVWXyz0123456789abcd"
    history = [*BENIGN_HISTORY, {"CreatedBy": f"ENV {secret}"}, {"CreatedBy": None}]
    assert ids(findings_in(config([secret]), history)) == ["IW-CFG-001", "IW-CFG-003"]


# ---- the user -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("user", "root"), [("", True), ("0", True), ("root", True), ("0:0", True),
                                            ("root:65532", True), ("65532", False),
                                            ("65532:65532", False), ("10001", False),
                                            ("app", False)])
def test_running_as_root_is_flagged(user: str, root: bool) -> None:
    assert ids(findings_in(config(user=user), [])) == (["IW-CFG-004"] if root else [])
