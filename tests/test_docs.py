"""README.md and docs/: every command in README's shell blocks is well-formed (its tool exists and
takes each flag it is given, its configs, make targets and test files exist), the demo command runs
on a shipped image, Python blocks compile, and every relative link and anchor resolves."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKDOWN = [README, REPO / "datasets" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MAX_README_LINES = 300
SHELL = {"bash", "sh", "shell"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
TOOL = re.compile(r"(?:^|/)tools/(\w+)\.py$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(text: str, languages: set[str]) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang in languages]


def shell_commands(text: str) -> list[list[str]]:
    """Each command line of the shell blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in code_blocks(text, SHELL):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                commands.append(tokens)
    return commands


def tool_calls(commands: list[list[str]]) -> list[tuple[str, list[str]]]:
    """(tool name, its arguments) for every ``tools/X.py`` command."""
    calls = []
    for tokens in commands:
        for i, token in enumerate(tokens):
            match = TOOL.search(token)
            if match:
                calls.append((match.group(1), tokens[i + 1 :]))
                break
    return calls


README_TEXT = README.read_text()
README_CALLS = tool_calls(shell_commands(README_TEXT))


@pytest.fixture(scope="module")
def tool_help() -> dict[str, str]:
    """``--help`` of every tool README uses, run at once (each process imports torch)."""
    tools = sorted({name for name, _ in README_CALLS if (REPO / "tools" / f"{name}.py").is_file()})
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(REPO / "tools" / f"{name}.py"), "--help"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in tools
    }
    helps = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"tools/{name}.py --help failed:\n{out[-2000:]}"
        helps[name] = out
    return helps


def test_readme_is_short():
    assert len(README_TEXT.splitlines()) <= MAX_README_LINES


def test_quickstart_is_two_make_commands():
    match = re.search(r"^#+ *quick ?start.*$", README_TEXT, re.I | re.M)
    assert match, "README has no Quickstart heading"
    first_block = code_blocks(README_TEXT[match.end() :], SHELL)[0]
    assert shell_commands(f"```bash\n{first_block}```\n") == [["make", "demo"], ["make", "test"]]


def test_readme_tools_exist_and_take_their_flags(tool_help):
    assert {"train_net", "demo", "app", "benchmark"} <= {name for name, _ in README_CALLS}
    for name, args in README_CALLS:
        assert (REPO / "tools" / f"{name}.py").is_file(), f"tools/{name}.py"
        choices = {
            flag: values.split(",")
            for flag, values in re.findall(r"(--[\w-]+) \{([^}]*)\}", tool_help[name])
        }
        flag = None
        for arg in args:
            if arg.startswith("--"):
                flag = arg.split("=")[0]
                pattern = rf"(?<![\w-]){re.escape(flag)}(?![\w-])"
                assert re.search(pattern, tool_help[name]), f"tools/{name}.py has no {flag}"
            elif flag in choices:  # argparse would take a config override here as a value
                assert arg in choices[flag], f"tools/{name}.py {flag}: no choice {arg!r}"


def test_make_targets_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    used = {
        tokens[i + 1]
        for tokens in shell_commands(README_TEXT)
        for i, token in enumerate(tokens[:-1])
        if token == "make"
    }
    assert used and used <= targets, used - targets


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_named_configs_tools_and_tests_exist(path):
    text = path.read_text()
    named = re.findall(r"(?<![\w/.])((?:configs|tools|tests)/[\w/.-]*\w\.(?:yaml|py|sh))", text)
    missing = sorted({p for p in named if not (REPO / p).is_file()})
    assert not missing, missing


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_compile(path):
    for block in code_blocks(path.read_text(), {"python"}):
        compile(block, str(path), "exec")


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (code blocks left out)."""
    headings = re.findall(r"^#+ +(.+?) *$", FENCE.sub("", text), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{path.name}: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), f"{path.name}: {target}"


def test_readme_demo_command_runs_on_a_shipped_image(tiny_sam_yaml, tmp_path):
    """README's demo command as written, with the tiny test model instead of trained weights."""
    args = next(args for name, args in README_CALLS if name == "demo")
    args = args[: args.index("--opts")] if "--opts" in args else list(args)
    image = REPO / "docs" / "demo_shapes_00002.png"
    swap = {"--config-file": str(tiny_sam_yaml), "--input": str(image), "--output": str(tmp_path)}
    for flag, value in swap.items():
        args[args.index(flag) + 1] = value
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / f"{image.stem}.json").read_text())
    assert len(result["regions"]) == len(json.loads(args[args.index("--boxes") + 1]))
    assert (tmp_path / f"{image.stem}.png").is_file()
