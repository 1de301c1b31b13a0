"""Every message id of the add-on is in the English catalog and the template,
so translators see all of them (``make i18n`` rebuilds both)."""

from pathlib import Path
from pythongettext.msgfmt import Msgfmt

from devstack.i18n import message_ids

import collective.eduhub_alerts
import re


LOCALES = Path(collective.eduhub_alerts.__file__).parent / "locales"
ENGLISH = LOCALES / "en" / "LC_MESSAGES" / "collective.eduhub_alerts.po"


def catalog_ids(path: Path) -> set[str]:
    return set(re.findall(r'^msgid "(.+)"$', path.read_text(), re.MULTILINE))


def test_template_and_english_catalog_list_every_message_id():
    expected = set(message_ids())
    assert expected <= catalog_ids(LOCALES / "collective.eduhub_alerts.pot")
    assert expected <= catalog_ids(ENGLISH)


def test_english_catalog_compiles():
    with ENGLISH.open("rb") as fh:
        assert Msgfmt(fh).get()
