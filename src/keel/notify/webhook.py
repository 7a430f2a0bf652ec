"""Webhook delivery over HTTP (aiohttp): a Slack message or keel's signed JSON document.

The answer decides what happens next: a 2xx is delivered; a 408, 429 or 5xx, a timeout
or a connection failure is retried (``Retry-After`` is honoured when the receiver sends
one); any other status (a 4xx: the receiver refuses the content; a 3xx: keel follows no
redirect with a signed body) is not. Error messages name the receiver's host, never
its URL's path or query, which for Slack is the credential.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from keel.config import ReceiverConfig
from keel.notify.model import Notification
from keel.notify.payloads import json_body, slack_body
from keel.notify.signing import DELIVERY_HEADER, sign
from keel.notify.transport import DeliveryFailed

USER_AGENT = "keel-notify/1"
_RETRY_STATUSES = frozenset({408, 429})
_SNIPPET = 200
_SECONDS = re.compile(r"[0-9]{1,6}")


def retry_after(value: str | None) -> float | None:
    """The seconds of a ``Retry-After`` header given in seconds (a date is ignored)."""
    if value is None or not _SECONDS.fullmatch(value.strip()):
        return None
    return float(value.strip())


class WebhookSender:
    """POSTs one receiver's notifications through a shared ``aiohttp.ClientSession``."""

    def __init__(self, config: ReceiverConfig,
                 session: Callable[[], aiohttp.ClientSession]) -> None:
        if config.kind != "webhook" or config.url is None:
            raise ValueError(f"receiver {config.name!r} is not a webhook")
        self.name = config.name
        self.config = config
        self.url = config.url
        self._session = session
        self._host = urlsplit(config.url).hostname or "?"

    def request(self, n: Notification) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt (signed now, for the json format)."""
        headers = {**self.config.headers, "Content-Type": "application/json; charset=utf-8",
                   "User-Agent": USER_AGENT}
        if self.config.payload_format == "slack":
            body = slack_body(n)
            headers[DELIVERY_HEADER] = n.id
        else:
            body = json_body(n)
            assert self.config.secret is not None  # the config refuses a json hook without
            headers.update(sign(self.config.secret, body, n.id))
        return body, headers

    async def send(self, notification: Notification) -> None:
        body, headers = self.request(notification)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with self._session().post(self.url, data=body, headers=headers,
                                            timeout=timeout, allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    await resp.read()
                    return
                text = (await resp.content.read(_SNIPPET)).decode("utf-8", "replace")
                said = " ".join(text.split())
                message = f"{self._host} answered HTTP {resp.status}" + (
                    f": {said}" if said else "")
                if resp.status in _RETRY_STATUSES or resp.status >= 500:
                    raise DeliveryFailed(message, retry=True,
                                         retry_after=retry_after(resp.headers.get("Retry-After")))
                if 300 <= resp.status < 400:
                    message += "; keel follows no redirect: configure the final URL"
                raise DeliveryFailed(message, retry=False)
        except TimeoutError:
            raise DeliveryFailed(f"{self._host} did not answer within "
                                 f"{self.config.timeout_s:g}s", retry=True) from None
        except aiohttp.ClientError as exc:
            raise DeliveryFailed(f"could not reach {self._host}: {type(exc).__name__}",
                                 retry=True) from None

    async def close(self) -> None:
        return None
