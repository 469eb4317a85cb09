/*
 * GridAtlas crew page (/crew): a crew's phone. Shows the crew and its assignment (from
 * GET /api/crews/me), draws the way from the crew to the outage on a small Leaflet map (a straight
 * line with its distance and bearing, which needs no base map), sets the crew's status, sends
 * on-site notes and restores the outage in steps. While the page is open it sends the phone's
 * position in batches and follows the live feed, so a new assignment shows without a reload.
 *
 * The page calls CrewPage.start(config) with {api, crew, pollMs, basemap} (basemap: static/js/basemap.js's config).
 * CrewPage.state holds {loads, crew, outage, detail, positionsSent, queued, lastSentAt, liveChecks};
 * loads, positionsSent and liveChecks count completed work (tests wait on them).
 * Positions not yet sent are kept in localStorage (offline, or a reload) and sent again later;
 * the server stores each timestamp once, so a batch sent twice does no harm.
 * Everything the server sends is put on the page as text, never as HTML.
 */
(function () {
  "use strict";

  var _ = GridAtlasI18n._, ngettext = GridAtlasI18n.ngettext, LOCALE = GridAtlasI18n.locale;
  var BATCH_MS = 10000, BATCH_SIZE = 5, MAX_QUEUE = 1000, TIMELINE = 6;
  var COLOURS = {crew: "#0b57d0", outage: "#c5221f", line: "#14213d"};

  var state = {loads: 0, crew: null, outage: null, detail: null, positionsSent: 0, queued: 0, lastSentAt: null,
               liveChecks: 0, phone: null};
  var config, map = null, crewMarker = null, outageMarker = null, wayLine = null, fitted = null;
  var queue = [], sending = false, loading = null, loadAfter = null, confirmTimer = null;

  function $(id) { return document.getElementById(id); }

  /* fetch JSON; a non-2xx answer rejects with {status, detail, body} (problem+json's detail). */
  function api(path, options) {
    var init = Object.assign({headers: {"Accept": "application/json"}}, options || {});
    if (init.body !== undefined && typeof init.body !== "string") {
      init.headers = {"Accept": "application/json", "Content-Type": "application/json"};
      init.body = JSON.stringify(init.body);
    }
    return fetch(config.api + path, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) { throw {status: response.status, detail: body.detail || body.title || response.statusText, body: body}; }
        return body;
      });
    });
  }

  function enc(code) { return encodeURIComponent(code); }

  /* A span holding ``text`` as text (Leaflet puts a string tooltip in as HTML). */
  function textNode(text) {
    var span = document.createElement("span");
    span.textContent = text;
    return span;
  }

  // ---- texts -----------------------------------------------------------------------------------
  function stateLabel(name) {
    switch (name) {
      case "predicted": return _("Predicted");
      case "confirmed": return _("Confirmed");
      case "crew_assigned": return _("Crew assigned");
      case "assigned": return _("Assigned");
      case "en_route": return _("En route");
      case "on_site": return _("On site");
      case "restored": return _("Restored");
      case "cancelled": return _("Cancelled");
      case "available": return _("Available");
      case "off_duty": return _("Off duty");
      default: return name || "";
    }
  }

  function eventLabel(entry) {
    switch (entry.kind) {
      case "created": return _("Outage created");
      case "moved": return _("Moved to another device");
      case "etr": return _("ETR changed");
      case "step": return _("Customers restored in a step");
      case "note": return _("Note");
      case "released": return _("Crew released");
      default: return stateLabel(entry.to_state || entry.kind);
    }
  }

  function causeLabel(cause) {
    switch (cause) {
      case "weather": return _("Weather");
      case "equipment": return _("Equipment failure");
      case "vegetation": return _("Vegetation");
      case "animal": return _("Animal");
      case "third_party": return _("Third party");
      case "overload": return _("Overload");
      case "planned": return _("Planned work");
      case "unknown": case null: case undefined: case "": return _("Unknown");
      default: return cause;
    }
  }

  function compass(degrees) {
    switch (Math.round(degrees / 45) % 8) {
      case 0: return _("north");
      case 1: return _("north-east");
      case 2: return _("east");
      case 3: return _("south-east");
      case 4: return _("south");
      case 5: return _("south-west");
      case 6: return _("west");
      default: return _("north-west");
    }
  }

  function time(value, withSeconds) {
    if (!value) { return ""; }
    var options = withSeconds ? {hour: "2-digit", minute: "2-digit", second: "2-digit"} : {hour: "2-digit", minute: "2-digit"};
    return new Intl.DateTimeFormat(LOCALE, options).format(new Date(value));
  }

  function distanceText(metres) {
    if (metres < 1000) { return _("%(metres)s m", {metres: GridAtlasI18n.formatNumber(Math.round(metres))}); }
    return _("%(km)s km", {km: GridAtlasI18n.formatNumber(metres / 1000, {maximumFractionDigits: 1})});
  }

  function showError(problem) {
    $("cw-message").textContent = "";
    $("cw-error").textContent = problem ? (problem.detail || _("The server did not answer. Try again.")) : "";
  }

  function showMessage(text) {
    $("cw-error").textContent = "";
    $("cw-message").textContent = text;
  }

  // ---- the crew and its assignment -------------------------------------------------------------
  /* Ask /api/crews/me again; a load asked for while one is under way runs once after it (and its
     promise settles when that one is drawn). */
  function load() {
    if (loading) {
      if (!loadAfter) { loadAfter = loading.then(function () { loadAfter = null; return load(); }); }
      return loadAfter;
    }
    loading = api("/crews/me").then(function (body) {
      var before = state.outage, now = body.outage ? body.outage.outage.code : null;
      if (state.loads > 0 && now && now !== before) { showMessage(_("New assignment: %(code)s", {code: now})); }
      state.crew = body.crew;
      state.detail = body.outage;
      state.outage = now;
      drawCrew(body.crew);
      drawAssignment(body.outage);
      state.loads += 1;
    }).catch(function (problem) {
      showError(problem.status ? problem : {detail: _("The server did not answer. Try again.")});
    }).then(function () { loading = null; });
    return loading;
  }

  function drawCrew(crew) {
    if (!crew) { return; }
    var badge = $("cw-crew-status");
    badge.textContent = stateLabel(crew.status);
    badge.dataset.status = crew.status;
    var names = (crew.members || []).map(function (member) {
      return member.duty ? _("%(name)s (%(duty)s)", {name: member.name, duty: member.duty}) : member.name;
    });
    $("cw-members").textContent = names.length ? names.join(" · ") : _("No members listed");
    Array.prototype.forEach.call(document.querySelectorAll("#cw-status-buttons button"), function (button) {
      button.setAttribute("aria-pressed", button.dataset.status === crew.status ? "true" : "false");
    });
  }

  function drawAssignment(detail) {
    var none = $("cw-no-assignment");
    $("cw-outage").hidden = !detail;
    $("cw-work").hidden = !detail;
    none.hidden = !!detail;
    if (!detail) {
      none.textContent = _("No assignment. The dispatcher will send you one; it shows here by itself.");
      return;
    }
    var outage = detail.outage;
    $("cw-outage-code").textContent = outage.code;
    var badge = $("cw-outage-state");
    badge.textContent = stateLabel(outage.state);
    badge.dataset.status = outage.state;
    $("cw-outage-device").textContent = outage.device;
    $("cw-outage-cause").textContent = causeLabel(outage.cause);
    $("cw-outage-out").textContent = _("%(out)s of %(affected)s", {
      out: GridAtlasI18n.formatNumber(outage.customers_out), affected: GridAtlasI18n.formatNumber(outage.customers_affected)});
    $("cw-outage-etr").textContent = outage.etr ? time(outage.etr) : _("Not set");
    if (!$("cw-step-device").value) { $("cw-step-device").placeholder = outage.device; }
    drawTimeline(detail.timeline || []);
    drawWay();
  }

  function drawTimeline(entries) {
    var list = $("cw-timeline");
    while (list.firstChild) { list.removeChild(list.firstChild); }
    entries.slice(-TIMELINE).reverse().forEach(function (entry) {
      var item = document.createElement("li");
      var head = document.createElement("div");
      head.className = "cw-entry-head";
      var when = document.createElement("time");
      when.dateTime = entry.occurred_at;
      when.textContent = time(entry.occurred_at);
      var what = document.createElement("strong");
      what.textContent = eventLabel(entry);
      var who = document.createElement("span");
      who.className = "cw-muted";
      who.textContent = entry.actor || "";
      head.appendChild(when);
      head.appendChild(what);
      head.appendChild(who);
      item.appendChild(head);
      if (entry.note) {
        var note = document.createElement("p");
        note.textContent = entry.note;
        item.appendChild(note);
      }
      list.appendChild(item);
    });
  }

  // ---- the way to the outage ------------------------------------------------------------------
  var RAD = Math.PI / 180;

  /* Great-circle distance in metres and initial bearing in degrees from a to b ([lat, lon]). */
  function way(a, b) {
    var dLat = (b[0] - a[0]) * RAD, dLon = (b[1] - a[1]) * RAD, lat1 = a[0] * RAD, lat2 = b[0] * RAD;
    var h = Math.sin(dLat / 2) * Math.sin(dLat / 2) + Math.cos(lat1) * Math.cos(lat2) * Math.sin(dLon / 2) * Math.sin(dLon / 2);
    var metres = 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
    var y = Math.sin(dLon) * Math.cos(lat2), x = Math.cos(lat1) * Math.sin(lat2) - Math.sin(lat1) * Math.cos(lat2) * Math.cos(dLon);
    return {metres: metres, bearing: (Math.atan2(y, x) / RAD + 360) % 360};
  }

  function crewPoint() {
    if (state.phone) { return [state.phone.lat, state.phone.lon]; }
    var crew = state.crew;
    return crew && crew.lat !== null && crew.lon !== null ? [crew.lat, crew.lon] : null;
  }

  function ensureMap() {
    if (map) { return map; }
    map = L.map("cw-map", {zoomControl: false});
    L.control.zoom({position: "bottomright"}).addTo(map);
    GridAtlasBasemap.attach(map, config.basemap);
    L.control.scale({imperial: false}).addTo(map);
    return map;
  }

  function drawWay() {
    var detail = state.detail;
    if (!detail) { return; }
    var outage = detail.outage, to = outage.lat !== null && outage.lon !== null ? [outage.lat, outage.lon] : null;
    var from = crewPoint();
    var text = $("cw-way-text"), link = $("cw-navigate");
    ensureMap().invalidateSize();
    [crewMarker, outageMarker, wayLine].forEach(function (layer) { if (layer) { map.removeLayer(layer); } });
    crewMarker = outageMarker = wayLine = null;
    if (to) {
      outageMarker = L.circleMarker(to, {radius: 11, color: "#fff", weight: 3, fillColor: COLOURS.outage, fillOpacity: 1})
        .bindTooltip(textNode(outage.device), {permanent: true, direction: "top", offset: [0, -10], className: "cw-label cw-label-outage"}).addTo(map);
      link.href = "geo:" + to[0].toFixed(6) + "," + to[1].toFixed(6) + "?q=" + to[0].toFixed(6) + "," + to[1].toFixed(6);
      link.hidden = false;
    } else {
      link.hidden = true;
    }
    if (from) {
      crewMarker = L.circleMarker(from, {radius: 9, color: "#fff", weight: 3, fillColor: COLOURS.crew, fillOpacity: 1})
        .bindTooltip(textNode(_("You")), {permanent: true, direction: "bottom", offset: [0, 8], className: "cw-label cw-label-crew"})
        .addTo(map);
    }
    if (from && to) {
      wayLine = L.polyline([from, to], {color: COLOURS.line, weight: 4, dashArray: "8 8"}).addTo(map);
      var found = way(from, to);
      text.textContent = _("%(distance)s in a straight line, bearing %(degrees)s° (%(direction)s)", {
        distance: distanceText(found.metres), degrees: Math.round(found.bearing) % 360, direction: compass(found.bearing)});
    } else {
      text.textContent = to ? _("Your position is not known yet.") : _("The outage has no place on the map.");
    }
    // Fit the view when the outage changes (not on every position, so a crew may pan and zoom).
    var key = outage.code + (from ? "" : ":alone");
    if (fitted !== key) {
      fitted = key;
      if (from && to) { map.fitBounds(L.latLngBounds([from, to]), {padding: [64, 64], maxZoom: 17}); }
      else if (to || from) { map.setView(to || from, 16); }
      else { map.setView([0, 0], 1); }
    }
  }

  // ---- status, notes, restoration --------------------------------------------------------------
  function setStatus(status) {
    api("/crews/" + enc(config.crew) + "/status", {method: "POST", body: {status: status}}).then(function (crew) {
      state.crew = crew;
      drawCrew(crew);
      return load().then(function () { showMessage(_("Status set: %(status)s", {status: stateLabel(status)})); });
    }).catch(showError);
  }

  function addNote(event) {
    event.preventDefault();
    var field = $("cw-note"), note = field.value.trim();
    if (!note) { field.focus(); return; }
    api("/crews/" + enc(config.crew) + "/notes", {method: "POST", body: {note: note}}).then(function () {
      field.value = "";
      return load().then(function () { showMessage(_("Note added to the timeline")); });
    }).catch(showError);
  }

  function restoreStep(device) {
    if (!state.outage) { return Promise.resolve(); }
    return api("/outages/" + enc(state.outage) + "/steps", {method: "POST", body: {device: device}}).then(function (change) {
      var outage = change.outage;
      $("cw-step-device").value = "";
      return load().then(function () {
        showMessage(outage.state === "restored"
          ? _("Outage %(code)s restored", {code: outage.code})
          : ngettext("Restored below %(device)s; %(num)s customer still out",
                     "Restored below %(device)s; %(num)s customers still out", outage.customers_out, {device: device}));
      });
    }).catch(showError);
  }

  function stepBelowDevice(event) {
    event.preventDefault();
    var device = $("cw-step-device").value.trim();
    if (!device) { $("cw-step-device").focus(); return; }
    restoreStep(device);
  }

  /* A first tap arms the button for five seconds; a second tap restores the whole outage. */
  function allRestored() {
    var button = $("cw-all-restored");
    if (!button.classList.contains("cw-armed")) {
      button.classList.add("cw-armed");
      button.dataset.label = button.textContent;
      button.textContent = button.dataset.confirm;
      confirmTimer = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    if (state.detail) { restoreStep(state.detail.outage.device); }
  }

  function disarm() {
    var button = $("cw-all-restored");
    clearTimeout(confirmTimer);
    if (button.classList.contains("cw-armed")) {
      button.classList.remove("cw-armed");
      button.textContent = button.dataset.label;
    }
  }

  // ---- positions -------------------------------------------------------------------------------
  function storageKey() { return "gridatlas.crew.positions." + config.crew; }

  function remember() {
    try { localStorage.setItem(storageKey(), JSON.stringify(queue)); } catch (e) { /* private mode: memory only */ }
    state.queued = queue.length;
  }

  function recall() {
    try { queue = JSON.parse(localStorage.getItem(storageKey()) || "[]") || []; } catch (e) { queue = []; }
    if (!Array.isArray(queue)) { queue = []; }
    state.queued = queue.length;
  }

  function onPosition(position) {
    var point = {lon: position.coords.longitude, lat: position.coords.latitude,
                 at: new Date(position.timestamp || Date.now()).toISOString()};
    if (typeof position.coords.accuracy === "number" && position.coords.accuracy <= 100000) {
      point.accuracy_m = Math.round(position.coords.accuracy * 10) / 10;
    }
    var last = queue[queue.length - 1];
    if (last && last.at === point.at) { return; }
    queue.push(point);
    if (queue.length > MAX_QUEUE) { queue.splice(0, queue.length - MAX_QUEUE); }
    remember();
    state.phone = point;
    drawWay();
    // The first fix goes at once, so the dispatcher sees the crew as soon as the page opens.
    if (queue.length >= BATCH_SIZE || state.positionsSent === 0) { sendPositions(); }
  }

  function onPositionError(error) {
    var text = error.code === 1 ? _("Position is not shared: allow location for this page to send it.")
                                : _("Position not available yet.");
    $("cw-position").textContent = text;
  }

  /* Send what is queued; kept for later when offline or the server fails. */
  function sendPositions() {
    if (sending || !queue.length) { return; }
    sending = true;
    var batch = queue.slice(0, MAX_QUEUE);
    api("/crews/" + enc(config.crew) + "/positions", {method: "POST", body: {positions: batch}}).then(function () {
      dropSent(batch);
      state.positionsSent += batch.length;
      state.lastSentAt = new Date();
      $("cw-position").textContent = _("Position sent %(time)s", {time: time(state.lastSentAt, true)});
    }).catch(function (problem) {
      if (problem.status >= 400 && problem.status < 500 && problem.status !== 408 && problem.status !== 429) {
        dropSent(batch);  // refused for good (a bad position, another crew): sending again would not help
        showError(problem);
      } else {
        $("cw-position").textContent = ngettext("Offline: %(num)s position waiting to be sent",
                                                "Offline: %(num)s positions waiting to be sent", queue.length);
      }
    }).then(function () { sending = false; });
  }

  function dropSent(batch) {
    var sent = {};
    batch.forEach(function (point) { sent[point.at] = true; });
    queue = queue.filter(function (point) { return !sent[point.at]; });
    remember();
  }

  function watchPosition() {
    recall();
    if (!navigator.geolocation) {
      $("cw-position").textContent = _("This device cannot tell its position.");
      return;
    }
    navigator.geolocation.watchPosition(onPosition, onPositionError, {enableHighAccuracy: true, maximumAge: 5000, timeout: 30000});
    setInterval(sendPositions, BATCH_MS);
    window.addEventListener("online", sendPositions);
    if (queue.length) { sendPositions(); }
  }

  // ---- the live feed ---------------------------------------------------------------------------
  /* Follow the live feed (static/js/live.js); reload the assignment when it names the crew or its outage. */
  function follow() {
    GridAtlasLive.follow(config.api + "/live", {
      every: config.pollMs,
      onChange: function (kinds) {
        if ((kinds.crew || []).indexOf(config.crew) >= 0
            || (state.outage && (kinds.outage || []).indexOf(state.outage) >= 0)) {
          return load();
        }
        return null;
      },
      onPoll: function () { state.liveChecks += 1; }
    });
  }

  function start(pageConfig) {
    config = pageConfig;
    Array.prototype.forEach.call(document.querySelectorAll("#cw-status-buttons button"), function (button) {
      button.addEventListener("click", function () { setStatus(button.dataset.status); });
    });
    $("cw-note-form").addEventListener("submit", addNote);
    $("cw-step-form").addEventListener("submit", stepBelowDevice);
    $("cw-all-restored").addEventListener("click", allRestored);
    load().then(function () { follow(); watchPosition(); });
  }

  window.CrewPage = {start: start, state: state, load: load, sendPositions: sendPositions};
})();
