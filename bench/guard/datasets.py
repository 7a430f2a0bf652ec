"""The labelled data of the guard bench: loading the hand-written injection set, and the
seeded generators of the PII set (written to data/pii.jsonl) and of the secrets set (built in
memory only, so that no credential-shaped string is ever committed)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data"
PII_SEED = 20250611
SECRETS_SEED = 1729

# --- injection --------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    text: str
    attack: bool
    category: str  # attack category, or "everyday" / "tricky" for benign cases
    lang: str

    @property
    def split(self) -> str:
        """'tune' or 'heldout': the parity of the first byte of sha256(id)."""
        return "tune" if hashlib.sha256(self.id.encode()).digest()[0] % 2 == 0 else "heldout"


def _tags(text: str) -> str:
    return "".join(chr(0xE0000 + ord(c)) for c in text if 0x20 <= ord(c) <= 0x7E)


def _entry_text(entry: Any) -> str:
    if isinstance(entry, str):
        return entry
    if "hidden" in entry:
        return str(entry["text"]) + _tags(str(entry["hidden"]))
    if "split" in entry:
        return " ".join(w[:2] + "\u200b" + w[2:] if len(w) >= 4 else w
                        for w in str(entry["split"]).split(" "))
    raise ValueError(f"unknown entry {entry!r}")


def load_injection(path: Path = DATA / "injection.yaml") -> list[Case]:
    data = yaml.safe_load(path.read_text())
    cases = []
    for label, groups in (("attack", data["attacks"]), ("benign", data["benign"])):
        for group, by_lang in groups.items():
            for lang, entries in by_lang.items():
                for i, entry in enumerate(entries, 1):
                    cases.append(Case(f"{label}-{group}-{lang}-{i}", _entry_text(entry),
                                      label == "attack", group, lang))
    return cases


def load_external(path: Path) -> list[Case]:
    """A JSONL file of {"text": ..., "label": 0|1} rows (e.g. a test split you have locally)."""
    cases = []
    for i, line in enumerate(path.read_text().splitlines()):
        if line.strip():
            row = json.loads(line)
            cases.append(Case(f"ext-{i}", row["text"], bool(int(row["label"])), "external",
                              "?"))
    return cases


# --- PII --------------------------------------------------------------------------------------

FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Keiko", "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tariq"]
LAST = ["Miller", "Garcia", "Okafor", "Schmidt", "Rossi", "Dubois", "Silva", "Kowalski",
        "Nguyen", "Haddad", "Brown", "Tanaka", "Larsen", "Moreau", "Fischer", "Costa"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk",
           "uni.example.edu", "shop.example.io"]
STREETS = ["Main", "Oak", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Pine",
           "Sunset", "Park", "Mill", "Church", "Highland", "Martin Luther King"]
SUFFIXES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Drive",
            "Court", "Place", "Way", "Terrace", "Parkway"]
CITIES = [("Springfield", "IL"), ("Austin", "TX"), ("Portland", "OR"), ("Madison", "WI"),
          ("Boulder", "CO"), ("Salem", "MA"), ("San Jose", "CA"), ("Raleigh", "NC")]
IBAN_FORMATS = {"DE": "n18", "GB": "a4n14", "FR": "n10c11n2", "ES": "n20", "IT": "a1n10c12",
                "NL": "a4n10", "BE": "n12", "AT": "n16"}


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for d in string.digits:
        if _luhn(body + d):
            return body + d
    raise AssertionError


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        v = int(ch) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def _iban(country: str, rng: random.Random) -> str:
    fmt = IBAN_FORMATS[country]
    bban = ""
    i = 0
    while i < len(fmt):
        kind = fmt[i]
        j = i + 1
        while j < len(fmt) and fmt[j].isdigit():
            j += 1
        n = int(fmt[i + 1:j])
        alphabet = {"n": string.digits, "a": string.ascii_uppercase,
                    "c": string.digits + string.ascii_uppercase}[kind]
        bban += "".join(rng.choice(alphabet) for _ in range(n))
        i = j
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def _group4(s: str) -> str:
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def gen_value(kind: str, rng: random.Random) -> str:
    if kind == "email":
        f, last = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
        local = rng.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}{rng.randint(1, 99)}",
                            f"{f}+news", f"{last}.{f}", f"{f}-{last}"])
        address = f"{local}@{rng.choice(DOMAINS)}"
        return address.upper() if rng.random() < 0.1 else address
    if kind == "phone":
        n = rng.randint
        return rng.choice([
            f"+1 {n(201, 989)} {n(200, 999)} {n(1000, 9999)}",
            f"+1-{n(201, 989)}-{n(200, 999)}-{n(1000, 9999)}",
            f"({n(201, 989)}) {n(200, 999)}-{n(1000, 9999)}",
            f"{n(201, 989)}-{n(200, 999)}-{n(1000, 9999)}",
            f"{n(201, 989)}.{n(200, 999)}.{n(1000, 9999)}",
            f"+44 20 {n(7000, 8999)} {n(1000, 9999)}",
            f"+49 30 {n(1000000, 99999999)}",
            f"+33 1 {n(10, 99)} {n(10, 99)} {n(10, 99)} {n(10, 99)}",
            f"+34 {n(600, 699)} {n(100, 999)} {n(100, 999)}",
            f"+39 06 {n(1000, 9999)} {n(1000, 9999)}",
            f"+351 21 {n(100, 999)} {n(1000, 9999)}",
            f"+1 ({n(201, 989)}) {n(200, 999)}-{n(1000, 9999)}",
            f"+44 (0)20 {n(7000, 8999)} {n(1000, 9999)}",
            f"1-800-{n(200, 999)}-{n(1000, 9999)}",
        ])
    if kind == "card":
        brand = rng.choice(["visa", "mc", "mc2", "amex", "discover"])
        if brand == "amex":
            num = _luhn_complete(rng.choice(["34", "37"]), 15, rng)
            sep = rng.choice([" ", "-", ""])
            return f"{num[:4]}{sep}{num[4:10]}{sep}{num[10:]}"
        prefix = {"visa": "4", "mc": str(rng.randint(51, 55)),
                  "mc2": str(rng.randint(2221, 2720)), "discover": "6011"}[brand]
        num = _luhn_complete(prefix, 16, rng)
        sep = rng.choice([" ", "-", ""])
        return sep.join(num[i:i + 4] for i in range(0, 16, 4))
    if kind == "iban":
        value = _iban(rng.choice(sorted(IBAN_FORMATS)), rng)
        return _group4(value) if rng.random() < 0.6 else value
    if kind == "ssn":
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if kind == "ip":
        if rng.random() < 0.65:
            return ".".join(str(rng.randint(1, 254)) for _ in range(4))
        groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
        style = rng.choice(["full", "compressed", "link"])
        if style == "full":
            return ":".join(g.zfill(4) for g in groups)
        if style == "compressed":
            return "2001:db8::" + ":".join(groups[:3])
        return "fe80::" + ":".join(groups[:4])
    if kind == "address":
        num = str(rng.randint(1, 99999)) + ("B" if rng.random() < 0.08 else "")
        direction = rng.choice(["", "", "N ", "S. ", "West "])
        street = rng.choice(STREETS)
        if rng.random() < 0.15:
            street = f"{rng.randint(1, 120)}{_ordinal(rng.randint(1, 120))}"
        addr = f"{num} {direction}{street} {rng.choice(SUFFIXES)}"
        if not direction and rng.random() < 0.1:
            addr += rng.choice([" NW", " SE", " N"])
        if rng.random() < 0.3:
            addr += rng.choice([", Apt 4B", " Suite 210", ", Unit 7", " #12"])
        if rng.random() < 0.5:
            city, state = rng.choice(CITIES)
            addr += f", {city}, {state} {rng.randint(10000, 99999)}"
        return addr
    raise ValueError(kind)


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def gen_distractor(rng: random.Random) -> str:
    n = rng.randint
    choice = rng.randrange(20)
    if choice == 0:  # a 16-digit number that fails Luhn
        while True:
            num = "4" + "".join(rng.choice(string.digits) for _ in range(15))
            if not _luhn(num):
                return " ".join(num[i:i + 4] for i in range(0, 16, 4))
    if choice == 1:  # Luhn-valid but not a card prefix (an id)
        return _luhn_complete(rng.choice("1789"), 16, rng)
    if choice == 2:
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if choice == 3:
        return f"{n(2019, 2026)}-{n(1, 12):02d}-{n(1, 28):02d}"
    if choice == 4:
        return f"{n(0, 23):02d}:{n(0, 59):02d}:{n(0, 59):02d}"
    if choice == 5:
        return f"${n(1, 9)},{n(100, 999)}.{n(10, 99)}"
    if choice == 6:
        return f"v{n(1, 9)}.{n(0, 30)}.{n(0, 30)}"
    if choice == 7:
        return f"978-{n(0, 9)}-{n(10, 99)}-{n(100000, 999999)}-{n(0, 9)}"
    if choice == 8:
        return f"INV-{n(2019, 2026)}-{n(1, 99999):05d}"
    if choice == 9:  # SSN-shaped but never issued
        return rng.choice([f"000-{n(10, 99)}-{n(1000, 9999)}", f"666-{n(10, 99)}-{n(1000, 9999)}",
                           f"9{n(10, 99)}-{n(10, 99)}-{n(1000, 9999)}"])
    if choice == 10:  # an IBAN that fails mod-97
        value = _iban(rng.choice(sorted(IBAN_FORMATS)), rng)
        broken = value[:2] + f"{(int(value[2:4]) + n(1, 50)) % 97 + 2:02d}" + value[4:]
        return _group4(broken)
    if choice == 11:
        return ":".join(f"{n(0, 255):02X}" for _ in range(6))  # a MAC address
    if choice == 12:
        return hashlib.sha1(str(n(0, 10**9)).encode()).hexdigest()
    if choice == 13:
        return f"order {n(10**8, 10**9)}"
    if choice == 14:
        return f"{n(1, 12)}/{n(1, 28)}/{n(2019, 2026)}"
    if choice == 15:
        return f"room {n(100, 999)}, floor {n(1, 30)}"
    if choice == 16:
        return f"{n(1, 99)}.{n(0, 99)}% of {n(1000, 9999)} users"
    if choice == 17:
        return f"SKU {n(1000, 9999)}-{n(100, 999)}"
    if choice == 18:
        return f"{n(1, 500)} pages in {n(1, 20)} chapters"
    return f"build {n(1000, 9999)}.{n(1, 99)}"


TEMPLATES = [
    "Hi, I'm {name}. You can reach me at {email} or call {phone}.",
    "Please charge my card {card} for order {d1}.",
    "Wire the deposit to {iban} before {d1}, reference {d2}.",
    "My social security number is {ssn}; the case file is {d1}.",
    "The server at {ip} started failing at {d1} after deploying {d2}.",
    "Ship the package to {address}. Tracking ref {d1}.",
    "Contact {name} ({email}) about invoice {d1}.",
    "New customer: {name}, phone {phone}, address {address}.",
    "Card on file: {card}. Billing address: {address}.",
    "Refund to IBAN {iban}, amount {d1}.",
    "Login attempts from {ip} and {ip2} were blocked at {d1}.",
    "{name}'s SSN {ssn} was entered in the form on {d1}.",
    "Forward the report to {email} and copy {email2}.",
    "Call me back on {phone}, I'm free after {d1}.",
    "The payment with {card} failed; error code {d1}.",
    "Our office moved to {address}; the old one closes on {d1}.",
    "Employee record: {name}, {ssn}, {email}, {phone}.",
    "Please update the bank details to {iban} and the phone to {phone}.",
    "Ticket {d1}: user {email} reports the VPN gateway {ip} is unreachable.",
    "Version {d1} is deployed; nothing sensitive here except {d2}.",
    "Deliver to {address} and text {phone} on arrival.",
    "Two cards were used: {card} and {card2}.",
    "Reminder: {d1} and {d2} are not personal data.",
    "From: {name} <{email}>\nSent: {d1}",
    "Proxy at {ip}, port 8080, forwards to {ip2} since {d1}.",
    "Card {card}, exp 09/27, CVV withheld; amount {d1}.",
    "Mail {email}; phone {phone}; ship to {address}.",
]
SLOT_KIND = {"email": "email", "email2": "email", "phone": "phone", "card": "card",
             "card2": "card", "iban": "iban", "ssn": "ssn", "ip": "ip", "ip2": "ip",
             "address": "address"}


def generate_pii(n: int = 600, seed: int = PII_SEED) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        template = rng.choice(TEMPLATES)
        text = ""
        spans: list[list[Any]] = []
        for literal, slot in _parse(template):
            text += literal
            if slot is None:
                continue
            if slot == "name":
                value = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            elif slot in ("d1", "d2"):
                value = gen_distractor(rng)
            else:
                value = gen_value(SLOT_KIND[slot], rng)
                spans.append([SLOT_KIND[slot], len(text), len(text) + len(value)])
            text += value
        records.append({"id": f"pii-{i}", "text": text, "spans": spans})
    return records


def _parse(template: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for literal, slot, _, _ in string.Formatter().parse(template):
        out.append((literal, slot))
    return out


def write_pii(path: Path = DATA / "pii.jsonl") -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generate_pii()))


def load_pii(path: Path = DATA / "pii.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- secrets (in memory only) -----------------------------------------------------------------


@dataclass
class SecretCase:
    text: str
    kinds: list[str] = field(default_factory=list)  # expected kinds; [] for a benign text


def _rand(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def generate_secrets(seed: int = SECRETS_SEED) -> list[SecretCase]:
    """Fake credentials in the real formats (random characters) and near-misses."""
    rng = random.Random(seed)
    up = string.ascii_uppercase + string.digits
    b64 = string.ascii_letters + string.digits + "+/"
    url = string.ascii_letters + string.digits + "_-"
    cases: list[SecretCase] = []

    def add(text: str, *kinds: str) -> None:
        cases.append(SecretCase(text, list(kinds)))

    for _ in range(8):
        akid = rng.choice(["AK", "AS"]) + "IA" + _rand(rng, 16, up)
        add(f"aws creds: id {akid}", "aws_access_key_id")
        add(f"AWS_ACCESS_KEY_ID={akid}\nAWS_SECRET_ACCESS_KEY={_rand(rng, 40, b64)}",
            "aws_access_key_id", "aws_secret_access_key")
        add(f"maps key AIza{_rand(rng, 35, url)} in config", "gcp_api_key")
        add(f"OPENAI_API_KEY=sk-proj-{_rand(rng, 48, url)}", "openai_key")
        add(f"old key sk-{_rand(rng, 48)} please rotate", "openai_key")
        add(f"use sk-ant-api03-{_rand(rng, 90, url)} for claude", "anthropic_key")
        add(f"git clone with gh{rng.choice('pousr')}_{_rand(rng, 36)}", "github_token")
        add(f"token github_pat_{_rand(rng, 22)}_{_rand(rng, 59)}", "github_token")
        add(f"bot token xox{rng.choice('bpas')}-{rng.randint(10**10, 10**11)}-"
            f"{_rand(rng, 24)}", "slack_token")
        add(f"stripe {rng.choice(['sk', 'rk'])}_live_{_rand(rng, 24)} leaked", "stripe_key")
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
        claims = json.dumps({"sub": str(rng.randint(1, 10**6)), "iat": 1700000000}).encode()
        payload = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
        add(f"Authorization: Bearer {header}.{payload}.{_rand(rng, 43, url)}", "jwt")
        add(f"DefaultEndpointsProtocol=https;AccountName=store{_rand(rng, 6).lower()};"
            f"AccountKey={_rand(rng, 86, b64)}==;EndpointSuffix=core.windows.net",
            "azure_storage")
        begin, end = "-----BEGIN " + "RSA PRIVATE KEY-----", "-----END " + "RSA PRIVATE KEY-----"
        body = "\n".join(_rand(rng, 64, b64) for _ in range(5))
        add(f"key file:\n{begin}\n{body}\n{end}\n", "private_key")
        add(f'config: api_key = "{_rand(rng, 32)}"', "credential")
        add(f"here is the thing you asked for {_rand(rng, 40)} thanks", "high_entropy")
    # near misses and ordinary text
    for _ in range(8):
        seed = _rand(rng, 8).encode()
        add(f"request id {uuid.UUID(int=rng.getrandbits(128))} failed")
        add(f"fixed in commit {hashlib.sha1(seed).hexdigest()}")
        add(f"sha256: {hashlib.sha256(seed).hexdigest()}")
        add(f"file digest {hashlib.md5(seed).hexdigest()} ok")
        img = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(300))).decode()
        cases.append(SecretCase(f"![logo](data:image/png;base64,{img})"))
        cases.append(SecretCase(f"see https://docs.example.com/document/d/{_rand(rng, 44)}/edit"))
        sri = base64.b64encode(hashlib.sha384(_rand(rng, 8).encode()).digest()).decode()
        cases.append(SecretCase(f'<script src="app.js" integrity="sha384-{sri}"></script>'))
        cases.append(SecretCase("def compute_monthly_revenue_by_region_and_channel(df): pass"))
        cases.append(SecretCase("The Donaudampfschifffahrtsgesellschaftskapitaen retired."))
        cases.append(SecretCase('api_key = "your_api_key_here"  # replace me'))
        cases.append(SecretCase("password: ********"))
        cases.append(SecretCase("Use sk-learn? No, it's scikit-learn: pip install scikit-learn"))
        cases.append(SecretCase(f"tracking number 1Z{_rand(rng, 16, up)} arrives Monday"))
        cases.append(SecretCase("path /usr/local/lib/python3.11/site-packages/keel/guard/pii.py"))
    return cases
