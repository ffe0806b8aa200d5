"""What operators look at: the Grafana dashboard, built as code from the metrics we export."""
