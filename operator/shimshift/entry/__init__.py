"""The entry points, apart from the engine: the CLI (`cli`, `plancli`), the kopf handlers of `shimshift
run` (`handlers`, the only importer of kopf), the operator's wiring of the SSH node port to the cluster
(`nodeport`) and the install manifests (`manifests`). Nothing below imports this package.
"""
