"""The only code that talks to the Kubernetes API (the only importer of `kubernetes`)."""
