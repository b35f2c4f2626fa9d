"""Agent skills: folders of instructions Claude loads when a task needs them.

A skills folder holds one folder per skill, each with a ``SKILL.md``: YAML front matter with a
``name`` and a ``description`` (what the skill is for, and when to use it), then the instructions,
which may point at the skill's other files. This is the layout of Claude Code's and the Agent SDK's
``.claude/skills/``. :func:`skill_tool` turns a folder into one tool, ``skill``: its description lists
every skill by name and description, so Claude knows what exists, and a call returns one skill's
instructions (or one of its files), so only the skills a task needs take room in the context.
Nothing in a skill runs: a script it ships can be read, not executed (there is no shell tool).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .._files import UnsafePath, safe_path
from ._errors import ToolDefinitionError, ToolInputError
from ._tool import Tool

SKILL_FILE = "SKILL.md"
TOOL_NAME = "skill"
MAX_SKILL_CHARS = 100_000
"""Characters of one skill file a call returns at most (a note says it was cut)."""
MAX_SKILLS = 200
"""Skills one folder may hold: their list goes in the tool's description, sent with every request."""
MAX_DESCRIPTION = 1024
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


@dataclass(frozen=True)
class Skill:
    """One skill: its name, what it is for, and its folder."""

    name: str
    description: str
    folder: Path
    instructions: str
    """SKILL.md without its front matter."""


def find_skills(folder: Path) -> list[Skill]:
    """The skills under ``folder`` (each subfolder with a SKILL.md), sorted by name; ToolDefinitionError,
    naming the file, for a SKILL.md without a usable name or description, or two skills of one name."""
    root = Path(folder)
    if not root.is_dir():
        raise ToolDefinitionError(TOOL_NAME, "skills", f"the skills folder {str(folder)!r} is not an existing folder; "
                                                       "create it, with one folder per skill holding a SKILL.md")
    skills: dict[str, Skill] = {}
    for path in sorted(root.glob(f"*/{SKILL_FILE}")):
        skill = _read_skill(path)
        if skill.name in skills:
            raise ToolDefinitionError(TOOL_NAME, "skills", f"two skills are named {skill.name!r}: "
                                                           f"{skills[skill.name].folder} and {skill.folder}")
        skills[skill.name] = skill
    if len(skills) > MAX_SKILLS:
        raise ToolDefinitionError(TOOL_NAME, "skills", f"{root} holds {len(skills)} skills, over the limit of "
                                                       f"{MAX_SKILLS}; split it into several folders")
    return sorted(skills.values(), key=lambda s: s.name)


def _read_skill(path: Path) -> Skill:
    def bad(why: str) -> ToolDefinitionError:
        return ToolDefinitionError(TOOL_NAME, "skills", f"{path}: {why}; a SKILL.md starts with front matter: "
                                                        "---, name: my-skill, description: what it does and when "
                                                        "to use it, ---")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise bad(f"cannot be read ({exc})") from None
    match = _FRONT_MATTER.match(text)
    if not match:
        raise bad("has no front matter")
    try:
        meta = yaml.safe_load(match[1])
    except yaml.YAMLError as exc:
        raise bad(f"its front matter is not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise bad("its front matter is not a mapping")
    name = meta.get("name", path.parent.name)
    description = meta.get("description")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad(f"name {name!r} must be lowercase letters, digits, - and _ (at most 64)")
    if not isinstance(description, str) or not description.strip():
        raise bad("description is missing: Claude picks a skill by it")
    if len(description) > MAX_DESCRIPTION:
        raise bad(f"description is {len(description):,} characters, over {MAX_DESCRIPTION:,}")
    return Skill(name, " ".join(description.split()), path.parent.resolve(), text[match.end():].strip())


def skill_tool(folders: Path | Sequence[Path]) -> Tool:
    """The ``skill`` tool over the skills of one folder or several (see the module docstring);
    ToolDefinitionError for two skills of one name, in one folder or across them."""
    skills: dict[str, Skill] = {}
    for folder in [folders] if isinstance(folders, (str, Path)) else folders:
        for found in find_skills(Path(folder)):
            if found.name in skills:
                raise ToolDefinitionError(TOOL_NAME, "skills", f"two skills are named {found.name!r}: "
                                                               f"{skills[found.name].folder} and {found.folder}")
            skills[found.name] = found
    listing = "\n".join(f"- {s.name}: {s.description}" for s in skills.values()) or "(none: the folder is empty)"
    description = ("Load a skill: instructions for a kind of task. When a task matches a skill below, call this "
                   "with its name first and follow what it says. A skill may name its own files (templates, "
                   "references, scripts): read one with file, its path inside the skill's folder. Scripts "
                   "cannot be run here.\n\nSkills:\n" + listing)
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "enum": list(skills)} if skills else {"type": "string"},
        "file": {"type": "string", "description": "a file of the skill, relative to its folder "
                                                  "(default: its SKILL.md instructions)"}},
        "required": ["name"], "additionalProperties": False}

    def skill(name: str, file: str | None = None) -> str:
        found = skills.get(name)
        if found is None:
            raise ToolInputError(f"no skill is named {name!r}; the skills are: {', '.join(skills) or 'none'}",
                                 tool=TOOL_NAME)
        if file is None or file == SKILL_FILE:
            return _bounded(found.instructions, f"{name}/{SKILL_FILE}")
        try:
            target = safe_path(file, found.folder, "file")
        except UnsafePath as exc:
            raise ToolInputError(f"{exc} (the skill's folder)", tool=TOOL_NAME) from None
        except (OSError, ValueError) as exc:
            raise ToolInputError(f"file {file!r} is not a usable path: {exc}", tool=TOOL_NAME) from None
        if not target.is_file():
            present = sorted(str(p.relative_to(found.folder)) for p in found.folder.rglob("*") if p.is_file())[:50]
            raise ToolInputError(f"skill {name!r} has no file {file!r}; its files: {', '.join(present)}",
                                 tool=TOOL_NAME)
        data = target.read_bytes()
        if b"\0" in data[:8192]:
            raise ToolInputError(f"{file} is a binary file; only text files of a skill can be read", tool=TOOL_NAME)
        return _bounded(data.decode("utf-8", errors="replace"), f"{name}/{file}")

    return Tool(TOOL_NAME, description, schema, skill)


def _bounded(text: str, shown: str) -> str:
    if len(text) <= MAX_SKILL_CHARS:
        return text
    return text[:MAX_SKILL_CHARS] + f"\n[{shown} is cut at {MAX_SKILL_CHARS:,} characters of {len(text):,}]"
