"""``keel demo``: keel on a store of its own, filled with a month of one company's traffic.

The month is made by keel itself: a seeded plan of conversations (``traffic``) is replayed
through the gateway on a simulated clock (``clock``, ``replay``), and what people did
with the answers goes through the feedback, outcome and review services (``reactions``);
``story`` says what happens in it, ``facts`` reads its numbers back, ``home`` keeps it in a
directory of its own, and ``load`` puts it all together. Importing the package imports
none of them (the CLI loads them when ``keel demo`` runs).
"""
