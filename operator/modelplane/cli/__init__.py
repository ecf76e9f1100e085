"""The `modelplane` command line (also the kubectl plugin `kubectl-modelplane`)."""
