"""The words of the injection phrase rules, in English, Spanish, French, German, Portuguese
and Italian, as normalised text spells them (lower case, no accents); each is a regex
fragment (``instructions?``) the rules join into alternations."""

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
