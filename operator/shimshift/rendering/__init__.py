"""Pure rendering: containerd config.toml and certs.d hosts.toml from (spec, node facts), parsed back and
checked before anything is written. Never imports kubernetes, paramiko, kopf or asyncio.
"""
