"""The capped requirements of pyproject.toml with their caps lifted, one per line: an override
file for uv (`make test-above-caps`).

    python tools/lift-caps.py [NAME ...]     # default: every requirement with an upper bound

A cap is a `<` or `<=` bound; lifting it keeps the other bounds (`transformers>=5.17,<5.26` ->
`transformers>=5.17`). Which caps were lifted goes to stderr. A NAME without a cap is an error.
"""

import re
import sys
import tomllib
from pathlib import Path

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")


def lifted(requirements: list[str], names: set[str]) -> list[tuple[str, str]]:
    """(requirement, without its caps) for each capped requirement named in `names` (all if empty)."""
    out = []
    for requirement in requirements:
        name, extras, specifiers, marker = REQUIREMENT.match(requirement).groups()
        kept = [s.strip() for s in specifiers.split(",") if s.strip() and not s.strip().startswith("<")]
        if len(kept) < len([s for s in specifiers.split(",") if s.strip()]) and (not names or name.lower() in names):
            out.append((requirement, f"{name}{extras or ''}{','.join(kept)}{marker or ''}"))
    return out


def main(argv: list[str]) -> int:
    names = {name.lower() for name in argv}
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    found = lifted(project["dependencies"], names)
    unknown = names - {REQUIREMENT.match(requirement).group(1).lower() for requirement, _ in found}
    if unknown:
        print(f"lift-caps: no cap on {', '.join(sorted(unknown))} in pyproject.toml", file=sys.stderr)
        return 2
    for requirement, without in found:
        print(without)
        print(f"lift-caps: {requirement} -> {without}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
