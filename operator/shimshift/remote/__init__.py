"""The only code that talks to nodes over SSH (the only importer of `paramiko`)."""
