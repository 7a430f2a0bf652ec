"""Evals: datasets, scorers, runs and the regression gate."""
