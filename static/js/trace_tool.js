/*
 * The dispatcher's trace tool on /map/network, built on window.GridAtlas (network_map.js).
 *
 * A panel (top left) picks a trace: Downstream, Upstream, Isolation or Connected. With
 * "Trace on click" on, a click on an element runs that trace through /api/trace/<trace>/<code>
 * and highlights the answer (a halo under the network, from ?format=geojson) with a summary in
 * the panel: the customers cut, the path with its protective devices nearest first, the
 * devices that isolate a fault. De-energised elements in view are drawn grey (from
 * /api/network/deenergised?bbox=, through GridAtlas.styleHooks). A click on a breaker,
 * recloser, switch or fuse also offers to operate it (POST /api/switching, with a reason);
 * the answer lists the customers who lost and regained supply, and the map redraws.
 *
 * "Restoration" lists the ranked switching plans after a fault on the clicked element
 * (GET /api/restoration/<code>; its faulted zone is the halo): per plan the switches to open and
 * to close, the customers each step restores, the load transferred and the limiting element's
 * headroom, and why an infeasible one is. Picking a plan rings its switches on the map (to open:
 * dashed red; to close: solid green; a legend line in the panel), "Simulate" applies it to a copy
 * (POST .../simulate) and, for those who may switch, "Execute plan" posts all its operations as
 * one POST /api/switching with a reason, after which the map and the plans are redrawn.
 *
 * The script reads its API root from its data-api attribute, and whether the signed-in account
 * may operate switchgear from data-can-switch (the page loads the tool only for those who may
 * trace: dispatchers and planners). window.GridAtlas.trace exposes
 * {state, run(code, trace), select(code), operate(code, action, reason), clear(),
 * refreshSupply(), selectPlan(index), simulate(), execute(reason)} for tests and other tools;
 * state.busy counts requests in flight and state.runs / state.supplyLoads / state.simulations /
 * state.executions count completed traces, de-energised reloads, simulations and executed plans;
 * state.planMarks lists the chosen plan's switches ({code, action, drawn, color, dashArray}).
 * Texts come from the page's catalog (static/js/i18n.js): _html() and ngettext_html() escape
 * the text and take HTML parameters.
 */
(function () {
  "use strict";

  var GA = window.GridAtlas;
  var I18N = window.GridAtlasI18n, _ = I18N._, _html = I18N._html, ngettext_html = I18N.ngettext_html;
  var script = document.currentScript;
  var API = (script && script.getAttribute("data-api")) || "/api";
  var LIVE_EVERY_MS = 1000;
  var CAN_SWITCH = !!script && script.getAttribute("data-can-switch") === "true";
  var GREY = (GA.colours && GA.colours.deenergised) || "#9e9e9e";
  var GEAR = {breaker: true, recloser: true, "switch": true, fuse: true};
  var TRACES = [
    {name: "downstream", label: _("Downstream"), hint: _("what loses supply if it opens or fails")},
    {name: "upstream", label: _("Upstream"), hint: _("the path to its source and the protection on it")},
    {name: "isolation", label: _("Isolation"), hint: _("the switches that isolate a fault on it")},
    {name: "connected", label: _("Connected"), hint: _("everything joined to it, switch states ignored")},
    {name: "restoration", label: _("Restoration"), hint: _("the switching that gives supply back after a fault on it")},
  ];
  // Halo colours by role (the role property of each feature of a trace's GeoJSON): vivid
  // colours outside the feeder palette, red kept for the devices to open.
  // What a device kind and a switch state read as (the API sends the codes).
  var KINDS = {breaker: _("breaker"), recloser: _("recloser"), "switch": _("switch"), fuse: _("fuse"),
               transformer: _("transformer"), substation: _("substation")};
  var STATES = {open: _("open"), closed: _("closed")};
  var SIDES = {supply: _("supply side"), load: _("load side")};
  var ROLES = {
    downstream: "#ff00c8", affected: "#ff00c8", zone: "#ff00c8", path: "#00b7ff", protective: "#00b7ff",
    isolate: "#d62728", already_open: "#d62728", connected: "#7fff00",
  };
  // A restoration plan's switches: those to open a dashed red ring, those to close a solid green disc.
  var PLAN_STYLES = {
    open: {radius: 16, color: "#d62728", weight: 4, opacity: 1, dashArray: "5 4", fill: false},
    close: {radius: 16, color: "#1a9850", weight: 5, opacity: 1, fillColor: "#1a9850", fillOpacity: 0.35},
  };
  var RESOURCE_KINDS = {feeder: _("feeder"), segment: _("segment"), transformer: _("transformer")};

  var state = {trace: "downstream", armed: true, selected: null, result: null, busy: 0, runs: 0, liveSwitching: 0,
               supplyLoads: 0, deenergised: {}, supply: null, error: null, switching: null,
               plan: null, planMarks: [], simulation: null, simulations: 0, executions: 0};
  var highlight = null, planLayer = null, panel = null, supplyRequest = null;

  // ---- helpers ----
  var escapeHtml = I18N.escapeHtml;

  function number(n) { return I18N.formatNumber(n || 0); }

  function kind(code) { return KINDS[code] || code; }

  function stateLabel(code) { return STATES[code] || code; }

  function codeHtml(value) { return "<code>" + escapeHtml(value) + "</code>"; }

  function strong(html) { return "<strong>" + html + "</strong>"; }

  /* "<n> customers" and the other counted things, as HTML. */
  function counted(n, what) {
    var num = escapeHtml(number(n));
    switch (what) {
      case "customer": return ngettext_html("%(num)s customer", "%(num)s customers", n, {num: num});
      case "segment": return ngettext_html("%(num)s segment", "%(num)s segments", n, {num: num});
      case "device": return ngettext_html("%(num)s device", "%(num)s devices", n, {num: num});
      case "node": return ngettext_html("%(num)s node", "%(num)s nodes", n, {num: num});
      case "element": return ngettext_html("%(num)s element", "%(num)s elements", n, {num: num});
      default: return ngettext_html("%(num)s open device", "%(num)s open devices", n, {num: num});
    }
  }

  function request(url, options) {
    state.busy += 1;
    return fetch(url, options).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          var error = new Error(body.detail || response.statusText);
          error.status = response.status;
          throw error;
        }
        return body;
      });
    }).finally(function () { state.busy -= 1; });
  }

  function traceUrl(trace, code, format) {
    return API + "/trace/" + trace + "/" + encodeURIComponent(code) + (format ? "?format=" + format : "");
  }

  function codeList(codes, limit) {
    limit = limit || 12;
    var shown = codes.slice(0, limit).map(codeHtml).join(escapeHtml(_(", ")));
    return codes.length > limit ? _html("%(codes)s and %(more)s more", {codes: shown, more: escapeHtml(number(codes.length - limit))}) : shown;
  }

  // ---- de-energised elements drawn grey ----
  function greyHook(kind) {
    return function (feature) {
      if (!state.deenergised[feature.id]) { return null; }
      if (kind === "line") { return {color: GREY, opacity: 0.9}; }
      if (kind === "customer") { return {fillColor: GREY}; }
      var open = feature.properties && feature.properties.current_state === "open";
      return open ? {color: GREY} : {fillColor: GREY};
    };
  }

  GA.styleHooks.segments = greyHook("line");
  GA.styleHooks.switchgear = greyHook("device");
  GA.styleHooks.transformers = greyHook("device");
  GA.styleHooks.customers = greyHook("customer");

  function refreshSupply() {
    var bbox = GA.state.bbox;
    if (supplyRequest) { supplyRequest.abort(); }
    var controller = supplyRequest = new AbortController();
    var dead = bbox ? request(API + "/network/deenergised?bbox=" + bbox.map(function (v) { return v.toFixed(6); }).join(","),
                              {signal: controller.signal})
                    : Promise.resolve({features: []});
    var summary = request(API + "/network/supply", {signal: controller.signal});
    return Promise.all([dead, summary]).then(function (answers) {
      var codes = {};
      answers[0].features.forEach(function (f) { codes[f.id] = true; });
      state.deenergised = codes;
      state.supply = answers[1];
      GA.restyle();
      state.supplyLoads += 1;
      render();
    }).catch(function (error) {
      if (error.name !== "AbortError") { state.error = _("De-energised elements: %(error)s", {error: error.message}); render(); }
    });
  }

  // ---- traces ----
  function featureStyle(feature) {
    var colour = ROLES[feature.properties.role] || ROLES.affected;
    if (feature.geometry.type === "LineString") {
      return {color: colour, weight: 12, opacity: 0.45, lineCap: "round"};
    }
    var device = feature.properties.element === "device";
    return {radius: device ? 13 : 6, color: colour, weight: device ? 4 : 1.5, opacity: device ? 0.9 : 0.7,
            fillColor: colour, fillOpacity: feature.properties.role === "isolate" ? 0.15 : 0.3};
  }

  function drawHighlight(collection) {
    if (highlight) { GA.map.removeLayer(highlight); }
    highlight = L.geoJSON(collection, {
      renderer: GA.renderer, style: featureStyle, interactive: false,
      pointToLayer: function (feature, latlng) {
        return L.circleMarker(latlng, L.extend({renderer: GA.renderer, interactive: false}, featureStyle(feature)));
      },
    }).addTo(GA.map);
    GA.restack();  // the network draws over its halo
    state.highlighted = collection.features.length;
    state.truncated = collection.truncated;
  }

  function run(code, trace) {
    trace = trace || state.trace;
    state.trace = trace;
    state.error = null;
    state.result = null;
    clearPlan();
    render();
    var restoring = trace === "restoration";
    var json = restoring ? request(API + "/restoration/" + encodeURIComponent(code))
                         : request(traceUrl(trace, code) + (trace === "connected" ? "?lists=false" : ""));
    // A restoration's halo is the faulted zone (its isolation trace); the plan's switches are drawn apart.
    var geojson = request(traceUrl(restoring ? "isolation" : trace, code, "geojson"), {headers: {Accept: "application/geo+json"}});
    return Promise.all([json, geojson]).then(function (answers) {
      state.result = {trace: trace, code: code, body: restoring ? ranked(answers[0]) : answers[0]};
      var collection = answers[1];
      if (restoring) {
        collection = L.extend({}, collection, {features: collection.features.filter(function (f) {
          return f.properties.role === "zone" || f.properties.role === "affected";
        })});
      }
      drawHighlight(collection);
    }).catch(function (error) {
      state.error = error.message;
      if (highlight) { GA.map.removeLayer(highlight); highlight = null; }
    }).then(function () { state.runs += 1; render(); });
  }

  // ---- restoration plans ----
  /* The server ranks the plans; feasible ones are kept first whatever the order it sends. */
  function ranked(body) {
    var plans = (body.plans || []).map(function (plan, i) { return {plan: plan, i: i}; });
    plans.sort(function (a, b) { return (a.plan.feasible === b.plan.feasible) ? a.i - b.i : (a.plan.feasible ? -1 : 1); });
    return L.extend({}, body, {plans: plans.map(function (p) { return p.plan; })});
  }

  function currentPlan() {
    var result = state.result;
    return result && result.trace === "restoration" && state.plan !== null ? result.body.plans[state.plan] : null;
  }

  function clearPlan() {
    state.plan = null;
    state.simulation = null;
    state.planMarks = [];
    if (planLayer) { GA.map.removeLayer(planLayer); planLayer = null; }
  }

  /* A ring on each of the plan's switches drawn on the map (a switch not in view is marked so). */
  function drawPlan() {
    var plan = currentPlan();
    if (planLayer) { GA.map.removeLayer(planLayer); planLayer = null; }
    state.planMarks = [];
    if (!plan) { return; }
    planLayer = L.layerGroup();
    [["open", plan.open], ["close", plan.close]].forEach(function (pair) {
      pair[1].forEach(function (code) {
        var hit = GA.findFeature(code);
        var latlng = hit && hit.layer.getLatLng ? hit.layer.getLatLng() : null;
        var style = PLAN_STYLES[pair[0]];
        state.planMarks.push({code: code, action: pair[0], drawn: !!latlng, color: style.color,
                              dashArray: style.dashArray || null});
        if (!latlng) { return; }
        L.circleMarker(latlng, L.extend({renderer: GA.renderer, interactive: false}, style))
          .bindTooltip(escapeHtml(code), {permanent: true, direction: "right", offset: [14, 0],
                                          className: "ga-plan-label ga-plan-" + pair[0]})
          .addTo(planLayer);
      });
    });
    planLayer.addTo(GA.map);
    GA.restack();
  }

  function selectPlan(index) {
    state.plan = index;
    state.simulation = null;
    drawPlan();
    render();
  }

  function simulate() {
    var plan = currentPlan(), code = state.result.code;
    state.error = null;
    render();
    return request(API + "/restoration/" + encodeURIComponent(code) + "/simulate", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({open: plan.open, close: plan.close}),
    }).then(function (answer) {
      if (currentPlan() === plan) { state.simulation = answer; }
    }).catch(function (error) {
      state.error = _("Simulation refused: %(error)s", {error: error.message});
    }).then(function () { state.simulations += 1; render(); });
  }

  /* The plan as one atomic switching operation (the opens, then the closes), then the map and
   * the plans redrawn against the new state. */
  function execute(reason) {
    var plan = currentPlan();
    state.error = null;
    render();
    var operations = plan.open.map(function (device) { return {device: device, action: "open"}; })
      .concat(plan.close.map(function (device) { return {device: device, action: "close"}; }));
    return request(API + "/switching", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({operations: operations, reason: reason}),
    }).then(function (answer) {
      state.switching = answer;
      state.executions += 1;
      countOpen(answer.devices);
      return GA.refresh().then(function () { return state.selected ? run(state.selected.code) : null; });
    }).catch(function (error) {
      state.error = _("Switching refused: %(error)s", {error: error.message});
      render();
    });
  }

  function onExecute(event) {
    event.preventDefault();
    var reason = event.target.querySelector("[name=reason]").value.trim();
    if (!reason) {
      state.error = _("Say why the plan is executed.");
      render();
      return;
    }
    execute(reason);
  }

  function select(code, layerName, feature) {
    var hit = feature ? {feature: feature, layerName: layerName} : GA.findFeature(code);
    var p = hit && hit.feature ? hit.feature.properties : {};
    state.selected = {code: code, layer: hit ? hit.layerName : null, kind: p.kind || null,
                      state: p.current_state || null};
    state.switching = null;
    return run(code);
  }

  function clear() {
    state.selected = null;
    state.result = null;
    state.error = null;
    state.switching = null;
    clearPlan();
    if (highlight) { GA.map.removeLayer(highlight); highlight = null; }
    render();
  }

  // ---- switching ----
  // The operator recorded is the signed-in account (the server's choice, not the page's).
  function operate(code, action, reason) {
    state.error = null;
    render();
    var body = {operations: [{device: code, action: action}], reason: reason};
    return request(API + "/switching", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
    }).then(function (answer) {
      state.switching = answer;
      countOpen(answer.devices);
      if (state.selected && state.selected.code === code) {
        state.selected.state = answer.devices[0].to_state;
      }
      return GA.refresh().then(function () { return state.selected ? run(state.selected.code) : null; });
    }).catch(function (error) {
      state.error = _("Switching refused: %(error)s", {error: error.message});
      render();
    });
  }

  // The title bar's count of open switchgear follows the operations made here (the page drew it
  // when it loaded; another dispatcher's operations show at the next load).
  function countOpen(devices) {
    var item = document.querySelector(".ga-summary li[data-open]");
    if (!item) { return; }
    var n = parseInt(item.getAttribute("data-open"), 10) || 0;
    devices.forEach(function (d) { n += d.to_state === "open" ? 1 : -1; });
    n = Math.max(n, 0);
    item.setAttribute("data-open", String(n));
    item.classList.toggle("ga-open", n > 0);
    item.innerHTML = ngettext_html("%(num)s open switch", "%(num)s open switches", n,
                                   {num: "<strong>" + escapeHtml(number(n)) + "</strong>"});
  }

  function onOperate(event) {
    event.preventDefault();
    var form = event.target, selected = state.selected;
    var reason = form.querySelector("[name=reason]").value.trim();
    if (!reason) {
      state.error = _("Say why the device is operated.");
      render();
      return;
    }
    operate(selected.code, selected.state === "open" ? "close" : "open", reason);
  }

  // ---- the panel ----
  function summaryHtml() {
    var supply = state.supply;
    if (!supply) { return ""; }
    var dead = supply.deenergised_customers;
    return '<p class="ga-trace-supply' + (dead ? " ga-trace-dead" : "") + '">' +
      (dead ? ngettext_html("%(num)s customer without supply", "%(num)s customers without supply", dead,
                            {num: strong(escapeHtml(number(dead)))})
            : _html("Every customer is supplied")) +
      (supply.radial ? "" : ' · <span class="ga-open">' + _html("meshed (a tie is closed)") + "</span>") + "</p>";
  }

  function resultHtml() {
    var result = state.result;
    if (!result) { return ""; }
    var b = result.body, html = "";
    if (result.trace === "downstream") {
      var params = {customers: strong(counted(b.customer_count, "customer")), element: codeHtml(b.element)};
      html = "<p>" + (GEAR[b.element_type] ? _html("%(customers)s lose supply if %(element)s opens.", params)
                                            : _html("%(customers)s lose supply if %(element)s fails.", params)) + "</p>" +
        "<p class=\"ga-trace-muted\">" + _html("%(segments)s, %(devices)s de-energised", {
          segments: counted(b.segment_count, "segment"), devices: counted(b.device_count, "device")}) + "</p>" +
        feederList(b.by_feeder);
    } else if (result.trace === "upstream") {
      if (!b.energised) {
        html = "<p>" + _html("%(element)s is not energised: no path to a source.", {element: codeHtml(b.element)}) + "</p>";
      } else {
        html = "<p>" + _html("Fed from %(source)s over %(elements)s.", {
          source: strong(escapeHtml(b.source || b.nodes[b.nodes.length - 1])), elements: counted(b.path.length, "element")}) +
          "</p><h3>" + _html("Protective devices, nearest first") + "</h3>" +
          (b.protective_devices.length
            ? "<ol class=\"ga-trace-list\">" + b.protective_devices.map(function (d) {
                return "<li>" + codeHtml(d.code) + " " + escapeHtml(kind(d.kind)) +
                  (d.state === "open" ? ' <span class="ga-open">' + escapeHtml(stateLabel("open")) + "</span>" : "") + "</li>";
              }).join("") + "</ol>"
            : "<p class=\"ga-trace-muted\">" + _html("none") + "</p>");
      }
    } else if (result.trace === "isolation") {
      html = (b.isolable ? "" : '<p class="ga-error">' + _html("A source lies inside the zone (%(sources)s): switching cannot isolate it.",
                                                                {sources: codeList(b.sources_inside)}) + "</p>") +
        "<h3>" + _html("Open to isolate") + "</h3>" +
        (b.devices.length
          ? "<ul class=\"ga-trace-list\">" + b.devices.map(function (d) {
              return "<li>" + codeHtml(d.code) + " " + escapeHtml(kind(d.kind)) + " <span class=\"ga-trace-muted\">(" +
                escapeHtml(SIDES[d.side] || d.side) + ")</span></li>";
            }).join("") + "</ul>"
          : "<p class=\"ga-trace-muted\">" + _html("nothing to open") + "</p>") +
        (b.already_open.length ? "<p>" + _html("Already open: %(codes)s", {codes: codeList(b.already_open)}) + "</p>" : "") +
        "<p>" + _html("Costs %(customers)s; the zone holds %(nodes)s and %(segments)s.", {
          customers: strong(counted(b.customer_count, "customer")), nodes: counted(b.zone.node_count, "node"),
          segments: counted(b.zone.segment_count, "segment")}) + "</p>";
    } else if (result.trace === "restoration") {
      html = restorationHtml(b);
    } else {
      var connected = {nodes: counted(b.node_count, "node"), segments: counted(b.segment_count, "segment"),
                       devices: counted(b.device_count, "device"), customers: strong(counted(b.customer_count, "customer")),
                       element: codeHtml(b.element), open: counted(b.open_device_count, "open device")};
      html = "<p>" + (b.open_device_count
        ? _html("%(nodes)s, %(segments)s, %(devices)s and %(customers)s are connected to %(element)s through %(open)s.", connected)
        : _html("%(nodes)s, %(segments)s, %(devices)s and %(customers)s are connected to %(element)s.", connected)) + "</p>";
    }
    if (state.truncated) {
      html += '<p class="ga-hint">' + _html("The map shows the first %(count)s elements.", {count: escapeHtml(number(state.highlighted))}) + "</p>";
    }
    return '<div class="ga-trace-result" data-trace="' + result.trace + '">' + html + "</div>";
  }

  function kw(value) { return escapeHtml(I18N.formatNumber(value || 0, {maximumFractionDigits: 1})); }

  function percent(value) { return escapeHtml(I18N.formatNumber((value || 0) / 100, {style: "percent", maximumFractionDigits: 0})); }

  function restorationHtml(b) {
    var html = "<p>" + _html("%(customers)s in the faulted zone: no switching restores them.", {
        customers: strong(counted(b.faulted.customer_count, "customer"))}) + "</p>" +
      "<p>" + _html("%(healthy)s off once it is isolated; %(unrestorable)s that no plan restores.", {
        healthy: strong(counted(b.healthy.customer_count, "customer")),
        unrestorable: strong(counted(b.unrestorable.customer_count, "customer"))}) + "</p>";
    if (b.unrestorable.customer_count) {
      html += '<p class="ga-trace-muted">' + _html("Unrestorable: %(codes)s", {codes: codeList(b.unrestorable.customers, 8)}) + "</p>";
    }
    var assumed = b.assumptions && b.assumptions.customers_without_demand;
    if (assumed) {
      html += '<p class="ga-hint">' + ngettext_html("%(num)s customer without a known demand counted at %(kw)s kW",
        "%(num)s customers without a known demand counted at %(kw)s kW", assumed, {kw: kw(b.assumptions.demand_assumed_kw)}) + "</p>";
    }
    if (!b.plans.length) {
      return html + '<p class="ga-trace-muted">' + (b.healthy.customer_count ? _html("No plan: no open switch re-feeds the healthy customers.")
                                                                                 : _html("No plan needed: isolating it leaves no healthy customer off.")) + "</p>";
    }
    return html + "<h3>" + _html("Plans, best first") + '</h3><ol class="ga-rest-plans">' +
      b.plans.map(planHtml).join("") + "</ol>";
  }

  function planHtml(plan, i) {
    var chosen = state.plan === i;
    var head = plan.headroom;
    var html = '<li class="ga-rest-plan' + (plan.feasible ? "" : " ga-rest-infeasible") + (chosen ? " ga-rest-chosen" : "") +
      '" data-plan="' + i + '"><button type="button" class="ga-rest-pick" data-plan="' + i + '" aria-pressed="' + chosen + '">' +
      strong(_html("Plan %(rank)s", {rank: escapeHtml(number(i + 1))})) + " " +
      (plan.feasible ? '<span class="ga-rest-ok">' + _html("feasible") + "</span>"
                     : '<span class="ga-rest-bad">' + _html("overloads") + "</span>") + " · " +
      _html("restores %(customers)s", {customers: counted(plan.customer_count, "customer")}) + "</button>" +
      '<p><span class="ga-rest-key ga-rest-key-open"></span>' + _html("Open: %(codes)s", {codes: plan.open.length ? codeList(plan.open) : _html("none")}) +
      '<br><span class="ga-rest-key ga-rest-key-close"></span>' + _html("Close: %(codes)s", {codes: plan.close.length ? codeList(plan.close) : _html("none")}) + "</p>" +
      '<ol class="ga-trace-list ga-rest-steps">' + plan.steps.map(function (step) {
        return "<li>" + (step.action === "open" ? _html("open %(device)s", {device: codeHtml(step.device)})
          : _html("close %(device)s: restores %(customers)s", {device: codeHtml(step.device), customers: strong(counted(step.customer_count, "customer"))})) + "</li>";
      }).join("") + "</ol><p>" +
      (head ? _html("Transfers %(load)s kW; headroom %(headroom)s kW (%(percent)s) on %(kind)s %(element)s.", {
                load: kw(plan.transferred_kw), headroom: kw(head.kw), percent: percent(head.percent),
                kind: escapeHtml(RESOURCE_KINDS[head.kind] || head.kind), element: codeHtml(head.element)})
            : _html("Transfers %(load)s kW; nothing on its way has a rating.", {load: kw(plan.transferred_kw)})) + "</p>" +
      (plan.reasons.length ? '<ul class="ga-trace-list ga-error">' + plan.reasons.map(function (reason) {
        return "<li>" + escapeHtml(reason) + "</li>"; }).join("") + "</ul>" : "");
    return html + (chosen ? planActionsHtml(plan) : "") + "</li>";
  }

  function planActionsHtml(plan) {
    var missing = state.planMarks.filter(function (m) { return !m.drawn; }).map(function (m) { return m.code; });
    var html = '<div class="ga-rest-actions"><p class="ga-rest-legend">' +
      '<span class="ga-rest-ring ga-rest-ring-open"></span>' + _html("to open") +
      ' <span class="ga-rest-ring ga-rest-ring-close"></span>' + _html("to close") + "</p>" +
      (missing.length ? '<p class="ga-hint">' + _html("Not in view: %(codes)s", {codes: codeList(missing)}) + "</p>" : "") +
      '<button type="button" class="ga-rest-simulate"' + (state.busy ? " disabled" : "") + ">" + _html("Simulate") + "</button>";
    var sim = state.simulation;
    if (sim) {
      html += '<div class="ga-rest-simulation">' +
        (sim.isolates ? "" : '<p class="ga-error">' + _html("This plan leaves the fault energised.") + "</p>") +
        "<p>" + _html("Applied, it leaves %(customers)s without supply.", {customers: strong(counted(sim.customers_off, "customer"))}) + "</p>" +
        "<p>" + supplyChange(_html("Regained supply: %(customers)s", {customers: strong(counted(sim.restored.customer_count, "customer"))}), sim.restored) +
        "<br>" + supplyChange(_html("Lost supply: %(customers)s", {customers: strong(counted(sim.lost.customer_count, "customer"))}), sim.lost) + "</p></div>";
    }
    if (CAN_SWITCH) {
      html += '<form class="ga-rest-execute">' +
        (plan.feasible ? "" : '<p class="ga-error">' + _html("This plan overloads what would carry it.") + "</p>") +
        "<label>" + _html("Reason") + ' <input name="reason" required maxlength="500" placeholder="' + escapeHtml(_("why")) + '"></label>' +
        '<button type="submit"' + (state.busy ? " disabled" : "") + ">" + _html("Execute plan") + "</button></form>";
    }
    return html + "</div>";
  }

  function feederList(byFeeder) {
    var names = Object.keys(byFeeder || {});
    if (names.length < 2) { return ""; }
    return "<ul class=\"ga-trace-list\">" + names.map(function (name) {
      return "<li>" + escapeHtml(name) + ": " + number(byFeeder[name]) + "</li>";
    }).join("") + "</ul>";
  }

  /* "Lost supply: <n> customers (C1, C2)" */
  function supplyChange(html, change) {
    return html + (change.customer_count ? " (" + codeList(change.customers, 8) + ")" : "");
  }

  function switchingHtml() {
    var selected = state.selected, html = "";
    var done = state.switching;
    if (done) {
      html += '<div class="ga-trace-switched"><p><strong>' + escapeHtml(done.devices.map(function (d) {
        return d.to_state === "open" ? _("%(device)s opened", {device: d.code}) : _("%(device)s closed", {device: d.code});
      }).join(_(", "))) + "</strong></p><p>" + supplyChange(_html("Lost supply: %(customers)s", {customers: strong(counted(done.lost.customer_count, "customer"))}), done.lost) +
        "<br>" + supplyChange(_html("Regained supply: %(customers)s", {customers: strong(counted(done.regained.customer_count, "customer"))}), done.regained) +
        "</p></div>";
    }
    if (!CAN_SWITCH || !selected || selected.layer !== "switchgear" || !GEAR[selected.kind] || state.trace === "restoration") { return html; }
    var action = selected.state === "open" ? "close" : "open";
    return html + '<form class="ga-trace-operate"><h3>' + _html("Operate %(device)s (%(state)s)", {
        device: codeHtml(selected.code), state: escapeHtml(stateLabel(selected.state || "?"))}) + "</h3>" +
      "<label>" + _html("Reason") + ' <input name="reason" required maxlength="500" placeholder="' + escapeHtml(_("why")) + '"></label>' +
      '<button type="submit" class="ga-trace-' + action + '"' + (state.busy ? " disabled" : "") + ">" +
      (action === "open" ? _html("Open %(device)s", {device: escapeHtml(selected.code)}) : _html("Close %(device)s", {device: escapeHtml(selected.code)})) +
      "</button></form>";
  }

  function render() {
    if (!panel) { return; }
    var traceButtons = TRACES.map(function (t) {
      return '<button type="button" data-trace="' + t.name + '" title="' + escapeHtml(t.hint) + '" aria-pressed="' +
        (state.trace === t.name) + '">' + escapeHtml(t.label) + "</button>";
    }).join("");
    var selected = state.selected
      ? '<p class="ga-trace-selected"><code>' + escapeHtml(state.selected.code) + "</code>" +
        (state.selected.kind ? " " + escapeHtml(kind(state.selected.kind)) : "") +
        ' <button type="button" class="ga-trace-clear">' + _html("Clear") + "</button></p>"
      : '<p class="ga-trace-muted">' + (state.armed ? _html("Click an element on the map.") : _html("Trace on click is off.")) + "</p>";
    panel.innerHTML = "<h2>" + _html("Trace") + "</h2>" + summaryHtml() +
      '<div class="ga-trace-modes" role="group" aria-label="' + escapeHtml(_("Trace")) + '">' + traceButtons + "</div>" +
      '<label class="ga-trace-armed"><input type="checkbox"' + (state.armed ? " checked" : "") +
      "> " + _html("Trace on click") + "</label>" + selected +
      (state.busy && !state.result ? '<p><span class="ga-spinner"></span> ' + _html("tracing…") + "</p>" : "") +
      (state.error ? '<p class="ga-error" role="alert">' + escapeHtml(state.error) + "</p>" : "") +
      resultHtml() + switchingHtml();
    panel.querySelectorAll(".ga-trace-modes button").forEach(function (button) {
      button.addEventListener("click", function () {
        state.trace = button.getAttribute("data-trace");
        if (state.selected) { run(state.selected.code); } else { render(); }
      });
    });
    panel.querySelector(".ga-trace-armed input").addEventListener("change", function (event) {
      state.armed = event.target.checked;
      render();
    });
    var clearButton = panel.querySelector(".ga-trace-clear");
    if (clearButton) { clearButton.addEventListener("click", clear); }
    var form = panel.querySelector(".ga-trace-operate");
    if (form) { form.addEventListener("submit", onOperate); }
    panel.querySelectorAll(".ga-rest-pick").forEach(function (button) {
      button.addEventListener("click", function () { selectPlan(parseInt(button.getAttribute("data-plan"), 10)); });
    });
    var simulateButton = panel.querySelector(".ga-rest-simulate");
    if (simulateButton) { simulateButton.addEventListener("click", simulate); }
    var executeForm = panel.querySelector(".ga-rest-execute");
    if (executeForm) { executeForm.addEventListener("submit", onExecute); }
    panel.classList.toggle("ga-trace-wide", state.trace === "restoration");
    fitPanel();
  }

  // The panel sits under the status panel, whose height changes with its notes: it scrolls
  // within what is left of the map below it (at 800 px high a fixed 70vh ran off the bottom).
  function fitPanel() {
    if (!panel || !GA.map) { return; }
    // above the bottom-left controls (the scale) when there are any
    var bottom = GA.map.getContainer().getBoundingClientRect().bottom;
    var corner = GA.map.getContainer().querySelector(".leaflet-bottom.leaflet-left");
    if (corner && corner.children.length) { bottom = Math.min(bottom, corner.getBoundingClientRect().top); }
    var room = bottom - panel.getBoundingClientRect().top - 10;
    panel.style.maxHeight = Math.max(120, Math.floor(room)) + "px";
  }

  var STYLE = [
    ".ga-trace { padding: 0.55rem 0.8rem 0.6rem; width: 17rem; max-height: 70vh; overflow-y: auto; font-size: 0.8rem; }",
    ".ga-trace h2 { margin: 0 0 0.3rem; font-size: 0.75rem; text-transform: uppercase; letter-spacing: 0.06em; color: var(--ga-muted, #5b6b7b); }",
    ".ga-trace h3 { margin: 0.5rem 0 0.2rem; font-size: 0.78rem; }",
    ".ga-trace p { margin: 0.3rem 0; }",
    ".ga-trace-modes { display: flex; flex-wrap: wrap; gap: 0.25rem; margin: 0.3rem 0; }",
    ".ga-trace-modes button { flex: 1 1 auto; padding: 0.2rem 0.4rem; border: 1px solid var(--ga-border, #d6dde4); border-radius: 4px; background: #fff; cursor: pointer; font: inherit; }",
    ".ga-trace-modes button[aria-pressed=true] { background: var(--ga-bar, #14213d); color: #fff; border-color: var(--ga-bar, #14213d); }",
    ".ga-trace-muted { color: var(--ga-muted, #5b6b7b); }",
    ".ga-trace-supply { padding: 0.25rem 0.4rem; border-radius: 4px; background: #eef7ee; }",
    ".ga-trace-supply.ga-trace-dead { background: #f1f1f1; border-left: 4px solid " + GREY + "; }",
    ".ga-trace-list { margin: 0.2rem 0; padding-left: 1.2rem; }",
    ".ga-trace-result { border-top: 1px solid var(--ga-border, #d6dde4); margin-top: 0.4rem; padding-top: 0.3rem; }",
    ".ga-trace-switched { background: #fff6e0; border-radius: 4px; padding: 0.2rem 0.4rem; margin-top: 0.4rem; }",
    ".ga-trace-operate { border-top: 1px solid var(--ga-border, #d6dde4); margin-top: 0.4rem; }",
    ".ga-trace-operate label { display: block; margin: 0.25rem 0; }",
    ".ga-trace-operate input { width: 100%; box-sizing: border-box; font: inherit; padding: 0.15rem 0.3rem; }",
    ".ga-trace-operate button { margin-top: 0.3rem; padding: 0.3rem 0.7rem; border: 0; border-radius: 4px; color: #fff; background: #0b7a75; font: inherit; cursor: pointer; }",
    ".ga-trace-operate button.ga-trace-open { background: #d62728; }",
    ".ga-trace-clear { margin-left: 0.3rem; font: inherit; font-size: 0.72rem; }",
    ".ga-trace.ga-trace-wide { width: 20rem; max-width: calc(100vw - 4.5rem); box-sizing: border-box; }",
    ".ga-rest-plans { margin: 0.2rem 0; padding: 0; list-style: none; }",
    ".ga-rest-plan { border: 1px solid var(--ga-border, #d6dde4); border-left: 4px solid #1a9850; border-radius: 4px; padding: 0.25rem 0.45rem; margin: 0.3rem 0; }",
    ".ga-rest-plan.ga-rest-infeasible { border-left-color: #d62728; }",
    ".ga-rest-plan.ga-rest-chosen { background: #f3f8fc; box-shadow: 0 0 0 2px var(--ga-bar, #14213d); }",
    ".ga-rest-plan p { margin: 0.2rem 0; }",
    ".ga-rest-pick { display: block; width: 100%; text-align: left; padding: 0.15rem 0; border: 0; background: none; font: inherit; cursor: pointer; }",
    ".ga-rest-ok { color: #1a7f37; font-weight: 600; }",
    ".ga-rest-bad { color: #d62728; font-weight: 600; }",
    ".ga-rest-key { display: inline-block; width: 0.6rem; height: 0.6rem; margin-right: 0.3rem; border-radius: 50%; vertical-align: -0.05rem; }",
    ".ga-rest-key-open, .ga-rest-ring-open { border: 2px dashed #d62728; background: none; }",
    ".ga-rest-key-close, .ga-rest-ring-close { border: 2px solid #1a9850; background: rgba(26, 152, 80, 0.35); }",
    ".ga-rest-ring { display: inline-block; width: 0.8rem; height: 0.8rem; border-radius: 50%; margin: 0 0.25rem 0 0.4rem; vertical-align: -0.15rem; box-sizing: border-box; }",
    ".ga-rest-legend .ga-rest-ring:first-child { margin-left: 0; }",
    ".ga-rest-actions { border-top: 1px solid var(--ga-border, #d6dde4); margin-top: 0.3rem; padding-top: 0.2rem; }",
    ".ga-rest-actions button { margin-top: 0.25rem; padding: 0.25rem 0.7rem; border: 0; border-radius: 4px; color: #fff; background: #0b7a75; font: inherit; cursor: pointer; }",
    ".ga-rest-execute button { background: #14213d; }",
    ".ga-rest-execute label { display: block; margin: 0.25rem 0; }",
    ".ga-rest-execute input { width: 100%; box-sizing: border-box; font: inherit; padding: 0.15rem 0.3rem; }",
    ".ga-rest-simulation { background: #fff6e0; border-radius: 4px; padding: 0.1rem 0.4rem; margin-top: 0.3rem; }",
    ".ga-plan-label { font-weight: 700; padding: 0 0.3rem; }",
    ".ga-plan-label.ga-plan-open { color: #d62728; border-color: #d62728; }",
    ".ga-plan-label.ga-plan-close { color: #1a7f37; border-color: #1a9850; }",
  ].join("\n");

  function panelControl() {
    var control = L.control({position: "topleft"});
    control.onAdd = function () {
      panel = L.DomUtil.create("div", "ga-panel ga-trace");
      panel.setAttribute("aria-label", _("Trace tool"));
      L.DomEvent.disableClickPropagation(panel);
      L.DomEvent.disableScrollPropagation(panel);
      render();
      return panel;
    };
    return control;
  }

  function start() {
    var style = document.createElement("style");
    style.textContent = STYLE;
    document.head.appendChild(style);
    panelControl().addTo(GA.map);
    GA.onFeatureClick(function (feature, layerName) {
      if (!state.armed || layerName === "substations" || layerName === "areas") { return true; }
      select(feature.id, layerName, feature);
      return false;  // the panel shows the answer instead of the popup
    });
    GA.onLoad(function () {
      fitPanel();
      refreshSupply();
      // a plan's switch out of view when it was drawn may have come into it
      if (currentPlan() && state.planMarks.some(function (m) { return !m.drawn; })) { drawPlan(); }
    });
    GA.map.on("resize", fitPanel);
    fitPanel();
    if (GA.state.loads > 0) { refreshSupply(); }
    // Switching anywhere (another dispatcher, another worker) redraws this map: static/js/live.js.
    if (window.GridAtlasLive) {
      window.GridAtlasLive.follow(API + "/live", {
        every: LIVE_EVERY_MS,
        onChange: function (kinds) {
          if (!Object.prototype.hasOwnProperty.call(kinds, "switching")) { return null; }
          state.liveSwitching += 1;
          return GA.refresh().then(function () { return state.selected ? run(state.selected.code) : null; });
        }
      });
    }
  }

  GA.trace = {state: state, run: run, select: select, operate: operate, clear: clear, refreshSupply: refreshSupply,
              selectPlan: selectPlan, simulate: simulate, execute: execute};
  if (GA.map) { start(); } else { document.addEventListener("DOMContentLoaded", start); }
})();
