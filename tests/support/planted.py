"""Secrets to plant in a service folder: made up at run time, so none sits in this repository.

Each looks real to a secret scanner (Trivy's built-in rules) without being anyone's credential.
"""

from __future__ import annotations

import base64
import secrets
import string
from pathlib import Path

_UPPER_DIGITS = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def private_key() -> str:
    """A PEM block shaped like an RSA private key (random bytes: not a usable key)."""
    body = base64.b64encode(secrets.token_bytes(600)).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    kind = "RSA " + "PRIVATE KEY"  # split: this source file itself must not look like a key
    return "\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----", ""])


def aws_keys() -> str:
    return (f'AWS_ACCESS_KEY_ID = "{"AKIA" + _random(_UPPER_DIGITS, 16)}"\n'
            f'AWS_SECRET_ACCESS_KEY = "{_random(_ALNUM + "/+", 40)}"\n')


def github_token() -> str:
    return f"token: {'ghp' + '_' + _random(_ALNUM, 36)}\n"


# Files whose names say "secret": the .dockerignore keeps each out, at the top and at depth.
# Their content is a real-looking secret too, so a name that slipped through would also be caught
# by the scan (and a test could tell the two apart only by the ignore rules doing their job).
IGNORED_BY_NAME: dict[str, str] = {
    ".env": "DATABASE_URL=postgres://app:hunter2@db/app\n",
    "pkg/sub/.env": "DATABASE_URL=postgres://app:hunter2@db/app\n",
    "pkg/sub/.env.production": "DATABASE_URL=postgres://app:hunter2@db/app\n",
    "pkg/settings.env": "SECRET_KEY=hunter2\n",
    "deep/a/b/id_rsa": "<private key>",
    "deep/a/b/id_ed25519": "<private key>",
    "conf/server.key": "<private key>",
    "conf/tls/server.pem": "<private key>",
    "cfg/.aws/credentials": "<aws>",
    "cfg/.docker/config.json": '{"auths": {"registry.example.org": {"auth": "dXNlcjpodW50ZXIy"}}}\n',
    "cfg/.ssh/config": "Host *\n  IdentityFile ~/.ssh/id_rsa\n",
    "x/.npmrc": "//registry.npmjs.org/:_authToken=<github>",
    "x/.pypirc": "[pypi]\nusername = __token__\npassword = hunter2hunter2\n",
    "x/y/.netrc": "machine pypi.org login user password hunter2\n",
    "x/pip.conf": "[global]\nindex-url = https://user:hunter2@pypi.example.org/simple\n",
    ".git/config": "[remote \"origin\"]\n  url = https://user:hunter2@git.example.org/app.git\n",
    "pkg/.git/config": "[core]\n  bare = false\n",
    "venv/pyvenv.cfg": "home = /usr/bin\n",
    "pkg/.venv/pyvenv.cfg": "home = /usr/bin\n",
    "node_modules/left-pad/index.js": "module.exports = () => '<github>';\n",
    "pkg/node_modules/left-pad/index.js": "module.exports = () => '<github>';\n",
    "pkg/__pycache__/mod.cpython-312.pyc": "<aws>",
    "pkg/.pytest_cache/v/cache/lastfailed": "{}\n",
    "Dockerfile": "FROM scratch\n",
    "pkg/Dockerfile": "FROM scratch\n",
    ".imagewright/runtime/planted.py": "print('shadowing imagewright')\n",
    ".imagewright/build/ca-bundle.pem": "<private key>",
    "pkg/.imagewright/runtime/planted.py": "print('shadowing imagewright')\n",
}


def content(template: str) -> str:
    return (template.replace("<private key>", private_key()).replace("<aws>", aws_keys())
            .replace("<github>", github_token().split()[-1]))


# Files whose names say nothing: only the scan of their content can find them.
FOUND_BY_CONTENT: dict[str, tuple[str, str]] = {  # path → (content template, Trivy rule id)
    "pkg/deep/er/settings_local.py": ("<aws>", "aws-access-key-id"),
    "pkg/keys/deploy_key.txt": ("<private key>", "private-key"),
    # Under tests/ and in Markdown: paths Trivy skips by default, which the context scan does not.
    "pkg/tests/fixture_token.txt": ("<github>\n", "github-pat"),
    "pkg/docs/notes.md": ("Use <github> for the CI.\n", "github-pat"),
}


def plant(folder: Path, files: dict[str, str]) -> None:
    """Write each file (content templates filled with fresh secrets) under `folder`."""
    for relative, template in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content(template))
