"""Link: the same coin across sources, by a pure rule (rule.py) applied after each run (refresh.py)."""
