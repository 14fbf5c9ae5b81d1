"""Safety checks: risk rules, lint, verify, check and status; knows nothing of Flask."""
