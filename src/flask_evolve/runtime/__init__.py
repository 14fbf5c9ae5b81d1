"""What env.py runs: the migration environment, transactions, locks and progress; knows nothing of Flask."""
