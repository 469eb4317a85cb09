/*
 * GridAtlas dispatcher's live map (/map/dispatch), on the Leaflet map folium builds.
 *
 * Layers: the MV network and its switchgear by bbox (/api/network/<layer>, switchgear out of its
 * normal state ringed), the open outages at their device (sized and labelled by customers out,
 * coloured by state) with the outline of their customers (/api/outages?geometry=area), the
 * selected outage's affected part (/api/outages/<code>?format=geojson), the last day's calls
 * (/api/calls) and the crews (/api/crews), whose markers move with their positions.
 *
 * Live: GET /api/live?cursor= every config.pollMs, one request at a time (the next is asked once
 * the answer and its reloads are done, a little later after an error); only the layers named in
 * its kinds are reloaded. The side panel holds the outage board (sortable), the open outage with
 * its actions (as outage.allowed permits), the search and the switching log.
 *
 * window.GridAtlasDispatch = {map, state, markers: {outages, crews}, start(map, config), open(code),
 * reload(kinds)} for tests: state.polls counts answered polls, state.loads[layer] completed loads,
 * state.busy requests in flight, state.detailLoads loads of the open outage.
 * Texts come from the page's catalog (static/js/i18n.js).
 */
(function () {
  "use strict";

  var I18N = window.GridAtlasI18n, _ = I18N._, _html = I18N._html, ngettext_html = I18N.ngettext_html;
  var escapeHtml = I18N.escapeHtml;
  // Outage states: a colour each (the marker, the outline, the board's badge) and a label.
  var STATE_COLOURS = {predicted: "#8e44ad", confirmed: "#d62728", crew_assigned: "#e67e22", en_route: "#f1c40f",
                       on_site: "#2e86de", restored: "#27ae60", cancelled: "#7f8c8d"};
  var STATES = {predicted: _("predicted"), confirmed: _("confirmed"), crew_assigned: _("crew assigned"),
                en_route: _("en route"), on_site: _("on site"), restored: _("restored"), cancelled: _("cancelled")};
  var CREW_COLOURS = {available: "#27ae60", en_route: "#f1c40f", on_site: "#2e86de", off_duty: "#7f8c8d",
                      assigned: "#e67e22"};
  var CREW_STATES = {available: _("available"), en_route: _("en route"), on_site: _("on site"),
                     off_duty: _("off duty"), assigned: _("assigned")};
  // What an event of an outage's timeline says when it does not change the state.
  var EVENTS = {created: _("created"), predicted: _("predicted"), etr: _("ETR changed"), moved: _("moved to another device"),
                note: _("note"), released: _("crew released"), step: _("restored in part"), crew_assigned: _("crew assigned")};
  var ETR_SOURCES = {dispatcher: _("set by a dispatcher"), history: _("from history")};
  var KINDS = {breaker: _("breaker"), recloser: _("recloser"), "switch": _("switch"), fuse: _("fuse"),
               transformer: _("transformer"), segment: _("segment"), service: _("service point"),
               outage: _("outage"), device: _("device"), service_point: _("customer"), account: _("account"),
               address: _("address")};
  var GEAR_FILL = {breaker: "#1d3557", recloser: "#6a3d9a", "switch": "#0b7a75", fuse: "#c77700"};
  var LAYER_LABELS = {outages: _("Outages"), areas: _("Affected areas"), affected: _("Selected outage"),
                      calls: _("Calls"), crews: _("Crews"), devices: _("Switchgear"), segments: _("Feeders")};

  var Dispatch = window.GridAtlasDispatch = {
    map: null, markers: {outages: {}, crews: {}}, layers: {},
    state: {polls: 0, pollError: null, busy: 0, loads: {}, outages: [], sort: "customers",
            selected: null, detail: null, detailLoads: 0, error: null, tab: "board", logLoads: 0, found: null},
  };
  var config = {}, state = Dispatch.state, panel = null, moveTimer = null;

  // ---- helpers ----
  function number(n) { return I18N.formatNumber(n || 0); }

  function when(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso), options = {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"};
    if (d.getFullYear() !== new Date().getFullYear()) { options.year = "numeric"; }
    try {
      return new Intl.DateTimeFormat(I18N.locale, options).format(d);
    } catch (e) { return d.toLocaleString(); }
  }

  function stateLabel(code) { return STATES[code] || code; }

  function kindLabel(code) { return KINDS[code] || code; }

  function request(url, options) {
    state.busy += 1;
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var error = new Error(body.detail || body.title || response.statusText);
          error.status = response.status;
          throw error;
        }
        return body;
      });
    }).finally(function () { state.busy -= 1; });
  }

  function post(path, body) {
    return request(config.api + path, {method: "POST", headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify(body || {})});
  }

  function bboxParam() {
    var b = Dispatch.map.getBounds().pad(0.25), clamp = function (v, lo, hi) { return Math.min(hi, Math.max(lo, v)); };
    return [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180),
            clamp(b.getNorth(), -90, 90)].map(function (v) { return v.toFixed(6); }).join(",");
  }

  function networkUrl(layer, params) {
    return config.layerUrl.replace("__layer__", layer) +
      L.Util.getParamString(L.extend({bbox: bboxParam(), limit: config.limit}, params));
  }

  function loaded(name) { state.loads[name] = (state.loads[name] || 0) + 1; }

  function noteError(error) {
    state.error = error.message;
    renderStatus();
  }

  // ---- the network: feeders and switchgear by bbox ----
  function loadSegments() {
    var zoom = Dispatch.map.getZoom();
    return request(networkUrl("segments", zoom < 16 ? {level: "mv"} : {}), {headers: {Accept: "application/geo+json"}})
      .then(function (collection) {
        Dispatch.layers.segments.clearLayers().addData(collection);
        Dispatch.layers.segments.bringToBack();
        loaded("segments");
      }).catch(noteError);
  }

  // Every piece of switchgear in view: the devices layer filters by current state only
  // (topology/layers.py parse_state), so those out of their normal state are picked out here.
  function loadDevices() {
    var zoom = Dispatch.map.getZoom(), params = {kind: "breaker,recloser,switch,fuse"};
    if (zoom < 16) { params.level = "mv"; }
    return request(networkUrl("devices", params), {headers: {Accept: "application/geo+json"}})
      .then(function (collection) {
        Dispatch.layers.devices.clearLayers().addData(collection);
        state.abnormal = collection.features.filter(abnormal).map(function (f) { return f.id; });
        loaded("devices");
      }).catch(noteError);
  }

  function abnormal(feature) { return feature.properties.current_state !== feature.properties.normal_state; }

  function deviceStyle(feature) {
    var p = feature.properties, open = p.current_state === "open", odd = abnormal(feature);
    return {radius: odd ? 7 : 5, fillColor: open ? "#ffffff" : GEAR_FILL[p.kind] || "#0b7a75", fillOpacity: 1,
            color: odd ? "#ff7f0e" : open ? "#d62728" : "#ffffff", weight: odd ? 4 : open ? 2.5 : 1.5};
  }

  function devicePopup(feature) {
    var p = feature.properties;
    return '<div class="ga-popup"><h3>' + escapeHtml(kindLabel(p.kind)) + " " + escapeHtml(feature.id) + "</h3><p>" +
      (abnormal(feature)
        ? '<span class="ga-open">' + _html("%(state)s (normally %(normal)s)", {state: escapeHtml(switchState(p.current_state)),
                                                                               normal: escapeHtml(switchState(p.normal_state))}) + "</span>"
        : escapeHtml(switchState(p.current_state))) + "</p></div>";
  }

  function switchState(code) { return code === "open" ? _("open") : code === "closed" ? _("closed") : code; }

  // ---- outages: markers, outlines, the selected one's affected part ----
  function outageIcon(p) {
    var out = p.customers_out || 0, size = Math.round(Math.min(56, 22 + 6 * Math.sqrt(out)));
    var selected = state.selected === p.code ? " ga-om-selected" : "";
    return L.divIcon({
      className: "ga-om-wrap",
      html: '<div class="ga-om ga-om-' + escapeHtml(p.state) + selected + '" data-code="' + escapeHtml(p.code) +
        '" data-state="' + escapeHtml(p.state) + '" style="width:' + size + "px;height:" + size + "px;line-height:" + size +
        "px;background:" + (STATE_COLOURS[p.state] || "#d62728") + '" title="' + escapeHtml(p.code) + '">' +
        escapeHtml(number(out)) + "</div>",
      iconSize: [size, size], iconAnchor: [size / 2, size / 2],
    });
  }

  function drawOutages(collection) {
    var seen = {}, markers = Dispatch.markers.outages;
    collection.features.forEach(function (feature) {
      var p = feature.properties, code = feature.id || p.code, c = feature.geometry && feature.geometry.coordinates;
      if (!c) { return; }
      seen[code] = true;
      var marker = markers[code];
      if (!marker) {
        marker = markers[code] = L.marker([c[1], c[0]], {icon: outageIcon(p), riseOnHover: true, zIndexOffset: 1000});
        marker.on("click", function () { open(code); });
        marker.addTo(Dispatch.layers.outages);
      } else {
        marker.setLatLng([c[1], c[0]]).setIcon(outageIcon(p));
      }
      marker.feature = feature;
    });
    Object.keys(markers).forEach(function (code) {
      if (!seen[code]) { Dispatch.layers.outages.removeLayer(markers[code]); delete markers[code]; }
    });
  }

  function loadOutages() {
    var points = request(config.api + "/outages?limit=" + config.limit, {headers: {Accept: "application/geo+json"}});
    var areas = request(config.api + "/outages?geometry=area&limit=" + config.limit, {headers: {Accept: "application/geo+json"}});
    return Promise.all([points, areas]).then(function (answers) {
      state.outages = answers[0].features.map(function (f) { return f.properties; });
      drawOutages(answers[0]);
      Dispatch.layers.areas.clearLayers().addData(answers[1]);
      renderBoard();
      loaded("outages");
    }).catch(noteError);
  }

  function loadAffected(code) {
    return request(config.api + "/outages/" + encodeURIComponent(code) + "?format=geojson",
                   {headers: {Accept: "application/geo+json"}})
      .then(function (collection) {
        if (state.selected !== code) { return; }
        Dispatch.layers.affected.clearLayers();
        // A restored or cancelled outage cuts nothing off any more: only open ones are highlighted.
        if (!state.detail || ["restored", "cancelled"].indexOf(state.detail.outage.state) < 0) {
          Dispatch.layers.affected.addData(collection);
        }
        loaded("affected");
      }).catch(noteError);
  }

  // ---- calls and crews ----
  function loadCalls() {
    return request(config.api + "/calls?limit=" + config.limit, {headers: {Accept: "application/geo+json"}})
      .then(function (collection) {
        Dispatch.layers.calls.clearLayers().addData(collection);
        state.calls = collection.features.length;
        loaded("calls");
      }).catch(noteError);
  }

  function crewIcon(p) {
    var status = p.status || "available";
    return L.divIcon({
      className: "ga-crew-wrap",
      html: '<div class="ga-crewmark" data-code="' + escapeHtml(p.code) + '" data-status="' + escapeHtml(status) +
        '" style="border-color:' + (CREW_COLOURS[status] || "#555") + '" title="' +
        escapeHtml(p.name + " · " + (CREW_STATES[status] || status)) + '"><span style="background:' +
        (CREW_COLOURS[status] || "#555") + '"></span>' + escapeHtml(p.code) + "</div>",
      iconSize: null, iconAnchor: [10, 10],
    });
  }

  // A crew keeps its marker: a new position moves it, a new status recolours it.
  function drawCrews(collection) {
    var seen = {}, markers = Dispatch.markers.crews;
    collection.features.forEach(function (feature) {
      var p = feature.properties, code = feature.id || p.code, c = feature.geometry && feature.geometry.coordinates;
      if (!c) { return; }
      seen[code] = true;
      var marker = markers[code], key = p.status + "|" + p.name;
      if (!marker) {
        marker = markers[code] = L.marker([c[1], c[0]], {icon: crewIcon(p), zIndexOffset: 2000}).addTo(Dispatch.layers.crews);
        marker.bindPopup(function () { return crewPopup(marker.feature.properties); });
      } else {
        var at = marker.getLatLng();
        if (at.lat !== c[1] || at.lng !== c[0]) { marker.setLatLng([c[1], c[0]]); }
        if (marker.key !== key) { marker.setIcon(crewIcon(p)); }
      }
      marker.key = key;
      marker.feature = feature;
    });
    Object.keys(markers).forEach(function (code) {
      if (!seen[code]) { Dispatch.layers.crews.removeLayer(markers[code]); delete markers[code]; }
    });
  }

  function crewPopup(p) {
    return '<div class="ga-popup"><h3>' + escapeHtml(p.code) + " " + escapeHtml(p.name) + "</h3><p>" +
      escapeHtml(CREW_STATES[p.status] || p.status) +
      (p.outage ? " · " + _html("on %(outage)s", {outage: "<code>" + escapeHtml(p.outage) + "</code>"}) : "") + "</p>" +
      (p.position_at ? "<p>" + _html("Position at %(time)s", {time: escapeHtml(when(p.position_at))}) + "</p>" : "") + "</div>";
  }

  function loadCrews() {
    return request(config.api + "/crews?limit=" + config.limit, {headers: {Accept: "application/geo+json"}})
      .then(function (collection) { drawCrews(collection); loaded("crews"); }).catch(noteError);
  }

  // ---- the board ----
  var SORTS = {
    customers: function (a, b) { return (b.customers_out || 0) - (a.customers_out || 0) || SORTS.age(a, b); },
    age: function (a, b) { return new Date(a.started_at) - new Date(b.started_at); },
    etr: function (a, b) {
      if (!a.etr || !b.etr) { return a.etr ? -1 : b.etr ? 1 : 0; }
      return new Date(a.etr) - new Date(b.etr);
    },
  };

  function renderBoard() {
    var list = panel.querySelector(".ga-board"), rows = state.outages.slice().sort(SORTS[state.sort]);
    panel.querySelector(".ga-board-count").textContent = rows.length ? "(" + number(rows.length) + ")" : "";
    panel.querySelector(".ga-board-empty").hidden = rows.length > 0;
    list.innerHTML = rows.map(function (p) {
      return '<li data-code="' + escapeHtml(p.code) + '" data-state="' + escapeHtml(p.state) + '"' +
        (state.selected === p.code ? ' aria-current="true"' : "") + '><button type="button">' +
        '<span class="ga-badge" style="background:' + (STATE_COLOURS[p.state] || "#555") + '">' + escapeHtml(stateLabel(p.state)) + "</span>" +
        '<span class="ga-board-code">' + escapeHtml(p.code) + "</span>" +
        '<span class="ga-board-out">' + ngettext_html("%(num)s out", "%(num)s out", p.customers_out || 0,
                                                       {num: "<strong>" + escapeHtml(number(p.customers_out)) + "</strong>"}) + "</span>" +
        '<span class="ga-board-line">' + _html("%(kind)s %(device)s · since %(time)s", {
          kind: escapeHtml(kindLabel(p.device_kind)), device: escapeHtml(p.device), time: escapeHtml(when(p.started_at))}) +
        (p.etr ? " · " + _html("ETR %(time)s", {time: escapeHtml(when(p.etr))}) : "") +
        (p.crew ? " · " + escapeHtml(p.crew) : "") + "</span></button></li>";
    }).join("");
    list.querySelectorAll("li").forEach(function (item) {
      item.querySelector("button").addEventListener("click", function () { open(item.getAttribute("data-code"), true); });
    });
  }

  // ---- the open outage ----
  function open(code, fly) {
    var section = panel.querySelector(".ga-outage");
    var changed = state.selected !== code;
    state.selected = code;
    if (changed) {
      state.detail = null; state.crews = null; state.actionError = null;
      section.innerHTML = "";
      Dispatch.layers.affected.clearLayers();
    }
    showTab("board");
    panel.querySelector('.ga-tab[data-tab="board"]').hidden = true;
    section.hidden = false;
    renderDetail();
    refreshOutageIcons();
    return Promise.all([loadDetail(code, fly), loadAffected(code)]);
  }
  Dispatch.open = open;

  function closeDetail() {
    state.selected = null;
    state.detail = null;
    state.crews = null;
    Dispatch.layers.affected.clearLayers();
    panel.querySelector(".ga-outage").hidden = true;
    panel.querySelector('.ga-tab[data-tab="board"]').hidden = false;
    refreshOutageIcons();
    renderBoard();
  }

  function refreshOutageIcons() {
    Object.keys(Dispatch.markers.outages).forEach(function (code) {
      var marker = Dispatch.markers.outages[code];
      marker.setIcon(outageIcon(marker.feature.properties));
    });
  }

  function loadDetail(code, fly) {
    return request(config.api + "/outages/" + encodeURIComponent(code) + "?customers=20").then(function (detail) {
      if (state.selected !== code) { return; }
      state.detail = detail;
      state.detailLoads += 1;
      if (["restored", "cancelled"].indexOf(detail.outage.state) >= 0) { Dispatch.layers.affected.clearLayers(); }
      if (fly && detail.outage.lat !== null && detail.outage.lat !== undefined) {
        Dispatch.map.flyTo([detail.outage.lat, detail.outage.lon], Math.max(Dispatch.map.getZoom(), 16), {duration: 0.5});
      }
      renderDetail();
    }).catch(function (error) {
      if (state.selected !== code) { return; }
      state.actionError = error.message;
      state.detailLoads += 1;
      renderDetail();
    });
  }

  function row(label, html) { return "<tr><th>" + escapeHtml(label) + "</th><td>" + html + "</td></tr>"; }

  function etrHtml(o) {
    if (!o.etr) { return '<span class="ga-muted">' + _html("none") + "</span>"; }
    var source = o.etr_source === "history" && o.etr_confidence !== null && o.etr_confidence !== undefined
      ? _html("from history, %(confidence)s confidence", {confidence: escapeHtml(I18N.formatNumber(o.etr_confidence, {style: "percent"}))})
      : escapeHtml(ETR_SOURCES[o.etr_source] || o.etr_source || "");
    return "<strong>" + escapeHtml(when(o.etr)) + "</strong>" + (source ? ' <span class="ga-muted">(' + source + ")</span>" : "");
  }

  function timelineHtml(events) {
    if (!events.length) { return ""; }
    return "<h3>" + _html("Timeline") + '</h3><ol class="ga-timeline">' + events.slice().reverse().map(function (e) {
      var moved = e.to_state && e.from_state && e.to_state !== e.from_state;
      var what = moved ? _html("%(from)s → %(to)s", {from: escapeHtml(stateLabel(e.from_state)), to: escapeHtml(stateLabel(e.to_state))})
                       : escapeHtml(EVENTS[e.kind] || stateLabel(e.kind));
      return '<li><time datetime="' + escapeHtml(e.occurred_at) + '">' + escapeHtml(when(e.occurred_at)) + "</time> " +
        "<span>" + what + "</span>" + (e.actor ? ' <span class="ga-muted">' + escapeHtml(e.actor) + "</span>" : "") +
        (e.note ? '<div class="ga-note">' + escapeHtml(e.note) + "</div>" : "") + "</li>";
    }).join("") + "</ol>";
  }

  function customersHtml(detail) {
    if (!detail.customers.length) { return ""; }
    return "<h3>" + ngettext_html("First customer", "First %(num)s customers", detail.customers.length) +
      '</h3><ul class="ga-customers">' + detail.customers.map(function (c) {
        return '<li class="' + (c.out ? "ga-out" : "ga-back") + '"><code>' + escapeHtml(c.code) + "</code> " + escapeHtml(c.name || "") +
          (c.address ? ' <span class="ga-muted">' + escapeHtml(c.address) + "</span>" : "") +
          (c.out ? "" : ' <span class="ga-muted">' + _html("(restored)") + "</span>") + "</li>";
      }).join("") + "</ul>";
  }

  function crewChoiceHtml() {
    if (!state.crews) { return ""; }
    if (!state.crews.length) { return '<p class="ga-muted">' + _html("No crew is near.") + "</p>"; }
    return '<ul class="ga-crew-choice">' + state.crews.map(function (c) {
      return '<li><button type="button" data-assign="' + escapeHtml(c.code) + '"' + (c.status !== "available" ? ' class="ga-busy"' : "") + ">" +
        "<strong>" + escapeHtml(c.code) + "</strong> " + escapeHtml(c.name) + " · " + escapeHtml(CREW_STATES[c.status] || c.status) +
        " · " + _html("%(km)s km, about %(minutes)s min", {km: escapeHtml(I18N.formatNumber((c.distance_m || 0) / 1000, {maximumFractionDigits: 1})),
                                                           minutes: escapeHtml(number(Math.max(1, Math.round(c.eta_minutes || 0))))}) +
        "</button></li>";
    }).join("") + "</ul>";
  }

  function actionsHtml(o) {
    var allowed = o.allowed || [], crewState = ["crew_assigned", "en_route", "on_site"].indexOf(o.state) >= 0, html = "";
    var buttons = [];
    if (o.state === "predicted" && allowed.indexOf("confirmed") >= 0) {
      buttons.push('<button type="button" data-action="confirm">' + _html("Confirm") + "</button>");
    }
    if (allowed.indexOf("crew_assigned") >= 0 || (crewState && !o.crew)) {
      buttons.push('<button type="button" data-action="crews">' + _html("Assign the nearest crew") + "</button>");
    }
    if (crewState && o.crew && allowed.indexOf("confirmed") >= 0) {
      buttons.push('<button type="button" data-action="release">' + _html("Release %(crew)s", {crew: escapeHtml(o.crew)}) + "</button>");
    }
    if (allowed.indexOf("cancelled") >= 0) {
      buttons.push('<button type="button" data-action="cancel" class="ga-danger">' + _html("Cancel outage") + "</button>");
    }
    if (!allowed.length) { return ""; }
    html += '<div class="ga-actions">' + buttons.join("") + "</div>" + crewChoiceHtml();
    html += '<form class="ga-etr-form"><label>' + _html("ETR") + ' <input type="datetime-local" name="etr" required></label>' +
      '<button type="submit">' + _html("Set ETR") + '</button> <button type="button" data-action="estimate">' +
      _html("Estimate from history") + "</button></form>";
    if (allowed.indexOf("restored") >= 0) {
      html += '<form class="ga-step-form"><label>' + _html("Restore below device") +
        ' <input name="device" required maxlength="60" placeholder="' + escapeHtml(_("device code")) + '"></label>' +
        '<button type="submit">' + _html("Restore step") + '</button> <button type="button" data-action="restore" class="ga-good">' +
        _html("Restore all remaining") + "</button></form>";
    }
    html += '<form class="ga-move-form"><label>' + _html("Move to device") +
      ' <input name="device" required maxlength="60" placeholder="' + escapeHtml(_("device code")) + '"></label>' +
      '<button type="submit">' + _html("Move") + "</button></form>";
    return html;
  }

  // The panel is drawn again on every change to the outage: what the dispatcher is typing stays.
  function typed(section) {
    var values = {}, active = document.activeElement;
    section.querySelectorAll("form input").forEach(function (input) {
      var key = input.form.className + " " + input.name;
      values[key] = {value: input.value, focused: input === active};
    });
    return values;
  }

  function retype(section, values) {
    section.querySelectorAll("form input").forEach(function (input) {
      var kept = values[input.form.className + " " + input.name];
      if (!kept) { return; }
      input.value = kept.value;
      if (kept.focused) { input.focus(); }
    });
  }

  function renderDetail() {
    var section = panel.querySelector(".ga-outage"), detail = state.detail, values = typed(section);
    var head = '<div class="ga-outage-head"><button type="button" class="ga-back">' + _html("← Board") + "</button>" +
      "<h2>" + _html("Outage %(code)s", {code: escapeHtml(state.selected || "")}) + "</h2></div>";
    var error = state.actionError ? '<p class="ga-error" role="alert">' + escapeHtml(state.actionError) + "</p>" : "";
    if (!detail) {
      section.innerHTML = head + error + (error ? "" : '<p><span class="ga-spinner"></span>' + _html("Loading…") + "</p>");
    } else {
      var o = detail.outage;
      section.setAttribute("data-state", o.state);
      section.innerHTML = head + error +
        '<p><span class="ga-badge ga-outage-state" style="background:' + (STATE_COLOURS[o.state] || "#555") + '">' +
        escapeHtml(stateLabel(o.state)) + "</span></p>" +
        '<table class="ga-props">' +
        row(_("Device"), escapeHtml(kindLabel(o.device_kind)) + " <code>" + escapeHtml(o.device) + "</code>" +
            (o.feeder ? ' <span class="ga-muted">' + _html("feeder %(feeder)s", {feeder: escapeHtml(o.feeder)}) + "</span>" : "")) +
        row(_("Cause"), o.cause ? escapeHtml(o.cause) : '<span class="ga-muted">' + _html("unknown") + "</span>") +
        row(_("Customers"), _html("%(out)s out of %(affected)s affected", {
          out: '<strong class="ga-customers-out">' + escapeHtml(number(o.customers_out)) + "</strong>",
          affected: escapeHtml(number(o.customers_affected))})) +
        row(_("Calls"), escapeHtml(number(o.calls)) + (o.meter_reports ? " · " + ngettext_html("%(num)s meter report", "%(num)s meter reports", o.meter_reports) : "")) +
        row(_("Started"), escapeHtml(when(o.started_at))) +
        row(_("ETR"), etrHtml(o)) +
        row(_("Crew"), o.crew ? "<strong class=\"ga-outage-crew\">" + escapeHtml(o.crew) + "</strong>" +
            (o.crew_status ? " · " + escapeHtml(CREW_STATES[o.crew_status] || o.crew_status) : "")
                              : '<span class="ga-muted">' + _html("none") + "</span>") +
        (o.restored_at ? row(_("Restored"), escapeHtml(when(o.restored_at))) : "") +
        "</table>" + actionsHtml(o) + timelineHtml(detail.timeline) + customersHtml(detail);
    }
    retype(section, values);
    wireDetail(section);
  }

  function wireDetail(section) {
    section.querySelector(".ga-back").addEventListener("click", closeDetail);
    section.querySelectorAll("[data-action]").forEach(function (button) {
      button.addEventListener("click", function () { act(button.getAttribute("data-action")); });
    });
    section.querySelectorAll("[data-assign]").forEach(function (button) {
      button.addEventListener("click", function () { act("assign", {crew: button.getAttribute("data-assign")}); });
    });
    var etr = section.querySelector(".ga-etr-form"), step = section.querySelector(".ga-step-form"),
        move = section.querySelector(".ga-move-form");
    if (etr) {
      etr.addEventListener("submit", function (event) {
        event.preventDefault();
        var value = etr.querySelector("[name=etr]").value;
        if (value) { act("etr", {etr: withOffset(new Date(value))}); }
      });
    }
    if (step) {
      step.addEventListener("submit", function (event) {
        event.preventDefault();
        act("step", {device: step.querySelector("[name=device]").value.trim()});
      });
    }
    if (move) {
      move.addEventListener("submit", function (event) {
        event.preventDefault();
        act("move", {device: move.querySelector("[name=device]").value.trim()});
      });
    }
  }

  /* A local time as ISO 8601 with the browser's offset: 2026-11-30T14:05:00+01:00. */
  function withOffset(d) {
    var pad = function (n) { return (n < 10 ? "0" : "") + n; }, offset = -d.getTimezoneOffset(), a = Math.abs(offset);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" +
      pad(d.getMinutes()) + ":00" + (offset >= 0 ? "+" : "-") + pad(Math.floor(a / 60)) + ":" + pad(a % 60);
  }

  function act(action, data) {
    var code = state.selected, path = "/outages/" + encodeURIComponent(code), done;
    state.actionError = null;
    switch (action) {
      case "confirm": done = post(path + "/transitions", {to: "confirmed"}); break;
      case "cancel": done = post(path + "/transitions", {to: "cancelled"}); break;
      case "restore": done = post(path + "/transitions", {to: "restored"}); break;
      case "release": done = post(path + "/release", {}); break;
      case "estimate": done = post(path + "/etr", {etr: null}); break;
      case "etr": done = post(path + "/etr", data); break;
      case "step": done = post(path + "/steps", data); break;
      case "move": done = post(path + "/move", data); break;
      case "assign": done = post(path + "/assign", data); break;
      case "crews":
        return request(config.api + path + "/crews?limit=5").then(function (answer) {
          state.crews = answer.crews;
          renderDetail();
        }).catch(function (error) { state.actionError = error.message; renderDetail(); });
      default: return Promise.resolve();
    }
    state.acting = action;
    return done.then(function () {
      state.crews = null;
      panel.querySelectorAll(".ga-outage form input").forEach(function (input) { input.value = ""; });
      // This page's own change: shown now, not at the next poll.
      var kinds = {outage: [code]};
      if (action === "assign" || action === "release") { kinds.crew = []; }
      return reload(kinds);
    }).catch(function (error) {
      state.actionError = error.message;
      renderDetail();
    }).then(function () { state.acting = null; state.actions = (state.actions || 0) + 1; });
  }

  // ---- search ----
  function search(q) {
    var list = panel.querySelector(".ga-found");
    return request(config.api + "/dispatch/search?q=" + encodeURIComponent(q)).then(function (answer) {
      state.found = answer.found;
      list.hidden = false;
      list.innerHTML = answer.found.length ? answer.found.map(function (f, i) {
        return '<li><button type="button" data-index="' + i + '"><span class="ga-muted">' + escapeHtml(kindLabel(f.kind)) +
          "</span> " + escapeHtml(f.label || f.code) + "</button></li>";
      }).join("") : '<li class="ga-muted">' + _html("Nothing found.") + "</li>";
      list.querySelectorAll("button").forEach(function (button) {
        button.addEventListener("click", function () { choose(answer.found[+button.getAttribute("data-index")]); });
      });
    }).catch(function (error) {
      list.hidden = false;
      list.innerHTML = '<li class="ga-error">' + escapeHtml(error.message) + "</li>";
    });
  }

  function choose(found) {
    panel.querySelector(".ga-found").hidden = true;
    if (found.lat !== null && found.lat !== undefined) {
      Dispatch.map.flyTo([found.lat, found.lon], Math.max(Dispatch.map.getZoom(), 17), {duration: 0.5});
    }
    if (found.kind === "outage") { open(found.code); }
  }

  // ---- the switching log ----
  function loadLog() {
    return request((config.api || "/api") + "/switching/log?limit=50").then(function (log) {
      var list = panel.querySelector(".ga-log");
      list.innerHTML = log.operations.length ? log.operations.map(function (op) {
        return '<li><time datetime="' + escapeHtml(op.occurred_at) + '">' + escapeHtml(when(op.occurred_at)) + "</time> " +
          '<span class="ga-muted">' + escapeHtml(op.actor) + "</span><div>" + op.devices.map(function (d) {
            return (d.to_state === "open" ? _html("%(device)s opened", {device: "<code>" + escapeHtml(d.code) + "</code>"})
                                          : _html("%(device)s closed", {device: "<code>" + escapeHtml(d.code) + "</code>"}));
          }).join(escapeHtml(_(", "))) + '</div><div class="ga-note">' + escapeHtml(op.reason) + "</div></li>";
      }).join("") : '<li class="ga-muted">' + _html("No switching yet.") + "</li>";
      state.logLoads += 1;
    }).catch(noteError);
  }

  function showTab(name) {
    state.tab = name;
    panel.querySelectorAll(".ga-tabs [data-tab]").forEach(function (button) {
      button.setAttribute("aria-selected", String(button.getAttribute("data-tab") === name));
    });
    panel.querySelector('.ga-tab[data-tab="log"]').hidden = name !== "log";
    panel.querySelector('.ga-tab[data-tab="board"]').hidden = name !== "board" || Boolean(state.selected);
    panel.querySelector(".ga-outage").hidden = name !== "board" || !state.selected;
    if (name === "log") { loadLog(); }
  }

  // ---- live ----
  /* Reload what ``kinds`` names (the live feed's answer, or this page's own change). */
  function reload(kinds) {
    if (Object.keys(kinds).length) { state.error = null; }  // a layer that failed is tried again here
    // A kind is named when it changed (its list of codes may be empty: not every change names one).
    var has = function (k) { return Object.prototype.hasOwnProperty.call(kinds, k); }, work = [];
    if (has("outage")) {
      work.push(loadOutages());
      if (state.selected) { work.push(loadDetail(state.selected), loadAffected(state.selected)); }
    }
    if (has("call")) { work.push(loadCalls()); }
    if (has("crew")) { work.push(loadCrews()); }
    if (has("switching")) {
      work.push(loadDevices());
      if (state.tab === "log") { work.push(loadLog()); }
      if (state.selected && !has("outage")) { work.push(loadAffected(state.selected)); }
    }
    return Promise.all(work);
  }
  Dispatch.reload = reload;

  /* Follow the live feed (static/js/live.js): everything loads after the first answer, then only
     what each answer names. */
  function poll() {
    GridAtlasLive.follow(config.api + "/live", {
      every: config.pollMs || 1000, onStart: loadAll, onChange: reload,
      onStatus: function (error) { state.pollError = error ? error.message : null; },
      onPoll: function () { state.polls += 1; renderStatus(); }
    });
  }

  function loadAll() {
    state.error = null;
    return Promise.all([loadOutages(), loadCalls(), loadCrews(), loadDevices(), loadSegments()]);
  }

  function renderStatus() {
    var el = panel.querySelector(".ga-dispatch-status");
    if (state.pollError) {
      el.innerHTML = '<span class="ga-error">' + _html("Live updates interrupted: %(error)s", {error: escapeHtml(state.pollError)}) + "</span>";
    } else if (state.error) {
      el.innerHTML = '<span class="ga-error">' + escapeHtml(state.error) + "</span>";
    } else {
      el.innerHTML = '<span class="ga-live-dot"></span>' + _html("Live");
    }
  }

  // ---- start ----
  function makeLayers(map) {
    var renderer = L.canvas({padding: 0.25});
    Dispatch.layers.segments = L.geoJSON(null, {
      renderer: renderer, interactive: false,
      style: function (f) { return {color: f.properties.colour || "#5b7083", weight: 3, opacity: 0.55}; },
    }).addTo(map);
    Dispatch.layers.areas = L.geoJSON(null, {
      style: function (f) { var c = STATE_COLOURS[f.properties.state] || "#d62728"; return {color: c, weight: 2, dashArray: "5 4", fillColor: c, fillOpacity: 0.12}; },
      onEachFeature: function (f, layer) { layer.on("click", function () { open(f.id || f.properties.code); }); },
    }).addTo(map);
    Dispatch.layers.affected = L.geoJSON(null, {
      interactive: false,
      style: function () { return {color: "#ff00c8", weight: 9, opacity: 0.55, lineCap: "round"}; },
      pointToLayer: function (f, latlng) {
        var device = f.properties.role === "device";
        return L.circleMarker(latlng, {radius: device ? 12 : 6, color: "#ff00c8", weight: device ? 4 : 2, fillOpacity: 0.25, interactive: false});
      },
    }).addTo(map);
    Dispatch.layers.devices = L.geoJSON(null, {
      renderer: renderer,
      pointToLayer: function (f, latlng) { return L.circleMarker(latlng, L.extend({renderer: renderer}, deviceStyle(f))); },
      onEachFeature: function (f, layer) { layer.bindPopup(function () { return devicePopup(f); }); },
    }).addTo(map);
    Dispatch.layers.calls = L.geoJSON(null, {
      renderer: renderer,
      pointToLayer: function (f, latlng) {
        var p = f.properties;
        return L.circleMarker(latlng, {renderer: renderer, radius: p.wire_down ? 5 : 3.5, color: "#ffffff", weight: 1,
                                       fillColor: p.wire_down ? "#d62728" : p.active ? "#14213d" : "#9e9e9e", fillOpacity: 0.9});
      },
      onEachFeature: function (f, layer) {
        layer.bindPopup(function () {
          var p = f.properties;
          return '<div class="ga-popup"><h3>' + _html("Call %(reference)s", {reference: escapeHtml(p.reference)}) + "</h3><p>" +
            escapeHtml(when(p.received_at)) + (p.outage ? " · <code>" + escapeHtml(p.outage) + "</code>" : "") +
            (p.wire_down ? ' · <span class="ga-open">' + _html("wire down") + "</span>" : "") + "</p></div>";
        });
      },
    }).addTo(map);
    Dispatch.layers.outages = L.layerGroup().addTo(map);
    Dispatch.layers.crews = L.layerGroup().addTo(map);
    var overlays = {};
    ["outages", "areas", "affected", "crews", "calls", "devices", "segments"].forEach(function (name) {
      overlays[LAYER_LABELS[name]] = Dispatch.layers[name];
    });
    // Folded into Leaflet's button: open, the list would hide the outages under it.
    var control = L.control.layers(null, overlays, {collapsed: true, position: "topright"}).addTo(map);
    control.getContainer().querySelector(".leaflet-control-layers-toggle").title = _("Layers");
    legendControl().addTo(map);
  }

  // A folded legend (bottom left): the colours of outage states and crew statuses, and the symbols.
  function legendControl() {
    var control = L.control({position: "bottomleft"});
    control.onAdd = function () {
      var div = L.DomUtil.create("details", "ga-panel ga-dispatch-legend");
      var swatch = function (colour, label, round) {
        return '<li><span class="ga-swatch' + (round ? " ga-round" : "") + '" style="background:' + colour + '"></span>' + escapeHtml(label) + "</li>";
      };
      div.innerHTML = "<summary>" + _html("Legend") + "</summary><h3>" + _html("Outages") + "</h3><ul>" +
        ["predicted", "confirmed", "crew_assigned", "en_route", "on_site"].map(function (s) {
          return swatch(STATE_COLOURS[s], stateLabel(s), true);
        }).join("") + "</ul><h3>" + _html("Crews") + "</h3><ul>" +
        ["available", "assigned", "en_route", "on_site", "off_duty"].map(function (s) {
          return swatch(CREW_COLOURS[s], CREW_STATES[s]);
        }).join("") + "</ul><h3>" + _html("Other") + "</h3><ul>" +
        swatch("#14213d", _("Call"), true) + swatch("#d62728", _("Call: wire down"), true) +
        '<li><span class="ga-swatch ga-round ga-ring-open"></span>' + _html("Open switch") + "</li>" +
        '<li><span class="ga-swatch ga-round ga-ring-abnormal"></span>' + _html("Not in its normal state") + "</li>" +
        '<li><span class="ga-swatch ga-line-affected"></span>' + _html("Cut off by the selected outage") + "</li></ul>";
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    return control;
  }

  function wirePanel() {
    panel.querySelector(".ga-dispatch-search").addEventListener("submit", function (event) {
      event.preventDefault();
      var q = event.target.querySelector("[name=q]").value.trim();
      if (q) { search(q); }
    });
    panel.querySelectorAll(".ga-tabs [data-tab]").forEach(function (button) {
      button.addEventListener("click", function () { showTab(button.getAttribute("data-tab")); });
    });
    panel.querySelectorAll(".ga-sort [data-sort]").forEach(function (button) {
      button.addEventListener("click", function () {
        state.sort = button.getAttribute("data-sort");
        panel.querySelectorAll(".ga-sort [data-sort]").forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
        renderBoard();
      });
    });
    L.DomEvent.disableScrollPropagation(panel);
  }

  Dispatch.start = function (map, options) {
    config = options || {};
    Dispatch.map = map;
    panel = document.getElementById("ga-dispatch");
    if (config.extent) {  // [west, south, east, north]
      var e = config.extent;
      map.fitBounds([[e[1], e[0]], [e[3], e[2]]], {maxZoom: 17, animate: false});
    }
    makeLayers(map);
    wirePanel();
    renderStatus();
    map.on("moveend", function () {
      clearTimeout(moveTimer);
      moveTimer = setTimeout(function () { loadDevices(); loadSegments(); }, 150);
    });
    poll();
    return Dispatch;
  };
})();
