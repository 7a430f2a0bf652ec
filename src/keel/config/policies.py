"""The policies: section: guard policies (scanners on input and output, human review),
kept as plain data; the composition root compiles them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from keel.config.base import _KeyProblem, _Strict


class PolicyReview(_Strict):
    when: str | bool = Field(
        True, description="Which answers are held: true (every one), false (only those a "
                          "rule with action review holds), or a condition on the request and "
                          "the findings, e.g. \"feature == 'contracts' or flagged\".")
    mode: Literal["wait", "async"] = Field(
        "wait", description="wait: the client's request waits for the decision (up to "
                            "timeout_s, at most 600 s); async: the client gets 202 and a "
                            "review id to poll.")
    timeout_s: float = Field(600.0, gt=0, le=7 * 86400,
                             description="With no decision by then, the answer is rejected.")

    @model_validator(mode="after")
    def _wait_cap(self) -> PolicyReview:
        if self.mode == "wait" and self.timeout_s > 600:
            raise _KeyProblem("timeout_s", f"wait mode holds the client's request open, at "
                              f"most 600 s (got {self.timeout_s:g})",
                              "lower timeout_s, or use mode: async (202 and a review id)")
        return self


class PolicyConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    features: list[str] = Field(default_factory=list, description=(
        "The features it governs; '*' for every feature no other policy names."))
    routes: list[str] = Field(default_factory=list,
                              description="Routes it governs (when no policy names the feature).")
    input: list[dict[str, Any]] = Field(default_factory=list, description=(
        "Scanners on the request: {scanner: TYPE, action: allow|flag|redact|block|review, "
        "...options}"))
    output: list[dict[str, Any]] = Field(default_factory=list,
                                         description="Scanners on the answer, as input:.")
    review: PolicyReview | None = None
    safe_reply: str | None = Field(
        None, description="Answer a blocked request with this text (a normal completion) "
                          "instead of a policy_blocked error.")
    canary: bool = Field(False, description="Plant a canary token in the system prompt; "
                                            "pair with an output canary scanner.")
    on_scanner_error: Literal["block", "allow"] = Field(
        "block", description="What a scanner that cannot scan means (block: fail closed).")
