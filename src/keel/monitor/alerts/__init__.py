"""Alert rules over keel's measures: their evaluation, their life across evaluations, and
the built-in early warnings.

``evaluate(store, rules, now)`` gives per rule and series an ``Evaluation`` (state OK,
WARNING, ALERT or NO_DATA, the value, what it was compared with, the evidence, a reason in
plain words); ``track_all`` / ``step`` carry each series from pending to firing to resolved,
as pure functions over storable ``Track`` values; ``rules_for(config.alerts)`` is the rules
to evaluate, built-ins included. Rules are ``keel.config.AlertRule`` (the ``alerts:``
section).

Layout: model (the result types), values (a measure read and said), judge (the decision,
pure), evaluate (reading the rollups), tracking (the state machine, pure), builtin_rules (data).
"""

from keel.monitor.alerts.builtin_rules import BUILTINS, rules_for
from keel.monitor.alerts.evaluate import evaluate, window_end
from keel.monitor.alerts.model import Evaluation, State, series_key
from keel.monitor.alerts.tracking import Phase, Track, Transition, step, track_all

__all__ = ["BUILTINS", "Evaluation", "Phase", "State", "Track", "Transition", "evaluate",
           "rules_for", "series_key", "step", "track_all", "window_end"]
