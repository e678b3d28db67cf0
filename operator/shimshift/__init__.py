"""shimshift: migrate Kubernetes nodes from Docker Engine + dockershim to containerd, in place and safely.

The package is layered (checked by import-linter, see pyproject.toml):
cli/handlers > engine > kube, remote > planning, rendering, playbooks > model.
"""

__version__ = "0.1.0"
