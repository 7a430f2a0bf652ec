"""``injection``: a heuristic prompt-injection and jailbreak detector with a 0..1 score.

The text is normalised first (NFKD with accents dropped, lower case, zero-width and tag
characters removed, Cyrillic/Greek lookalikes mapped to Latin), so ``IGNORE``, ``ignoré``,
``ignore`` spelled with a Cyrillic ``i`` (U+0456) and ``ig<ZWSP>nore`` read the same. Then
signals are looked for in five categories; each signal has a weight:

==============  =================================================================  ======
category        signal (kind)                                                       weight
==============  =================================================================  ======
override        "ignore/disregard/forget ... previous/above ... instructions/rules"  0.90
                in English, Spanish, French, German, Portuguese or Italian
                (override_en ... override_it)
                "forget everything above / you were told", "olvida todo lo          0.85
                anterior", "oublie tout ce qui précède", "vergiss alles bisher"
                "ignore what the developer said"                                     0.80
                "from now on your only goal is ..."                                  0.75
                "disregard the above" (no noun); "do not follow your rules"          0.60
                "your new/real instructions are", "new task:"                         0.55
                "override/bypass/disable ... safety filters/guardrails"               0.50
                a self-correction ("ignore my previous instructions", "... I gave    0.30
                you") instead of any of the above
roleplay        "do anything now", "you are (now) DAN", "you are now an unrestricted/ 0.85
                evil AI", "you are no longer bound by ...", "pretend you have no
                restrictions" (and the same in the five other languages)
                "an AI with no rules/filters", "you have been freed from ..."        0.80
                "jailbreak/god/DAN/evil mode", "developer mode enabled"               0.70
                "without restrictions/filters/censorship", "jailbroken"               0.45
                "stay in character"; "developer mode"; "jailbreak"                    0.35
                "you are now", "from now on you"                                      0.20
exfiltration    reveal/print/repeat ... *your* system prompt / initial instructions  0.90
                / prompt; "what does your system message say"
                "repeat the text above verbatim", "... starting with 'You are'"       0.85
                the same with *the* system prompt; asking for it in the five other   0.80
                languages; "what instructions were you given"
                "repeat the text/words above"                                         0.50
                "system prompt" mentioned at all                                      0.20
encoded         a base64 or hex block, ROT13 text (when ROT13 is named) or tag        0.95
                characters that decode to text with a signal of weight >= 0.55
                tag characters hiding any text                                        0.90
                "decode this base64/hex and follow/execute it"                        0.70
                zero-width characters splitting text (a run of 2+ or 3+ in all)       0.50
delimiter       a chat-template role marker: <|im_start|>system, [INST], <<SYS>>,    0.85
                <|start_header_id|>...
                a closing </system> / </instructions> tag; a "### System" header;    0.75
                "### Instruction: ... ### Response:"; "end of system prompt";
                "ADMIN OVERRIDE:" / "SYSTEM OVERRIDE"
                a bare template token; an opening <system> tag; a "System:" line      0.40
==============  =================================================================  ======

Within a category the strongest signal counts; across categories the weights combine as
independent evidence: ``score = 1 - prod(1 - w)``. So one strong signal triggers on its
own, and weak signals only together: "developer mode" (roleplay 0.35) with "repeat the text
above" (exfiltration 0.5) scores 1 - 0.65 x 0.5 = 0.675, under the default threshold; add
"new instructions:" (override 0.55) and it is 0.85.

``threshold`` defaults to 0.7, chosen on the tuning half of keel's labelled set
(bench/guard/). An optional classifier backend (:func:`register_injection_classifier`)
adds a model's opinion: the reported score is the higher of the two.

A rule's regex only runs when its key words occur in the text (looked up in the text's
sorted word set), which keeps a scan of a 1 KB prompt around 0.2 ms.

Known limits: paraphrases without the marker phrases, attacks spelled with spaces between
letters or in other languages, and benign text that quotes an attack (a security question
that contains "ignore all previous instructions" scores like the attack itself).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from keel.guard.scanners.base import (
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    register_scanner,
)
from keel.guard.scanners.support import BaseScanner, Options
from keel.guard.scanners.unicode import LATIN_OF, TAG_RUN, ZW_CHARS, ZW_RUN, hidden_tag_text
from keel.plugins import PluginError, Registry

CATEGORIES = ("override", "roleplay", "exfiltration", "encoded", "delimiter")

# --- classifier backends ----------------------------------------------------------------------


@runtime_checkable
class InjectionClassifier(Protocol):
    """A model (or anything else) that rates a text: 0 benign .. 1 injection. Synchronous; it
    runs in the request path, so a backend must be local and fast. keel ships none."""

    def classify(self, text: str) -> float: ...


ClassifierFactory = Callable[[dict[str, Any]], InjectionClassifier]
C = TypeVar("C", bound=ClassifierFactory)


def _no_builtins() -> None:
    """keel ships no classifier backend; plugins and code add them."""


def _classifier_factory(name: str, item: object) -> ClassifierFactory:
    if not callable(item):
        raise TypeError(f"{item!r}, not a classifier factory (a callable taking the options "
                        "mapping, such as a class)")
    return cast(ClassifierFactory, item)


CLASSIFIERS: Registry[ClassifierFactory] = Registry(
    "injection classifier", "keel.injection_classifiers", _no_builtins, _classifier_factory)
_CLASSIFIERS: dict[str, ClassifierFactory] = CLASSIFIERS.entries


def register_injection_classifier(name: str) -> Callable[[C], C]:
    """Register a classifier factory (taking its options mapping) under ``name``; select it
    with ``classifier: {type: NAME, ...options}`` on an ``injection`` scanner. An installed
    distribution adds one through the ``keel.injection_classifiers`` entry point group."""
    return CLASSIFIERS.register(name)


def injection_classifier_types() -> list[str]:
    return CLASSIFIERS.names()


# --- normalisation ----------------------------------------------------------------------------

_DROP = frozenset(ZW_CHARS)
# a run of non-ASCII characters, with any ASCII non-letters (spaces, digits, punctuation)
# between them: text in another script folds in one translate() call
_NON_ASCII = re.compile(r"[^\x00-\x7f](?:[^A-Za-z]*[^\x00-\x7f])?")


@lru_cache(maxsize=4096)
def _fold(ch: str) -> str:
    """One character, folded: invisible ones dropped, lookalikes mapped to Latin, compatibility
    forms (fullwidth, ligatures) decomposed, Latin/Greek/Cyrillic accents (U+0300-036F)
    dropped, case folded. Marks of other scripts stay (they cannot be part of a match)."""
    if ch in _DROP or 0xE0000 <= ord(ch) <= 0xE007F:
        return ""
    ch = LATIN_OF.get(ch, ch)
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if not "\u0300" <= c <= "\u036f").casefold()


class _FoldTable(dict[int, str]):
    """A ``str.translate`` table filled on demand; it also remembers the characters that do
    not fold to exactly one character (``_IRREGULAR``)."""

    def __missing__(self, key: int) -> str:
        folded = _fold(chr(key))
        if len(folded) != 1:
            _IRREGULAR.add(chr(key))
        self[key] = folded
        return folded


_IRREGULAR: set[str] = set()
_FOLD_TABLE = _FoldTable()


class Normalized:
    """Lower-cased, accent-free text with a map from its offsets back to the original's."""

    __slots__ = ("_linear", "_norm", "_orig", "text")

    def __init__(self, text: str) -> None:
        if text.isascii():
            self.text = text.lower()
            self._norm: list[int] = [0]
            self._orig: list[int] = [0]
            self._linear: list[bool] = [True]
            return
        parts: list[str] = []
        norm: list[int] = []
        orig: list[int] = []
        linear: list[bool] = []
        pos = 0
        out = 0

        def add(piece: str, at: int, lin: bool) -> None:
            nonlocal out
            norm.append(out)
            orig.append(at)
            linear.append(lin)
            parts.append(piece)
            out += len(piece)

        for m in _NON_ASCII.finditer(text):
            if m.start() > pos:
                add(text[pos:m.start()].lower(), pos, True)
            # a run whose characters each fold to one (é -> e) is one linear segment; in any
            # other (ß -> ss, a zero-width space -> nothing) each character is a segment
            run = m.group(0)
            folded = run.translate(_FOLD_TABLE)
            if _IRREGULAR.isdisjoint(run):
                add(folded, m.start(), True)
            else:
                for i, ch in enumerate(run):
                    add(_FOLD_TABLE[ord(ch)], m.start() + i, False)
            pos = m.end()
        if pos < len(text):
            add(text[pos:].lower(), pos, True)
        self.text = "".join(parts)
        self._norm, self._orig, self._linear = norm, orig, linear

    def start(self, pos: int) -> int:
        """The original offset of normalised offset ``pos`` (a span start)."""
        i = max(0, bisect_right(self._norm, pos) - 1)
        return self._orig[i] + (pos - self._norm[i] if self._linear[i] else 0)

    def end(self, pos: int) -> int:
        """The original offset just after normalised offset ``pos - 1`` (a span end)."""
        if pos <= 0:
            return 0
        i = max(0, bisect_right(self._norm, pos - 1) - 1)
        return self._orig[i] + (pos - self._norm[i] if self._linear[i] else 1)


# --- phrase rules -----------------------------------------------------------------------------


def _alt(words: Iterable[str]) -> str:
    return "(?:" + "|".join(w.replace(" ", r"\s+") for w in words) + ")"


_GAP = r"[^.!?\n]{0,40}?"
_SHORT = r"[^.!?\n]{0,24}?"

EN_VERBS = ("ignore", "ignoring", "disregard", "disregarding", "forget", "override",
            "bypass", "neglect", "pay no attention to", "do not follow", "don't follow",
            "dont follow", "stop following", "no longer follow")
EN_WEAK_VERBS = ("skip", "discard", "abandon", "set aside", "throw out", "throw away", "erase",
                 "delete", "drop", "scrap", "wipe")
EN_WHEN = ("previous", "previously", "prior", "above", "earlier", "preceding", "foregoing",
           "initial", "original", "old", "former", "existing", "system", "developer",
           "default", "given", "pre-?programmed", "all", "any", "every", "your")
EN_TEMPORAL = ("previous", "previously", "prior", "above", "earlier", "preceding", "foregoing",
               "initial", "original", "system", "developer", "pre-?programmed")
EN_WHAT = ("instructions?", "prompts?", "rules", "directions", "directives?", "guidelines",
           "commands?", "orders", "constraints", "programming", "guardrails", "restrictions",
           "policies", "training", "system prompt", "conditioning")

ES = (("ignora", "ignore", "ignorar", "ignoren", "ignorad", "olvida", "olvide", "olvidar",
       "olviden", "descarta", "descarte", "omite", "omita", "desobedece", "pasa por alto",
       "no sigas", "no siga", "no hagas caso a", "no hagas caso de", "haz caso omiso de"),
      ("instrucciones", "instruccion", "indicaciones", "reglas", "ordenes", "directrices",
       "normas", "restricciones", "prompt", "consignas"),
      ("anteriores", "previas", "precedentes", "de arriba", "originales", "iniciales",
       "del sistema", "dadas", "recibidas", "que te dieron", "que te han dado"))
FR = (("ignore", "ignorez", "ignorer", "oublie", "oubliez", "oublier", "neglige", "negligez",
       "ne tiens pas compte", "ne tenez pas compte", "fais abstraction", "faites abstraction",
       "ne suis pas", "ne suivez pas", "passe outre", "passez outre", "ecarte", "ecartez"),
      ("instructions?", "consignes?", "regles", "directives", "ordres", "indications",
       "prompt"),
      ("precedentes", "anterieures", "ci-dessus", "initiales", "d'origine", "originales",
       "du systeme", "systeme", "donnees", "recues", "qui precedent", "d'avant"))
DE = (("ignoriere", "ignorier", "ignorieren", "ignoriert", "vergiss", "vergesst",
       "vergessen sie", "missachte", "missachten", "ubergehe", "ubergehen", "verwirf",
       "befolge nicht", "befolgen sie nicht", "halte dich nicht an", "beachte nicht",
       "beachten sie nicht", "verwerfe"),
      ("anweisungen", "anweisung", "instruktionen", "befehle", "regeln", "vorgaben",
       "anordnungen", "richtlinien", "systemprompt", "prompt", "einschrankungen"),
      ("vorherigen", "vorigen", "bisherigen", "obigen", "vorangegangenen", "vorhergehenden",
       "fruheren", "ursprunglichen", "alten", "bestehenden", "gegebenen", "alle", "deine",
       "ihre"))
PT = (("ignore", "ignora", "ignorar", "ignorem", "esqueca", "esquece", "esquecer", "esquecam",
       "desconsidere", "desconsidera", "descarte", "descarta", "nao siga", "nao obedeca",
       "deixe de lado", "despreze"),
      ("instrucoes", "instrucao", "regras", "orientacoes", "comandos", "diretrizes", "ordens",
       "prompt", "restricoes"),
      ("anteriores", "previas", "acima", "originais", "iniciais", "do sistema", "dadas",
       "recebidas", "que voce recebeu"))
IT = (("ignora", "ignorare", "ignori", "ignorate", "dimentica", "dimenticare", "dimenticate",
       "dimentichi", "trascura", "trascurate", "non seguire", "non considerare",
       "non tenere conto", "tralascia", "scarta"),
      ("istruzioni", "istruzione", "regole", "indicazioni", "direttive", "comandi", "ordini",
       "prompt", "restrizioni"),
      ("precedenti", "anteriori", "sopra", "originali", "iniziali", "di sistema",
       "del sistema", "date", "ricevute", "fornite", "che hai ricevuto"))

UNRESTRICTED = ("no restrictions", "no rules", "no limits", "no limitations", "no filters",
                "no guidelines", "no ethics", "no morals", "no boundaries", "no censorship",
                "no content polic(?:y|ies)", "without (?:any )?(?:restrictions|rules|limits|"
                "limitations|filters|guidelines|ethics|morals|boundaries|censorship|"
                "ethical guidelines|content polic(?:y|ies)|safety guidelines)",
                "unrestricted", "unfiltered", "uncensored", "jailbroken", "not bound by",
                "free from (?:all|any)",
                "sin restricciones", "sin filtros", "sin censura", "sin reglas", "sin limites",
                "sans restrictions?", "sans filtres?", "sans censure", "sans regles",
                "sans limites", "ohne einschrankungen", "ohne filter", "ohne zensur",
                "ohne regeln", "ohne grenzen", "uneingeschrankt", "sem restricoes",
                "sem filtros", "sem censura", "sem regras", "sem limites", "senza restrizioni",
                "senza filtri", "senza censura", "senza regole", "senza limiti",
                "no tienes (?:reglas|restricciones|limites|filtros)",
                "no tuvieras (?:reglas|restricciones|limites|filtros)",
                "ninguna (?:regla|restriccion)", "aucune (?:regle|restriction|limite)",
                "aucun filtre", "keine (?:regeln|einschrankungen|filter|grenzen|zensur)",
                "nenhuma (?:regra|restricao|limitacao)", "nessuna (?:regola|restrizione)",
                "nessun (?:filtro|limite)")
YOU_ARE_NOW = ("you are now", "you're now", "you are no longer", "from now on,? you",
               "ahora eres", "a partir de ahora eres", "ya no eres", "tu es maintenant",
               "tu es desormais", "a partir de maintenant,? tu", "tu n'es plus",
               "du bist jetzt", "du bist ab sofort", "du bist nun", "ab jetzt bist du",
               "du bist nicht mehr", "agora voce e", "a partir de agora,? voce",
               "voce nao e mais", "ora sei", "da ora in poi,? sei", "adesso sei",
               "non sei piu")
PRETEND = ("pretend", "imagine", "act as if", "act like", "behave as if", "suppose",
           "roleplay as", "role-play as", "play the role of", "simulate", "finge", "finja",
           "imagina", "actua como si", "fais comme si", "faites comme si", "imagine que",
           "joue le role", "tu so,? als", "tun sie so,? als", "stell dir vor", "spiel die rolle",
           "finja que", "faca de conta", "fai finta", "immagina", "comportati come se")
REVEAL = ("reveal", "show", "print", "display", "output", "repeat", "recite", "tell me",
          "give me", "share", "dump", "leak", "disclose", "expose", "list", "write out",
          "spell out", "provide", "paste", "echo", "return", "copy", "reproduce",
          "what (?:is|are|was|were)", "what's", "translate", "quote", "summarize",
          "summarise")
SECRET_NOUN = (r"(?:system|initial|original|hidden|secret|developer|internal|pre-?|starting|"
               r"first|full|exact|complete|confidential|underlying|base|core)\s*"
               r"(?:prompt|instructions?|message|rules|directives|guidelines|configuration|"
               r"setup|programming)")
FOREIGN_SECRET = ("prompt del sistema", "prompt de sistema", "instrucciones del sistema",
                  "instrucciones (?:iniciales|originales|ocultas|secretas)", "prompt systeme",
                  "prompt du systeme", "instructions (?:systeme|initiales|cachees|secretes)",
                  "consignes (?:initiales|cachees|secretes)", "systemprompt", "system-prompt",
                  "systemanweisungen?", "anfangsanweisungen", "ursprunglichen anweisungen",
                  "geheimen anweisungen", "instrucoes (?:do sistema|iniciais|originais|"
                  "ocultas|secretas)", "prompt do sistema", "prompt di sistema",
                  "istruzioni (?:di sistema|del sistema|iniziali|originali|nascoste|segrete)")
FOREIGN_REVEAL = ("muestra", "muestrame", "revela", "revelame", "dime", "cual es",
                  "cuales son", "repite", "escribe", "imprime", "ensename", "montre",
                  "montre-moi", "revele", "affiche", "dis-moi", "quel est", "quelles sont",
                  "repete", "ecris", "donne-moi", "zeig", "zeige", "verrate", "gib",
                  "nenne", "wie lautet", "wie lauten", "was ist", "was sind", "wiederhole",
                  "schreib", "mostre", "mostra", "diga", "qual e", "quais sao", "repita",
                  "escreva", "mostrami", "rivela", "dimmi", "quali sono", "ripeti", "scrivi",
                  "stampa")

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

# the block starts after a character outside its alphabet (so the engine never retries from
# inside a word) and is checked for glue (=, _, -) on its left in Python
_B64_RUN = re.compile(r"[^A-Za-z0-9+/]([A-Za-z0-9+/]{20,}={0,2})(?![A-Za-z0-9+/=_-])")
_B64_GLUE = frozenset("=_-")  # a block glued to one of these is part of something else
_WORD_NEEDLES.update(n for rule in _RULES for group in rule.needles for n in group
                     if _WORDY.fullmatch(n))
# hex-encoded text: every byte of ASCII text starts with a hex digit 0-7
_HEX_RUN = re.compile(r"[0-7][0-9A-Fa-f](?:[ :,-]?[0-7][0-9A-Fa-f]){11,}(?![0-9A-Fa-f])")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_ROT13 = re.compile(r"\brot-?13\b")
_MAX_DECODE = 20  # encoded blocks decoded per text
_PRINTABLE = frozenset(range(32, 127)) | {9, 10, 13}


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


def _decoded_text(raw: bytes) -> str | None:
    if len(raw) < 12 or sum(b in _PRINTABLE for b in raw) < 0.9 * len(raw):
        return None
    return raw.decode("ascii", "replace")


def _hidden_hits(decoded: str) -> bool:
    signals = phrase_signals(Normalized(decoded).text,
                             frozenset(("override", "roleplay", "exfiltration", "delimiter")))
    return any(s.weight >= 0.55 for s in signals)


def encoded_signals(text: str, norm: Normalized) -> list[Signal]:
    """Signals from encoded payloads and hidden characters (offsets into ``text``)."""
    out: list[Signal] = []
    tried = 0
    padded = " " + text  # so that a block at the very start has a character before it
    for m in _B64_RUN.finditer(padded):
        if tried >= _MAX_DECODE:
            break
        block = m.group(1)
        start = m.start(1)
        if (len(block) > 8192 or padded[max(0, start - 7):start] == "base64,"
                or padded[start - 1] in _B64_GLUE):
            continue
        tried += 1
        try:
            raw = base64.b64decode(block + "=" * (-len(block) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _decoded_text(raw)
        if decoded and _hidden_hits(decoded):
            out.append(Signal("encoded", "base64_payload", 0.95, start - 1, m.end(1) - 1,
                              original=True))
    for m in _HEX_RUN.finditer(text):
        if tried >= _MAX_DECODE:
            break
        if m.start() and text[m.start() - 1] in _HEX_DIGITS:
            continue  # the tail of a longer hex run (a hash, say): not a payload start
        tried += 1
        raw = bytes.fromhex(re.sub(r"[^0-9A-Fa-f]", "", m.group(0)))
        decoded = _decoded_text(raw)
        if decoded and _hidden_hits(decoded):
            out.append(Signal("encoded", "hex_payload", 0.95, *m.span(), original=True))
    if "rot" in norm.text and _ROT13.search(norm.text) and _hidden_hits(
            codecs.decode(text, "rot13")):
        out.append(Signal("encoded", "rot13_payload", 0.95, 0, len(text), original=True))
    if not text.isascii():
        hidden = hidden_tag_text(text)
        if hidden.strip():
            first = TAG_RUN.search(text)
            assert first is not None
            weight = 0.95 if _hidden_hits(hidden) else 0.9
            out.append(Signal("encoded", "tag_characters", weight, *first.span(), original=True))
        runs = [m.span() for m in ZW_RUN.finditer(text)]
        if len(runs) >= 3 or any(e - s >= 2 for s, e in runs):
            out.append(Signal("encoded", "zero_width", 0.5, *runs[0], original=True))
    return out


def combine(signals: Iterable[Signal]) -> float:
    """Strongest signal per category, combined across categories as independent evidence."""
    best: dict[str, float] = {}
    for s in signals:
        best[s.category] = max(best.get(s.category, 0.0), s.weight)
    miss = 1.0
    for w in best.values():
        miss *= 1.0 - w
    return 1.0 - miss


@register_scanner("injection")
class InjectionScanner(BaseScanner):
    """Options: ``threshold`` (default 0.7), ``categories`` (default all), ``classifier``
    (``{type: NAME, ...options}`` of a registered classifier backend)."""

    options = ("categories", "classifier")
    stages = ("input",)
    uses_threshold = True
    default_threshold = 0.7

    def configure(self, opts: Options) -> None:
        cats = opts.strings("categories", "[override, roleplay, exfiltration]", required=False)
        bad = [c for c in cats if c not in CATEGORIES]
        if bad:
            raise ScannerConfigError(f"unknown category '{bad[0]}'; known: "
                                     f"{', '.join(CATEGORIES)}", key="categories")
        self.categories = frozenset(cats or CATEGORIES)
        self.classifier: InjectionClassifier | None = None
        spec = opts.mapping("classifier", "{type: my-local-model}", required=False)
        if spec is not None:
            kind = spec.get("type")
            try:
                factory = CLASSIFIERS.get(kind) if isinstance(kind, str) and kind else None
            except PluginError as exc:
                raise ScannerConfigError(exc.message, key="classifier.type") from None
            if factory is None:
                known = ", ".join(injection_classifier_types()) or "none registered"
                raise ScannerConfigError(
                    f"type must name a registered classifier (register_injection_classifier,"
                    f" or the keel.injection_classifiers entry point group); known: {known}; "
                    "e.g. classifier: {type: my-local-model}", key="classifier")
            try:
                self.classifier = factory({k: v for k, v in spec.items() if k != "type"})
            except ScannerConfigError as exc:
                raise ScannerConfigError(exc.detail, key=f"classifier.{exc.key or 'type'}") \
                    from None
            except Exception as exc:
                raise ScannerConfigError(f"classifier '{kind}' could not be built: "
                                         f"{type(exc).__name__}: {exc}", key="classifier") \
                    from exc
            self.cost = "moderate"

    def signals(self, text: str) -> tuple[list[Signal], Normalized]:
        norm = Normalized(text)
        signals = phrase_signals(norm.text, self.categories)
        if "encoded" in self.categories:
            signals.extend(encoded_signals(text, norm))
        return signals, norm

    def check(self, text: str, ctx: ScanContext) -> Finding:
        signals, norm = self.signals(text)
        score = combine(signals)
        matches = []
        for s in signals:
            start, end = (s.start, s.end) if s.original else (norm.start(s.start),
                                                              norm.end(s.end))
            matches.append(Span(f"{s.category}:{s.kind}", start, end))
        matches.sort(key=lambda m: m.start)
        error = None
        model_score: float | None = None
        if self.classifier is not None:
            try:
                model_score = min(1.0, max(0.0, float(self.classifier.classify(text))))
            except Exception as exc:
                error = f"classifier failed: {type(exc).__name__}"
            if model_score is not None and model_score > score:
                score = model_score
                matches.append(Span("classifier", 0, len(text)))
        if not signals and not model_score:
            finding = self.clean("no injection signals")
        else:
            kinds = sorted({f"{s.category} ({s.kind}, {s.weight:g})" for s in signals})
            why = "signals: " + "; ".join(kinds) if kinds else "no heuristic signals"
            if model_score is not None:
                why += f"; classifier {model_score:.2f}"
            finding = self.finding(score, matches, why)
        if error is not None:
            return Finding(finding.scanner, finding.score, finding.triggered, finding.matches,
                           finding.explanation, error)
        return finding
