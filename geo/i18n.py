"""Two languages, English and Simplified Chinese: the locale of each request, the message
marker that domain code uses, and the texts that the pages' JavaScript shows.

Domain modules mark their messages with ``_`` and %-style named placeholders, so translators
see whole sentences::

    raise Invalid(_("%(name)s must be a number, not %(value)r", name=name, value=value), field=name)

``_`` needs no app and no request: it returns a :class:`Message`, a ``str`` that reads in
English everywhere (logs, ``str(error)``, tests) and remembers its message id and parameters,
so that :func:`translate` renders it again in the request's language (geo/errors.py's handler
does). Catalogs live in ``translations/`` (docs/i18n.md); without compiled catalogs every
text stays English.
"""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from flask import Flask, current_app, has_request_context, redirect, request, url_for
from flask_babel import Babel, get_locale, get_translations

from geo.security import local_path

__all__ = ["LANGUAGES", "COOKIE", "Message", "Joined", "Moment", "_", "ngettext", "translate", "translate_all",
           "locale_code", "html_lang", "js_texts", "init_app"]

# The languages we serve: locale code -> what the language switch shows (in that language).
LANGUAGES = {"en": "English", "zh": "中文"}
DEFAULT = "en"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
# BCP 47 tag of each locale, for <html lang> and the browser's Intl formatting.
_HTML_LANG = {"en": "en", "zh": "zh-CN"}
# Tags a browser may send that mean one of ours (werkzeug also falls back to the primary
# subtag: zh-SG -> zh). Traditional Chinese readers read Simplified better than English.
_ACCEPTED = ["en", "zh", "zh-CN", "zh-Hans", "zh-SG", "zh-TW", "zh-HK", "zh-Hant"]
# The keywords that mark a text in our JavaScript (pybabel's defaults plus the -k of the Makefile's
# `translations` target), and the scripts whose texts a page embeds.
JS_KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "_html": None,
               "ngettext_html": (1, 2)}
JS_FILES = ("static/js/i18n.js", "static/js/network_map.js", "static/js/trace_tool.js",
            "static/js/outlets_map.js", "static/js/crew.js", "static/js/dispatch_map.js", "static/js/basemap.js",
            "static/js/cells_map.js", "static/js/outage_status.js", "static/js/outages_map.js",
            "static/js/reliability.js")


class Message(str):
    """A text marked for translation: reads as its English rendering, keeps its id and parameters.

    >>> m = _("%(name)s must be a number, not %(value)r", name="lat", value="abc")
    >>> m, m.msgid
    ("lat must be a number, not 'abc'", '%(name)s must be a number, not %(value)r')
    >>> translate(m)  # no request: English
    "lat must be a number, not 'abc'"
    """

    msgid: str
    plural: str | None
    count: int | None
    params: dict[str, Any]

    def __new__(cls, msgid: str, params: dict[str, Any], plural: str | None = None, count: int | None = None):
        english = plural if plural is not None and count != 1 else msgid
        self = super().__new__(cls, english % params if params else english)
        self.msgid, self.plural, self.count, self.params = msgid, plural, count, params
        return self

    def __reduce__(self):
        return Message, (self.msgid, self.params, self.plural, self.count)


class Moment(str):
    """A date or a time in a message: reads as ``value.strftime(english)``, and in the request's
    language as the CLDR ``pattern`` (weekday and zone names in that language) on its own clock.

    >>> Moment(date(2026, 12, 1), "%a %Y-%m-%d", "EEE yyyy-MM-dd")
    'Tue 2026-12-01'
    """

    def __new__(cls, value: date | datetime, english: str, pattern: str):
        self = super().__new__(cls, value.strftime(english))
        self.value, self.pattern = value, pattern
        return self

    def localised(self, locale: Locale) -> str:
        """The moment written for ``locale``."""
        if isinstance(self.value, datetime):
            return format_datetime(self.value, self.pattern, tzinfo=self.value.tzinfo, locale=locale)
        return format_date(self.value, self.pattern, locale=locale)


def _(msgid: str, **params: Any) -> Message:
    """Mark ``msgid`` for translation; ``params`` fill its ``%(name)s`` placeholders."""
    return Message(msgid, params)


def ngettext(singular: str, plural: str, count: int, **params: Any) -> Message:
    """Mark a text with a plural form; ``%(num)s`` in it is ``count``."""
    params.setdefault("num", count)
    return Message(singular, params, plural, count)


class Joined(str):
    """Texts joined by a separator, each translated when the whole is (a list of problems)."""

    def __new__(cls, separator: str, parts: list[Any]):
        self = super().__new__(cls, str(separator).join(str(part) for part in parts))
        self.separator, self.parts = separator, list(parts)
        return self


def translate(value: Any) -> Any:
    """``value`` in the request's language if it is a :class:`Message` (its parameters too);
    anything else as it is. Outside a request, or without catalogs, English."""
    if not has_request_context():
        return value
    if isinstance(value, Joined):
        return str(translate(value.separator)).join(str(translate(part)) for part in value.parts)
    if not isinstance(value, Message):
        return value
    translations = get_translations()
    if value.plural is None:
        text = translations.ugettext(value.msgid)
    else:
        text = translations.ungettext(value.msgid, value.plural, value.count)
    params = {name: _localised(translate(_message_of(param))) for name, param in value.params.items()}
    try:
        return text % params if params else text
    except (KeyError, TypeError, ValueError):  # a broken translation must not break the answer
        current_app.logger.warning("translation of %r does not fit its parameters", value.msgid)
        return str(value)


def translate_all(value: Any) -> Any:
    """``value`` with every :class:`Message` in it translated, inside lists and dicts too."""
    if isinstance(value, dict):
        return {key: translate_all(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        return [translate_all(item) for item in value]
    return translate(value)


def _localised(param: Any) -> Any:
    """A :class:`Moment` written in the request's language; anything else as it is."""
    locale = get_locale()
    return param.localised(locale) if isinstance(param, Moment) and locale is not None else param


def _message_of(param: Any) -> Any:
    """An exception raised with a :class:`Message` stands for that message (``%(error)s``)."""
    if isinstance(param, BaseException) and len(param.args) == 1 and isinstance(param.args[0], Message):
        return param.args[0]
    return param


@lru_cache(maxsize=None)
def _compiled(root: str) -> frozenset[str]:
    """The languages whose catalog is compiled (``make install``); English needs none."""
    return frozenset({DEFAULT} | {code for code in LANGUAGES
                                  if (Path(root) / "translations" / code / "LC_MESSAGES" / "messages.mo").exists()})


def _select_locale() -> str:
    """The remembered choice (the ``lang`` cookie), else the browser's best match, else English;
    a language without a compiled catalog is not offered (its page would be English anyway)."""
    chosen = request.cookies.get(COOKIE)
    if chosen not in LANGUAGES:
        best = request.accept_languages.best_match(_ACCEPTED)
        chosen = "zh" if best and best.startswith("zh") else DEFAULT
    return chosen if chosen in _compiled(current_app.root_path) else DEFAULT


def locale_code() -> str:
    """The request's locale code: ``en`` or ``zh``."""
    locale = get_locale() if has_request_context() else None
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT


def html_lang() -> str:
    """The request's language as a BCP 47 tag, for ``<html lang>`` and ``Intl`` in the browser."""
    return _HTML_LANG[locale_code()]


@lru_cache(maxsize=None)
def _js_messages(root: str) -> tuple[tuple[str | None, str | tuple[str, str]], ...]:
    """(context, text) of every text our JavaScript marks (``_("…")``, ``ngettext("…", "…", n)``,
    ``pgettext("context", "…")``), read once."""
    from babel.messages.extract import extract_from_file

    found: dict[Any, None] = {}
    for name in JS_FILES:
        path = Path(root) / name
        if path.exists():
            for _line, message, _comments, context in extract_from_file("javascript", str(path), keywords=JS_KEYWORDS):
                found[context, message] = None
    return tuple(found)


def js_texts() -> dict[str, Any]:
    """The JavaScript's texts in the request's language: msgid -> text, or for a plural text
    msgid -> [one, other] (our two languages have at most these two forms); a text with a context
    under context + "\x04" + msgid, as gettext keys it."""
    translations = get_translations()
    texts: dict[str, Any] = {}
    for context, message in _js_messages(current_app.root_path):
        if context is not None:
            texts[f"{context}\x04{message}"] = translations.upgettext(context, message)
        elif isinstance(message, tuple):
            singular, plural = message[:2]
            texts[singular] = [translations.ungettext(singular, plural, 1), translations.ungettext(singular, plural, 2)]
        else:
            texts[message] = translations.ugettext(message)
    return texts


def choose_language(code: str):
    """Remember the language ``code`` in a cookie and go back to ``next`` (a local path)."""
    response = redirect(local_path(request.args.get("next"), url_for("index")))
    if code in LANGUAGES:
        response.set_cookie(COOKIE, code, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True)
    return response


def _template_globals() -> dict[str, Any]:
    """What every template may use: the locale, its BCP 47 tag, the languages to switch to."""
    return {"current_locale": html_lang(), "locale_code": locale_code(), "languages": LANGUAGES,
            "js_texts": js_texts}


def init_app(app: Flask) -> None:
    """Choose each request's language; give templates ``_``, ``ngettext``, the formatters and
    the language switch's route ``/lang/<code>?next=<path>``."""
    Babel(app, locale_selector=_select_locale)
    app.context_processor(_template_globals)
    from geo.auth import PUBLIC, allow  # geo.auth's errors need this module: imported once both exist
    from geo.contracts import LANGUAGE_CHOSEN, NextQuery
    from geo.openapi import contract

    app.add_url_rule("/lang/<code>", "choose_language",
                     allow(PUBLIC)(contract(query=NextQuery, responses={302: LANGUAGE_CHOSEN})(choose_language)))
