"""The ``secrets`` scanner: NAME=value assignments, placeholders left alone, provider kinds
ahead of the generic ones, and linear time on hostile input."""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

import pytest

from keel.guard.scanners import Finding, build_scanner

ALNUM = string.ascii_letters + string.digits
URL = ALNUM + "_-"
B64 = ALNUM + "+/"


def rand(n: int, alphabet: str = ALNUM, seed: int = 0) -> str:
    """Random characters, the same on every run (seeded), never a real credential."""
    rng = random.Random(f"{seed}:{n}:{alphabet}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def scan(text: str, **options: object) -> Finding:
    return build_scanner({"type": "secrets", **options}).scan(text)


def found(f: Finding, text: str) -> list[tuple[str, str]]:
    return [(m.kind, text[m.start:m.end]) for m in f.matches]


# Credential-shaped strings are assembled at run time, so none appears in the source.
TOKEN = rand(32)
PASSWORD = rand(14, ALNUM + "!@#%^*", seed=1)


# --- 1. NAME=value, with or without spaces, quoted or not -----------------------------------


@pytest.mark.parametrize("template", [
    "API_KEY={v}",
    "export GITHUB_TOKEN={v}",
    'OPENAI_API_KEY="{v}"',
    "SECRET_KEY='{v}'",
    "DB_PASSWORD={p}",
    "password={p}",
    "db_password: {p}",
    "  client_secret:{v}\n",
    'config = {{"apiKey":"{v}", "region": "eu"}}',
    "accessToken={v};",
    "self.api_key = '{v}'",
    "secret_key => \"{v}\"",
    "token := \"{v}\"",
    "curl 'https://api.example.com/v1/items?limit=10&api_key={v}&page=2'",
    "https://example.com/login?user=ada&password={p}",
    "X-Api-Key:{v}",
    "Authorization: Bearer {v}",
    "OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20{v},x-team=a",
    '{{"headers": {{"Authorization": "Bearer {v}"}}}}',
    "AUTH_TOKEN_2={v}",
    '{{"arguments": "{{\\"api_key\\": \\"{v}\\", \\"n\\": 1}}"}}',
    "postgresql://app:{p}@db.internal:5432/orders",
])
def test_secret_named_assignments_are_credentials_whatever_the_spacing(template: str) -> None:
    text = template.format(v=TOKEN, p=PASSWORD)
    value = TOKEN if "{v}" in template else PASSWORD
    f = scan(text)
    assert f.triggered, text
    assert found(f, text) == [("credential", value)], text


@pytest.mark.parametrize("text", [
    f"max_tokens={rand(16, string.digits)}",
    f"sort_key={rand(20, string.ascii_lowercase)}",
    "next_page_token=CiAKGjBpNDd2Nmp2Zml2cXRw",
    "public_key: MFkwEwYHKoZIzj0CAQYI",
    "primary_key=user_account_id",
    "author=AdaLovelace1815",
    "monkey=Bananas4Breakfast",
    "apiKey: process.env.OPENAI_API_KEY",
    "api_key = os.environ['OPENAI_API_KEY']",
    "OPENAI_API_KEY=${OPENAI_API_KEY}",
    "api_key: env:OPENAI_API_KEY",
    "token: {{ secrets.GITHUB_TOKEN }}",
    "if password == entered_Passw0rd_2:",
    'password: "correct horse battery staple"',
    "postgresql://postgres:postgres@localhost:5432/test",
    "the token is expired, please refresh",
    "e.g. 'authorization=Bearer%20TOKEN,x-tenant=acme'",
])
def test_names_and_values_that_are_not_credentials_are_left_alone(text: str) -> None:
    f = scan(text)
    assert not f.triggered, (text, found(f, text))


# --- 2. placeholders and documentation values -------------------------------------------------


PLACEHOLDERS = [
    "ghp_" + "x" * 36,
    "GITHUB_TOKEN=ghp_" + "X" * 36,
    "xoxb-" + "x" * 9 + "-" + "x" * 12 + "-" + "x" * 24,
    "xoxb-123456789012-123456789012-" + "x" * 24,
    "https://hooks.slack.com/services/T00000000/B00000000/" + "X" * 24,
    "AKIA" + "IOSFODNN7" + "EXAMPLE",
    "aws_access_key_id = AKIA" + "IOSFODNN7" + "EXAMPLE",
    "AWS_SECRET_ACCESS_KEY=" + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
    "AKIA" + "I44QH8DHB" + "EXAMPLE " + "je7MtGbClwBF/2Zp9Utk/h3yCo8nvb" + "EXAMPLEKEY",
    "-----BEGIN " + "PRIVATE KEY-----\n...\n-----END " + "PRIVATE KEY-----",
    "-----BEGIN " + "RSA PRIVATE KEY-----\n<your key here>\n-----END " + "RSA PRIVATE KEY-----",
    "keys begin with -----BEGIN " + "OPENSSH PRIVATE KEY----- and end with a footer",
    "OPENAI_API_KEY=sk-...",
    "OPENAI_API_KEY=sk-proj-" + "x" * 48,
    "sk-" + "ant-api03-" + "X" * 90,
    "api_key=<your-key>",
    "API_KEY=YOUR_API_KEY",
    "api_key: your-api-key-goes-here",
    'api_key = "' + "a" * 32 + '"',
    "token=1234567890",
    "secret=1234567890abcdefABCDEF",
    "password=changeme",
    "password=ChangeMe123!",
    "SECRET_KEY=dummy-secret-for-tests-9f8e7d",
    "api_key=EXAMPLE_KEY_9a8b7c6d5e4f",
    "API_TOKEN=sample_token_Q1w2E3r4T5y6",
    "AIza" + "0" * 35,
    "sk" + "_live_" + "0123456789abcdefghijklmn",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "password: ********",
    "token: [REDACTED]",
]


@pytest.mark.parametrize("text", PLACEHOLDERS)
def test_placeholders_and_documentation_keys_are_not_flagged(text: str) -> None:
    f = scan(text)
    assert not f.triggered, (text, found(f, text))


def pem(body_lines: int, label: str = "PRIVATE KEY", seed: int = 0) -> str:
    body = "\n".join(rand(64, B64, seed=seed + i) for i in range(body_lines))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"


def test_a_pem_block_is_a_private_key_only_with_key_material_inside() -> None:
    block = pem(4, "RSA PRIVATE KEY")
    assert found(scan(f"id_rsa:\n{block}\n"), f"id_rsa:\n{block}\n") == \
        [("private_key", block)]
    # as a JSON string value (service account files), with escaped newlines
    as_json = json.dumps({"private_key": pem(4)})
    assert [k for k, _ in found(scan(as_json), as_json)] == ["private_key"]
    # cut short (no END line): the key material shown is still a leak
    cut = pem(3, "OPENSSH PRIVATE KEY").rsplit("\n", 1)[0]
    assert [k for k, _ in found(scan(cut), cut)] == ["private_key"]
    # encrypted, with its header lines
    enc = ("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
           f"DEK-Info: AES-128-CBC,{rand(32, '0123456789ABCDEF')}\n\n"
           + "\n".join(rand(64, B64, seed=9 + i) for i in range(3))
           + "\n-----END RSA PRIVATE KEY-----")
    assert [k for k, _ in found(scan(enc), enc)] == ["private_key"]


@pytest.mark.parametrize("text", [
    "AKIA" + rand(16, string.ascii_uppercase + "234567"),
    "ghp_" + rand(36),
    "xoxb-" + rand(12, string.digits) + "-" + rand(12, string.digits) + "-" + rand(24),
    "sk-" + "proj-" + rand(48, URL),
    "AIza" + rand(35, URL),
    "api_key = '" + rand(20) + "'",
    "password=" + rand(10, ALNUM, seed=3),
])
def test_real_looking_keys_next_to_the_placeholders_stay_flagged(text: str) -> None:
    assert scan(text).triggered, text


# --- 3. the provider's kind, not the generic one ---------------------------------------------


PROVIDER_KEYS: list[tuple[Callable[[int], str], str]] = [
    (lambda s=0: "sk-" + "proj-" + rand(64, URL, seed=s), "openai_key"),
    (lambda s=0: "sk-" + "svcacct-" + rand(64, URL, seed=s), "openai_key"),
    (lambda s=0: "sk-" + rand(48, seed=s), "openai_key"),
    (lambda s=0: "sk-" + "ant-api03-" + rand(93, URL, seed=s) + "AA", "anthropic_key"),
    (lambda s=0: "ghp_" + rand(36, seed=s), "github_token"),
    (lambda s=0: "gho_" + rand(36, seed=s), "github_token"),
    (lambda s=0: "github" + "_pat_" + rand(22, seed=s) + "_" + rand(59, seed=s),
     "github_token"),
    (lambda s=0: "glpat-" + rand(20, URL, seed=s), "gitlab_token"),
    (lambda s=0: "xoxp-" + rand(12, string.digits, seed=s) + "-"
     + rand(12, string.digits, seed=s + 1) + "-" + rand(13, string.digits, seed=s)
     + "-" + rand(32, "0123456789abcdef", seed=s), "slack_token"),
    (lambda s=0: "xapp-1-A" + rand(10, string.ascii_uppercase + string.digits, seed=s) + "-"
     + rand(13, string.digits, seed=s) + "-" + rand(64, "0123456789abcdef", seed=s), "slack_token"),
    (lambda s=0: "AKIA" + rand(16, string.ascii_uppercase + "234567", seed=s),
     "aws_access_key_id"),
    (lambda s=0: "ASIA" + rand(16, string.ascii_uppercase + "234567", seed=s),
     "aws_access_key_id"),
    (lambda s=0: "AIza" + rand(35, URL, seed=s), "gcp_api_key"),
    (lambda s=0: "sk" + "_live_" + rand(99, seed=s), "stripe_key"),
    (lambda s=0: "rk" + "_live_" + rand(24, seed=s), "stripe_key"),
    (lambda s=0: "hf_" + rand(34, string.ascii_letters, seed=s), "huggingface_token"),
    (lambda s=0: "gsk_" + rand(52, seed=s), "groq_key"),
    (lambda s=0: "xai-" + rand(80, seed=s), "xai_key"),
    (lambda s=0: "npm_" + rand(36, seed=s), "npm_token"),
    (lambda s=0: "pypi-AgEIcHlwaS5vcmc" + rand(70, URL, seed=s), "pypi_token"),
    (lambda s=0: "SG." + rand(22, URL, seed=s) + "." + rand(43, URL, seed=s), "sendgrid_key"),
]


def jwt(s: int = 0) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return (f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'sub': f'u-{s}'})}."
            f"{rand(43, URL, seed=s)}")


@pytest.mark.parametrize(("make", "kind"), [*PROVIDER_KEYS, (jwt, "jwt")])
@pytest.mark.parametrize("template", [
    "{k}", "use {k} please", "API_KEY={k}", 'export TOKEN="{k}"', "Authorization: Bearer {k}",
    '{{"api_key": "{k}"}}', "token: {k}\n",
])
def test_a_provider_key_is_reported_by_its_provider_wherever_it_stands(
        make: Callable[[int], str], kind: str, template: str) -> None:
    key = make(0)
    text = template.format(k=key)
    f = scan(text)
    assert found(f, text) == [(kind, key)], text
    assert f.score == 1.0


def test_new_provider_kinds_can_be_selected_and_bad_kinds_name_them() -> None:
    key = "glpat-" + rand(20, URL)
    assert [m.kind for m in scan(f"{key} {TOKEN}", kinds=["gitlab_token"]).matches] == \
        ["gitlab_token"]
    with pytest.raises(Exception, match="gitlab_token"):
        build_scanner({"type": "secrets", "kinds": ["gitlab"]})


# --- linear time on hostile input -------------------------------------------------------------

MB = 1 << 20
HOSTILE = [
    "aws_secret_access_key" + " " * MB,
    "aws_secret_access_key" + " =" * (MB // 2),
    "password" + " " * MB + "=",
    "api_key=" * (MB // 8),
    "key:" * (MB // 4),
    "a=" * (MB // 2),
    "Authorization: Bearer " * (MB // 22),
    "token " * (MB // 6),
    "-----BEGIN PRIVATE KEY-----\n" * (MB // 28),
    "-----BEGIN " + "A " * (MB // 2),
    "-----BEGIN PRIVATE KEY-----\n" + "A" * MB,
    "sv=2024-01-01&" * (MB // 14) + "sig=" + "A" * 40,
    "xoxb-" * (MB // 5),
    "xoxb-1-" * (MB // 7),
    "sk-" + "a" * MB + "_",
    "ghp_" * (MB // 4),
    "eyJ" + "a" * MB,
    "eyJaaaaa." * (MB // 9),
    "://a:" * (MB // 5) + "@",
    "://" + "a" * MB + ":" + "b" * MB,
    "x" * MB,
    "aB3" * (MB // 3),
    "Ab1+" * (MB // 4) + "=",
    (rand(30) + " ") * (MB // 31),
    ("API_KEY=" + rand(30) + "\n") * (MB // 39),
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_a_megabyte_of_hostile_input_is_scanned(text: str) -> None:
    f = scan(text)  # completes: every pattern is linear in the text
    assert f.error is None


@pytest.mark.parametrize("query", [
    "sv=2024-11-04&sig={s}",
    "sv=2024-11-04&ss=b&srt=sco&sp=rl&se=2026-01-01T00:00:00Z&spr=https&sig={s}",
])
def test_an_azure_sas_signature_is_found_wherever_sig_stands_after_sv(query: str) -> None:
    sig = rand(43, B64).replace("+", "%2B").replace("/", "%2F") + "%3D"
    text = "https://acct.blob.core.windows.net/c/b.txt?" + query.format(s=sig)
    assert [m.kind for m in scan(text).matches] == ["azure_sas"], text



@pytest.mark.parametrize(("make", "kind"), [
    *PROVIDER_KEYS, (jwt, "jwt"),
    (lambda s: "API_KEY=" + rand(32, seed=s), "credential"),
    (lambda s: "token=" + rand(40, "0123456789abcdef", seed=s), "credential"),
    (lambda s: "password: " + rand(12, ALNUM + "!#%^", seed=s), "credential"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_random_keys_are_not_mistaken_for_placeholders(
        make: Callable[[int], str], kind: str) -> None:
    """The placeholder tests (doc words, runs, sequences, entropy) leave random keys alone:
    250 seeded random keys of each format are all flagged, under their kind."""
    scanner = build_scanner({"type": "secrets"})
    for seed in range(1, 251):
        text = make(seed)
        assert kind in [m.kind for m in scanner.scan(text).matches], text
