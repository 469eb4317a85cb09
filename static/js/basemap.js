/*
 * GridAtlas base maps: the layer under every map page's own layers (geo/basemap.py, docs/basemap.md).
 *
 * geo/maps.py's shell calls GridAtlasBasemap.attach(map, config) after folium has built the map,
 * with config from geo.basemap.page_config():
 *   mode "file": the local tileset (BASEMAP_FILE) the app serves under /basemap, raster as a
 *                tile layer, vector (pbf) through Leaflet.VectorGrid with a light style;
 *   mode "url":  an XYZ tile server (BASEMAP_URL), watched: without a tile within
 *                config.watchdogMs, or after config.watchdogErrors failed tiles and none loaded,
 *                it is removed (its hanging requests cancelled) and the light layer drawn instead;
 *   mode "own":  the light layer from our own data: the registered outlines (territory,
 *                transformer areas, ...) and the street names of the address index.
 * Every base layer is added only after the window's load event: a tile <img> created before it
 * would hold the event (and every script waiting for it) for as long as its server keeps silent.
 * The layers draw in panes below the pages' own (non-interactive: clicks reach the page's layers).
 *
 * GridAtlasBasemap.state (the last attached map's): {mode, shown: "file"|"url"|"own"|null,
 * tilesLoaded, tileErrors, fallback: null|"timeout"|"errors", streets: labels drawn, outlines: {id: features}}.
 */
(function () {
  "use strict";

  var _ = window.GridAtlasI18n ? GridAtlasI18n._ : function (text) { return text; };
  var STREETS_FROM_ZOOM = 14;  // below it a city's street names would cover each other
  var PANES = {gaBase: 150, gaBaseStreets: 160, gaBaseLabels: 350};

  function afterLoad(fn) {
    if (document.readyState === "complete") { setTimeout(fn, 0); return; }
    window.addEventListener("load", function () { setTimeout(fn, 0); });
  }

  function makePanes(map) {
    Object.keys(PANES).forEach(function (name) {
      if (!map.getPane(name)) {
        var pane = map.createPane(name);
        pane.style.zIndex = PANES[name];
        pane.style.pointerEvents = "none";
      }
    });
  }

  function bboxParam(map, pad) {
    var b = map.getBounds().pad(pad || 0);
    var w = Math.max(b.getWest(), -180), e = Math.min(b.getEast(), 180);
    var s = Math.max(b.getSouth(), -90), n = Math.min(b.getNorth(), 90);
    return [w, s, e, n].map(function (v) { return v.toFixed(5); }).join(",");
  }

  function getJson(url, signal) {
    return fetch(url, {credentials: "same-origin", signal: signal}).then(function (response) {
      if (!response.ok) { throw new Error(url + ": " + response.status); }
      return response.json();
    });
  }

  /* ---- the light layer from our own data ---- */

  function OwnLayer(map, own, state) {
    this.map = map; this.own = own; this.state = state;
    this.renderer = L.canvas({pane: "gaBase", padding: 0.5});
    this.streetRenderer = L.canvas({pane: "gaBaseStreets", padding: 0.5});
    this.groups = {}; this.aborts = {}; this.streets = null;
    this.labels = L.layerGroup().addTo(map);
    this.lines = L.layerGroup().addTo(map);
    this.onMove = this.refresh.bind(this);
  }

  OwnLayer.prototype.start = function () {
    this.map.getContainer().classList.add("ga-basemap-own");
    this.map.on("moveend", this.onMove);
    this.refresh();
  };

  OwnLayer.prototype.outline = function (spec) {
    var self = this, zoom = this.map.getZoom();
    var group = this.groups[spec.id];
    if (zoom < spec.minZoom) { if (group) { group.clearLayers(); } return; }
    if (spec.whole && group && group.getLayers().length) { return; }
    if (this.aborts[spec.id]) { this.aborts[spec.id].abort(); }
    var abort = this.aborts[spec.id] = new AbortController();
    var url = spec.whole ? spec.url : spec.url + "?bbox=" + bboxParam(this.map, 0.25);
    getJson(url, abort.signal).then(function (data) {
      if (!self.groups[spec.id]) { self.groups[spec.id] = L.layerGroup().addTo(self.map); }
      self.groups[spec.id].clearLayers();
      var style = Object.assign({interactive: false, renderer: self.renderer}, spec.style);
      L.geoJSON(data, {style: function () { return style; }, interactive: false}).addTo(self.groups[spec.id]);
      self.state.outlines[spec.id] = data.features.length;
    }).catch(function () { /* aborted by a newer view, or the server is away: keep what is drawn */ });
  };

  OwnLayer.prototype.refresh = function () {
    var self = this;
    this.own.outlines.forEach(function (spec) { self.outline(spec); });
    if (this.map.getZoom() < STREETS_FROM_ZOOM) {
      this.labels.clearLayers(); this.lines.clearLayers(); this.state.streets = 0;
      return;
    }
    if (this.aborts.streets) { this.aborts.streets.abort(); }
    this.aborts.streets = new AbortController();
    getJson(this.own.streets + "?bbox=" + bboxParam(this.map, 0.25), this.aborts.streets.signal)
      .then(function (data) { self.drawStreets(data.features); })
      .catch(function () { /* as above */ });
  };

  /* Each stretch of street: a white band with a grey casing where its addresses lie along a line,
     and its name along it, where the name fits the stretch and overlaps no other name. */
  OwnLayer.prototype.drawStreets = function (features) {
    var map = this.map, zoom = map.getZoom(), placed = [], self = this;
    var width = zoom >= 17 ? 12 : zoom >= 16 ? 8 : 5;
    this.labels.clearLayers(); this.lines.clearLayers();
    features.forEach(function (feature) {
      var p = feature.properties, axis = p.axis;
      if (axis) {
        var ends = [[axis[0][1], axis[0][0]], [axis[1][1], axis[1][0]]];
        L.polyline(ends, {renderer: self.streetRenderer, color: "#cfc8b8", weight: width + 2, interactive: false, lineCap: "round"}).addTo(self.lines);
        L.polyline(ends, {renderer: self.streetRenderer, color: "#ffffff", weight: width, interactive: false, lineCap: "round"}).addTo(self.lines);
      }
      var at = L.latLng(feature.geometry.coordinates[1], feature.geometry.coordinates[0]);
      var box = self.labelBox(at, p);
      if (!box || placed.some(function (other) { return other.intersects(box); })) { return; }
      placed.push(box);
      self.labels.addLayer(self.label(at, p));
    });
    this.state.streets = placed.length;
  };

  /* The label's box on the screen (rotated text, its bounding box), or null when the name is
     longer than the stretch it names. */
  OwnLayer.prototype.labelBox = function (at, p) {
    var metresPerPixel = 40075016.686 * Math.cos(at.lat * Math.PI / 180) / Math.pow(2, this.map.getZoom() + 8);
    var textWidth = p.name.length * 6.2 + 8, textHeight = 14;
    if (p.length_m / metresPerPixel < textWidth * 0.8) { return null; }
    var rad = p.angle * Math.PI / 180, c = Math.abs(Math.cos(rad)), s = Math.abs(Math.sin(rad));
    var half = L.point((textWidth * c + textHeight * s) / 2, (textWidth * s + textHeight * c) / 2);
    var centre = this.map.latLngToLayerPoint(at);
    return L.bounds(centre.subtract(half), centre.add(half));
  };

  OwnLayer.prototype.label = function (at, p) {
    var node = document.createElement("span");
    node.className = "ga-street-name";
    node.textContent = p.name;
    // Counter-clockwise from east on the map is clockwise on the screen; never upside down.
    var angle = -p.angle;
    if (angle > 90) { angle -= 180; } else if (angle < -90) { angle += 180; }
    node.style.transform = "translate(-50%, -50%) rotate(" + angle.toFixed(1) + "deg)";
    return L.marker(at, {icon: L.divIcon({html: node, className: "ga-street-label", iconSize: null}),
                         pane: "gaBaseLabels", interactive: false, keyboard: false});
  };

  /* ---- tile layers ---- */

  /* A light style for any vector tileset: water blue, green areas green, roads white on grey,
     buildings a shade darker than the ground; everything else a thin grey line. */
  function vectorStyle(layerName) {
    var name = layerName.toLowerCase();
    if (/water|ocean|river|lake/.test(name)) { return {fill: true, fillColor: "#aad3df", fillOpacity: 1, color: "#aad3df", weight: 1}; }
    if (/park|green|wood|forest|landcover|grass/.test(name)) { return {fill: true, fillColor: "#d8ebc8", fillOpacity: 1, color: "#c5dfae", weight: 0.5}; }
    if (/road|street|transport|highway/.test(name)) { return {color: "#ffffff", weight: 3, opacity: 1}; }
    if (/building/.test(name)) { return {fill: true, fillColor: "#e0dbd1", fillOpacity: 1, color: "#cfc8b8", weight: 0.5}; }
    if (/label|name|place|poi/.test(name)) { return {radius: 0, weight: 0, opacity: 0, fillOpacity: 0}; }
    return {color: "#bdb5a5", weight: 1, fill: false};
  }

  function fileLayer(file) {
    var bounds = file.bounds ? L.latLngBounds([file.bounds[1], file.bounds[0]], [file.bounds[3], file.bounds[2]]) : undefined;
    var options = {minZoom: 0, maxZoom: 22, maxNativeZoom: file.max_zoom, minNativeZoom: file.min_zoom,
                   bounds: bounds, attribution: file.attribution || "", pane: "tilePane"};
    if (file.format !== "pbf") { return L.tileLayer(file.url, options); }
    var styles = {};
    file.layers.forEach(function (name) { styles[name] = vectorStyle(name); });
    return L.vectorGrid.protobuf(file.url, Object.assign(options, {
      vectorTileLayerStyles: styles, interactive: false, rendererFactory: L.canvas.tile,
      fetchOptions: {credentials: "same-origin"}}));
  }

  function count(layer, state) {
    layer.on("tileload", function () { state.tilesLoaded += 1; });
    layer.on("tileerror", function () { state.tileErrors += 1; });
  }

  function watch(layer, config, state, fallback) {
    var timer = setTimeout(function () { if (!state.tilesLoaded) { fallback("timeout"); } }, config.watchdogMs);
    layer.on("tileload", function () { clearTimeout(timer); });
    layer.on("tileerror", function () {
      if (!state.tilesLoaded && state.tileErrors >= config.watchdogErrors) { clearTimeout(timer); fallback("errors"); }
    });
  }

  function attach(map, config) {
    var state = {mode: config.mode, shown: null, tilesLoaded: 0, tileErrors: 0, fallback: null, streets: 0, outlines: {}};
    GridAtlasBasemap.state = state;
    makePanes(map);
    function drawOwn() {
      state.shown = "own";
      new OwnLayer(map, config.own, state).start();
    }
    afterLoad(function () { map.whenReady(function () {
      if (config.mode === "own") { drawOwn(); return; }
      var layer = config.mode === "file" ? fileLayer(config.file)
        : L.tileLayer(config.url, {maxZoom: 19, attribution: config.attribution || "", pane: "tilePane"});
      state.shown = config.mode;
      count(layer, state);
      if (config.mode === "url") {
        watch(layer, config, state, function (reason) {
          if (state.fallback) { return; }
          state.fallback = reason;
          map.removeLayer(layer);  // Leaflet cancels the tiles still loading
          if (map.attributionControl) { map.attributionControl.addAttribution(_("Base map unavailable: drawn from our own data")); }
          drawOwn();
        });
      }
      layer.addTo(map);
    }); });
    return state;
  }

  window.GridAtlasBasemap = {attach: attach, state: null, vectorStyle: vectorStyle};
}());
