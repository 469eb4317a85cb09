/*
 * GridAtlas outlet finder (/map/outlets): "locate me" or an address search, the nearest outlets
 * listed and drawn (open, closed, hours unknown), an outlet's hours and services, and a booking
 * form that books through the API and shows the confirmation code.
 *
 * The page calls OutletFinder.start(map, config) once folium has built the Leaflet map.
 * OutletFinder.state holds {searches, outlets, origin, selected, booking, slotLoads, staleSlotLoads, moveLoads, busy};
 * searches, slotLoads and moveLoads count completed loads (tests wait on them). Until the customer
 * gives a place (an address or "Locate me") the outlets around the map centre are listed without
 * distances and without a "you are here" dot. Only the newest slots request
 * is drawn: an older one still under way is aborted, and an answer that comes late anyway is
 * dropped and counted in staleSlotLoads.
 * Everything the server sends is put on the page as text, never as HTML. A failed request is told
 * in the customer's words (friendly()), from the problem's status, field and reason; the API's own
 * detail is written for developers and is not shown.
 * Texts come from the page's catalog through _() and ngettext() (static/js/i18n.js); dates and
 * times are written the page language's way (Intl with <html lang>).
 */
(function () {
  "use strict";

  var COLOURS = {open: "#1e8e3e", closed: "#c5221f", unknown: "#b06000", origin: "#1a73e8"};
  var DAY_KEYS = ["mo", "tu", "we", "th", "fr", "sa", "su"];
  var _ = GridAtlasI18n._, ngettext = GridAtlasI18n.ngettext, pgettext = GridAtlasI18n.pgettext, LOCALE = GridAtlasI18n.locale;
  // Monday to Sunday in the page's language (1 January 2024 was a Monday).
  var DAY_NAMES = DAY_KEYS.map(function (key, index) {
    return new Intl.DateTimeFormat(LOCALE, {weekday: "long", timeZone: "UTC"}).format(new Date(Date.UTC(2024, 0, 1 + index)));
  });
  var RESULTS = 8;

  var state = {searches: 0, outlets: [], origin: null, selected: null, booking: null, slotLoads: 0, staleSlotLoads: 0, moveLoads: 0, busy: false};
  var map, config, markers, originMarker, chosenSlot = null, bookingKey = null, suggestTimer = null;
  
  function $(id) { return document.getElementById(id); }

  var el = GridAtlasDom.el, clear = GridAtlasDom.clear;

  function fill(url, code) { return url.replace("__code__", encodeURIComponent(code)); }

  /* fetch JSON; a non-2xx answer rejects with {status, detail, body} (problem+json's detail). */
  function api(url, options) {
    return fetch(url, Object.assign({headers: {"Accept": "application/json"}}, options || {}))
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) {
            throw {status: response.status, detail: body.detail || response.statusText, body: body};
          }
          return {status: response.status, body: body};
        });
      }, function (failure) {
        if (failure && failure.name === "AbortError") { throw {status: 0, aborted: true}; }
        throw {status: 0};
      });
  }

  /* A failed request in the customer's words. ``what``: "search", "outlet", "slots", "book",
     "booking" (a look-up by code), "move" or "cancel". */
  function friendly(error, what) {
    var body = error.body || {}, status = error.status, byCode = ["booking", "move", "cancel"].indexOf(what) >= 0;
    if (!status) { return _("The server cannot be reached; check your connection."); }
    if (status === 429) { return _("Too many tries in a short time. Please wait a minute and try again."); }
    if (status >= 500) { return _("Something went wrong on our side. Please try again in a moment."); }
    if (body.field === "phone") { return _("Please check your phone number and give it with its area code."); }
    if (body.field === "name") { return _("Please give your name (up to 120 characters)."); }
    if (body.reason === "slot_full") { return _("Someone has just taken the last place at this time. Please choose another time."); }
    if (body.reason === "booking_cancelled") { return _("This booking is cancelled. Please book a new visit instead."); }
    if (body.reason === "visit_begun") { return _("This visit has begun or is over, so it can no longer be changed."); }
    if (what === "search") {
      return status === 404 ? _("We do not know this address. Try a street name and house number, or use Locate me.")
        : _("Please type a street and house number, or use Locate me.");
    }
    if (byCode && status === 404) { return _("No booking has this confirmation code. Please check the code and try again."); }
    if (byCode && status === 400) { return _("This is not a confirmation code. It has 12 letters and digits, e.g. QKWM-YEJ9-CA4N."); }
    if (status === 404) { return _("This outlet is no longer listed. Please search again."); }
    if (what === "book" || what === "move") { return _("This time can no longer be booked. Please choose another time."); }
    if (what === "slots") { return _("The times of this day cannot be shown. Please choose another day."); }
    return _("Something went wrong. Please try again.");
  }

  function status(text, isError) {
    var node = $("of-status");
    node.textContent = text || "";
    node.classList.toggle("of-error", !!isError);
  }

  function randomKey() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  /* Times are shown on the outlet's own clock, whatever the phone's zone. */
  function formatTime(iso, zone, withDate) {
    var options = {hour: "2-digit", minute: "2-digit", hour12: false, timeZone: zone};
    if (withDate) { Object.assign(options, {weekday: "short", day: "numeric", month: "short"}); }
    try { return new Intl.DateTimeFormat(LOCALE, options).format(new Date(iso)); }
    catch (e) { return iso.slice(withDate ? 0 : 11, 16).replace("T", " "); }
  }

  var localDate = GridAtlasDays.localDate, addDays = GridAtlasDays.addDays;

  /* A local date (YYYY-MM-DD) as a short weekday, day and month in the page's language. */
  function formatDay(isoDate, withDate) {
    var options = withDate ? {weekday: "short", day: "numeric", month: "short", timeZone: "UTC"} : {weekday: "short", timeZone: "UTC"};
    return new Date(isoDate + "T12:00:00Z").toLocaleDateString(LOCALE, options);
  }

  function distance(metres) {
    if (metres < 1000) { return _("%(distance)s m", {distance: GridAtlasI18n.formatNumber(Math.round(metres))}); }
    var digits = metres < 10000 ? 1 : 0;
    return _("%(distance)s km", {distance: GridAtlasI18n.formatNumber(metres / 1000, {minimumFractionDigits: digits, maximumFractionDigits: digits})});
  }

  /* Today and tomorrow by the outlet's own calendar say so; a later day keeps its weekday and date. */
  function openState(outlet) {
    var zone = outlet.timezone;
    if (!outlet.hours_known) { return {key: "unknown", text: _("Hours unknown")}; }
    if (outlet.open_now) {
      if (!outlet.closes_at) { return {key: "open", text: _("Open around the clock")}; }
      var closes = {time: formatTime(outlet.closes_at, zone)}, closing = GridAtlasDays.dayWord(outlet.closes_at, zone);
      return {key: "open", text: closing === "today" ? _("Open until %(time)s", closes)
        : closing === "tomorrow" ? _("Open until tomorrow %(time)s", closes)
        : _("Open until %(time)s", {time: formatTime(outlet.closes_at, zone, true)})};
    }
    if (!outlet.next_opening) { return {key: "closed", text: _("Closed")}; }
    var opens = {time: formatTime(outlet.next_opening, zone)}, opening = GridAtlasDays.dayWord(outlet.next_opening, zone);
    return {key: "closed", text: opening === "today" ? _("Closed · opens today %(time)s", opens)
      : opening === "tomorrow" ? _("Closed · opens tomorrow %(time)s", opens)
      : _("Closed · opens %(time)s", {time: formatTime(outlet.next_opening, zone, true)})};
  }

  function todayText(outlet) {
    var today = outlet.today;
    if (!today || !today.known) { return _("Opening hours unknown: please call ahead"); }
    if (today.closed) { return today.note ? _("Today: closed (%(note)s)", {note: today.note}) : _("Today: closed"); }
    var hours = today.hours.map(function (h) { return h.opens + "–" + h.closes; }).join(", ").replace("00:00–24:00", _("open 24 hours"));
    return today.note ? _("Today: %(hours)s (%(note)s)", {hours: hours, note: today.note}) : _("Today: %(hours)s", {hours: hours});
  }

  function serviceLabel(code) { return config.services[code] || code; }

  // ---- searching -------------------------------------------------------------------------------
  /* The outlets nearest to ``params`` (lon/lat or an address q); ``label`` names the place. Without
     a place (``label`` null, the map centre on opening) the outlets are listed as they are. */
  function search(params, label) {
    var query = new URLSearchParams(params);
    query.set("n", RESULTS);
    if ($("of-service").value) { query.set("service", $("of-service").value); }
    if ($("of-open-now").checked) { query.set("open", "now"); }
    state.busy = true;
    status(_("Searching…"));
    clear($("of-did-you-mean"));
    return api(config.nearest + "?" + query.toString()).then(function (answer) {
      var body = answer.body;
      state.busy = false;
      if (body.did_you_mean && body.did_you_mean.length) {
        status(_("Several addresses match. Did you mean:"));
        body.did_you_mean.forEach(function (match) {
          $("of-did-you-mean").appendChild(el("li", {}, [el("button", {
            type: "button", className: "of-link",
            onclick: function () { $("of-q").value = match.address; search({lon: match.lon, lat: match.lat}, match.address); },
          }, [match.address])]));
        });
        showResults([], null);
      } else if (label === null) {
        showResults(body.outlets, null);
        status(body.outlets.length ? _("Search an address or use your location to see the outlets nearest to you.")
          : noOutletText(null));
      } else {
        var origin = body.origin;
        var where = label || origin.address || _("your location");
        showResults(body.outlets, origin);
        status(body.outlets.length
          ? ngettext("%(num)s outlet nearest to %(place)s", "%(num)s outlets nearest to %(place)s", body.outlets.length, {place: where})
          : noOutletText(where));
      }
      state.searches += 1;
    }).catch(function (error) {
      state.busy = false;
      state.searches += 1;
      status(friendly(error, "search"), true);
    });
  }

  function noOutletText(where) {
    var service = $("of-service").value, params = {place: where, service: serviceLabel(service)};
    if (where === null) {
      return service ? _("No outlet offers %(service)s here. Search an address or use your location.", params)
        : _("No outlet is shown here. Search an address or use your location.");
    }
    if ($("of-open-now").checked) {
      return service ? _("No outlet is open now near %(place)s offers %(service)s", params) : _("No outlet is open now near %(place)s", params);
    }
    return service ? _("No outlet near %(place)s offers %(service)s", params) : _("No outlet near %(place)s", params);
  }

  function highlight(code) {
    markers.eachLayer(function (layer) {
      var chosen = layer.outletCode === code;
      layer.setRadius(chosen ? 14 : 10);
      layer.setStyle({weight: chosen ? 4 : 2, color: chosen ? "#14213d" : "#ffffff"});
      if (chosen) { layer.bringToFront(); }
    });
  }

  function marker(outlet) {
    var key = openState(outlet).key;
    var circle = L.circleMarker([outlet.lat, outlet.lon], {
      radius: 10, color: "#ffffff", weight: 2, fillColor: COLOURS[key], fillOpacity: 0.95,
    });
    circle.outletCode = outlet.code;
    circle.bindTooltip(outlet.name + " — " + openState(outlet).text);
    circle.on("click", function () { select(outlet.code); });
    return circle;
  }

  function showResults(outlets, origin) {
    state.outlets = outlets;
    state.origin = origin;
    markers.clearLayers();
    if (originMarker) { map.removeLayer(originMarker); originMarker = null; }
    var list = clear($("of-results"));
    outlets.forEach(function (outlet) {
      var open = openState(outlet);
      marker(outlet).addTo(markers);
      list.appendChild(el("li", {}, [el("button", {
        type: "button", className: "of-result", dataset: {code: outlet.code},
        onclick: function () { select(outlet.code); },
      }, [
        el("span", {className: "of-result-head"}, [
          el("strong", {}, [outlet.name]),
          origin ? el("span", {className: "of-distance"}, [distance(outlet.distance_m)]) : null,
        ]),
        el("span", {className: "of-badge of-" + open.key}, [open.text]),
        el("span", {className: "of-muted"}, [outlet.address]),
        el("span", {className: "of-muted"}, [todayText(outlet)]),
        el("span", {className: "of-muted"}, [origin ? _("Walk %(walk)s min · drive %(drive)s min · %(services)s", {
          walk: outlet.travel.walking_min, drive: outlet.travel.driving_min, services: outlet.services.map(serviceLabel).join(_(", "))})
          : outlet.services.map(serviceLabel).join(_(", "))]),
      ])]));
    });
    var bounds = markers.getLayers().length ? markers.getBounds() : null;
    if (origin && origin.lon !== undefined) {
      originMarker = L.circleMarker([origin.lat, origin.lon], {
        radius: 7, color: "#ffffff", weight: 3, fillColor: COLOURS.origin, fillOpacity: 1,
      }).bindTooltip(origin.address || _("You are here")).addTo(map);
      bounds = bounds ? bounds.extend([origin.lat, origin.lon]) : L.latLngBounds([[origin.lat, origin.lon]]);
      markers.eachLayer(function (layer) { layer.bringToFront(); });  // an outlet at the address stays clickable
    }
    if (bounds) { map.fitBounds(bounds, Object.assign({maxZoom: 16}, padding())); }
  }

  /* Keep the drawn outlets out from under the panel: beside it on a desk, above it on a phone. */
  function padding() {
    var panel = $("of-panel");
    if (window.matchMedia("(max-width: 700px)").matches) {
      return {paddingTopLeft: [20, 20], paddingBottomRight: [20, panel.offsetHeight + 20]};
    }
    return {paddingTopLeft: [panel.offsetWidth + 40, 20], paddingBottomRight: [20, 20]};
  }

  function locate() {
    if (!navigator.geolocation) { status(_("This browser cannot tell where you are; search an address instead."), true); return; }
    if (window.isSecureContext === false) {
      // Browsers give a page its location only over https (or on this computer itself).
      status(_("Locate me needs a secure (https) connection to this site; search an address instead."), true);
      return;
    }
    status(_("Finding where you are…"));
    navigator.geolocation.getCurrentPosition(function (position) {
      search({lon: position.coords.longitude.toFixed(6), lat: position.coords.latitude.toFixed(6)}, _("your location"));
    }, function (error) {
      status(error.code === 1 ? _("Location access was refused; search an address instead.")
        : _("Your location is not available right now; search an address instead."), true);
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 60000});
  }

  function suggest() {
    var q = $("of-q").value.trim();
    clearTimeout(suggestTimer);
    if (q.length < 3) { return; }
    suggestTimer = setTimeout(function () {
      api(config.addresses + "?" + new URLSearchParams({q: q})).then(function (answer) {
        var list = clear($("of-suggestions"));
        answer.body.addresses.forEach(function (match) { list.appendChild(el("option", {value: match.address})); });
      }).catch(function () { /* suggestions are a convenience; the search reports errors */ });
    }, 250);
  }

  // ---- one outlet ------------------------------------------------------------------------------
  function showView(detail) {
    $("of-search-view").hidden = detail;
    $("of-detail-view").hidden = !detail;
    $("of-panel").classList.toggle("of-expanded", detail);
    $("of-panel").scrollTop = 0;
  }

  function select(code) {
    var listed = state.outlets.filter(function (o) { return o.code === code; })[0];
    status("");
    return api(fill(config.outlet, code)).then(function (answer) {
      var outlet = Object.assign({}, listed || {}, answer.body);
      if (!state.origin) { delete outlet.distance_m; }  // measured from the map centre, not from the customer
      state.selected = outlet;
      renderDetail(outlet);
      showView(true);
      prepareBooking(outlet);
      highlight(code);
      // Centre the outlet in the part of the map the panel leaves visible.
      var pad = padding(), size = map.getSize();
      var x = (pad.paddingTopLeft[0] + size.x - pad.paddingBottomRight[0]) / 2;
      var y = (pad.paddingTopLeft[1] + size.y - pad.paddingBottomRight[1]) / 2;
      var target = map.containerPointToLatLng(map.latLngToContainerPoint([outlet.lat, outlet.lon])
        .add(L.point(size.x / 2 - x, size.y / 2 - y)));
      map.panTo(target);
    }).catch(function (error) { status(friendly(error, "outlet"), true); });
  }

  function renderDetail(outlet) {
    var open = openState(outlet);
    var today = localDate(outlet.timezone);
    var todayIndex = (new Date(today + "T12:00:00Z").getUTCDay() + 6) % 7;
    var rows = DAY_KEYS.map(function (key, index) {
      var hours = outlet.week && outlet.week[key];
      return el("tr", {className: index === todayIndex ? "of-today" : ""}, [
        el("th", {}, [DAY_NAMES[index]]),
        el("td", {}, [hours ? hours.join(", ").replace("00:00-24:00", _("24 hours")).replace(/-/g, "–") : pgettext("outlet", "closed")]),
      ]);
    });
    var directions = outlet.directions_url || ("https://www.google.com/maps/dir/?api=1&destination=" + outlet.lat + "," + outlet.lon);
    if (outlet.directions && /iPhone|iPad|Macintosh/.test(navigator.userAgent)) { directions = outlet.directions.apple; }
    var detail = clear($("of-detail"));
    detail.appendChild(el("h2", {}, [outlet.name]));
    detail.appendChild(el("span", {className: "of-badge of-" + open.key}, [open.text]));
    detail.appendChild(el("p", {}, [outlet.address]));
    detail.appendChild(el("p", {className: "of-actions"}, [
      el("a", {href: directions, target: "_blank", rel: "noopener", className: "of-button"}, [_("Directions")]),
      outlet.phone ? el("a", {href: "tel:" + outlet.phone, className: "of-button"}, [_("Call %(phone)s", {phone: outlet.phone_display || outlet.phone})]) : null,
      outlet.distance_m !== undefined ? el("span", {className: "of-muted"}, [_("%(distance)s · walk %(walk)s min · drive %(drive)s min", {
        distance: distance(outlet.distance_m), walk: outlet.travel.walking_min, drive: outlet.travel.driving_min})]) : null,
    ]));
    detail.appendChild(el("h3", {}, [_("Opening hours")]));
    if (!outlet.hours_known) {
      detail.appendChild(el("p", {className: "of-warning"}, [_("This outlet's opening hours are not known. Please call before you go.")]));
    } else {
      detail.appendChild(el("table", {className: "of-hours"}, [el("tbody", {}, rows)]));
      if (outlet.exceptions && outlet.exceptions.length) {
        detail.appendChild(el("ul", {className: "of-exceptions"}, outlet.exceptions.slice(0, 4).map(function (e) {
          var day = new Date(e.date + "T12:00:00Z").toLocaleDateString(LOCALE, {weekday: "short", day: "numeric", month: "short", timeZone: "UTC"});
          var hours = e.hours === "off" ? pgettext("outlet", "closed") : e.hours.replace(/-/g, "–");
          return el("li", {}, [e.note ? _("%(day)s: %(hours)s (%(note)s)", {day: day, hours: hours, note: e.note})
            : _("%(day)s: %(hours)s", {day: day, hours: hours})]);
        })));
      }
      detail.appendChild(el("p", {className: "of-muted"}, [_("Times are local time (%(zone)s).", {zone: outlet.timezone})]));
    }
    detail.appendChild(el("h3", {}, [_("Services")]));
    detail.appendChild(el("ul", {className: "of-services"}, outlet.services.map(function (s) { return el("li", {}, [serviceLabel(s)]); })));
  }

  function prepareBooking(outlet) {
    var form = $("of-book");
    $("of-confirmation").hidden = true;
    form.hidden = !outlet.hours_known;
    var select = clear($("of-book-service"));
    outlet.services.forEach(function (s) { select.appendChild(el("option", {value: s}, [serviceLabel(s)])); });
    if ($("of-service").value && outlet.services.indexOf($("of-service").value) >= 0) { select.value = $("of-service").value; }
    var today = localDate(outlet.timezone);
    var dateInput = $("of-book-date");
    dateInput.min = today;
    dateInput.max = addDays(today, config.horizonDays);
    dateInput.value = outlet.open_now || !outlet.next_opening ? today : outlet.next_opening.slice(0, 10);
    $("of-book-error").textContent = "";
    if (outlet.hours_known) { loadSlots(); }
  }

  function chooseSlot(slot, button) {
    chosenSlot = slot;
    bookingKey = randomKey();  // one key per chosen time: a retried submission cannot book twice
    pressed($("of-slots"), button);
    $("of-book-submit").disabled = false;
    $("of-book-submit").textContent = _("Book %(time)s", {time: formatTime(slot.start, state.selected.timezone, true)});
  }

  function pressed(box, button) {
    Array.prototype.forEach.call(box.querySelectorAll(".of-slot"), function (b) {
      b.setAttribute("aria-pressed", b === button ? "true" : "false");
    });
  }

  /* A picker of free times: one outlet, service and date at a time; only the newest request is
     drawn (an older one still under way is aborted, an answer that comes late anyway is dropped).
     ``options``: box, dateInput, code(), service(), choose(slot, button), loaded(), stale(). */
  function slotPicker(options) {
    var latest = 0, abort = null;
    function load() {
      var box = clear(options.box);
      box.appendChild(el("p", {className: "of-muted"}, [_("Loading times…")]));
      var query = new URLSearchParams({date: options.dateInput.value, service: options.service(), by: "shift"});
      var request = ++latest;
      if (abort) { abort.abort(); }
      abort = window.AbortController ? new AbortController() : null;
      function stale() {
        if (request === latest) { abort = null; return false; }
        options.stale();
        return true;
      }
      return api(fill(config.slots, options.code()) + "?" + query, abort ? {signal: abort.signal} : {}).then(function (answer) {
        if (stale()) { return; }
        drawSlots(clear(box), answer.body, options);
        options.loaded();
      }).catch(function (error) {
        if (stale()) { return; }
        clear(box).appendChild(el("p", {className: "of-error"}, [friendly(error, "slots")]));
        options.loaded();
      });
    }
    return {load: load};
  }

  /* The times of each opening under the day it starts ("Mon 18:00–02:00": 00:00 and 01:00 are
     that Monday night's, not Tuesday evening's), full ones struck through. */
  function drawSlots(box, body, options) {
    var free = body.slots.filter(function (s) { return s.remaining > 0; });
    if (!free.length) {
      var why = body.note ? _("%(note)s.", {note: body.note})
        : body.hours.closed ? (body.hours.note ? _("Closed on this day (%(note)s).", {note: body.hours.note}) : _("Closed on this day."))
        : body.slots.length ? _("Every time on this day is booked.") : _("No times left on this day.");
      box.appendChild(el("p", {className: "of-muted"}, [why + " "]));
      box.appendChild(el("button", {type: "button", className: "of-button", onclick: function () {
        options.dateInput.value = addDays(options.dateInput.value, 1);
        options.dateInput.dispatchEvent(new Event("change"));
      }}, [_("Next day →")]));
    }
    // On the night the clocks go back a time occurs twice: show its offset to tell them apart.
    var labels = body.slots.map(function (s) { return s.start.slice(11, 16); });
    var group = null, shiftKey = null;
    body.slots.forEach(function (slot, index) {
      var shift = slot.shift || {date: body.date, hours: ""};
      if (shift.date + shift.hours !== shiftKey) {
        shiftKey = shift.date + shift.hours;
        box.appendChild(el("p", {className: "of-shift"}, [_("%(day)s %(hours)s", {
          day: formatDay(shift.date, shift.date !== body.date), hours: shift.hours.replace("00:00-24:00", _("24 hours")).replace(/-/g, "–")})]));
        group = box.appendChild(el("div", {className: "of-shift-slots", dataset: {shift: shift.date}}));
      }
      var label = labels[index];
      if (labels.indexOf(label) !== labels.lastIndexOf(label)) { label += " (UTC" + slot.start.slice(19) + ")"; }
      var button = el("button", {
        type: "button", className: "of-slot", disabled: slot.remaining <= 0, dataset: {start: slot.start},
        "aria-pressed": "false",
        title: slot.remaining > 0 ? ngettext("%(num)s place left", "%(num)s places left", slot.remaining) : _("Fully booked"),
      }, [label]);
      button.addEventListener("click", function () { options.choose(slot, button); });
      group.appendChild(button);
    });
  }

  var bookingPicker;  // the booking form's picker (made by start)

  function loadSlots() {
    chosenSlot = null;
    $("of-book-submit").disabled = true;
    $("of-book-submit").textContent = _("Book this time");
    return bookingPicker.load();
  }

  function book(event) {
    event.preventDefault();
    var error = $("of-book-error");
    error.textContent = "";
    if (!chosenSlot) { error.textContent = _("Pick a time first."); return; }
    var name = $("of-book-name").value.trim(), phone = $("of-book-phone").value.trim();
    if (!name) { error.textContent = _("Please give your name."); $("of-book-name").focus(); return; }
    if (!phone) { error.textContent = _("Please give a phone number for the reminder."); $("of-book-phone").focus(); return; }
    var submit = $("of-book-submit");
    submit.disabled = true;
    api(config.bookings, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify({outlet: state.selected.code, service: chosenSlot.service, start: chosenSlot.start,
                            name: name, phone: phone, idempotency_key: bookingKey}),
    }).then(function (answer) {
      state.booking = answer.body;
      bookingKey = null;
      $("of-book").hidden = true;
      showConfirmation($("of-confirmation"), answer.body);
    }).catch(function (failure) {
      submit.disabled = false;
      error.textContent = friendly(failure, "book");
      if (failure.body && failure.body.field === "phone") { $("of-book-phone").focus(); }
      if (failure.status === 409) { loadSlots(); }
    });
  }

  function showConfirmation(box, booking, note) {
    var zone = booking.outlet.timezone;
    clear(box).hidden = false;
    var cancelled = booking.status === "cancelled";
    box.appendChild(el("h3", {}, [cancelled ? _("Booking cancelled") : _("You are booked")]));
    if (note) { box.appendChild(el("p", {className: "of-done", role: "status"}, [note])); }
    box.appendChild(el("p", {className: "of-code-label"}, [_("Confirmation code")]));
    box.appendChild(el("p", {className: "of-code", id: box.id + "-code"}, [booking.code]));
    box.appendChild(el("p", {}, [_("%(service)s at %(outlet)s", {service: serviceLabel(booking.service), outlet: booking.outlet.name})]));
    box.appendChild(el("p", {className: "of-when"}, [_("%(start)s–%(end)s (%(zone)s)", {
      start: formatTime(booking.start, zone, true), end: formatTime(booking.end, zone), zone: zone})]));
    box.appendChild(el("p", {className: "of-muted"}, [booking.outlet.address]));
    if (!cancelled) {
      box.appendChild(el("p", {className: "of-muted"}, [_("Keep this code: you need it to see, move or cancel the visit. We send a reminder to %(phone)s.",
        {phone: booking.phone_display || booking.phone})]));
      box.appendChild(el("p", {className: "of-actions"}, [
        el("a", {href: booking.ics_url, className: "of-button", download: ""}, [_("Add to calendar")]),
        el("button", {type: "button", className: "of-button of-move", onclick: function () { startMove(box, booking); }},
          [_("Move to another time")]),
        el("button", {type: "button", className: "of-button of-danger", onclick: function () { cancel(box, booking); }},
          [_("Cancel booking")]),
      ]));
    }
  }

  function failed(box, text) {
    var old = box.querySelector(".of-error");
    if (old) { old.remove(); }
    box.appendChild(el("p", {className: "of-error", role: "alert"}, [text]));
  }

  function cancel(box, booking) {
    if (!window.confirm(_("Cancel your visit on %(time)s?", {time: formatTime(booking.start, booking.outlet.timezone, true)}))) { return; }
    api(fill(config.booking, booking.code), {method: "DELETE"}).then(function (answer) {
      state.booking = answer.body;
      showConfirmation(box, answer.body);
      if (state.selected && box.id === "of-confirmation") { $("of-book").hidden = false; loadSlots(); }
    }).catch(function (error) { failed(box, friendly(error, "cancel")); });
  }

  /* Moving a booking: the free times of its outlet and service, on a date the customer chooses;
     the API takes the new place before it gives the old one back, so a refusal changes nothing. */
  function startMove(box, booking) {
    var zone = booking.outlet.timezone, today = localDate(zone), chosen = null;
    var old = box.querySelector(".of-mover");
    if (old) { old.remove(); }
    var dateInput = el("input", {type: "date", className: "of-move-date", min: today, max: addDays(today, config.horizonDays),
                                 value: booking.start.slice(0, 10)});
    var times = el("div", {className: "of-slots of-move-slots", role: "group", "aria-label": _("Times")});
    var submit = el("button", {type: "button", className: "of-button of-primary of-wide of-move-submit", disabled: true},
                    [_("Choose a new time")]);
    var mover = el("div", {className: "of-mover"}, [
      el("h3", {}, [_("Move to another time")]),
      el("label", {className: "of-field"}, [_("Date"), " ", dateInput]),
      times, submit,
    ]);
    box.appendChild(mover);
    var picker = slotPicker({
      box: times, dateInput: dateInput,
      code: function () { return booking.outlet.code; },
      service: function () { return booking.service; },
      choose: function (slot, button) {
        chosen = slot;
        pressed(times, button);
        submit.disabled = false;
        submit.textContent = _("Move to %(time)s", {time: formatTime(slot.start, zone, true)});
      },
      loaded: function () {
        // The booking's own time is not a new time to move to.
        var own = times.querySelector('.of-slot[data-start="' + booking.start + '"]');
        if (own) { own.disabled = true; own.title = _("Your booking"); own.classList.add("of-own"); }
        state.moveLoads += 1;
      },
      stale: function () {},
    });
    dateInput.addEventListener("change", function () { chosen = null; submit.disabled = true; picker.load(); });
    submit.addEventListener("click", function () {
      if (!chosen) { return; }
      submit.disabled = true;
      api(fill(config.booking, booking.code), {
        method: "PATCH",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify({start: chosen.start, service: booking.service}),
      }).then(function (answer) {
        state.booking = answer.body;
        showConfirmation(box, answer.body, _("Your visit is moved to %(time)s. Your confirmation code stays the same.",
          {time: formatTime(answer.body.start, zone, true)}));
      }).catch(function (error) {
        failed(mover, friendly(error, "move"));
        if (error.status === 409 && error.body && error.body.reason === "slot_full") { picker.load(); }
        else { submit.disabled = false; }
      });
    });
    picker.load();
    dateInput.focus();
  }

  function manage(event) {
    event.preventDefault();
    var box = $("of-manage-result");
    var code = $("of-manage-code").value.trim();
    if (!code) { clear(box).appendChild(el("p", {className: "of-error"}, [_("Type the confirmation code of your booking.")])); return; }
    api(fill(config.booking, code)).then(function (answer) {
      showConfirmation(box, answer.body);
    }).catch(function (error) { clear(box).appendChild(el("p", {className: "of-error", role: "alert"}, [friendly(error, "booking")])); });
  }

  // ---- start -----------------------------------------------------------------------------------
  function start(leafletMap, pageConfig) {
    map = leafletMap;
    config = pageConfig;
    L.control.zoom({position: "topright"}).addTo(map);
    markers = L.featureGroup().addTo(map);
    bookingPicker = slotPicker({
      box: $("of-slots"), dateInput: $("of-book-date"),
      code: function () { return state.selected.code; },
      service: function () { return $("of-book-service").value; },
      choose: chooseSlot,
      loaded: function () { state.slotLoads += 1; },
      stale: function () { state.staleSlotLoads += 1; },
    });
    $("of-search").addEventListener("submit", function (event) {
      event.preventDefault();
      var q = $("of-q").value.trim();
      if (q.length < 3) { status(_("Type at least three letters of a street, or use Locate me."), true); return; }
      search({q: q});
    });
    $("of-q").addEventListener("input", suggest);
    $("of-locate").addEventListener("click", locate);
    $("of-back").addEventListener("click", function () { showView(false); });
    $("of-grip").addEventListener("click", function () { $("of-panel").classList.toggle("of-expanded"); });
    $("of-book-service").addEventListener("change", loadSlots);
    $("of-book-date").addEventListener("change", loadSlots);
    $("of-book").addEventListener("submit", book);
    $("of-manage-form").addEventListener("submit", manage);
    ["of-service", "of-open-now"].forEach(function (id) {
      $(id).addEventListener("change", function () {
        if (state.origin) { search({lon: state.origin.lon, lat: state.origin.lat}, state.origin.address || _("your location")); }
        else if (config.hasOutlets) { search({lon: config.centre[0].toFixed(6), lat: config.centre[1].toFixed(6)}, null); }
      });
    });
    if (config.hasOutlets) {
      search({lon: config.centre[0].toFixed(6), lat: config.centre[1].toFixed(6)}, null);
    } else {
      status(_("No outlets have been set up yet."));
      state.searches += 1;
    }
  }

  /* The circle markers on the map as {kind: "origin" | "outlet", lat, lon} (the map draws on a canvas). */
  function drawn() {
    var found = [];
    map.eachLayer(function (layer) {
      if (layer instanceof L.CircleMarker) {
        var at = layer.getLatLng();
        found.push({kind: layer.options.fillColor === COLOURS.origin ? "origin" : "outlet", lat: at.lat, lon: at.lng});
      }
    });
    return found;
  }

  window.OutletFinder = {start: start, state: state, search: search, select: select, drawn: drawn};
})();
