"""Pure rendering: containerd config.toml and certs.d hosts.toml from (spec, node facts), parsed back and
checked before anything is written. Never imports kubernetes, paramiko, kopf or asyncio.

Entry point: `render_node_config(spec, facts, material, layout) -> RenderedConfig` (files with path,
content, mode, sha256 and a `secret` flag; a report; `diff()` against the node's current files).
`facts_from_json_text` / `facts_to_json_text` give NodeFacts a file form for `shimshift render --facts`.

Support: config schema 2 (containerd 1.6/1.7) is checked on the real containerd 1.6 by the integration
tests; schema 3 (containerd 2.x) is checked against containerd 2.x's documented keys only, since no
containerd 2.x is installable here.
"""

from shimshift.model.factsjson import facts_from_json_text, facts_to_json_text
from shimshift.rendering.containerd import RenderProblems, render_node_config
from shimshift.rendering.values import (
    ClientCert,
    NodeLayout,
    RegistryMaterial,
    RenderedConfig,
    RenderedFile,
    RenderReport,
)

__all__ = [
    "ClientCert",
    "NodeLayout",
    "RegistryMaterial",
    "RenderProblems",
    "RenderReport",
    "RenderedConfig",
    "RenderedFile",
    "facts_from_json_text",
    "facts_to_json_text",
    "render_node_config",
]
