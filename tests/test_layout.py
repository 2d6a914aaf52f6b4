"""The house as a newcomer reads it: the code map, the docs' links and examples, the licence."""

import re
import shlex

import pytest
import tomlkit
from docopt import DocoptExit

import tempo
from conftest import ROOT

RULE = "# " + "-" * 20
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def banners() -> list[str]:
    """The section titles of tempo.py: the line after each opening full-width banner rule."""
    lines = (ROOT / "tempo.py").read_text(encoding="utf-8").splitlines()
    return [lines[i + 1][2:] for i, line in enumerate(lines[:-1])
            if line.startswith(RULE) and lines[i + 1].startswith("# ") and not lines[i + 1].startswith(RULE)
            and not lines[i - 1].startswith("#")]


def test_the_code_map_lists_the_banners_in_order():
    """Merges have cut banners before: the map at the top of tempo.py and the README's say what is there."""
    source = (ROOT / "tempo.py").read_text(encoding="utf-8")
    head = source.split("# Code map:", 1)[1].split("\n\n", 1)[0]
    in_file = [line[4:].strip() for line in head.splitlines() if line.startswith("#   ")]
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("## Code map", 1)[1]
    in_readme = [row.split("|")[1].strip() for row in readme.splitlines() if row.startswith("| ")][1:]
    assert in_file == banners(), "update the code map at the top of tempo.py"
    assert in_readme == banners(), "update the README's Code map"


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings (outside code blocks)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_local_links_reach_a_file_and_a_heading(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(file.read_text(encoding="utf-8")), f"{page.name}: {target}"


def examples(page) -> list[list[str]]:
    """Every `tempo ...` command line in a page's sh code blocks, split at && and |, comments dropped."""
    found, blocks, block = [], [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if block is not None:
                blocks.append("\n".join(block))
            block = [] if block is None and line[3:].strip() in ("", "sh", "bash", "console") else None
        elif block is not None:
            block.append(line)
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            if not line.removeprefix("$ ").startswith("tempo "):
                continue  # another program, or output
            lexer = shlex.shlex(line.removeprefix("$ "), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            command = []
            for word in [*lexer, "&&"]:
                if word in ("&&", "||", "|", ";"):
                    if command[:1] == ["tempo"]:
                        found.append(command[1:])
                    command = []
                else:
                    command.append(word)
    return found


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_example_command_parses(page):
    for argv in examples(page):
        try:
            tempo._parse_args(argv)
        except DocoptExit as e:
            pytest.fail(f"{page.name}: tempo {shlex.join(argv)}\n{e}")
        except SystemExit:  # --help, --version
            pass


def test_the_licence_is_the_one_pyproject_names():
    declared = tomlkit.parse((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"]
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert declared == "MIT" and licence.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in licence
