"""The gateway's name for :mod:`keel.text` (token estimates and message text), kept while
modules of the gateway still import it from here."""

from keel.text import PER_MESSAGE_OVERHEAD, content_text, estimate_messages, estimate_text

__all__ = ["PER_MESSAGE_OVERHEAD", "content_text", "estimate_messages", "estimate_text"]
