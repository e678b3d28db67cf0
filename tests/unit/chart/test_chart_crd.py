"""The chart installs exactly the repository's NodeMigration CRD, and keeps it on uninstall when asked.

`crds/nodemigration.yaml` is the API's single source of truth. The chart cannot read it through a
symlink (helm packages do not follow links out of the chart), so it carries a copy in
`charts/shimshift/files/crds/`; these tests fail the moment the two differ.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart import helm

SOURCE = helm.REPO / "crds" / "nodemigration.yaml"
CHART_COPY = helm.CHART / "files" / "crds" / "nodemigration.yaml"
#: Every CRD the operator serves or writes, by file name (the same name in crds/ and the chart's copy).
CRD_FILES = ("nodemigration.yaml", "nodemigrationnode.yaml")
KEEP = "helm.sh/resource-policy"


@pytest.mark.parametrize("name", CRD_FILES)
def test_chart_copy_of_the_crd_is_byte_identical_to_the_repository_crd(name: str) -> None:
    source_path, copy_path = helm.REPO / "crds" / name, helm.CHART / "files" / "crds" / name
    source, copied = source_path.read_text(), copy_path.read_text()
    if source != copied:
        diff = "".join(
            difflib.unified_diff(
                copied.splitlines(True), source.splitlines(True), str(copy_path), str(source_path), n=1
            )
        )
        raise AssertionError(
            f"the chart's CRD copy drifted from crds/{name}; run\n"
            f"  cp crds/{name} charts/shimshift/files/crds/{name}\n" + diff[:4000]
        )


def rendered_crds(*args: str) -> dict[str, dict[str, Any]]:
    result = helm.template(*args)
    assert result.returncode == 0, result.stderr
    crds = [d for d in helm.documents(result.stdout) if d["kind"] == "CustomResourceDefinition"]
    return {c["metadata"]["name"]: c for c in crds}


def rendered_crd(*args: str, name: str = "nodemigrations.shimshift.io") -> dict[str, Any] | None:
    return rendered_crds(*args).get(name)


def test_the_chart_renders_exactly_the_repository_crds() -> None:
    wanted = {yaml.safe_load((helm.REPO / "crds" / n).read_text())["metadata"]["name"] for n in CRD_FILES}
    assert set(rendered_crds()) == wanted


@pytest.mark.parametrize("name", CRD_FILES)
def test_rendered_crd_is_the_repository_crd_plus_release_labels_and_the_keep_annotation(name: str) -> None:
    source = yaml.safe_load((helm.REPO / "crds" / name).read_text())
    crd = rendered_crd(name=source["metadata"]["name"])
    assert crd is not None
    assert crd["metadata"]["annotations"] == {KEEP: "keep"}
    labels = crd["metadata"]["labels"]
    assert source["metadata"]["labels"].items() <= labels.items()
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["app.kubernetes.io/instance"] == helm.RELEASE
    stripped = copy.deepcopy(crd)
    del stripped["metadata"]["annotations"]
    stripped["metadata"]["labels"] = source["metadata"]["labels"]
    assert stripped == source


def test_crd_is_not_kept_when_crds_keep_is_false_and_not_rendered_when_disabled() -> None:
    crd = rendered_crd("--set", "crds.keep=false")
    assert crd is not None
    assert KEEP not in crd["metadata"].get("annotations", {})
    assert rendered_crd("--set", "crds.enabled=false") is None


def test_kopf_peering_crd_is_installed_from_the_charts_crds_directory_only() -> None:
    # Helm installs crds/ before the templates, which lets the peering object live in the templates.
    crd = yaml.safe_load((helm.CHART / "crds" / "clusterkopfpeering.yaml").read_text())
    assert crd["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"
    assert crd["spec"]["scope"] == "Cluster"
    names = [p.name for p in (helm.CHART / "crds").iterdir()]
    assert names == ["clusterkopfpeering.yaml"], "the NodeMigration CRD belongs in templates (upgradable)"
    with_crds = helm.template("--include-crds")
    assert "clusterkopfpeerings.kopf.dev" in with_crds.stdout


def test_a_packaged_chart_carries_the_crd_and_renders_it(tmp_path: Path) -> None:
    # Helm does not follow symlinks out of a chart when packaging: the copy must be a real file.
    assert not CHART_COPY.is_symlink()
    packaged = helm.run_helm("package", str(helm.CHART), "--destination", str(tmp_path))
    assert packaged.returncode == 0, packaged.stderr
    (archive,) = tmp_path.glob("shimshift-*.tgz")
    result = helm.run_helm("template", helm.RELEASE, str(archive), "--namespace", helm.NAMESPACE)
    assert result.returncode == 0, result.stderr
    crds = [d for d in helm.documents(result.stdout) if d["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "nodemigrationnodes.shimshift.io",
        "nodemigrations.shimshift.io",
    ]
    readme = helm.run_helm("show", "readme", str(archive))
    assert "docs/chart.md" in readme.stdout
