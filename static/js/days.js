/*
 * GridAtlas calendar days in a place's own time zone, for the pages' scripts (no texts, no DOM):
 *
 *   GridAtlasDays.localDate("Europe/Berlin", new Date())       // "2026-11-30", the date there now
 *   GridAtlasDays.addDays("2026-11-30", 1)                     // "2026-12-01"
 *   GridAtlasDays.dayWord("2026-11-30T18:00:00+01:00", "Europe/Berlin", now)   // "today", "tomorrow" or null
 *
 * A time is "today" or "tomorrow" by the calendar of its place, not of the phone showing it: an
 * outlet in Berlin that opens at 18:00 opens "today" for a customer there whatever zone the phone
 * is set to. The page turns the word into its language's text.
 */
(function (root) {
  "use strict";

  /* The calendar date (YYYY-MM-DD) in IANA zone ``zone`` at instant ``date`` (default: now). */
  function localDate(zone, date) {
    return new Intl.DateTimeFormat("en-CA", {timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit"})
      .format(date || new Date());
  }

  /* The date ``days`` after ``isoDate`` (both YYYY-MM-DD). */
  function addDays(isoDate, days) {
    var d = new Date(isoDate + "T12:00:00Z");
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }

  /* "today" or "tomorrow" when instant ``iso`` falls on that day in ``zone`` (seen at ``now``), else null. */
  function dayWord(iso, zone, now) {
    var day = localDate(zone, new Date(iso)), today = localDate(zone, now || new Date());
    if (day === today) { return "today"; }
    return day === addDays(today, 1) ? "tomorrow" : null;
  }

  root.GridAtlasDays = {localDate: localDate, addDays: addDays, dayWord: dayWord};
})(typeof window !== "undefined" ? window : globalThis);
