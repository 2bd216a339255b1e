"""The configuration table of the README, generated from Settings so the two never disagree.

    python -m services.common.settings_doc README.md   (what `make docs` runs)

rewrites the part of the file between the two markers below; a test checks it is up to date.
"""

import sys
from pathlib import Path

from pydantic import SecretStr

from services.common.settings import Settings

BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"


def _default(value: object) -> str:
    if isinstance(value, SecretStr):
        return "(secret, no default)" if not value.get_secret_value() else "(secret)"
    if value is None or value == "":
        return "—"
    return f"`{value}`"


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        variable = f"`CSU_{name.upper()}`"
        aliases = [a for a in getattr(field.validation_alias, "choices", []) if not a.startswith("CSU_")]
        if aliases:
            variable += " (or " + ", ".join(f"`{a}`" for a in aliases) + ")"
        rows.append(f"| {variable} | {_default(field.default)} | {field.description} |")
    return "\n".join(rows)


def render(document: str) -> str:
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise ValueError(f"the document has no {BEGIN} marker")
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(path: str) -> int:
    target = Path(path)
    target.write_text(render(target.read_text()))
    print(f"configuration table written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
