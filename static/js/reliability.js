/*
 * The reliability page (/reliability): asks /api/reliability for a period's IEEE 1366 indices and
 * draws them: a bar per month of the chosen index as plain SVG (months holding a major event day
 * in red), the major event days found, and a table of the indices per system, feeder or grid
 * cell, with and without major event days. Texts from GridAtlasI18n; no library.
 */
(function () {
  "use strict";

  var _ = GridAtlasI18n._, ngettext = GridAtlasI18n.ngettext, el = GridAtlasDom.el, clear = GridAtlasDom.clear;
  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 880, HEIGHT = 280, LEFT = 56, RIGHT = 12, TOP = 14, BOTTOM = 40;
  var config, last;

  function number(value, digits) {
    if (value === null || value === undefined) { return "–"; }
    return GridAtlasI18n.formatNumber(value, {maximumFractionDigits: digits, minimumFractionDigits: 0});
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  /* A round upper bound for the axis and its step: 4 gridlines. */
  function axis(max) {
    if (!(max > 0)) { return {top: 1, step: 0.25}; }
    var raw = max / 4, power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (f) { return f * power; }).filter(function (s) { return s >= raw; })[0];
    return {top: step * 4, step: step};
  }

  function monthLabel(month) {
    var parts = month.split("-");
    var date = new Date(Date.UTC(Number(parts[0]), Number(parts[1]) - 1, 1));
    try {
      return new Intl.DateTimeFormat(GridAtlasI18n.locale, {month: "short", year: "2-digit", timeZone: "UTC"}).format(date);
    } catch (e) { return month; }
  }

  function drawChart(report, index) {
    var holder = clear(document.getElementById("rl-chart"));
    var months = report.months, medMonths = {};
    report.med.days.forEach(function (day) { medMonths[day.slice(0, 7)] = true; });
    var values = months.map(function (m) { return m[index] || 0; });
    var scale = axis(Math.max.apply(null, values.concat([0])));
    var plotW = WIDTH - LEFT - RIGHT, plotH = HEIGHT - TOP - BOTTOM, slot = plotW / Math.max(months.length, 1);
    var root = svg("svg", {viewBox: "0 0 " + WIDTH + " " + HEIGHT, id: "rl-svg"});
    for (var k = 0; k <= 4; k++) {
      var y = TOP + plotH - (k * scale.step / scale.top) * plotH;
      root.appendChild(svg("line", {x1: LEFT, x2: WIDTH - RIGHT, y1: y, y2: y, "class": k ? "rl-grid" : "rl-axis"}));
      root.appendChild(svg("text", {x: LEFT - 6, y: y + 4, "text-anchor": "end"}, number(k * scale.step, 3)));
    }
    months.forEach(function (m, i) {
      var h = (values[i] / scale.top) * plotH, x = LEFT + i * slot + slot * 0.15;
      var bar = svg("rect", {x: x, y: TOP + plotH - h, width: slot * 0.7, height: Math.max(h, 0),
                             "class": medMonths[m.month] ? "rl-bar rl-bar-med" : "rl-bar", "data-month": m.month});
      bar.appendChild(svg("title", {}, monthLabel(m.month) + ": " + number(values[i], 3)));
      root.appendChild(bar);
      root.appendChild(svg("text", {x: LEFT + (i + 0.5) * slot, y: HEIGHT - BOTTOM + 16, "text-anchor": "middle"},
                           monthLabel(m.month)));
    });
    holder.appendChild(root);
  }

  function describeMed(report) {
    var med = report.med, node = clear(document.getElementById("rl-med-days"));
    if (!med.available) {
      node.appendChild(document.createTextNode(_("No major event days: they need a year of outage history.")));
      return;
    }
    var text = ngettext(
      "%(count)s major event day (daily SAIDI above T_MED = %(tmed)s minutes): %(days)s",
      "%(count)s major event days (daily SAIDI above T_MED = %(tmed)s minutes): %(days)s", med.days.length,
      {count: med.days.length, tmed: number(med.t_med, 2), days: med.days.join(", ") || "–"});
    node.appendChild(el("span", {className: "rl-legend-med", "aria-hidden": "true"}));
    node.appendChild(document.createTextNode(text));
  }

  function rowName(row, by) {
    if (row.key === "system") { return _("System"); }
    if (row.key === null) { return by === "cell" ? _("Outside every cell") : _("No feeder"); }
    return row.key;
  }

  function drawTable(report) {
    var table = clear(document.getElementById("rl-table")), by = report.query.by, n = report.query.cemi_n;
    var xmed = report.med.available;
    var heads = [_("Name"), _("Customers served"), "SAIDI", "SAIFI", "CAIDI", "CAIFI", "MAIFI", "MAIFIe",
                 "CEMI" + n, _("In progress")];
    if (xmed) { heads = heads.concat([_("SAIDI without MEDs"), _("SAIFI without MEDs")]); }
    table.appendChild(el("thead", {}, [el("tr", {}, heads.map(function (h) { return el("th", {scope: "col"}, [h]); }))]));
    var body = el("tbody", {});
    report.rows.forEach(function (row) {
      var i = row.indices, cells = [rowName(row, by), number(row.customers_served, 0), number(i.saidi, 2),
        number(i.saifi, 3), number(i.caidi, 1), number(i.caifi, 2), number(i.maifi, 3), number(i.maifi_e, 3),
        number(i.cemi, 3), number(i.in_progress, 0)];
      if (xmed) {
        var w = row.indices_excluding_med || {};
        cells = cells.concat([number(w.saidi, 2), number(w.saifi, 3)]);
      }
      body.appendChild(el("tr", {}, cells.map(function (c, k) {
        return el(k ? "td" : "th", k ? {className: k > 9 ? "rl-xmed" : ""} : {scope: "row"}, [c]);
      })));
    });
    table.appendChild(body);
  }

  function query() {
    var params = new URLSearchParams();
    var from = document.getElementById("rl-from").value, to = document.getElementById("rl-to").value;
    if (from) { params.set("from", from); }
    if (to) { params.set("to", to); }
    params.set("by", document.getElementById("rl-by").value);
    if (document.getElementById("rl-planned").checked) { params.set("exclude_planned", "true"); }
    if (document.getElementById("rl-med").checked) { params.set("exclude_med", "true"); }
    return params;
  }

  function show(report) {
    last = report;
    document.getElementById("rl-from").value = report.query.first;
    document.getElementById("rl-to").value = report.query.last;
    drawChart(report, document.getElementById("rl-index").value);
    describeMed(report);
    drawTable(report);
    document.body.dataset.loaded = "true";
  }

  function load() {
    var params = query(), error = document.getElementById("rl-error");
    error.textContent = "";
    document.getElementById("rl-csv").href = config.csv + "?" + params.toString();
    history.replaceState(null, "", "?" + params.toString());
    fetch(config.api + "?" + params.toString(), {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error(body.detail || body.title || String(response.status)); }
          return body;
        });
      })
      .then(show)
      .catch(function (e) { error.textContent = _("The indices could not be loaded: %(error)s", {error: e.message}); });
  }

  function start(pageConfig) {
    config = pageConfig;
    var given = new URLSearchParams(window.location.search);
    if (given.get("from")) { document.getElementById("rl-from").value = given.get("from"); }
    if (given.get("to")) { document.getElementById("rl-to").value = given.get("to"); }
    if (config.by.indexOf(given.get("by")) >= 0) { document.getElementById("rl-by").value = given.get("by"); }
    document.getElementById("rl-planned").checked = given.get("exclude_planned") === "true";
    document.getElementById("rl-med").checked = given.get("exclude_med") === "true";
    document.getElementById("rl-form").addEventListener("submit", function (event) { event.preventDefault(); load(); });
    document.getElementById("rl-index").addEventListener("change", function () {
      if (last) { drawChart(last, document.getElementById("rl-index").value); }
    });
    load();
  }

  window.ReliabilityPage = {start: start};
})();
