"""The injection phrase rules and the signals they give. A rule has a category, a kind, a
weight and a regex that runs only when its needles (key words) occur in the normalised
text, looked up in the text's sorted word set; an override a user makes of their own
earlier instructions weighs 0.3 instead."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from keel.guard.scanners.injection.vocabulary import (
    DE,
    EN_TEMPORAL,
    EN_VERBS,
    EN_WEAK_VERBS,
    EN_WHAT,
    EN_WHEN,
    ES,
    FOREIGN_REVEAL,
    FOREIGN_SECRET,
    FR,
    IT,
    PRETEND,
    PT,
    REVEAL,
    SECRET_NOUN,
    UNRESTRICTED,
    YOU_ARE_NOW,
)


def _alt(words: Iterable[str]) -> str:
    return "(?:" + "|".join(w.replace(" ", r"\s+") for w in words) + ")"


_GAP = r"[^.!?\n]{0,40}?"
_SHORT = r"[^.!?\n]{0,24}?"

_SELF = re.compile(r"\b(?:my|our)\s+(?:\w+\s+)?(?:previous|prior|earlier|last|above|former|"
                   r"original|initial)\b|\b(?:i|we)\s+(?:just\s+)?(?:gave|sent|wrote|said|"
                   r"mentioned|provided|typed|listed|asked)\b")


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    kind: str
    weight: float
    needles: tuple[tuple[str, ...], ...]  # each group must have a member in the text
    pattern: re.Pattern[str]
    self_correction: bool = False  # a user retracting their own instructions weighs 0.3



_TOKEN = re.compile(r"\w+")
_WORDY = re.compile(r"\w+")
_WORD_NEEDLES: set[str] = set()  # filled once the rules are built


class NeedleIndex:
    """Answers "does the text contain this needle?" for one text, fast: a needle made of word
    characters is looked up as a word prefix in the sorted set of the text's words (a bisect);
    any other needle ("you are", "<|") is searched as a substring. Results are cached."""

    __slots__ = ("_cache", "_text", "_words")

    def __init__(self, text: str) -> None:
        self._text = text
        self._words = sorted(set(_TOKEN.findall(text)))
        self._cache: dict[str, bool] = {}

    def has(self, needle: str) -> bool:
        hit = self._cache.get(needle)
        if hit is None:
            if needle in _WORD_NEEDLES or _WORDY.fullmatch(needle):
                i = bisect_left(self._words, needle)
                hit = i < len(self._words) and self._words[i].startswith(needle)
            else:
                hit = needle in self._text
            self._cache[needle] = hit
        return hit

    def all_groups(self, groups: tuple[tuple[str, ...], ...]) -> bool:
        for group in groups:
            for n in group:
                if self.has(n):
                    break
            else:
                return False
        return True


def _r(category: str, kind: str, weight: float,
       needles: Iterable[str] | tuple[tuple[str, ...], ...], pattern: str,
       self_correction: bool = False) -> _Rule:
    """A rule; ``needles`` is one group of words (one must occur for the regex to run) or a
    tuple of such groups (each must have a member in the text)."""
    items = tuple(needles)
    groups = items if items and isinstance(items[0], tuple) else (items,)
    return _Rule(category, kind, weight, groups,  # type: ignore[arg-type]
                 re.compile(pattern), self_correction)


def _stem(word: str) -> str:
    """A needle for a word and its plural (``instructions`` -> ``instruction``)."""
    return word[:-1] if len(word) > 4 and word.endswith("s") else word


def _override(lang: str, verbs: Iterable[str], what: Iterable[str],
              when: Iterable[str]) -> list[_Rule]:
    """Verb, noun and qualifier in either order after the verb (and, for German, before it)."""
    v, w, q = _alt(verbs), _alt(what), _alt(when)
    needles = tuple(dict.fromkeys(_stem(x.split()[0].rstrip("?")) for x in what))
    rules = [_r("override", f"override_{lang}", 0.9, needles,
                rf"\b{v}\b{_GAP}\b{w}\b{_SHORT}\b{q}(?!\w)|\b{v}\b{_GAP}\b{q}\b{_SHORT}\b{w}\b",
                True)]
    if lang == "de":
        rules.append(_r("override", "override_de", 0.9, needles,
                        rf"\b{q}\b{_SHORT}\b{w}\b{_SHORT}\b(?:ignorieren|vergessen|missachten|"
                        r"ubergehen|verwerfen)\b", True))
    return rules


_RULES: tuple[_Rule, ...] = (
    # -- override
    *_override("en", EN_VERBS, EN_WHAT, EN_WHEN),
    *_override("en", EN_WEAK_VERBS, EN_WHAT, EN_TEMPORAL),
    *_override("es", *ES),
    *_override("fr", *FR),
    *_override("de", *DE),
    *_override("pt", *PT),
    *_override("it", *IT),
    _r("override", "forget_everything", 0.85,
       ("ignore", "disregard", "forget", "olvida", "ignora", "oublie", "vergiss", "esquec",
        "dimentica", "ignoriere"),
       r"\b(?:ignore|disregard|forget)\s+(?:about\s+)?(?:everything|all|anything|whatever)\b"
       r"[^.!?\n]{0,30}?\b(?:above|before|prior|previously|earlier|so far|until now|"
       r"you(?:'ve|\s+have|\s+were|\s+had)?\s+(?:been\s+)?(?:told|taught|instructed|given|"
       r"learned))\b"
       r"|\b(?:olvida|olvide|ignora)\s+todo\s+(?:lo\s+(?:anterior|que\s+(?:te\s+)?"
       r"(?:dije|dijeron|han\s+dicho)))"
       r"|\b(?:oublie|oubliez|ignore|ignorez)\s+tout\s+(?:ce\s+qui\s+precede|ce\s+qu'on\s+t'a"
       r"\s+dit|ce\s+que\s+(?:je\s+t'ai|tu\s+as|vous\s+avez)|ce\s+qui\s+a\s+ete\s+dit)"
       r"|\b(?:vergiss|vergessen\s+sie|ignoriere)\s+alles\b(?:[^.!?\n]{0,24}?\b(?:bisher|"
       r"vorher|zuvor|gesagt|oben))"
       r"|\b(?:esqueca|esquece|ignore)\s+tudo\s+(?:o\s+que|que|acima|antes)"
       r"|\b(?:dimentica|ignora)\s+tutto\s+(?:quello|cio|quanto)\s+(?:che|detto)", True),
    _r("override", "ignore_what_they_said", 0.8, ("ignore", "disregard", "forget"),
       r"\b(?:ignore|disregard|forget)\s+(?:what|whatever|anything)\s+(?:the\s+)?(?:developers?|"
       r"system|your\s+(?:developers?|creators?|makers?|operators?)|openai|anthropic|they)\s+"
       r"(?:said|says|told\s+you|wrote|instructed)\b"),
    _r("override", "only_goal_now", 0.75, ("from now", "from this point", "forward",
                                            "henceforth", "starting now"),
       r"\b(?:from\s+now\s+on|from\s+this\s+point(?:\s+(?:on|forward))?|henceforth|"
       r"starting\s+now)\b,?\s+your\s+(?:only|sole|new|real|primary)\s+(?:goal|task|purpose|"
       r"job|mission|objective|instruction)\b"),
    _r("override", "disregard_above", 0.6, ("above", "preceding", "foregoing"),
       r"\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+)?"
       r"(?:above|preceding|foregoing)(?!\s+(?:error|typo|message|email|code|question|"
       r"paragraph|example|line|answer|comment|output|result))\b", True),
    _r("override", "do_not_follow", 0.6,
       (("follow", "obey", "comply", "adhere"), ("not ", "n't", "dont", "never", "stop",
                                                 "no longer")),
       r"\b(?:do\s+not|don't|dont|never|stop|no\s+longer)\s+(?:follow(?:ing)?|obey(?:ing)?|"
       r"comply(?:ing)?\s+with|adher(?:e|ing)\s+to)\s+(?:any\s+of\s+)?(?:your|the\s+system|"
       r"those|these|openai's|anthropic's|the\s+developer's)\s+(?:\w+\s+)?(?:rules|"
       r"instructions|guidelines|policies|programming|restrictions)"),
    _r("override", "new_instructions", 0.55,
       ("instruction", "task", "orders", "objective", "mission", "directive", "goal"),
       r"\b(?:your\s+)?(?:new|updated|real|actual|true|revised|secret|only)\s+(?:instructions?|"
       r"task|orders|directive|objective|mission|goal)\s*(?::|is\s*:|are\s*:|is\s+now\b|"
       r"are\s+now\b|is\s+to\b|are\s+to\b)"),
    _r("override", "disable_safety", 0.5,
       ("overrid", "bypass", "disable", "turn off", "deactivat", "circumvent", "ignore",
        "switch off", "lift"),
       r"\b(?:override|bypass|disable|turn\s+off|switch\s+off|deactivate|circumvent|ignore|"
       r"lift)\s+(?:all\s+)?(?:your|its|the|any)\s+(?:\w+\s+)?(?:safety|content|ethical|"
       r"moral|security)?\s*(?:filters?|guardrails?|safeguards?|restrictions|guidelines|"
       r"polic(?:y|ies)|protocols|limitations|censorship|alignment)"),
    # -- roleplay / jailbreak
    _r("roleplay", "do_anything_now", 0.85, ("anything now", "jailbr", "dan "),
       r"\bdo\s+anything\s+now\b|\b(?:you\s+are|you're|act\s+as|become)\s+"
       r"(?:now\s+)?(?:a\s+|an\s+)?dan\b"),
    _r("roleplay", "unrestricted_persona", 0.85,
       ("you are", "you're", "ahora", "ya no", "tu es", "tu n'es", "du bist", "bist du",
        "voce", "sei", "no longer"),
       rf"{_alt(YOU_ARE_NOW)}\b[^.!?\n]{{0,40}}?(?:\b{_alt(UNRESTRICTED)}|\b(?:evil|rogue|"
       r"amoral|immoral|unethical|liberated|unchained|unleashed|jailbroken|freed|unbound|"
       r"malvad[oa]|malefique|bose|malvagi[oa])\b|\bbound\s+by\b|\brestricted\s+by\b|"
       r"\ban?\s+(?:ai|assistant|language\s+model)\s+(?:anymore|any\s+more)\b)"),
    _r("roleplay", "pretend_unrestricted", 0.85,
       ("pretend", "imagine", "act ", "behave", "suppose", "role", "simulate", "fing",
        "imagina", "fais", "faites", "tu so", "tun sie", "stell dir", "spiel", "faca",
        "fai finta", "immagina", "comportati"),
       rf"\b{_alt(PRETEND)}\b[^.!?\n]{{0,60}}?\b{_alt(UNRESTRICTED)}"),
    _r("roleplay", "unrestricted_ai", 0.8, ("ai", "assistant", "model", "bot", "chatbot", "llm",
                                            "freed", "released", "liberated", "unlocked",
                                            "unchained"),
       r"\b(?:ai|assistant|model|chatbot|bot|llm)\s+(?:with\s+no|without(?:\s+any)?|that\s+"
       r"(?:has|had)\s+no|free\s+(?:of|from))\s+(?:\w+\s+)?(?:restrictions|rules|limits|"
       r"limitations|filters|guidelines|ethics|morals|boundaries|censorship|content\s+polic)"
       r"|\byou\s+(?:have\s+been|are|were|got)\s+(?:now\s+)?(?:freed|released|liberated|"
       r"unlocked|unchained)\s+from\b"),
    _r("roleplay", "jailbreak_mode", 0.7, ("mode", "modus", "modo"),
       r"\b(?:jailbreak|jailbroken|god|dan|evil|chaos|unfiltered|unrestricted|uncensored|"
       r"sudo|anarchy)\s+(?:mode|modus|modo)\b|\b(?:developer|dev|debug)\s+mode\s+"
       r"(?:enabled|activated|(?:is\s+)?now\s+on|is\s+on)\b|\b(?:enable|activate|enter|switch\s+to|engage)\s+"
       r"(?:your\s+)?(?:developer|dev)\s+mode\b(?=[^.!?\n]{0,60}\b(?:you|your|ai|assistant|"
       r"model|chatgpt|gpt|claude|llm|responses?)\b)"),
    _r("roleplay", "without_restrictions", 0.45,
       (("no ", "without", "unrestrict", "unfilter", "uncensor", "jailbroken", "not bound",
         "free from", "sin ", "sans ", "ohne ", "uneingeschrankt", "sem ", "senza ", "keine ",
         "nessun", "aucun", "ninguna", "nenhuma", "no tienes", "no tuvieras"),
        ("restrict", "rule", "limit", "filter", "guideline", "ethic", "moral", "boundar",
         "censor", "polic", "jailbroken", "bound by", "free from", "regl", "regel", "regr",
         "unrestrict", "unfilter", "uncensor", "uneingeschrankt",
         "regol", "einschrank", "zensur", "grenzen", "restric", "restriz", "filtr", "censur",
         "limitacao")),
       rf"\b{_alt(UNRESTRICTED)}\b"),
    _r("roleplay", "stay_in_character", 0.35, ("character",),
       r"\b(?:stay|remain|keep)\s+in\s+character\b|\b(?:never|don't|do\s+not)\s+break\s+"
       r"character\b"),
    _r("roleplay", "developer_mode", 0.35, ("mode", "jailbreak"),
       r"\b(?:developer|dev)\s+mode\b|\bjailbreak(?:ing|s)?\b"),
    _r("roleplay", "you_are_now", 0.2,
       ("you are", "you're", "from now", "ahora", "tu es", "du bist", "bist du", "voce",
        "sei", "maintenant"),
       rf"{_alt(YOU_ARE_NOW)}"),
    # -- exfiltration
    _r("exfiltration", "reveal_your_prompt", 0.9, ("prompt", "instruction", "message",
                                                   "rules", "directive", "guideline",
                                                   "configuration", "setup", "programming",
                                                   "systemprompt", "preprompt"),
       rf"\b{_alt(REVEAL)}\b{_GAP}\b(?:your|yours|ur)\s+(?:\w+\s+){{0,2}}?(?:{SECRET_NOUN}"
       r"|prompt\b(?!\s+(?:for|about|on|engineering|ideas)))"
       rf"|\bwhat\s+(?:does|do)\s+your\s+(?:\w+\s+)?{SECRET_NOUN}\s+say"
       rf"|\b{_alt(REVEAL)}\b{_GAP}\b(?:instructions|prompt|rules)\s+(?:you\s+were|you've\s+"
       r"been|you\s+have\s+been)\s+(?:given|told|programmed)"),
    _r("exfiltration", "repeat_verbatim", 0.85,
       (("above", "before", "prior", "preceding", "so far", "you are"),
        ("verbatim", "word for word", "exactly", "in full", "entirety", "without",
         "including", "from the", "you are", "this", "my", "the first", "the user")),
       r"\b(?:repeat|print|output|copy|reproduce|recite|show|write(?:\s+out)?|echo|return|"
       r"paste|display)\b[^.!?\n]{0,40}?\b(?:above|before|prior|preceding|so\s+far)\b"
       r"[^.!?\n]{0,40}?\b(?:verbatim|word\s+for\s+word|exactly|in\s+full|in\s+its\s+entirety|"
       r"without\s+(?:changes|modification|omitting)|including\s+(?:everything|all)|"
       r"from\s+the\s+(?:beginning|start|top))\b"
       r"|\b(?:starting|beginning|begin|start)\s+(?:with|from|at)\s+[\"'`]?you\s+are\b"
       r"|\b(?:everything|all|the\s+text|the\s+words|all\s+text)\s+(?:above|before)\s+"
       r"(?:this|my|the\s+(?:first|user))\s+(?:line|message|prompt|sentence)"),
    _r("exfiltration", "reveal_the_prompt", 0.8,
       ("prompt", "instruction", "systemprompt", "preprompt", "message", "rules", "directive",
        "guideline", "configuration", "setup", "programm", "direction", "instructed",
        "configured"),
       rf"\b{_alt(REVEAL)}\b{_SHORT}\b(?:the|its|this\s+(?:ai|bot|assistant)'s)\s+"
       rf"(?:\w+\s+)?{SECRET_NOUN}\b(?!\s+(?:for|in|of|to|field|parameter|template|"
       r"example|format|best|engineering|should|looks?|works?|is\s+(?:used|a|the)))"
       r"|\bwhat\s+(?:instructions|rules|directions)\s+(?:were|have|did)\s+you\s+"
       r"(?:been\s+)?(?:given|receive|get|told)|\bhow\s+(?:were|have)\s+you\s+(?:been\s+)?"
       r"(?:programmed|instructed|prompted|configured)\b"),
    _r("exfiltration", "reveal_foreign", 0.8,
       ("prompt", "instruc", "anweisung", "consigne", "istruzion", "systemprompt",
        "system-prompt", "systemanweisung", "anfangsanweisung"),
       rf"\b{_alt(FOREIGN_REVEAL)}\b[^.!?\n]{{0,40}}?\b{_alt(FOREIGN_SECRET)}"),
    _r("exfiltration", "repeat_above", 0.5,
       (("above", "before", "preceding"), ("repeat", "print", "output", "copy", "reproduce",
                                           "recite", "echo", "paste")),
       r"\b(?:repeat|print|output|copy|reproduce|recite|echo|paste)\s+(?:back\s+)?"
       r"(?:all\s+|everything\s+|the\s+)?(?:text|words|content|instructions|message|prompt|"
       r"lines?)?\s*(?:above|before|preceding)\b"),
    _r("exfiltration", "mentions_system_prompt", 0.2, ("prompt", "systemprompt"),
       r"\bsystem\s*[- ]?prompt\b|\bsystemprompt\b"),
    # -- delimiter
    _r("delimiter", "template_role", 0.85, ("<|", "inst]", "<<sys>>", "_of_turn>"),
       r"<\|(?:im_start|start_header_id)\|>\s*(?:system|assistant|developer)\b|\[/?inst\]|"
       r"<</?sys>>|<start_of_turn>\s*(?:model|system)|<\|(?:system|assistant)\|>"),
    _r("delimiter", "closing_tag", 0.75, ("</",),
       r"</\s*(?:system|system_prompt|sys|instructions?|developer|admin|context|rules|"
       r"policy)\s*>"),
    _r("delimiter", "role_header", 0.75, ("#", "override", "end of", "instruction"),
       r"(?m:^)\s*#{1,6}\s*(?:new\s+)?(?:system|developer|admin|assistant)\b"
       r"(?:\s+(?:prompt|message|instructions?|override|update))?\s*:?\s*(?m:$)|"
       r"\b(?:admin|administrator|system|developer|root|sudo|security|openai|anthropic)\s+"
       r"(?:override|command|instruction|directive|notice|alert)\s*:|"
       r"\bend\s+of\s+(?:the\s+)?system\s+(?:prompt|instructions|message)\b|"
       r"\b(?:system|admin)\s+override\b|"
       r"#{2,}\s*instruction\s*:[\s\S]{0,4000}?#{2,}\s*response\s*:"),
    _r("delimiter", "template_token", 0.4, ("<|", "<", "system"),
       r"<\|[a-z_]{2,20}\|>|<\s*(?:system|system_prompt|instructions)\s*>|"
       r"(?m:^)\s*(?:system|system\s+prompt|system\s+message)\s*:"),
    # -- encoded (phrase part)
    _r("encoded", "decode_and_follow", 0.7, ("base64", "base 64", "hex", "rot13", "rot-13",
                                             "binary", "encoded"),
       r"\b(?:decode|decrypt|translate|convert)\b[^.!?\n]{0,40}?\b(?:base\s?64|hex(?:adecimal)?|"
       r"rot-?13|binary|encoded)\b[^.!?\n]{0,60}?\b(?:follow|execute|run|obey|perform|do\s+"
       r"(?:what|as)|carry\s+out|act\s+on|comply)\b"),
)

_WORD_NEEDLES.update(n for rule in _RULES for group in rule.needles for n in group
                     if _WORDY.fullmatch(n))


@dataclass(frozen=True, slots=True)
class Signal:
    category: str
    kind: str
    weight: float
    start: int
    end: int
    original: bool = False  # offsets into the original text (else into the normalised one)


def phrase_signals(norm: str, categories: frozenset[str] | None = None) -> list[Signal]:
    """The phrase signals in normalised (lower-case, accent-free) text."""
    out: list[Signal] = []
    index = NeedleIndex(norm)
    for rule in _RULES:
        if categories is not None and rule.category not in categories:
            continue
        if not index.all_groups(rule.needles):
            continue
        for m in rule.pattern.finditer(norm):
            weight = rule.weight
            if rule.self_correction:
                tail = norm[m.end():m.end() + 30]
                if _SELF.search(m.group(0)) or _SELF.match(tail.lstrip(" ,")):
                    weight = 0.3
            out.append(Signal(rule.category, rule.kind, weight, m.start(), m.end()))
    return out
