"""The Chinese catalog is complete: every text the code, the templates and the pages' scripts mark
(extracted now, as ``make translations`` does) has a translation that is not fuzzy, fits its
placeholders, and the catalog holds no entry the code no longer marks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
# As in the Makefile's `translations` target.
KEYWORDS = ["-k", "ngettext:1,2", "-k", "_html", "-k", "ngettext_html:1,2"]
IGNORED = ".* _* node_modules vendor var tests bench"


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """The message template extracted from the tree now."""
    template = tmp_path_factory.mktemp("i18n") / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(pybabel), "-q", "extract", "-F", "babel.cfg", *KEYWORDS, "--ignore-dirs", IGNORED,
                    "-o", str(template), "."], cwd=ROOT, check=True, capture_output=True)
    with template.open("rb") as file:
        return read_po(file)


@pytest.fixture(scope="module")
def catalog():
    """The Chinese catalog as committed."""
    with CATALOG.open("rb") as file:
        return read_po(file, locale="zh")


def _ids(catalog) -> set:
    """(context, id) of every message; a plural message's id is its two forms."""
    return {(message.context, message.id if isinstance(message.id, str) else tuple(message.id))
            for message in catalog if message.id}


def test_every_marked_text_has_a_chinese_translation(extracted, catalog):
    missing = sorted(map(str, _ids(extracted) - _ids(catalog)))
    untranslated = sorted(str(message.id) for message in catalog if message.id and not (
        all(message.string) if isinstance(message.string, tuple) else message.string))
    assert (missing, untranslated) == ([], []), "run `make translations` and translate the new entries"


def test_the_catalog_has_no_fuzzy_or_obsolete_entries(extracted, catalog):
    assert sorted(str(message.id) for message in catalog if message.id and message.fuzzy) == []
    assert sorted(map(str, catalog.obsolete)) == []
    assert sorted(map(str, _ids(catalog) - _ids(extracted))) == []


def test_every_translation_keeps_its_placeholders(catalog):
    assert [(message.id, str(error)) for message, errors in catalog.check() for error in errors] == []


def test_the_template_in_the_tree_is_up_to_date(extracted):
    with (ROOT / "translations" / "messages.pot").open("rb") as file:
        assert _ids(read_po(file)) == _ids(extracted), "run `make translations`"
