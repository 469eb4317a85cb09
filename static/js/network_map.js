/*
 * GridAtlas network map (/map/network): draws the network's layers, fetched from
 * /api/network/<layer>?bbox=...&limit=... whenever the view changes, never embedded in the page;
 * far out (below config.tileZoom) the segments come as vector tiles from config.tiles.segments
 * (/tiles/segments/{z}/{x}/{y}.mvt), so that the whole city shows every segment.
 *
 * The page calls GridAtlas.start(map, config) once folium has built the Leaflet map. Tools that
 * build on this map (the trace tool, live switching) use window.GridAtlas:
 *
 *   GridAtlas.map                 the Leaflet map.
 *   GridAtlas.layers[name]        the Leaflet layer of each network layer; names: "areas",
 *                                 "segments", "transformers", "switchgear", "substations",
 *                                 "customers" (a marker-cluster group). Every drawn feature's
 *                                 Leaflet layer has .feature (the GeoJSON feature; id = element code).
 *   GridAtlas.features[name]      the GeoJSON features last loaded for that layer.
 *   GridAtlas.tileLayers[name]    the vector tile layer (Leaflet.VectorGrid) a layer draws from below
 *                                 a zoom (segments below config.tileZoom, customers below
 *                                 config.customerTileZoom: every one of them, never a truncated
 *                                 answer); above it the layer loads GeoJSON by bbox as before.
 *   GridAtlas.state               {loading, scheduled, loads, bbox, counts, truncated, hidden, tiled, errors};
 *                                 loads counts completed reloads; the map shows its view once
 *                                 loading is 0 and no reload is scheduled (tests wait on it).
 *   GridAtlas.onFeatureClick(fn)  fn(feature, layerName, leafletEvent) on a click on any feature;
 *                                 return false to suppress the default popup. Returns an unsubscribe.
 *   GridAtlas.onLoad(fn)          fn(state) after every completed reload. Returns an unsubscribe.
 *   GridAtlas.refresh()           reload the visible layers now (after a switching operation);
 *                                 returns a Promise resolved when they are drawn.
 *   GridAtlas.styleHooks[name]    optional fn(feature) -> Leaflet path options drawn over the
 *                                 default style (e.g. grey for de-energised elements);
 *                                 GridAtlas.restyle() redraws with them.
 *   GridAtlas.findFeature(code)   {feature, layerName, layer} of a drawn element, or null.
 *   GridAtlas.renderer            the one canvas every network layer draws on (a tool's clickable
 *                                 layers should use it too: only the topmost canvas gets clicks);
 *                                 GridAtlas.restack() restores the drawing order after adding to it.
 *   GridAtlas.control             the Leaflet layer control (addOverlay(layer, label) for a tool's layers).
 *   GridAtlas.legend              the legend's element; a tool may append its own section.
 *   GridAtlas.symbol(kind, open)  an inline SVG of a device symbol, as drawn on the map.
 *   GridAtlas.colours             the colours the map uses (open, deenergised, ...).
 * Event: document "gridatlas:load" (event.detail = GridAtlas.state) after each reload.
 */
(function () {
  "use strict";

  // Texts come from the page's catalog (static/js/i18n.js).
  var I18N = window.GridAtlasI18n, _ = I18N._, _html = I18N._html, ngettext_html = I18N.ngettext_html;
  var COLOURS = {
    open: "#d62728",          // open switchgear: a hollow red symbol
    deenergised: "#9e9e9e",   // reserved for de-energised elements (trace tool)
    halo: "#ffffff",
    customer: "#2f4858",
    substation: "#111111",
    area: "#5b7083",
  };
  // Each device kind has its own shape and fill; open ones are drawn hollow with a red ring.
  // Minor symbols (numerous, on the LV side) shrink when zoomed out so the MV network stays readable.
  var DEVICE_SYMBOLS = {
    breaker: {shape: "square", fill: "#1d3557", radius: 7, label: _("Breaker")},
    recloser: {shape: "diamond", fill: "#6a3d9a", radius: 8, label: _("Recloser")},
    "switch": {shape: "circle", fill: "#0b7a75", radius: 6, label: _("Switch")},
    fuse: {shape: "bar", fill: "#c77700", radius: 6, label: _("Fuse"), minor: true},
    // Larger than a fuse: a transformer's LV fuses often sit on it.
    transformer: {shape: "triangle", fill: "#8d5a2b", radius: 9, label: _("Transformer"), minor: true},
    substation: {shape: "square", fill: COLOURS.substation, radius: 10, label: _("Substation")},
  };
  // What each layer asks for by zoom: below config.overviewZoom the MV network and its open
  // points (ties, abnormally open switchgear); below config.detailZoom all MV switchgear and
  // the transformers; from there on the LV network and the customers too.
  function mvWhenFar(zoom) { return zoom < config.detailZoom ? {level: "mv"} : {}; }
  function switchgearWanted(zoom) {
    var wanted = L.extend({kind: "breaker,recloser,switch,fuse"}, mvWhenFar(zoom));
    return zoom < config.overviewZoom ? L.extend(wanted, {state: "open"}) : wanted;
  }
  // Drawn bottom to top (see restack). count(n, html) is "<n> areas" and so on, html being n as HTML.
  var LAYERS = [
    {name: "areas", label: _("Transformer areas"),
     count: function (n, html) { return ngettext_html("%(num)s area", "%(num)s areas", n, {num: html}); }, api: "transformer_areas",
     visible: false, minZoom: "overviewZoom"},
    // Below the detail zoom only the MV network is fetched: LV segments are nine in ten.
    {name: "segments", label: _("Feeders"), tiles: "segments", tilesBelow: "tileZoom", tileStyle: tileSegmentStyle,
     count: function (n, html) { return ngettext_html("%(num)s segment", "%(num)s segments", n, {num: html}); }, api: "segments",
     visible: true, params: mvWhenFar},
    {name: "customers", label: _("Customers"),
     count: function (n, html) { return ngettext_html("%(num)s customer", "%(num)s customers", n, {num: html}); }, api: "service_points",
     visible: true, cluster: true, minZoom: "detailZoom", tiles: "service_points", tilesBelow: "customerTileZoom",
     tileStyle: tileCustomerStyle},
    {name: "transformers", label: _("Transformers"),
     count: function (n, html) { return ngettext_html("%(num)s transformer", "%(num)s transformers", n, {num: html}); }, api: "transformers",
     visible: true, minZoom: "overviewZoom"},
    {name: "switchgear", label: _("Switchgear"),
     count: function (n, html) { return ngettext_html("%(num)s switching device", "%(num)s switching devices", n, {num: html}); }, api: "devices",
     visible: true, params: switchgearWanted},
    {name: "substations", label: _("Substations"),
     count: function (n, html) { return ngettext_html("%(num)s substation", "%(num)s substations", n, {num: html}); }, api: "substations",
     visible: true},
  ];

  var GridAtlas = window.GridAtlas = {
    map: null, layers: {}, features: {}, control: null, legend: null, styleHooks: {},
    colours: COLOURS, deviceSymbols: DEVICE_SYMBOLS,
    state: {loading: 0, scheduled: false, loads: 0, bbox: null, counts: {}, truncated: {}, hidden: {}, tiled: {}, errors: []},
    tileLayers: {},
  };
  var clickHandlers = [], loadHandlers = [], config = {}, fetched = {}, controllers = {}, moveTimer = null;

  // ---- symbols: circle markers drawn as squares, diamonds, triangles or bars (canvas and SVG) ----
  function shapePoints(shape, x, y, r) {
    switch (shape) {
      case "square": return [[x - r, y - r], [x + r, y - r], [x + r, y + r], [x - r, y + r]];
      case "diamond": return [[x, y - r], [x + r, y], [x, y + r], [x - r, y]];
      case "triangle": return [[x, y - r], [x + r, y + r * 0.8], [x - r, y + r * 0.8]];
      case "bar": var h = r * 0.45; return [[x - r, y - h], [x + r, y - h], [x + r, y + h], [x - r, y + h]];
      default: return null;
    }
  }

  var ShapeMarker = L.CircleMarker.extend({
    options: {shape: "circle"},
    _updatePath: function () {
      var renderer = this._renderer;
      var points = shapePoints(this.options.shape, this._point.x, this._point.y, this._radius);
      if (!points) { return L.CircleMarker.prototype._updatePath.call(this); }
      if (renderer instanceof L.Canvas) {
        if (!renderer._drawing || this._empty()) { return; }
        var ctx = renderer._ctx;
        ctx.beginPath();
        points.forEach(function (p, i) { if (i) { ctx.lineTo(p[0], p[1]); } else { ctx.moveTo(p[0], p[1]); } });
        ctx.closePath();
        renderer._fillStroke(ctx, this);
      } else {
        renderer._setPath(this, "M" + points.map(function (p) { return p[0] + "," + p[1]; }).join("L") + "z");
      }
    },
  });

  function symbolSvg(kind, open, size) {
    var symbol = DEVICE_SYMBOLS[kind] || DEVICE_SYMBOLS["switch"], s = size || 20, c = s / 2, r = s / 2 - 3;
    var fill = open ? COLOURS.halo : symbol.fill, stroke = open ? COLOURS.open : "#ffffff", width = open ? 2.5 : 1.5;
    var points = shapePoints(symbol.shape, c, c, r), body = points
      ? '<polygon points="' + points.map(function (p) { return p.join(","); }).join(" ") + '"'
      : '<circle cx="' + c + '" cy="' + c + '" r="' + r + '"';
    return '<svg class="ga-symbol" width="' + s + '" height="' + s + '" viewBox="0 0 ' + s + " " + s +
      '" aria-hidden="true">' + body + ' fill="' + fill + '" stroke="' + stroke + '" stroke-width="' + width +
      '"/></svg>';
  }
  GridAtlas.symbol = symbolSvg;

  // ---- styles ----
  function withHook(name, feature, options) {
    var hook = GridAtlas.styleHooks[name];
    return hook ? L.extend(options, hook(feature) || {}) : options;
  }

  function isLowVoltage(properties) { return properties.voltage_kv !== null && properties.voltage_kv <= 1; }

  function segmentStyle(feature) {
    var p = feature.properties, zoom = GridAtlas.map.getZoom(), mv = !isLowVoltage(p);
    var weight = mv ? (zoom >= 16 ? 5 : zoom >= 14 ? 3.5 : zoom >= 12.5 ? 2.5 : 1.5) : (zoom >= 17 ? 2.5 : 1.5);
    return withHook("segments", feature, {
      color: p.colour, weight: weight, opacity: p.in_service ? (mv ? 0.95 : 0.8) : 0.5,
      dashArray: p.in_service ? null : "4 4", lineCap: "round",
    });
  }

  // Symbols shrink when zoomed out so that the network stays readable: minor ones (numerous,
  // on the LV side) from the detail zoom down, the others from the overview zoom down.
  function symbolScale(symbol) {
    var from = symbol.minor ? config.detailZoom : config.overviewZoom, step = symbol.minor ? 0.4 : 0.2;
    return Math.max(0.4, Math.min(1, 1 - (from - GridAtlas.map.getZoom()) * step));
  }

  function deviceStyle(name, kind, feature) {
    var p = feature.properties, symbol = DEVICE_SYMBOLS[kind] || DEVICE_SYMBOLS["switch"];
    var open = p.current_state === "open" && kind !== "transformer" && kind !== "substation";
    return withHook(name, feature, {
      shape: symbol.shape, radius: symbol.radius * symbolScale(symbol),
      fillColor: open ? COLOURS.halo : symbol.fill, fillOpacity: p.in_service === false ? 0.4 : 1,
      color: open ? COLOURS.open : COLOURS.halo, weight: open ? 3 : 1.5, opacity: 1,
      dashArray: p.in_service === false ? "2 2" : null,
    });
  }

  // A segment of a vector tile (properties only; the overview's merged lines have no code).
  // De-energised ones are grey, as the trace tool draws them; LV faint under the MV network.
  function tileSegmentStyle(p, zoom) {
    var mv = p.level !== "lv", dead = p.energised === false;
    return {color: dead ? COLOURS.deenergised : p.colour, weight: mv ? (zoom >= 12.5 ? 2.5 : 1.5) : (dead ? 1.5 : 0.7),
            opacity: mv || dead ? 0.95 : 0.45, dashArray: p.in_service === false ? "4 4" : null, lineCap: "round"};
  }

  // A customer of a vector tile: a dot, as drawn unclustered.
  function tileCustomerStyle() {
    return {radius: 3, fill: true, fillColor: COLOURS.customer, fillOpacity: 0.9, color: COLOURS.halo, weight: 0.5};
  }

  function customerStyle(feature) {
    return withHook("customers", feature,
                    {radius: 4, fillColor: COLOURS.customer, fillOpacity: 0.9, color: COLOURS.halo, weight: 1});
  }

  function areaStyle(feature) {
    return withHook("areas", feature, {color: COLOURS.area, weight: 1, dashArray: "3 3", fillOpacity: 0.06});
  }

  var STYLE = {
    segments: segmentStyle,
    areas: areaStyle,
    customers: customerStyle,
    transformers: function (f) { return deviceStyle("transformers", "transformer", f); },
    switchgear: function (f) { return deviceStyle("switchgear", f.properties.kind, f); },
    substations: function (f) { return deviceStyle("substations", "substation", f); },
  };

  // ---- popups and the click hook ----
  function escapeHtml(value) {
    return String(value).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  var TITLES = {segments: _("Segment"), transformers: _("Transformer"), substations: _("Substation"),
                customers: _("Customer"), areas: _("Transformer area")};
  // The names of the properties a popup lists, and of the states of switchgear.
  var PROPERTIES = {
    name: _("name"), kind: _("kind"), feeder: _("feeder"), voltage_kv: _("voltage (kV)"), conductor: _("conductor"),
    length_m: _("length (m)"), in_service: _("in service"), normal_state: _("normal state"), current_state: _("current state"),
    rated_kva: _("rating (kVA)"), area: _("transformer area"), customers: _("customers"), substation: _("substation"),
    account_number: _("account number"), address: _("address"), transformer_area: _("transformer area"),
    transformer: _("transformer"), schematic: _("schematic layout"),
  };
  var VALUES = {open: _("open"), closed: _("closed"), "true": _("yes"), "false": _("no"), breaker: _("breaker"),
                recloser: _("recloser"), "switch": _("switch"), fuse: _("fuse"), transformer: _("transformer")};

  function valueText(value) { return Object.prototype.hasOwnProperty.call(VALUES, String(value)) ? VALUES[String(value)] : value; }

  function popupHtml(feature, name) {
    var p = feature.properties, title = name === "switchgear" ? (DEVICE_SYMBOLS[p.kind] || {}).label : TITLES[name];
    var state = "";
    if (name === "switchgear") {
      state = '<div class="ga-state ga-state-' + escapeHtml(p.current_state) + '">' +
        (p.current_state !== p.normal_state
          ? _html("%(state)s (normally %(normal)s)", {state: escapeHtml(valueText(p.current_state)), normal: escapeHtml(valueText(p.normal_state))})
          : escapeHtml(valueText(p.current_state))) + "</div>";
    }
    var rows = Object.keys(p).filter(function (k) {
      // "schematic" is said only where it is true: drawn from the graph, not surveyed
      return k !== "code" && k !== "colour" && p[k] !== null && p[k] !== "" && !(k === "schematic" && !p[k]);
    }).map(function (k) {
      return "<tr><th>" + escapeHtml(PROPERTIES[k] || k.replace(/_/g, " ")) + "</th><td>" + escapeHtml(valueText(p[k])) + "</td></tr>";
    });
    return '<div class="ga-popup"><h3>' + escapeHtml(title || name) + " " + escapeHtml(feature.id) + "</h3>" + state +
      '<table class="ga-props">' + rows.join("") + "</table></div>";
  }

  function onFeatureClick(name) {
    return function (feature, layer) {
      layer.on("click", function (event) {
        L.DomEvent.stopPropagation(event);
        var showPopup = true;
        clickHandlers.slice().forEach(function (fn) {
          if (fn(feature, name, event) === false) { showPopup = false; }
        });
        if (showPopup) {
          L.popup({maxWidth: 320}).setLatLng(event.latlng).setContent(popupHtml(feature, name)).openOn(GridAtlas.map);
        }
      });
    };
  }

  function subscribe(list, fn) {
    list.push(fn);
    return function () { var i = list.indexOf(fn); if (i >= 0) { list.splice(i, 1); } };
  }
  GridAtlas.onFeatureClick = function (fn) { return subscribe(clickHandlers, fn); };
  GridAtlas.onLoad = function (fn) { return subscribe(loadHandlers, fn); };

  // ---- layers ----
  // One canvas for every layer: Leaflet hands a click only to the topmost canvas, so layers on
  // canvases of their own could not all be clicked. The drawing order is kept by restack().
  function makeLayer(spec, renderer) {
    var geojson = {
      renderer: renderer, style: STYLE[spec.name], onEachFeature: onFeatureClick(spec.name),
      pointToLayer: function (feature, latlng) {
        var style = L.extend({renderer: renderer}, STYLE[spec.name](feature));
        return spec.name === "customers" ? L.circleMarker(latlng, style) : new ShapeMarker(latlng, style);
      },
    };
    if (spec.cluster) {
      var group = L.markerClusterGroup({
        chunkedLoading: true, showCoverageOnHover: false, disableClusteringAtZoom: 18, spiderfyOnMaxZoom: false,
        maxClusterRadius: function (zoom) { return zoom >= 17 ? 20 : zoom >= 16 ? 30 : 45; },
        iconCreateFunction: clusterIcon,
      });
      group.geojsonOptions = geojson;
      return group;
    }
    return L.geoJSON(null, geojson);
  }

  // Small, quiet cluster bubbles: a building's customers should not hide the street's network.
  function clusterIcon(cluster) {
    var count = cluster.getChildCount(), size = count < 10 ? 17 : count < 100 ? 24 : count < 1000 ? 30 : 36;
    return L.divIcon({html: "<span>" + count + "</span>", className: "ga-cluster", iconSize: L.point(size, size)});
  }

  // Bring the layers above LAYERS[index] back in front of whatever was just drawn, in order.
  // (Customers hidden in a cluster are not on the canvas: bringToFront passes over them.)
  function restack(index) {
    LAYERS.slice(index + 1).forEach(function (spec) {
      var layer = GridAtlas.layers[spec.name];
      if (!GridAtlas.map.hasLayer(layer)) { return; }
      layer.eachLayer(function (item) { if (item.bringToFront) { item.bringToFront(); } });
    });
  }
  GridAtlas.restack = function () { restack(-1); };

  function draw(spec, collection) {
    var layer = GridAtlas.layers[spec.name];
    GridAtlas.features[spec.name] = collection ? collection.features : [];
    layer.clearLayers();
    if (!collection) { return; }
    if (spec.cluster) {
      layer.addLayers(L.geoJSON(collection, layer.geojsonOptions).getLayers());
    } else {
      layer.addData(collection);
    }
    restack(LAYERS.indexOf(spec));
  }

  GridAtlas.restyle = function () {
    LAYERS.forEach(function (spec) {
      var layer = GridAtlas.layers[spec.name];
      layer.eachLayer(function (item) {
        if (item.feature && item.setStyle) { item.setStyle(STYLE[spec.name](item.feature)); }
      });
    });
  };

  GridAtlas.findFeature = function (code) {
    for (var i = 0; i < LAYERS.length; i++) {
      var name = LAYERS[i].name, found = null;
      GridAtlas.layers[name].eachLayer(function (item) {
        if (item.feature && item.feature.id === code) { found = item; }
      });
      if (found) { return {feature: found.feature, layerName: name, layer: found}; }
    }
    return null;
  };

  // ---- loading by bbox ----
  function clampedBounds(bounds) {
    var clamp = function (v, lo, hi) { return Math.min(hi, Math.max(lo, v)); };
    return [clamp(bounds.getWest(), -180, 180), clamp(bounds.getSouth(), -90, 90),
            clamp(bounds.getEast(), -180, 180), clamp(bounds.getNorth(), -90, 90)];
  }

  function covers(outer, inner) {
    return outer && outer[0] <= inner[0] && outer[1] <= inner[1] && outer[2] >= inner[2] && outer[3] >= inner[3];
  }

  function layerParams(spec) {
    var params = spec.params;
    return typeof params === "function" ? params(GridAtlas.map.getZoom()) : params || {};
  }

  function layerUrl(spec, bbox) {
    var params = L.extend({bbox: bbox.map(function (v) { return v.toFixed(6); }).join(","), limit: config.limit},
                          layerParams(spec));
    return config.layerUrl.replace("__layer__", spec.api) + L.Util.getParamString(params);
  }

  // Below config[spec.tilesBelow] a layer with tiles draws from them: the GeoJSON answer would be
  // cut at config.limit features (the 1M city's MV network alone is 58,000 segments; a
  // neighbourhood at zoom 16 over 20,000 customers).
  function useTiles(spec, zoom, hidden) {
    var tiles = GridAtlas.tileLayers[spec.name], map = GridAtlas.map;
    var wanted = Boolean(tiles) && !hidden && zoom < config[spec.tilesBelow] && map.hasLayer(GridAtlas.layers[spec.name]);
    if (wanted && !map.hasLayer(tiles)) { tiles.addTo(map); } else if (!wanted && tiles && map.hasLayer(tiles)) { map.removeLayer(tiles); }
    GridAtlas.state.tiled[spec.name] = wanted;
    return wanted;
  }

  function load(spec, bbox, force) {
    var zoom = GridAtlas.map.getZoom(), state = GridAtlas.state, previous = fetched[spec.name];
    state.hidden[spec.name] = Boolean(spec.minZoom && zoom < config[spec.minZoom]);
    if (useTiles(spec, zoom, state.hidden[spec.name])) {
      if (controllers[spec.name]) { controllers[spec.name].abort(); }
      fetched[spec.name] = null;
      draw(spec, null);
      state.counts[spec.name] = 0;
      state.truncated[spec.name] = false;
      // After a switching operation: the tiles' ETag has changed, each comes again (else a 304).
      // Removed and added, not redraw(): that asks for tiles of a fractional zoom (zoomSnap 0.5).
      if (force && GridAtlas.state.loads > 0) {
        GridAtlas.map.removeLayer(GridAtlas.tileLayers[spec.name]);
        GridAtlas.tileLayers[spec.name].addTo(GridAtlas.map);
      }
      return Promise.resolve();
    }
    if (state.hidden[spec.name]) {
      if (controllers[spec.name]) { controllers[spec.name].abort(); }
      fetched[spec.name] = null;
      draw(spec, null);
      state.counts[spec.name] = 0;
      return Promise.resolve();
    }
    // A view inside the last complete answer to the same question needs no request (requests are padded).
    var params = JSON.stringify(layerParams(spec));
    if (!force && previous && !previous.truncated && previous.params === params &&
        covers(previous.bbox, clampedBounds(GridAtlas.map.getBounds()))) {
      return Promise.resolve();
    }
    if (controllers[spec.name]) { controllers[spec.name].abort(); }
    var controller = controllers[spec.name] = new AbortController();
    state.loading += 1;
    return fetch(layerUrl(spec, bbox), {signal: controller.signal, headers: {Accept: "application/geo+json"}})
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error(body.detail || response.statusText); }
          return body;
        });
      })
      .then(function (collection) {
        fetched[spec.name] = {bbox: bbox, params: params, truncated: collection.truncated};
        draw(spec, collection);
        state.counts[spec.name] = collection.numberReturned;
        state.truncated[spec.name] = collection.truncated;
      })
      .catch(function (error) {
        if (error.name !== "AbortError") { state.errors.push(_("%(layer)s: %(error)s", {layer: spec.label, error: error.message})); }
      })
      .then(function () { state.loading -= 1; });
  }

  GridAtlas.refresh = function (force) {
    var map = GridAtlas.map, bbox = clampedBounds(map.getBounds().pad(0.25));
    if (force === undefined) { force = true; }
    GridAtlas.state.bbox = bbox;
    GridAtlas.state.errors = [];
    updateStatus();
    var visible = LAYERS.filter(function (spec) { return map.hasLayer(GridAtlas.layers[spec.name]); });
    return Promise.all(visible.map(function (spec) { return load(spec, bbox, force); })).then(function () {
      GridAtlas.state.loads += 1;
      updateStatus();
      updateFeederLegend();
      loadHandlers.slice().forEach(function (fn) { fn(GridAtlas.state); });
      document.dispatchEvent(new CustomEvent("gridatlas:load", {detail: GridAtlas.state}));
    });
  };

  function scheduleRefresh() {
    clearTimeout(moveTimer);
    // Until the timer fires, a reload that began before this move may still finish: it is not
    // this view's, and "scheduled" says so to whoever waits for the map to settle.
    GridAtlas.state.scheduled = true;
    moveTimer = setTimeout(function () {
      GridAtlas.state.scheduled = false;
      GridAtlas.refresh(false);
    }, 150);
  }

  // ---- controls: status, legend ----
  function number(n) { return I18N.formatNumber(n || 0); }
  function counted(n, spec) { return spec.count(n || 0, "<strong>" + escapeHtml(number(n)) + "</strong>"); }

  function updateStatus() {
    var state = GridAtlas.state, parts = [], notes = [], el = GridAtlas.statusElement;
    if (!el) { return; }
    var openCount = (GridAtlas.features.switchgear || []).filter(function (f) {
      return f.properties.current_state === "open";
    }).length;
    LAYERS.forEach(function (spec) {
      if (!GridAtlas.map.hasLayer(GridAtlas.layers[spec.name]) || state.hidden[spec.name]) { return; }
      var text = state.tiled[spec.name] ? _html("%(layer)s: all, from vector tiles", {layer: escapeHtml(spec.label)})
                                        : counted(state.counts[spec.name], spec);
      if (spec.name === "switchgear" && openCount) {
        text += ' (<span class="ga-open">' + _html("%(count)s open", {count: escapeHtml(number(openCount))}) + "</span>)";
      }
      parts.push("<span>" + text + "</span>");
      if (state.truncated[spec.name]) {
        notes.push(_html("Showing the first %(items)s only: zoom in to see all.", {items: spec.count(state.counts[spec.name], escapeHtml(number(state.counts[spec.name])))}));
      }
    });
    if (!config.extent) { notes.push(_html("No network is loaded yet.")); }
    if (GridAtlas.map.getZoom() < config.overviewZoom && state.tiled.segments) {  // the tiles hold the LV network too
      notes.push(_html("Only open switchgear is drawn: zoom in to see the rest, transformers and customers."));
    } else if (GridAtlas.map.getZoom() < config.overviewZoom) {
      notes.push(_html("Only open switchgear is drawn: zoom in to see the rest, transformers, customers and the LV network."));
    } else if (GridAtlas.map.getZoom() < config.detailZoom) {
      notes.push(_html("Zoom in to see customers and the LV network."));
    }
    state.errors.forEach(function (e) {
      notes.push('<span class="ga-error">' + _html("Could not load %(what)s", {what: escapeHtml(e)}) + "</span>");
    });
    var spinner = state.loading ? '<span class="ga-spinner" title="' + escapeHtml(_("Loading")) + '"></span>' : "";
    el.innerHTML = '<div class="ga-status-counts">' + spinner + _html("Loaded: %(counts)s", {counts: parts.join(" · ") || _html("nothing")}) +
      "</div>" + notes.map(function (n) { return '<div class="ga-hint">' + n + "</div>"; }).join("");
  }

  function updateFeederLegend() {
    var el = GridAtlas.feederLegendElement, seen = {}, list = [];
    if (!el) { return; }
    if (GridAtlas.state.tiled.segments) {  // tiles carry no list of their feeders
      el.innerHTML = '<li class="ga-more">' + _html("every feeder in its colour; zoom in for their names") + "</li>";
      return;
    }
    (GridAtlas.features.segments || []).forEach(function (f) {
      var code = f.properties.feeder || _("no feeder");
      if (!seen[code]) { seen[code] = true; list.push([code, f.properties.colour]); }
    });
    list.sort(function (a, b) { return a[0].localeCompare(b[0], I18N.locale, {numeric: true}); });
    var shown = list.slice(0, 8).map(function (item) {
      return '<li><span class="ga-line" style="background:' + escapeHtml(item[1]) + '"></span>' +
        escapeHtml(item[0]) + "</li>";
    });
    if (list.length > 8) {
      shown.push('<li class="ga-more">' + ngettext_html("+ %(num)s more feeder", "+ %(num)s more feeders", list.length - 8) + "</li>");
    }
    el.innerHTML = shown.join("") || '<li class="ga-more">' + _html("no feeders loaded") + "</li>";
  }

  function legendControl() {
    var control = L.control({position: "bottomright"});
    control.onAdd = function () {
      var div = L.DomUtil.create("div", "ga-panel ga-legend");
      var devices = ["breaker", "recloser", "switch", "fuse"].map(function (kind) {
        return "<li>" + symbolSvg(kind, false) + escapeHtml(DEVICE_SYMBOLS[kind].label) + "</li>";
      }).join("");
      div.innerHTML =
        "<h2>" + _html("Legend") + "</h2>" +
        "<h3>" + _html("Feeders") + '</h3><ul class="ga-feeders"></ul>' +
        '<ul class="ga-levels"><li><span class="ga-line ga-mv"></span>' + _html("MV") + "</li>" +
        '<li><span class="ga-line ga-lv"></span>' + _html("LV") + "</li></ul>" +
        "<h3>" + _html("Switchgear") + "</h3><ul>" + devices + "</ul>" +
        '<ul class="ga-states"><li>' + symbolSvg("switch", false) + _html("closed") + "</li><li>" + symbolSvg("switch", true) +
        '<span class="ga-open">' + _html("open") + "</span></li></ul>" +
        "<h3>" + _html("Other") + "</h3><ul>" +
        "<li>" + symbolSvg("transformer", false) + _html("Transformer") + "</li>" +
        "<li>" + symbolSvg("substation", false) + _html("Substation") + "</li>" +
        '<li><span class="ga-dot"></span>' + _html("Customer") + "</li>" +
        '<li><span class="ga-cluster-sample">12</span>' + _html("Customers (cluster)") + "</li></ul>";
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      GridAtlas.feederLegendElement = div.querySelector(".ga-feeders");
      return div;
    };
    return control;
  }

  function statusControl() {
    var control = L.control({position: "topleft"});
    control.onAdd = function () {
      var div = L.DomUtil.create("div", "ga-panel ga-status");
      div.setAttribute("role", "status");
      GridAtlas.statusElement = div;
      return div;
    };
    return control;
  }

  // ---- start ----
  GridAtlas.start = function (map, options) {
    config = options || {};
    GridAtlas.map = map;
    // Customers' points are for dispatchers and planners: others get the network without them.
    if (!config.customers) { LAYERS = LAYERS.filter(function (spec) { return spec.name !== "customers"; }); }
    // Fitted before the handlers below exist: the first load is of this view, and only once.
    if (config.extent) {  // [west, south, east, north]
      var e = config.extent;
      map.fitBounds([[e[1], e[0]], [e[3], e[2]]], {maxZoom: 17, animate: false});
    }
    var renderer = GridAtlas.renderer = L.canvas({padding: 0.25});
    if (config.tiles && L.vectorGrid) {
      LAYERS.forEach(function (spec) {
        if (!spec.tiles || !config.tiles[spec.tiles]) { return; }
        var styles = {};
        styles[spec.tiles] = spec.tileStyle;
        GridAtlas.tileLayers[spec.name] = L.vectorGrid.protobuf(config.tiles[spec.tiles], {
          rendererFactory: L.canvas.tile, vectorTileLayerStyles: styles, interactive: false, maxNativeZoom: 22,
          fetchOptions: {credentials: "same-origin"},
        });
      });
    }
    LAYERS.forEach(function (spec) {
      var layer = GridAtlas.layers[spec.name] = makeLayer(spec, renderer);
      if (spec.visible) { layer.addTo(map); }
    });
    // The cluster group adds customers as the view changes: keep them under the devices.
    var afterCustomers = function () { restack(LAYERS.findIndex(function (spec) { return spec.cluster; })); };
    if (GridAtlas.layers.customers) {
      GridAtlas.layers.customers.on("animationend", afterCustomers);
      map.on("moveend", afterCustomers);
    }
    var overlays = {};
    LAYERS.slice().reverse().forEach(function (spec) { overlays[spec.label] = GridAtlas.layers[spec.name]; });
    // On a phone or a tablet the layer list folds into Leaflet's button: open, it covers much of the map.
    var narrow = window.matchMedia && window.matchMedia("(max-width: 1100px)").matches;
    GridAtlas.control = L.control.layers(null, overlays, {collapsed: narrow, position: "topright"}).addTo(map);
    // Leaflet writes its toggle's title in English.
    GridAtlas.control.getContainer().querySelector(".leaflet-control-layers-toggle").title = _("Layers");
    legendControl().addTo(map);
    statusControl().addTo(map);
    GridAtlas.legend = map.getContainer().querySelector(".ga-legend");
    // A move (an animated fitBounds, say) ends in a reload: the view is not settled till then.
    map.on("movestart", function () { GridAtlas.state.scheduled = true; });
    map.on("moveend", scheduleRefresh);
    map.on("zoomend", function () { GridAtlas.restyle(); });
    map.on("overlayadd", function () { GridAtlas.restack(); GridAtlas.refresh(false); });
    map.on("overlayremove", function () {
      LAYERS.forEach(function (spec) { useTiles(spec, map.getZoom(), GridAtlas.state.hidden[spec.name]); });
      updateStatus();
    });
    GridAtlas.ready = GridAtlas.refresh(true);
    return GridAtlas;
  };
})();
