"""Rebuild the add-on's .pot and English .po from the message ids in the
code (``make i18n``). English msgstrs are the defaults; other languages are
translated from the .pot by hand or with i18ndude."""

from pathlib import Path

import ast


PACKAGE = Path(__file__).parents[1] / "src" / "collective" / "eduhub_alerts"
DOMAIN = "collective.eduhub_alerts"
HEADER = """msgid ""
msgstr ""
"Project-Id-Version: {domain}\\n"
"MIME-Version: 1.0\\n"
"Content-Type: text/plain; charset=utf-8\\n"
"Content-Transfer-Encoding: 8bit\\n"
"Language-Code: en\\n"
"Language-Name: English\\n"
"Preferred-Encodings: utf-8 latin1\\n"
"Domain: {domain}\\n"
"""


def message_ids() -> dict[str, tuple[str | None, str]]:
    """msgid -> (default, first file using it), from ``_("id", default=...)`` calls."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                default = next(
                    (k.value.value for k in node.keywords
                     if k.arg == "default" and isinstance(k.value, ast.Constant)),
                    None,
                )
                found.setdefault(node.args[0].value, (default, str(path.relative_to(PACKAGE))))
    return found


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def catalog(entries, fill: bool) -> str:
    blocks = [HEADER.format(domain=DOMAIN)]
    for msgid, (default, path) in sorted(entries.items()):
        lines = [f'#. Default: "{_quote(default)}"'] if default else []
        lines += [f"#: ./{path}", f'msgid "{_quote(msgid)}"']
        lines.append(f'msgstr "{_quote(default or msgid) if fill else ""}"')
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def main():
    entries = message_ids()
    locales = PACKAGE / "locales"
    (locales / f"{DOMAIN}.pot").write_text(
        "# Translations of collective.eduhub_alerts. Add a language by copying this\n"
        "# file to <lang>/LC_MESSAGES/collective.eduhub_alerts.po and translating msgstr.\n"
        + catalog(entries, fill=False)
    )
    (locales / "en" / "LC_MESSAGES" / f"{DOMAIN}.po").write_text(
        "# English catalog of collective.eduhub_alerts.\n" + catalog(entries, fill=True)
    )
    print(f"{len(entries)} message ids")


if __name__ == "__main__":
    main()
