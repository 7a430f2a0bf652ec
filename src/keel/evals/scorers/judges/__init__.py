"""Model-graded scorers: judge, groundedness (alias faithfulness), relevance, pairwise,
similarity; each scorer and its options are described in graders.py.

Importing this package registers them. prompts.py builds what a judge is shown, replies.py
reads its verdict, base.py holds what every model-graded scorer shares.
"""

from keel.evals.scorers.judges.base import ChatJudge, ModelScorer
from keel.evals.scorers.judges.graders import Groundedness, Judge, Pairwise, Relevance, Similarity
from keel.evals.scorers.judges.replies import Unreadable, read_claims, read_score, read_winner

__all__ = ["ChatJudge", "Groundedness", "Judge", "ModelScorer", "Pairwise", "Relevance",
           "Similarity", "Unreadable", "read_claims", "read_score", "read_winner"]
