/*
 * GridAtlas public outage map (/map/outages): the current outages as coarse areas (the open feed,
 * GET /api/public/outages), the grid cells' totals as markers clustered by zoom (customers out,
 * the earliest ETR, causes and crew statuses; GET /api/public/outages/cells), a "last updated"
 * stamp, and the "is my power out?" panel (outage_status.js) with its report form.
 *
 * It keeps itself current: every config.pollMs it asks GET /api/public/outages/version (a few
 * bytes) and loads both layers again only when the version changed, so a change shows within a
 * few seconds. OutageMap.state: {loads, version, updated, areas, cells} (tests wait on loads).
 * Nothing the server sends goes on the page as HTML: popups and icons are built as DOM nodes.
 */
(function () {
  "use strict";

  var _ = GridAtlasI18n._, ngettext = GridAtlasI18n.ngettext, LOCALE = GridAtlasI18n.locale;
  var el = GridAtlasDom.el;
  var COLOURS = {out: "#d62728", investigating: "#b06000"};
  var state = {loads: 0, version: null, updated: null, areas: 0, cells: 0, polls: 0};
  var map, config, areas, cells, outlines, timer = null, loading = false;

  function $(id) { return document.getElementById(id); }
  function number(n) { return new Intl.NumberFormat(LOCALE).format(n); }

  function areaStyle(feature) {
    var colour = COLOURS[feature.properties.status] || COLOURS.out;
    return {color: colour, weight: 2, fillColor: colour, fillOpacity: 0.22,
            dashArray: feature.properties.status === "investigating" ? "6 4" : null};
  }

  function list(counts, text) {
    return Object.keys(counts).map(function (key) { return text(key) + (counts[key] > 1 ? " ×" + counts[key] : ""); })
      .join(", ");
  }

  function popupOf(properties, isCell) {
    var rows = [
      el("strong", {}, [isCell ? _("Grid cell %(name)s", {name: properties.name})
                               : _("Outage %(code)s", {code: properties.code})]),
      el("div", {}, [ngettext("%(num)s customer out", "%(num)s customers out", properties.customers_out,
                              {num: number(properties.customers_out)})]),
    ];
    if (isCell) {
      rows.push(el("div", {}, [ngettext("%(num)s outage", "%(num)s outages", properties.outages, {num: properties.outages})]));
      rows.push(el("div", {}, [_("Cause: %(causes)s", {causes: list(properties.causes, OutageStatus.causeText)})]));
      rows.push(el("div", {}, [_("Crews: %(crews)s", {crews: list(properties.crew_statuses, OutageStatus.crewText)})]));
    } else {
      rows.push(el("div", {}, [_("Cause: %(causes)s", {causes: OutageStatus.causeText(properties.cause)})]));
      rows.push(el("div", {}, [_("Crews: %(crews)s", {crews: OutageStatus.crewText(properties.crew_status)})]));
      if (properties.status === "investigating") { rows.push(el("div", {}, [_("Reports are being looked into")])); }
    }
    rows.push(el("div", {}, [properties.etr ? _("Power back by %(time)s", {time: OutageStatus.when(properties.etr)})
                                           : _("Power back: not estimated yet")]));
    return el("div", {className: "om-popup"}, rows);
  }

  // A cell marker and a cluster show the customers out they hold; a cluster adds its cells up.
  function countIcon(count, investigating) {
    var size = count < 10 ? 30 : count < 100 ? 36 : count < 1000 ? 42 : 50;
    var node = el("span", {}, [number(count)]);
    return L.divIcon({html: node.outerHTML, className: "om-count" + (investigating ? " om-count-investigating" : ""),
                      iconSize: L.point(size, size)});
  }

  function clusterIcon(cluster) {
    var total = cluster.getAllChildMarkers().reduce(function (sum, marker) { return sum + marker.options.customersOut; }, 0);
    return countIcon(total, false);
  }

  function drawCells(collection) {
    cells.clearLayers();
    outlines.clearLayers();
    outlines.addData(collection);
    collection.features.forEach(function (feature) {
      var p = feature.properties;
      if (!p.marker) { return; }
      var marker = L.marker([p.marker[1], p.marker[0]], {
        icon: countIcon(p.customers_out, p.investigating === p.outages), customersOut: p.customers_out,
        title: _("Grid cell %(name)s", {name: p.name}), keyboard: true,
      });
      marker.bindPopup(function () { return popupOf(p, true); });
      cells.addLayer(marker);
    });
    state.cells = collection.features.length;
  }

  function drawAreas(collection) {
    areas.clearLayers();
    var shown = collection.features.filter(function (feature) { return feature.geometry; });
    areas.addData({type: "FeatureCollection", features: shown});
    state.areas = shown.length;
    var out = collection.features.reduce(function (sum, f) { return sum + f.properties.customers_out; }, 0);
    var count = collection.features.length;
    $("om-totals").textContent = count
      ? ngettext("%(customers)s customers out in %(num)s outage", "%(customers)s customers out in %(num)s outages", count,
                 {customers: number(out), num: number(count)})
      : _("No outages right now");
  }

  /* On the first load, show the outages beside the panel (left of it on a desktop, above it on a
     phone); later loads leave the view where the reader put it. */
  function frame() {
    var bounds = L.latLngBounds([]);
    [areas, cells].forEach(function (layer) { if (layer.getLayers().length) { bounds.extend(layer.getBounds()); } });
    if (!bounds.isValid()) { return; }
    var panel = $("om-panel").getBoundingClientRect(), phone = window.innerWidth <= 700;
    map.fitBounds(bounds, {maxZoom: 15, paddingTopLeft: [phone ? 20 : panel.right + 20, 20],
                           paddingBottomRight: [20, phone ? panel.height + 20 : 20]});
  }

  function stamp(at) {
    state.updated = at;
    $("om-updated").textContent = _("Last updated %(time)s", {
      time: new Intl.DateTimeFormat(LOCALE, {hour: "2-digit", minute: "2-digit", second: "2-digit"}).format(new Date(at))});
  }

  /* Load both layers again (the browser revalidates with the ETag it holds: a 304 costs no body). */
  function load(version) {
    loading = true;
    var options = {cache: "no-cache", headers: {"Accept": "application/geo+json"}};
    return Promise.all([OutageStatus.api(config.api.outages, options), OutageStatus.api(config.api.cells, options)])
      .then(function (answers) {
        drawAreas(answers[0]);
        drawCells(answers[1]);
        if (state.loads === 0) { frame(); }
        state.version = version;
        state.loads += 1;
      }, function (error) { $("om-updated").textContent = error.detail; })
      .then(function () { loading = false; });
  }

  function poll() {
    state.polls += 1;
    OutageStatus.api(config.api.version, {cache: "no-store"}).then(function (answer) {
      var next = answer.version !== state.version && !loading ? load(answer.version) : Promise.resolve();
      return next.then(function () { stamp(answer.at); });
    }, function (error) { $("om-updated").textContent = error.detail; })
      .then(function () { timer = window.setTimeout(poll, config.pollMs); });
  }

  function found(answer) {
    if (answer.near) { map.setView([answer.near[1], answer.near[0]], Math.max(map.getZoom(), 15)); }
  }

  function start(leafletMap, pageConfig) {
    map = leafletMap;
    config = pageConfig;
    L.control.zoom({position: "topright"}).addTo(map);
    // The grid cells with customers out, outlined under the areas: where each total belongs.
    outlines = L.geoJSON(null, {interactive: false, style: function () {
      return {color: "#5b6b7b", weight: 1.5, dashArray: "4 4", fill: true, fillColor: "#5b6b7b", fillOpacity: 0.05};
    }}).addTo(map);
    areas = L.geoJSON(null, {style: areaStyle, onEachFeature: function (feature, layer) {
      layer.bindPopup(function () { return popupOf(feature.properties, false); });
    }}).addTo(map);
    cells = L.markerClusterGroup({showCoverageOnHover: false, maxClusterRadius: 60, iconCreateFunction: clusterIcon,
                                  disableClusteringAtZoom: 15}).addTo(map);
    $("om-grip").addEventListener("click", function () {
      var panel = $("om-panel"), open = !panel.classList.contains("om-open");
      panel.classList.toggle("om-open", open);
      this.setAttribute("aria-expanded", String(open));
    });
    OutageStatus.start(config, found);
    poll();
  }

  window.OutageMap = {start: start, state: state, stop: function () { window.clearTimeout(timer); }};
})();
