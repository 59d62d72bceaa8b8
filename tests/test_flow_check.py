"""Checking flow files: every broken flow is refused with ``file:line: node 'x': message``.

The flows are written here as strings; the CLI tests write them to a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.flow import FlowError, check_flow_prompts, check_prompts, load_flow, parse_flow

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FLOW = ROOT / "ivr" / "flows" / "default.yaml"
PROMPTS = ROOT / "prompts"

MENU_HEAD = """\
name: t
start: m
nodes:
  m:
    type: menu
    prompts: [main_menu]
"""

NODE_TYPES = ("play, menu, goto, hangup, collect, say, set, branch, lookup, queue, transfer, "
              "survey, language, record")

# (id, flow text, the exact error lines, in order)
BROKEN: list[tuple[str, str, list[str]]] = [
    ("unknown_node_type", """\
name: t
start: a
nodes:
  a:
    type: dance
    next: b
""", ["t.yaml:5: node 'a': type: unknown node type 'dance'; "
      "a node's type is one of " + NODE_TYPES]),
    ("node_without_type", """\
name: t
start: a
nodes:
  a: {prompts: [welcome], next: a}
""", ["t.yaml:4: node 'a': type: missing; a node's type is one of " + NODE_TYPES]),
    ("node_not_a_mapping", """\
name: t
start: a
nodes:
  a: hangup
""", ["t.yaml:4: node 'a': a node is a mapping with a type (" + NODE_TYPES + ") "
      "and its fields"]),
    ("missing_start", """\
name: t
nodes:
  a: {type: hangup}
""", ["t.yaml: start: Field required"]),
    ("start_not_defined", """\
name: t
start: begin
nodes:
  a: {type: hangup}
""", ["t.yaml:2: start node 'begin' is not defined"]),  # no unreachable noise then
    ("target_to_undefined_node", """\
name: t
start: a
nodes:
  a:
    type: play
    prompts: [welcome]
    next: nowhere
""", ["t.yaml:4: node 'a': goes to 'nowhere', which is not a node of this flow"]),
    ("menu_target_to_undefined_node", MENU_HEAD + """\
    choices: {"1": bye, "2": sails}
    on_failure: bye
  bye: {type: hangup}
""", ["t.yaml:4: node 'm': goes to 'sails', which is not a node of this flow"]),
    ("unreachable_node", """\
name: t
start: a
nodes:
  a: {type: hangup}
  b: {type: hangup}
""", ["t.yaml:5: node 'b': unreachable: no path from start node 'a' leads here"]),
    ("dtmf_key_of_two_characters", MENU_HEAD + """\
    choices:
      "12": bye
    on_failure: bye
  bye: {type: hangup}
""", ["t.yaml:7: node 'm': choices: choice key '12' is not one DTMF key (0123456789*#ABCD)"]),
    ("dtmf_key_not_on_the_keypad", MENU_HEAD + """\
    choices: {"x": bye}
    on_failure: bye
  bye: {type: hangup}
""", ["t.yaml:7: node 'm': choices: choice key 'x' is not one DTMF key (0123456789*#ABCD)"]),
    ("dtmf_key_unquoted_number", MENU_HEAD + """\
    choices:
      1: bye
    on_failure: bye
  bye: {type: hangup}
""", ["t.yaml:8: node 'm': choices: key 1 must be quoted, e.g. \"1\": ... "
      "(unquoted, YAML reads it as a number)"]),
    ("repeat_key_not_dtmf", MENU_HEAD + """\
    choices: {"1": bye}
    repeat_key: "99"
    on_failure: bye
  bye: {type: hangup}
""", ["t.yaml:8: node 'm': repeat_key: repeat_key '99' is not one DTMF key (0123456789*#ABCD)"]),
    ("timeout_below_minimum", MENU_HEAD + """\
    choices: {"1": bye}
    timeout_ms: 100
    on_failure: bye
  bye: {type: hangup}
""", ["t.yaml:8: node 'm': timeout_ms: Input should be greater than or equal to 500"]),
    ("unknown_field_typo", MENU_HEAD + """\
    choices: {"1": bye}
    timout_ms: 3000
    on_failure: bye
  bye: {type: hangup}
""", ["t.yaml:8: node 'm': timout_ms: unknown field of a menu node (did you mean 'timeout_ms'?)"]),
    ("unknown_top_level_field", """\
name: t
start: a
node:
  a: {type: hangup}
""", ["t.yaml: nodes: Field required",
      "t.yaml:3: node: unknown field of a flow (did you mean 'nodes'?)"]),
    ("missing_required_node_field", """\
name: t
start: a
nodes:
  a: {type: play, prompts: [welcome]}
""", ["t.yaml:4: node 'a': next: Field required"]),
    ("tab_indent_is_not_yaml", "name: t\nstart: a\nnodes:\n  a:\n\ttype: hangup\n",
     ["t.yaml:5:1: not valid YAML: found character '\\t' that cannot start any token "
      "(indent with spaces: YAML does not allow tabs)"]),
    ("bad_indent_is_not_yaml", "name: t\nstart: a\nnodes:\n  a:\n    type: hangup\n   reason: x\n",
     ["t.yaml:6:4: not valid YAML: expected <block end>, but found '<block mapping start>' "
      "(check the indentation)"]),
    ("empty_file", "",
     ["t.yaml:1: the file is empty; a flow is a mapping with name, start, nodes"]),
    ("comments_only", "# nothing yet\n",
     ["t.yaml:1: the file is empty; a flow is a mapping with name, start, nodes"]),
    ("a_list_not_a_mapping", "- a\n- b\n",
     ["t.yaml:1: a flow is a mapping with name, start, nodes"]),
    ("bad_node_name", """\
name: t
start: "a b"
nodes:
  "a b": {type: hangup}
""", ["t.yaml:4: node 'a b': node names are letters, digits, '_', '-' and '.'"]),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(*c[1:], id=c[0]) for c in BROKEN])
def test_broken_flow_is_refused_with_exact_errors(text: str, expected: list[str]) -> None:
    with pytest.raises(FlowError) as info:
        parse_flow(text, "t.yaml")
    assert [str(issue) for issue in info.value.issues] == expected
    assert str(info.value) == "\n".join(expected)


def test_every_problem_is_listed_not_only_the_first() -> None:
    text = MENU_HEAD + """\
    choices: {"1": bye, "x": bye}
    timeout_ms: 100
    timout_ms: 3000
    on_failure: bye
  bye: {type: hangup}
"""
    with pytest.raises(FlowError) as info:
        parse_flow(text, "t.yaml")
    assert [i.line for i in info.value.issues] == [7, 8, 9]
    assert {i.node for i in info.value.issues} == {"m"}


def test_yaml_error_carries_line_and_column() -> None:
    with pytest.raises(FlowError) as info:
        parse_flow("name: t\nstart: [a\n", "t.yaml")
    (issue,) = info.value.issues
    assert issue.line is not None and issue.column is not None
    assert str(issue).startswith(f"t.yaml:{issue.line}:{issue.column}: not valid YAML: ")


def test_prompt_missing_from_the_set_is_reported_at_its_node() -> None:
    text = """\
name: t
start: a
nodes:
  a:
    type: play
    prompts: [welcome, welcom]
    next: b
  b: {type: hangup, prompts: [goodbye]}
"""
    flow, smap = parse_flow(text, "t.yaml")
    issues = check_prompts(flow, smap, {"welcome", "goodbye"}, "en-US")
    assert [str(i) for i in issues] == [
        "t.yaml:4: node 'a': prompt 'welcom' is not in prompt set 'en-US'",
    ]


def test_check_prompts_accepts_a_flow_whose_prompts_all_exist() -> None:
    flow, smap = load_flow(DEFAULT_FLOW)
    bare = {p.rpartition(":")[2] for p in flow.prompt_names()}
    assert check_flow_prompts(flow, smap, {"en-US": bare, "zh-CN": bare}) == []


def test_a_bilingual_flow_needs_its_prompts_in_every_language_it_can_speak() -> None:
    flow, smap = load_flow(DEFAULT_FLOW)
    bare = {p.rpartition(":")[2] for p in flow.prompt_names()}
    issues = check_flow_prompts(flow, smap, {"en-US": bare, "zh-CN": bare - {"welcome"}})
    assert [i.message for i in issues] == ["prompt 'welcome' is not in prompt set 'zh-CN'"]


def test_load_flow_names_the_file_and_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: t\nstart: a\nnodes:\n  a: {type: hangup}\n  b: {type: hangup}\n")
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value) == (
        f"{path}:5: node 'b': unreachable: no path from start node 'a' leads here"
    )


def test_load_flow_missing_file_is_a_flow_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value) == f"{path}: cannot read: No such file or directory"


def test_load_flow_non_utf8_file_is_a_flow_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value) == f"{path}: not UTF-8 text"


def test_shipped_and_test_flows_are_valid() -> None:
    for path in [DEFAULT_FLOW, *sorted((ROOT / "tests" / "flows").glob("*.yaml"))]:
        flow, _ = load_flow(path)
        assert flow.start in flow.nodes


# --- the CLI -----------------------------------------------------------------------------------


def run_check(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env["IVR_PATHS_VAR_DIR"] = str(tmp_path / "var")  # the converted-prompt cache
    return subprocess.run(
        [sys.executable, "-m", "ivr.cli", "flow", "check", *map(str, files),
         "--prompts", str(PROMPTS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )


def test_cli_flow_check_accepts_the_default_flow(tmp_path: Path) -> None:
    result = run_check(tmp_path, DEFAULT_FLOW)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"{DEFAULT_FLOW}: ok (flow 'default'" in result.stdout


def test_cli_flow_check_refuses_a_broken_flow_with_errors_on_stderr(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(MENU_HEAD + """\
    choices: {"1": bye}
    timout_ms: 3000
    on_failure: bye
  bye: {type: hangup}
  lost: {type: hangup}
""")
    missing_prompt = tmp_path / "missing_prompt.yaml"
    missing_prompt.write_text("name: p\nstart: a\nnodes:\n  a: {type: hangup, prompts: [nope]}\n")
    result = run_check(tmp_path, broken, missing_prompt)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{broken}:8: node 'm': timout_ms: unknown field of a menu node "
        "(did you mean 'timeout_ms'?)",
        f"{missing_prompt}:4: node 'a': prompt 'nope' is not in prompt set 'en-US'",
    ]
    assert result.stdout == ""
