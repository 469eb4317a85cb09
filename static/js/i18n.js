/*
 * GridAtlas texts for the pages' scripts, in the page's language (<html lang>).
 *
 * The page embeds {msgid: text} (and {msgid: [one, other]} for plural texts) as JSON in
 * #ga-texts, made by geo/i18n.py from the same catalog as the pages; each script marks its texts
 * with _("…") and ngettext("…", "…", n) so that `make translations` extracts them (babel.cfg):
 *
 *   var _ = GridAtlasI18n._, ngettext = GridAtlasI18n.ngettext;
 *   _("%(count)s outlets nearest to %(place)s", {count: 3, place: "Main St 1"})
 *   pgettext("outlet", "closed")   // a text whose English word also means something else
 *
 * Placeholders are Python's %(name)s (also %(name)d), so that translators see one syntax.
 * _html() and ngettext_html() are for scripts that build HTML: the text is escaped, the
 * parameters are HTML already (escape what they hold).
 * GridAtlasI18n.locale is the page's BCP 47 tag, for Intl.DateTimeFormat / NumberFormat.
 */
(function () {
  "use strict";

  var node = document.getElementById("ga-texts");
  var texts = {};
  try { texts = node ? JSON.parse(node.textContent) : {}; } catch (e) { texts = {}; }
  var locale = document.documentElement.lang || "en";

  function fill(text, params) {
    if (!params) { return text; }
    return text.replace(/%\((\w+)\)[sdr]/g, function (whole, name) {
      return Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole;
    });
  }

  /* The text of msgid in the page's language (msgid itself when there is none). */
  function gettext(msgid, params) {
    var text = texts[msgid];
    return fill(typeof text === "string" ? text : msgid, params);
  }

  /* msgid in a context, where one English word means two things ("closed": a switch, a day). */
  function pgettext(context, msgid, params) {
    var text = texts[context + "\u0004" + msgid];
    return fill(typeof text === "string" ? text : msgid, params);
  }

  /* One or other form by n; %(num)s is n, formatted for the page's language. */
  function ngettext(singular, plural, n, params) {
    var forms = texts[singular];
    var text = Array.isArray(forms) ? forms[n === 1 ? 0 : 1] : (n === 1 ? singular : plural);
    return fill(text, Object.assign({num: formatNumber(n)}, params || {}));
  }

  function escapeHtml(value) {
    return String(value).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  /* The text of msgid as HTML: the text escaped, params (HTML) put in as they are. */
  function gettextHtml(msgid, params) {
    var text = texts[msgid];
    return fill(escapeHtml(typeof text === "string" ? text : msgid), params);
  }

  function ngettextHtml(singular, plural, n, params) {
    var forms = texts[singular];
    var text = Array.isArray(forms) ? forms[n === 1 ? 0 : 1] : (n === 1 ? singular : plural);
    return fill(escapeHtml(text), Object.assign({num: escapeHtml(formatNumber(n))}, params || {}));
  }

  function formatNumber(n, options) {
    try { return new Intl.NumberFormat(locale, options).format(n); } catch (e) { return String(n); }
  }

  // The layer control's heading is drawn by CSS (content: var(--ga-layers-label)).
  document.documentElement.style.setProperty("--ga-layers-label", JSON.stringify(gettext("Layers")));

  // Leaflet's own texts (the zoom buttons' titles), before the page's map is built.
  if (window.L && L.Control && L.Control.Zoom) {
    L.Control.Zoom.prototype.options.zoomInTitle = gettext("Zoom in");
    L.Control.Zoom.prototype.options.zoomOutTitle = gettext("Zoom out");
  }

  window.GridAtlasI18n = {_: gettext, gettext: gettext, ngettext: ngettext, pgettext: pgettext, _html: gettextHtml, ngettext_html: ngettextHtml,
                          locale: locale, formatNumber: formatNumber, escapeHtml: escapeHtml};
})();
