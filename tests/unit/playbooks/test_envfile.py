"""EnvironmentFile parsing and editing: systemd's quoting and continuations, and edits that move
nothing but the one assignment they change."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shimshift.steps.kubeletfiles import EnvFileError, env_value, parse_env_file, set_env_value, split_flags

KUBESPRAY = (
    'KUBE_LOG_LEVEL="--v=2"\n'
    'KUBELET_ARGS="--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \\\n'
    "--config=/etc/kubernetes/kubelet-config.yaml \\\n"
    '--runtime-cgroups=/systemd/system.slice  "\n'
    "# a comment\n"
    "PATH=/usr/local/bin:/usr/bin\n"
)


def test_continuation_lines_join_into_one_value() -> None:
    value = env_value(KUBESPRAY, "KUBELET_ARGS")
    assert dict(split_flags(value or "")) == {
        "bootstrap-kubeconfig": "/etc/kubernetes/bootstrap-kubelet.conf",
        "config": "/etc/kubernetes/kubelet-config.yaml",
        "runtime-cgroups": "/systemd/system.slice",
    }


def test_an_edit_leaves_comments_and_other_variables_byte_identical() -> None:
    after = set_env_value(KUBESPRAY, "KUBELET_ARGS", "--a=1")
    assert (
        after == 'KUBE_LOG_LEVEL="--v=2"\nKUBELET_ARGS="--a=1"\n# a comment\nPATH=/usr/local/bin:/usr/bin\n'
    )


def test_a_missing_variable_is_appended() -> None:
    assert set_env_value("A=1", "B", "x y") == 'A=1\nB="x y"\n'


def test_single_quotes_and_export_are_understood() -> None:
    assert env_value("export A='--x=\"q\" $HOME'\n", "A") == '--x="q" $HOME'


def test_an_unterminated_quote_is_an_error_naming_the_line() -> None:
    with pytest.raises(EnvFileError, match="line 2: unterminated"):
        parse_env_file('A=1\nB="oops\n')


def test_a_value_with_a_newline_is_refused() -> None:
    with pytest.raises(EnvFileError, match="one line"):
        set_env_value("", "A", "x\ny")


_NAME = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
_VALUE = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r\x00"), max_size=40
).map(lambda s: s.strip(" \t"))


@given(st.dictionaries(_NAME, _VALUE, min_size=1, max_size=5), _NAME, _VALUE)
def test_any_value_set_reads_back_exactly_and_other_values_do_not_move(
    existing: dict[str, str], name: str, value: str
) -> None:
    text = ""
    for k, v in existing.items():
        text = set_env_value(text, k, v)
    after = set_env_value(text, name, value)
    assert env_value(after, name) == value
    for k, v in existing.items():
        if k != name:
            assert env_value(after, k) == v
