"""Every message id of the add-on is in the English catalog and the template,
so translators see all of them."""

from pathlib import Path
from pythongettext.msgfmt import Msgfmt

import ast
import collective.eduhub_alerts
import re


PACKAGE = Path(collective.eduhub_alerts.__file__).parent
LOCALES = PACKAGE / "locales"


def source_message_ids() -> set[str]:
    ids = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                ids.add(node.args[0].value)
    return ids


def catalog_ids(path: Path) -> set[str]:
    return set(re.findall(r'^msgid "(.+)"$', path.read_text(), re.MULTILINE))


def test_template_and_english_catalog_list_every_message_id():
    expected = source_message_ids()
    assert expected <= catalog_ids(LOCALES / "collective.eduhub_alerts.pot")
    assert expected <= catalog_ids(LOCALES / "en" / "LC_MESSAGES" / "collective.eduhub_alerts.po")


def test_english_catalog_compiles():
    po = LOCALES / "en" / "LC_MESSAGES" / "collective.eduhub_alerts.po"
    with po.open("rb") as fh:
        assert Msgfmt(fh).get()
