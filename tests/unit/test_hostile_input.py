"""Hostile and careless input outside image.yaml's one-line errors: YAML typing kept as written,
credential-looking values, Docker's name grammar, digest pins, the build CA input, the renderer's
line handling and terminal output. (Bad image.yaml rows are in test_bad_specs.py; the property over
every field is in test_render_properties.py; the build round trip in tests/integration.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from builder.build.context import certificates_only
from builder.cli import terminal
from builder.core.errors import SpecError, UserError
from builder.render.dockerfiles import _tidy, dockerfile_quote
from builder.render.pins import load_pins
from builder.spec.credentials import credential_kind
from builder.spec.reference import repository_name_problem, tag_problem
from builder.spec.service import load_spec
from tests.support.samples import MINIMAL_SPEC

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SPEC = MINIMAL_SPEC


def service(tmp_path: Path, extra: str) -> Path:
    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "app.py").write_text("")
    (folder / "requirements.txt").write_text("")
    (folder / "image.yaml").write_text(SPEC + extra)
    return folder


# ---- 7. YAML typing ------------------------------------------------------------------------------

def test_unquoted_env_values_are_kept_exactly_as_written(tmp_path: Path) -> None:
    folder = service(tmp_path, "env:\n  APP_VERSION: 1.10\n  UMASK: 0755\n  START: 12:30\n"
                               "  DEBUG: yes\n  RATIO: .5\n  BIG: 1_000\n  QUOTED: '1.10'\n"
                               "build_args:\n  LEVEL: 0o17\n")
    spec = load_spec(folder, ("distroless",))
    assert dict(spec.env) == {"APP_VERSION": "1.10", "UMASK": "0755", "START": "12:30",
                              "DEBUG": "yes", "RATIO": ".5", "BIG": "1_000", "QUOTED": "1.10"}
    assert dict(spec.build_args) == {"LEVEL": "0o17"}


def test_otel_attribute_values_are_kept_as_written_too(tmp_path: Path) -> None:
    folder = service(tmp_path, "otel:\n  resource_attributes: {tier: 1.10}\n")
    assert load_spec(folder, ("distroless",)).otel.resource_attributes == (("tier", "1.10"),)


# ---- 5. credentials by value ---------------------------------------------------------------------

@pytest.mark.parametrize(("value", "kind"), [
    ("postgres://app:s3cret@db:5432/app", "a URL with a password"),
    ("redis://:hunter2@cache:6379/0", "a URL with a password"),
    ("--url=mysql://root:pw@db/x", "a URL with a password"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "a private key"),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "a credential (Stripe Access Key)"),
    ("rk_test_4eC39HqLyjWDarjtT1zdp7dc", "a Stripe key"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "a credential (GitHub Token)"),
    ("AKIAIOSFODNN7EXAMPLE", "a credential (AWS Access Key)"),
    ("xoxb-123456789012-1234567890123-abcdefghijABCDEFGHIJ1234", "a credential (Slack Token)"),
    ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "a long random-looking string (a key or token)"),
])
def test_credential_looking_values_are_named(value: str, kind: str) -> None:
    assert credential_kind(value) == kind


@pytest.mark.parametrize("value", [
    "https://api.example.com/v1", "https://user@example.com/", "http://[::1]:bad/",
    "0123456789abcdef0123456789abcdef01234567",  # a git sha
    "123e4567-e89b-12d3-a456-426614174000",      # a UUID
    "/usr/local/lib/python3.12/site-packages", "config.settings.production",
    "pa$$w0rd&x", "café 🚀", "NotificationsService2024Production", "eu-west-1", "",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
])
def test_ordinary_configuration_is_not_a_credential(value: str) -> None:
    assert credential_kind(value) is None


# ---- 8. Docker's reference grammar ---------------------------------------------------------------

@pytest.mark.parametrize(("name", "problem"), [
    ("svc", None), ("backend-flask", None), ("a.b_c__d---e", None), ("0", None),
    ("Svc", "upper-case"), ("svc-", "start and end"), ("_svc", "start and end"),
    ("s..vc", "side by side"), ("s___vc", "side by side"), ("s.-vc", "side by side"),
    ("svc:1", "':'"), ("s/vc", "'/'"), ("é", "'é'"), ("s" * 64, "longer than 63"),
])
def test_service_names_follow_the_reference_grammar_and_say_which_rule(name: str,
                                                                       problem: str | None) -> None:
    found = repository_name_problem(name)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize(("tag", "problem"), [
    ("dev", None), ("prod-distroless-debug-0123456789ab", None), ("_x", None),
    ("", "1 to 128"), ("x" * 129, "1 to 128"), ("-x", "starts with"), (".x", "starts with"),
    ("a/b", "'/'"), ("a:b", "':'"),
])
def test_tags_follow_the_reference_grammar(tag: str, problem: str | None) -> None:
    found = tag_problem(tag)
    assert found is None if problem is None else problem in (found or "")


DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("text", [
    f'"ubuntu:24.04": "ubuntu@{DIGEST}"\n', f'"ubuntu:24.04": "{DIGEST}"\n',
    f'"imagewright/distroless-python:3.12-ubuntu24.04": "{DIGEST}"\n',
    f'"registry.example:5000/team/base:1": "registry.example:5000/team/base@{DIGEST}"\n',
])
def test_digest_pins_load(tmp_path: Path, text: str) -> None:
    (tmp_path / "bases.lock.yaml").write_text("# pins\n" + text)
    assert len(load_pins(tmp_path)) == 1


@pytest.mark.parametrize(("text", "message"), [
    ('"ubuntu:24.04": "ubuntu:latest"\n', "build/bases.lock.yaml:2: 'ubuntu:24.04': 'ubuntu:latest' "
                                          "is not a digest reference"),
    ('"ubuntu:24.04": "sha256:abc"\n', "'sha256:abc' is not a digest reference"),
    (f'"ubuntu:24.04": "{DIGEST}\\nRUN evil"\n', "is not a digest reference"),
    (f'"ubuntu:24.04": "x@{DIGEST} AS evil"\n', "is not a digest reference"),
    (f'"Ubuntu!": "{DIGEST}"\n', "build/bases.lock.yaml:2: 'Ubuntu!': is not an image reference"),
    ('"ubuntu:24.04": 12\n', "12 is not a digest reference"),
    ("- a\n", "expected a mapping of base → pinned reference"),
])
def test_bad_pins_are_one_line_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bases.lock.yaml").write_text("# pins\n" + text)
    with pytest.raises(SpecError) as caught:
        load_pins(tmp_path)
    assert message in str(caught.value) and len(str(caught.value).splitlines()) == 1


# ---- 8. the build CA input: certificate blocks only, never a key ---------------------------------

def first_certificate() -> bytes:
    text = SYSTEM_BUNDLE.read_bytes()
    end = text.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")
    return text[text.index(b"-----BEGIN CERTIFICATE-----"):end] + b"\n"


def private_key() -> bytes:
    return subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True,
                          check=True).stdout


def test_the_system_bundle_passes_through_unchanged() -> None:
    assert certificates_only(SYSTEM_BUNDLE) == SYSTEM_BUNDLE.read_bytes()


def test_only_certificate_blocks_are_kept(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"Subject: corporate proxy CA\n" + first_certificate() +
                       b"-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\nnotes: keep me out\n")
    assert certificates_only(bundle) == first_certificate()


def test_a_private_key_in_the_ca_input_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(first_certificate() + private_key())
    with pytest.raises(UserError, match=r"ca.pem: holds a private key \(PRIVATE KEY\); the build CA "
                                        r"input takes CA certificates only"):
        certificates_only(bundle)


@pytest.mark.parametrize(("content", "message"), [
    (b"just text\n", "no PEM certificate"),
    (b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", "can't be read"),
])
def test_a_ca_input_without_a_readable_certificate_is_refused(tmp_path: Path, content: bytes,
                                                              message: str) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(content)
    with pytest.raises(UserError, match=message):
        certificates_only(bundle)


def test_a_ca_input_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    shutil.copy(SYSTEM_BUNDLE, tmp_path / "real.pem")
    (tmp_path / "loop.pem").symlink_to("loop.pem")
    with pytest.raises(UserError, match="Too many levels of symbolic links"):
        certificates_only(tmp_path / "loop.pem")


# ---- 1./2. the renderer: only "\n" ends a line; Dockerfile quoting -------------------------------

def test_only_newline_ends_a_rendered_line() -> None:
    text = "LABEL a=\"x\u2028y\x85z\rw\x1cv\"\n\n\nRUN true\n"
    assert _tidy(text) == "LABEL a=\"x\u2028y\x85z\rw\x1cv\"\n\nRUN true\n"


@pytest.mark.parametrize(("value", "quoted"), [
    ("plain", '"plain"'), ("pa$$w0rd&x", '"pa\\$\\$w0rd&x"'), ('say "hi"', '"say \\"hi\\""'),
    ("C:\\dir\\", '"C:\\\\dir\\\\"'), ("café 🚀", '"café 🚀"'), ("", '""'), ("<&>", '"<&>"'),
])
def test_dockerfile_quote_escapes_by_the_dockerfile_rules_not_json(value: str, quoted: str) -> None:
    assert dockerfile_quote(value) == quoted


# ---- 10. terminal output -------------------------------------------------------------------------

@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Console:
    """The CLI's own console, recording: what a user would see, with markup applied."""
    console = Console(record=True, width=300, highlight=False, soft_wrap=True)
    monkeypatch.setattr(terminal, "console", console)
    return console


@pytest.mark.parametrize("text", ["see [/docs]", "[bold red]x", "a [link=file:///etc]b[/link]",
                                  "[/]", "\\[not a tag]"])
def test_build_log_lines_print_user_text_as_text(captured: Console, text: str) -> None:
    log = terminal.StreamedBuildLog(verbose=True)
    log.start(f"svc {text}")                                              # the rule: 1
    log.step(3, 9, f'LABEL org.opencontainers.image.description="{text}"')  # title + step: 2
    log.line(f"pip: {text}")                                              # 1
    terminal.say(f"base {text}: bootstrapping")                           # 1
    log.done(f"svc {text}", 1.0)                                          # 1
    shown = captured.export_text()
    assert shown.count(text) == 6, shown


def test_a_trailing_backslash_does_not_swallow_the_closing_tag(captured: Console) -> None:
    terminal.StreamedBuildLog(verbose=True).line("C:\\dir\\")
    assert captured.export_text() == "  C:\\dir\\\n"
