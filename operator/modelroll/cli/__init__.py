"""The `modelroll` command line (also the kubectl plugin `kubectl-modelroll`)."""
