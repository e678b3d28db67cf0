from __future__ import annotations

import pytest

from tests.integration.rendering.harness import missing_prerequisites


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = missing_prerequisites()
    for item in items:
        if "integration/rendering" in str(item.path):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.root)
            if missing:
                item.add_marker(
                    pytest.mark.skip(reason=f"needs {', '.join(missing)} (scripts/setup as root)")
                )
