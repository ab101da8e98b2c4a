"""Values that look like credentials, whatever the variable holding them is called.

`DB_PASS`, `DATABASE_URL` or `STRIPE_SK` pass any check on names; their values don't. The token
formats come from Yelp's detect-secrets (its regex detectors, each a published key format);
URLs are read with the standard library's parser; the entropy threshold is detect-secrets'
default for base64-like strings.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

# Detectors that recognise a value on its own. Left out: those that need a keyword next to the
# value (`password = …`: the name check covers those) and the public-IP detector (an address is
# configuration, not a secret).
_DETECTORS: tuple[RegexBasedDetector, ...] = (
    PrivateKeyDetector(), AWSKeyDetector(), ArtifactoryDetector(), DiscordBotTokenDetector(),
    GitHubTokenDetector(), GitLabTokenDetector(), JwtTokenDetector(), MailchimpDetector(),
    NpmDetector(), OpenAIDetector(), PypiTokenDetector(), SendGridDetector(), SlackDetector(),
    SquareOAuthDetector(), StripeDetector(), TelegramBotTokenDetector(), TwilioKeyDetector(),
)
# detect-secrets knows Stripe's live keys only; test-mode keys are credentials too.
_STRIPE_TEST_KEY = re.compile(r"\b[rs]k_test_[0-9a-zA-Z]{24,}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
_ENTROPY = Base64HighEntropyString(limit=4.5)


def credential_kind(value: str) -> str | None:
    """What kind of credential `value` looks like ("a private key", …), or None."""
    for detector in _DETECTORS:
        if any(True for _ in detector.analyze_string(value)):
            return _describe(detector.secret_type)
    if _STRIPE_TEST_KEY.search(value):
        return "a Stripe key"
    for match in _URL.finditer(value):
        try:
            password = urlsplit(match[0]).password
        except ValueError:  # an unparsable URL (e.g. a bad port) carries no usable password
            continue
        if password:
            return "a URL with a password"
    for token in _TOKEN.findall(value):
        if _random_looking(token):
            return "a long random-looking string (a key or token)"
    return None


def _random_looking(token: str) -> bool:
    """Long, mixed-class and high-entropy: what generated keys look like. Requiring upper case,
    lower case and digits together keeps hex digests, UUIDs, paths and words out."""
    classes = sum(any(test(char) for char in token) for test in (str.isupper, str.islower,
                                                                 str.isdigit))
    return classes == 3 and _ENTROPY.calculate_shannon_entropy(token) >= _ENTROPY.entropy_limit


def _describe(secret_type: str) -> str:
    return "a private key" if secret_type == PrivateKeyDetector.secret_type else \
        f"a credential ({secret_type})"
