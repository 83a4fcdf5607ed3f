"""Developer and benchmark scripts (run as ``python -m scripts.<name>``)."""
