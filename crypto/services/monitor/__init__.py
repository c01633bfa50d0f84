"""Monitor: /health's verdict, the checks after each run, Prometheus series and the fields of log lines."""
