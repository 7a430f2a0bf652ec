"""The eval runner: every case of a dataset against every target, scored, streamed to the store.

Work flows through a bounded pipeline, so memory does not grow with the dataset: a producer
reads cases a page at a time, renders each target's request and looks the whole page up
in the result cache at once; ``concurrency`` workers call the gateway (with retries on
transient errors) and score; results are written in batches as they arrive. A run keeps
only counters in memory; latency percentiles are computed by the database at the end.

The result cache is keyed on the request that would be sent (model, rendered messages,
params) plus the repeat index: re-running an unchanged suite costs nothing, while the
repeats of one run stay independent samples. Judge calls are cached the same way.

pipeline.py holds the :class:`Runner` and its case loop; targets.py what a run is made of;
replies.py retries and the result cache's keys and entries; scoring.py the scorers' turn;
tally.py the counters, the summary and the thresholds; results.py the run and result rows.
"""

from keel.evals.runner.pipeline import Progress, Runner
from keel.evals.runner.tally import MAX_ERROR_KINDS, Tally, check_thresholds

__all__ = ["MAX_ERROR_KINDS", "Progress", "Runner", "Tally", "check_thresholds"]
