"""`journey fit` and `journey evaluate`: fitting a churn model on a history, and checking the at-risk
decision and the score against what the same history shows happened next.

The model itself is pure and lives in `streams/core/churn`; this package reads files, replays them
through the core and prints, so the commands in `streams/cli.py` stay thin.
"""
