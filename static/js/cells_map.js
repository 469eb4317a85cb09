/*
 * GridAtlas grid cells (/map/cells): every cell coloured by a chosen figure (customers, customers
 * out, ...) with a legend; a click shows the cell's team, figures and gaps (transformer areas
 * without a manager) and its history, where an older version's outline can be drawn dashed over
 * the current one and, for planners, restored. The territory no cell covers is a warning layer;
 * transformer areas that a border splits are listed, and a planner gives each to one cell.
 *
 * Planners draw (Leaflet-Geoman: polygon, rectangle, cut), move vertices with snapping to the
 * neighbouring cells' edges, and save through the side panel; every change of the shape is sent
 * to POST /api/cells/validate and the problems come back with their geometry, drawn in red and
 * listed with their sentence. A save answered 409 means someone else saved first: the panel says
 * so and offers to reload. Dispatchers get the same map without Geoman, the editor or the import.
 *
 * The page calls GridAtlasCells.start(map, config) once folium has built the Leaflet map.
 * GridAtlasCells.state counts what finished (tests wait on it): loads, coverageLoads, validations,
 * saves, historyLoads, conflicts; problems holds the newest check's problems, editing the code of
 * the cell being edited ("" for a new one, null when none), selected the chosen cell.
 * Everything the server sends is put on the page as text, never as HTML; texts go through _().
 */
(function () {
  "use strict";

  var _ = GridAtlasI18n._, ngettext = GridAtlasI18n.ngettext, pgettext = GridAtlasI18n.pgettext, LOCALE = GridAtlasI18n.locale;
  var fmt = GridAtlasI18n.formatNumber;
  // Sequential blues for the choropleth (ColorBrewer Blues, 5 classes); red stays for problems.
  var CLASSES = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"];
  var PROBLEM = "#d62728", UNCOVERED = "#e6a100", COMPARE = "#6a1b9a", OUTLINE = "#2c3e50";
  // Geoman's snapping distance in screen pixels: near enough to catch an edge with a mouse.
  var SNAP_PX = 18;
  var VALIDATE_DELAY_MS = 250;

  var state = {loads: 0, coverageLoads: 0, validations: 0, saves: 0, historyLoads: 0, conflicts: 0,
               problems: [], editing: null, selected: null, errors: []};
  var map, config, cellsLayer, problemsLayer, uncoveredLayer, territoryLayer, compareLayer, legend;
  var features = {}, figureList = [], figureKey = "customers", fitted = false;
  var draft = null, editingVersion = null, hiddenCell = null, validateTimer = null, validateSeq = 0;
  var shapeChanged = false;  // an edit that keeps the shape saves without a geometry (not checked again)

  function $(selector, root) { return (root || document).querySelector(selector); }

  var el = GridAtlasDom.el, clear = GridAtlasDom.clear;

  function url(name, params) {
    var text = config.api[name];
    Object.keys(params || {}).forEach(function (key) { text = text.replace("__" + key + "__", encodeURIComponent(params[key])); });
    return text;
  }

  /* fetch JSON; a non-2xx answer rejects with {status, detail, body} (problem+json's detail). */
  function api(address, options) {
    var init = Object.assign({headers: {"Accept": "application/json"}}, options || {});
    if (init.json !== undefined) {
      init.body = JSON.stringify(init.json);
      init.headers = {"Accept": "application/json", "Content-Type": "application/json"};
      delete init.json;
    }
    return fetch(address, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) { throw {status: response.status, detail: body.detail || response.statusText, body: body}; }
        return body;
      });
    });
  }

  function status(text, isError) {
    var node = $(".ga-cells-status");
    node.textContent = text || "";
    node.classList.toggle("ga-error", !!isError);
    if (isError) { state.errors.push(text); }
  }

  function failed(error) { status(error && error.detail ? String(error.detail) : _("The server did not answer."), true); }

  function formatTime(iso) {
    try { return new Intl.DateTimeFormat(LOCALE, {dateStyle: "medium", timeStyle: "short"}).format(new Date(iso)); }
    catch (e) { return iso; }
  }

  function formatArea(m2) {
    if (m2 >= 100000) { return _("%(area)s km²", {area: fmt(m2 / 1e6, {maximumFractionDigits: 2})}); }
    return _("%(area)s m²", {area: fmt(m2, {maximumFractionDigits: 1})});
  }

  // -- the choropleth ------------------------------------------------------------------------------------
  function figureValue(feature) {
    var value = (feature.properties.figures || {})[figureKey];
    return typeof value === "number" ? value : 0;
  }

  /* Five classes of equal width from 0 to the largest value (whole numbers: counts). */
  function breaks() {
    var largest = 0;
    Object.keys(features).forEach(function (code) { largest = Math.max(largest, figureValue(features[code])); });
    var width = Math.max(1, Math.ceil(largest / CLASSES.length));
    return CLASSES.map(function (colour, index) { return {from: index * width, to: (index + 1) * width, colour: colour}; });
  }

  function colourOf(value, classes) {
    for (var index = classes.length - 1; index >= 0; index -= 1) {
      if (value >= classes[index].from) { return classes[index].colour; }
    }
    return CLASSES[0];
  }

  function cellStyle(feature, classes) {
    var chosen = feature.id === state.selected;
    return {color: chosen ? "#fca311" : OUTLINE, weight: chosen ? 3.5 : 1.5, opacity: 0.95,
            fillColor: colourOf(figureValue(feature), classes), fillOpacity: 0.55};
  }

  function restyle() {
    var classes = breaks();
    cellsLayer.eachLayer(function (layer) { layer.setStyle(cellStyle(layer.feature, classes)); });
    drawLegend(classes);
  }

  function figureLabel(key) {
    var found = figureList.filter(function (figure) { return figure.key === key; })[0];
    return found ? found.label : key;
  }

  function legendRow(colour, text, extra) {
    return el("li", {}, [el("span", {className: "ga-swatch" + (extra ? " " + extra : ""), style: colour ? "background:" + colour : ""}), text]);
  }

  function drawLegend(classes) {
    var node = clear(legend.getContainer());
    var rows = classes.map(function (band, index) {
      var last = index === classes.length - 1;
      var text = last ? _("%(from)s or more", {from: fmt(band.from)})
                      : band.to - 1 === band.from ? fmt(band.from) : _("%(from)s to %(to)s", {from: fmt(band.from), to: fmt(band.to - 1)});
      return legendRow(band.colour, text);
    });
    node.appendChild(el("h2", {}, [figureLabel(figureKey)]));
    node.appendChild(el("ul", {}, rows));
    node.appendChild(el("ul", {className: "ga-legend-extra"}, [
      legendRow(null, _("Territory no cell covers"), "ga-swatch-uncovered"),
      config.editable && legendRow(null, _("Problem of the drawn cell"), "ga-swatch-problem"),
      legendRow(null, _("Older version (compare)"), "ga-swatch-compare")]));
  }

  function fillFigureSelect() {
    var select = clear($("#ga-figure"));
    figureList.forEach(function (figure) {
      select.appendChild(el("option", {value: figure.key, selected: figure.key === figureKey}, [figure.label]));
    });
  }

  // -- loading -------------------------------------------------------------------------------------------
  function loadCells() {
    return api(config.api.cells).then(function (collection) {
      figureList = collection.figures || [];
      if (!figureList.some(function (figure) { return figure.key === figureKey; }) && figureList.length) { figureKey = figureList[0].key; }
      features = {};
      cellsLayer.clearLayers();
      collection.features.forEach(function (feature) {
        features[feature.id] = feature;
        if (feature.id !== hiddenCell) { cellsLayer.addData(feature); }
      });
      fillFigureSelect();
      restyle();
      $(".ga-cells-count").textContent = ngettext("%(num)s cell", "%(num)s cells", collection.features.length);
      state.loads += 1;
    }).catch(failed);
  }

  /* Once, after the first loads: the territory and every cell in view. */
  function fitOnce() {
    var bounds = L.latLngBounds([]);
    [territoryLayer, cellsLayer].forEach(function (layer) { if (layer.getLayers().length) { bounds.extend(layer.getBounds()); } });
    if (fitted || !bounds.isValid()) { return; }
    fitted = true;
    map.fitBounds(bounds, {padding: [20, 20], animate: false});
  }

  function loadCoverage() {
    return api(config.api.coverage).then(function (coverage) {
      uncoveredLayer.clearLayers();
      territoryLayer.clearLayers();
      if (coverage.territory) { territoryLayer.addData(coverage.territory); }
      uncoveredLayer.addData(coverage.uncovered);
      if (coverage.outside_points && coverage.outside_points.coordinates.length) { uncoveredLayer.addData(coverage.outside_points); }
      drawCoverage(coverage);
      state.coverageLoads += 1;
    }).catch(failed);
  }

  function drawCoverage(coverage) {
    var summary = [coverage.uncovered_m2 > 0 ? _("No cell covers %(area)s of the territory (orange on the map).", {area: formatArea(coverage.uncovered_m2)})
                                             : _("The cells cover the whole territory.")];
    if (coverage.outside_customers) {
      summary.push(ngettext("%(num)s customer lies outside every cell.", "%(num)s customers lie outside every cell.", coverage.outside_customers));
    }
    if (coverage.source === "none") { summary.push(_("There is no service territory yet.")); }
    $(".ga-coverage-summary").textContent = summary.join(" ");
    var list = clear($(".ga-split"));
    if (coverage.split_transformer_areas.length) {
      list.appendChild(el("li", {className: "ga-muted"}, [_("Transformer areas split by a border: give each to one cell.")]));
    }
    coverage.split_transformer_areas.forEach(function (split) { list.appendChild(splitRow(split)); });
  }

  function splitRow(split) {
    var cells = Object.keys(split.cells).sort(function (a, b) { return split.cells[b] - split.cells[a]; });
    var spread = cells.map(function (code) {
      return ngettext("%(cell)s: %(num)s customer", "%(cell)s: %(num)s customers", split.cells[code], {cell: code});
    }).join(", ");
    var row = el("li", {className: "ga-split-area", "aria-label": split.code}, [el("strong", {}, [split.code]), " ", spread]);
    if (!config.editable) { return row; }
    var select = el("select", {"aria-label": _("Cell for %(area)s", {area: split.code})},
                    cells.map(function (code) { return el("option", {value: code}, [code]); }));
    var give = el("button", {type: "button", onclick: function () { assignArea(split.code, select.value); }}, [_("Give to this cell")]);
    row.appendChild(el("span", {className: "ga-split-controls"}, [select, give]));
    return row;
  }

  function assignArea(area, cell) {
    api(url("areaCell", {area: area}), {method: "PUT", json: {cell: cell}}).then(function () {
      status(_("Transformer area %(area)s now belongs to cell %(cell)s.", {area: area, cell: cell}));
      return Promise.all([loadCells(), loadCoverage()]);
    }).catch(failed);
  }

  // -- a chosen cell: popup, panel, history -----------------------------------------------------------------
  function manager(team) {
    return (team || []).filter(function (member) { return member.duty === "manager"; })[0] || null;
  }

  function memberText(member) { return member ? member.name + (member.phone ? " (" + member.phone + ")" : "") : _("nobody"); }

  function figuresList(values) {
    return el("ul", {className: "ga-figures"}, figureList.map(function (figure) {
      return el("li", {}, [figure.label + ": ", el("strong", {}, [fmt((values || {})[figure.key] || 0)])]);
    }));
  }

  function gapsText(cell) {
    if (!cell.transformer_areas.length) { return _("No transformer area lies in this cell."); }
    return cell.gaps.length ? _("Transformer areas without a manager: %(areas)s", {areas: cell.gaps.join(", ")})
                            : _("Every transformer area has a manager.");
  }

  function popupContent(cell) {
    var buttons = [el("button", {type: "button", className: "ga-link", onclick: function () { showHistory(cell.code); }}, [_("History")])];
    if (config.editable) {
      buttons.push(el("button", {type: "button", className: "ga-link", onclick: function () { map.closePopup(); editCell(cell); }}, [_("Edit")]));
    }
    return el("div", {className: "ga-cell-popup"}, [
      el("h3", {}, [cell.name + " (" + cell.code + ")"]),
      el("p", {}, [_("Manager: %(who)s", {who: memberText(manager(cell.team))})]),
      figuresList(cell.figures),
      el("p", {className: cell.gaps.length ? "ga-gaps" : "ga-muted"}, [gapsText(cell)]),
      el("p", {className: "ga-popup-actions"}, buttons)]);
  }

  function selectCell(code, latlng) {
    if (state.editing !== null || (map.pm && map.pm.globalDrawModeEnabled())) { return; }
    state.selected = code;
    restyle();
    api(url("cell", {code: code})).then(function (cell) {
      if (latlng) { L.popup({maxWidth: 320}).setLatLng(latlng).setContent(popupContent(cell)).openOn(map); }
      drawCellPanel(cell);
      showHistory(code);
    }).catch(failed);
  }

  function drawCellPanel(cell) {
    var panel = clear($("#ga-cell"));
    panel.hidden = false;
    var areas = el("ul", {className: "ga-areas"}, cell.transformer_areas.map(function (area) {
      return el("li", {className: area.manager ? "" : "ga-gaps"}, [
        el("strong", {}, [area.code]), " " + (area.name || "") + " · ",
        ngettext("%(num)s customer", "%(num)s customers", area.customers || 0), " · ",
        area.manager ? memberText(area.manager) : _("no manager")]);
    }));
    panel.appendChild(el("h2", {}, [cell.name + " (" + cell.code + ")"]));
    panel.appendChild(el("p", {className: "ga-muted"}, [_("Version %(version)s, saved by %(author)s on %(at)s",
                                                           {version: cell.version, author: cell.updated_by, at: formatTime(cell.updated_at)})]));
    if (cell.notes) { panel.appendChild(el("p", {}, [cell.notes])); }
    panel.appendChild(el("p", {}, [_("Manager: %(who)s", {who: memberText(manager(cell.team))})]));
    panel.appendChild(figuresList(cell.figures));
    // A cell holds tens to hundreds of areas: folded, so that the history stays in sight.
    panel.appendChild(el("details", {className: "ga-areas-list"}, [
      el("summary", {}, [_("Transformer areas (%(count)s)", {count: fmt(cell.transformer_areas.length)})]), areas]));
    panel.appendChild(el("p", {className: cell.gaps.length ? "ga-gaps" : "ga-muted"}, [gapsText(cell)]));
    if (cell.listed_elsewhere.length) {
      panel.appendChild(el("p", {className: "ga-gaps"}, [_("The team lists areas that are not in this cell: %(areas)s", {areas: cell.listed_elsewhere.join(", ")})]));
    }
    if (config.editable) {
      panel.appendChild(el("button", {type: "button", className: "ga-edit-cell", onclick: function () { editCell(cell); }}, [_("Edit this cell")]));
    }
  }

  function showHistory(code) {
    var panel = $("#ga-history");
    return api(url("versions", {code: code})).then(function (answer) {
      clear(panel).hidden = false;
      var live = features[code] ? features[code].properties.version : null;
      panel.appendChild(el("h2", {}, [_("History of %(code)s", {code: code})]));
      panel.appendChild(el("ol", {className: "ga-versions"}, answer.versions.map(function (version) { return versionRow(code, version, live); })));
      state.historyLoads += 1;
    }).catch(failed);
  }

  function versionRow(code, version, live) {
    var what = version.deleted ? _("deleted") : version.name;
    var row = el("li", {className: "ga-version", "aria-label": _("Version %(version)s", {version: version.version})}, [
      el("strong", {}, ["v" + version.version]), " " + what + " · " + version.author + " · " + formatTime(version.at),
      el("div", {className: "ga-reason"}, [version.reason])]);
    var actions = el("div", {className: "ga-version-actions"});
    if (!version.deleted && version.version !== live) {
      actions.appendChild(el("button", {type: "button", className: "ga-link ga-compare", onclick: function () { compare(code, version.version); }}, [_("Compare")]));
    }
    if (config.editable && version.version !== live && !version.deleted) {
      actions.appendChild(el("button", {type: "button", className: "ga-link ga-restore", onclick: function () { askRestore(row, code, version.version, live); }}, [pgettext("cell version", "Restore")]));
    }
    row.appendChild(actions);
    return row;
  }

  function compare(code, number) {
    api(url("version", {code: code, n: number})).then(function (version) {
      compareLayer.clearLayers();
      compareLayer.addData({type: "Feature", geometry: version.geometry, properties: {}});
      compareLayer.eachLayer(function (layer) { layer.bindTooltip(_("%(code)s, version %(version)s", {code: code, version: number}), {sticky: true}); });
      if (!map.hasLayer(compareLayer)) { compareLayer.addTo(map); }
      status(_("Version %(version)s of %(code)s is drawn dashed over the current cell.", {version: number, code: code}));
    }).catch(failed);
  }

  function askRestore(row, code, number, live) {
    if ($(".ga-restore-form", row)) { return; }
    var reason = el("input", {required: true, maxLength: 1000, placeholder: _("Why restore it?"), "aria-label": _("Reason")});
    var form = el("form", {className: "ga-restore-form"}, [reason, el("button", {type: "submit"}, [_("Restore version %(version)s", {version: number})])]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!reason.value.trim()) { reason.focus(); return; }
      api(url("restore", {code: code, n: number}), {method: "POST", json: {version: live, reason: reason.value}}).then(function (saved) {
        status(_("Cell %(code)s is at version %(version)s now.", {code: code, version: saved.version}));
        compareLayer.clearLayers();
        return loadCells().then(function () { selectCell(code); loadCoverage(); });
      }).catch(function (error) {
        if (error.body && error.body.problems) { drawProblems(error.body.problems); }
        failed(error);
      });
    });
    row.appendChild(form);
    reason.focus();
  }

  // -- the editor (planners) ---------------------------------------------------------------------------------
  var EDIT_OPTIONS = {snappable: true, snapDistance: SNAP_PX, allowSelfIntersection: true};

  function form() { return $("#ga-cell-form"); }

  /* The shape being edited becomes `draft`: Geoman edits it, snapping to the cells' edges. */
  function setDraft(layer) {
    if (draft && draft !== layer) { map.removeLayer(draft); }
    draft = layer;
    draft.setStyle({color: "#fca311", weight: 3, fillColor: "#fca311", fillOpacity: 0.15, dashArray: null});
    if (!map.hasLayer(draft)) { draft.addTo(map); }
    draft.pm.enable(EDIT_OPTIONS);
    draft.on("pm:edit", function () { shapeChanged = true; scheduleValidate(); });
    scheduleValidate();
  }

  function newDraft(latlngs) { return L.polygon(latlngs, {pmIgnore: false, snapIgnore: true}); }

  function startNew() {
    stopEditing();
    map.closePopup();
    map.pm.enableDraw("Polygon", {snappable: true, snapDistance: SNAP_PX, allowSelfIntersection: true, finishOn: null});
    status(_("Click the corners of the new cell on the map; click the first corner again to close it."));
  }

  function onCreate(event) {
    var latlngs = event.layer.getLatLngs();
    map.removeLayer(event.layer);
    if (state.editing === null) { openForm(null); }
    shapeChanged = true;
    setDraft(newDraft(latlngs));
    status(_("Move the corners to fit; the checks run on every change."));
  }

  function onCut(event) {
    if (event.originalLayer !== draft || !event.layer.getLatLngs) { return; }
    draft = null;
    var latlngs = event.layer.getLatLngs();
    map.removeLayer(event.layer);
    shapeChanged = true;
    setDraft(newDraft(latlngs));
  }

  function editCell(cell) {
    stopEditing();
    map.closePopup();
    state.selected = cell.code;
    hiddenCell = cell.code;
    cellsLayer.eachLayer(function (layer) { if (layer.feature.id === cell.code) { cellsLayer.removeLayer(layer); } });
    openForm(cell);
    setDraft(newDraft(L.GeoJSON.coordsToLatLngs(cell.geometry.coordinates, cell.geometry.type === "MultiPolygon" ? 2 : 1)));
  }

  function openForm(cell) {
    var node = form();
    node.reset();
    node.hidden = false;
    state.editing = cell ? cell.code : "";
    editingVersion = cell ? cell.version : null;
    shapeChanged = false;
    $(".ga-cell-form-title", node).textContent = cell ? _("Edit cell %(code)s", {code: cell.code}) : _("New cell");
    node.elements.code.value = cell ? cell.code : "";
    node.elements.code.readOnly = !!cell;
    node.elements.name.value = cell ? cell.name : "";
    node.elements.notes.value = cell && cell.notes ? cell.notes : "";
    fillTeam(cell ? cell.team : []);
    $(".ga-delete", node).hidden = !cell;
    $(".ga-conflict", node).hidden = true;
    drawProblems([]);
  }

  function fillTeam(team) {
    var boss = manager(team);
    form().elements.manager_name.value = boss ? boss.name : "";
    form().elements.manager_phone.value = boss ? boss.phone : "";
    clear($(".ga-area-managers", form()));
    team.filter(function (member) { return member.duty === "transformer_area_manager"; }).forEach(addAreaManager);
  }

  function addAreaManager(member) {
    var who = member || {name: "", phone: "", transformer_areas: []};
    var row = el("div", {className: "ga-member", role: "group", "aria-label": _("Transformer-area manager")}, [
      el("span", {className: "ga-member-duty"}, [_("Transformer-area manager")]),
      el("input", {className: "ga-member-name", maxLength: 100, value: who.name, placeholder: pgettext("person", "Name"), "aria-label": pgettext("person", "Name")}),
      el("input", {className: "ga-member-phone", maxLength: 40, value: who.phone, placeholder: _("Phone"), "aria-label": _("Phone")}),
      el("input", {className: "ga-member-areas", value: (who.transformer_areas || []).join(", "),
                   placeholder: _("Transformer areas, e.g. TA1, TA2"), "aria-label": _("Transformer areas")}),
      el("button", {type: "button", className: "ga-link", onclick: function () { row.remove(); }}, [_("Remove")])]);
    $(".ga-area-managers", form()).appendChild(row);
  }

  /* The team as the API wants it, from the form's rows (rows without a name are left out). */
  function teamOf() {
    var elements = form().elements, team = [];
    if (elements.manager_name.value.trim()) {
      team.push({name: elements.manager_name.value.trim(), phone: elements.manager_phone.value.trim(), duty: "manager", transformer_areas: []});
    }
    form().querySelectorAll(".ga-area-managers .ga-member").forEach(function (row) {
      var name = $(".ga-member-name", row).value.trim();
      if (!name) { return; }
      team.push({name: name, phone: $(".ga-member-phone", row).value.trim(), duty: "transformer_area_manager",
                 transformer_areas: $(".ga-member-areas", row).value.split(/[\s,;，；]+/).filter(Boolean)});
    });
    return team;
  }

  function draftGeometry() { return draft.toGeoJSON(7).geometry; }

  function scheduleValidate() {
    window.clearTimeout(validateTimer);
    validateTimer = window.setTimeout(validateDraft, VALIDATE_DELAY_MS);
  }

  /* Check the drawn shape; only the newest answer is drawn (an older one may come late). */
  function validateDraft() {
    if (!draft) { return; }
    var seq = ++validateSeq;
    api(config.api.validate, {method: "POST", json: {code: state.editing || null, geometry: draftGeometry()}}).then(function (answer) {
      if (seq !== validateSeq) { return; }
      drawProblems(answer.problems);
      state.validations += 1;
    }).catch(failed);
  }

  function drawProblems(problems) {
    state.problems = problems;
    problemsLayer.clearLayers();
    problems.forEach(function (problem) {
      if (problem.geometry) { problemsLayer.addData({type: "Feature", geometry: problem.geometry, properties: problem}); }
    });
    var list = $(".ga-problems", form());
    if (!list) { return; }
    clear(list);
    if (!problems.length) {
      if (draft) { list.appendChild(el("p", {className: "ga-ok"}, [_("No problems: the cell can be saved.")])); }
      return;
    }
    list.appendChild(el("ul", {}, problems.map(problemRow)));
  }

  function problemRow(problem) {
    // The sentence says how big the problem is already (the server formats it in the page's language).
    var text = problem.detail;
    return el("li", {className: "ga-problem", dataset: {kind: problem.kind}, onclick: function () {
      if (!problem.geometry) { return; }
      var bounds = L.geoJSON(problem.geometry).getBounds();
      map.fitBounds(bounds.pad(2), {maxZoom: 19});
    }}, [text]);
  }

  function save(event) {
    event.preventDefault();
    if (!draft) { status(_("Draw the cell on the map first."), true); return; }
    var elements = form().elements;
    var isNew = state.editing === "";
    var body = {name: elements.name.value, notes: elements.notes.value, team: teamOf(), reason: elements.reason.value};
    if (isNew || shapeChanged) { body.geometry = draftGeometry(); }
    var request = isNew
      ? api(config.api.cells, {method: "POST", json: Object.assign({code: elements.code.value.trim()}, body)})
      : api(url("cell", {code: state.editing}), {method: "PUT", json: Object.assign({version: editingVersion}, body)});
    request.then(function (saved) {
      state.saves += 1;
      stopEditing();
      status(_("Saved cell %(code)s, version %(version)s.", {code: saved.code, version: saved.version}));
      return Promise.all([loadCells(), loadCoverage()]).then(function () { selectCell(saved.code); });
    }).catch(function (error) { saveFailed(error, isNew); });
  }

  function saveFailed(error, isNew) {
    if (error.status === 422 && error.body.problems) {
      drawProblems(error.body.problems);
      status(_("Not saved: the cell has problems (in red on the map)."), true);
    } else if (error.status === 409 && !isNew) {
      showConflict(error.body);
    } else {
      failed(error);
    }
  }

  function showConflict(body) {
    state.conflicts += 1;
    var node = clear($(".ga-conflict", form()));
    node.hidden = false;
    node.appendChild(document.createTextNode(_("Someone else saved cell %(code)s (now version %(version)s) after you opened it. Reload it to see their change, then edit again.",
                                               {code: state.editing, version: body.version || "?"}) + " "));
    node.appendChild(el("button", {type: "button", className: "ga-reload", onclick: reloadEdited}, [_("Reload")]));
  }

  function reloadEdited() {
    var code = state.editing;
    stopEditing();
    loadCells().then(function () {
      return api(url("cell", {code: code}));
    }).then(editCell).catch(failed);
  }

  function deleteCell(event) {
    var button = event.target, reason = form().elements.reason.value.trim();
    if (!reason) { status(_("Say why in Reason before deleting."), true); form().elements.reason.focus(); return; }
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = _("Click again to delete %(code)s", {code: state.editing});
      return;
    }
    var code = state.editing;
    api(url("cell", {code: code}), {method: "DELETE", json: {version: editingVersion, reason: reason}}).then(function () {
      stopEditing();
      state.selected = null;
      $("#ga-cell").hidden = true;
      status(_("Cell %(code)s is deleted; its history keeps it.", {code: code}));
      return Promise.all([loadCells(), loadCoverage(), showHistory(code)]);
    }).catch(function (error) { saveFailed(error, false); });
  }

  function stopEditing() {
    if (map.pm) { map.pm.disableDraw(); if (map.pm.globalCutModeEnabled()) { map.pm.disableGlobalCutMode(); } }
    if (draft) { draft.pm.disable(); map.removeLayer(draft); draft = null; }
    window.clearTimeout(validateTimer);
    validateSeq += 1;
    problemsLayer.clearLayers();
    state.problems = [];
    state.editing = null;
    editingVersion = null;
    if (form()) {
      form().hidden = true;
      var button = $(".ga-delete", form());
      delete button.dataset.armed;
      button.textContent = _("Delete cell");
    }
    if (hiddenCell && features[hiddenCell]) { cellsLayer.addData(features[hiddenCell]); restyle(); }
    hiddenCell = null;
  }

  function startCut() {
    if (!draft) { return; }
    map.pm.enableGlobalCutMode({snappable: true, snapDistance: SNAP_PX, allowSelfIntersection: false});
    status(_("Draw the part to cut away from the cell."));
  }

  function setUpEditor() {
    L.PM.setOptIn(true);  // Geoman edits only the drawn shape (pmIgnore: false), never the other layers
    if (LOCALE.indexOf("zh") === 0) { map.pm.setLang("zh"); }
    map.pm.addControls({position: "topleft", drawMarker: false, drawCircleMarker: false, drawPolyline: false, drawCircle: false,
                        drawText: false, drawRectangle: true, drawPolygon: true, editMode: false, dragMode: false,
                        cutPolygon: true, removalMode: false, rotateMode: false});
    map.pm.setGlobalOptions({snappable: true, snapDistance: SNAP_PX, allowSelfIntersection: true});
    map.on("pm:create", onCreate);
    map.on("pm:cut", onCut);
    map.on("pm:drawstart", function (event) { if (event.shape === "Cut" && !draft) { map.pm.disableGlobalCutMode(); } });
    $("#ga-new-cell").addEventListener("click", startNew);
    form().addEventListener("submit", save);
    $(".ga-cancel", form()).addEventListener("click", function () { stopEditing(); status(""); });
    $(".ga-delete", form()).addEventListener("click", deleteCell);
    $(".ga-cut", form()).addEventListener("click", startCut);
    $(".ga-add-member", form()).addEventListener("click", function () { addAreaManager(null); });
    $("#ga-import").addEventListener("submit", importFile);
  }

  // -- files -------------------------------------------------------------------------------------------------
  function importFile(event) {
    event.preventDefault();
    var node = event.target, file = node.elements.file.files[0], result = $(".ga-import-result", node);
    if (!file || !node.elements.reason.value.trim()) { result.textContent = _("Choose a file and say why."); return; }
    var data = new FormData();
    data.append("file", file, file.name);
    var address = config.api["import"] + "?mode=" + encodeURIComponent(node.elements.mode.value) + "&reason=" + encodeURIComponent(node.elements.reason.value);
    api(address, {method: "POST", body: data}).then(function (report) {
      result.textContent = _("Imported: %(created)s new, %(updated)s changed, %(deleted)s deleted.",
                             {created: report.created.length, updated: report.updated.length, deleted: report.deleted.length});
      return Promise.all([loadCells(), loadCoverage()]);
    }).catch(function (error) {
      var problems = (error.body && error.body.problems) || [];
      problemsLayer.clearLayers();
      problems.forEach(function (problem) { if (problem.geometry) { problemsLayer.addData({type: "Feature", geometry: problem.geometry, properties: problem}); } });
      result.textContent = _("Nothing was imported: %(detail)s", {detail: error.detail}) +
        (problems.length ? " " + problems.map(function (p) { return p.detail; }).join("; ") : "");
    });
  }

  // -- start ---------------------------------------------------------------------------------------------------
  function geojsonLayer(options) { return L.geoJSON(null, Object.assign({pmIgnore: true, snapIgnore: true}, options)); }

  function problemPopup(feature, layer) { layer.bindPopup(el("div", {}, [feature.properties.detail])); }

  function buildLayers() {
    // The cells are what new borders snap to (snapIgnore: false), never edited in place (pmIgnore).
    cellsLayer = geojsonLayer({snapIgnore: false, onEachFeature: function (feature, layer) {
      layer.bindTooltip(feature.id + " · " + feature.properties.name, {sticky: true});
      layer.on("click", function (event) { selectCell(feature.id, event.latlng); });
    }}).addTo(map);
    // Borders along the territory's edge snap to it too.
    territoryLayer = geojsonLayer({interactive: false, snapIgnore: false, style: {color: "#5b6b7b", weight: 1.5, dashArray: "6 6", fill: false}}).addTo(map);
    uncoveredLayer = geojsonLayer({interactive: false, style: {color: UNCOVERED, weight: 1, dashArray: "4 4", fillColor: UNCOVERED, fillOpacity: 0.22},
                                   pointToLayer: function (feature, latlng) {
                                     return L.circleMarker(latlng, {radius: 3, color: UNCOVERED, weight: 1, fillOpacity: 0.9, pmIgnore: true, snapIgnore: true});
                                   }}).addTo(map);
    compareLayer = geojsonLayer({interactive: true, style: {color: COMPARE, weight: 3, dashArray: "8 6", fill: false}}).addTo(map);
    problemsLayer = geojsonLayer({style: {color: PROBLEM, weight: 3, fillColor: PROBLEM, fillOpacity: 0.5}, onEachFeature: problemPopup,
                                  pointToLayer: function (feature, latlng) {
                                    return L.circleMarker(latlng, {radius: 8, color: PROBLEM, weight: 3, fillOpacity: 0.6, pmIgnore: true, snapIgnore: true});
                                  }}).addTo(map);
    var overlays = {};
    overlays[_("Grid cells")] = cellsLayer;
    overlays[_("Territory no cell covers")] = uncoveredLayer;
    overlays[_("Service territory")] = territoryLayer;
    overlays[_("Older version (compare)")] = compareLayer;
    if (config.editable) { overlays[_("Problems")] = problemsLayer; }
    L.control.layers(null, overlays, {collapsed: false, position: "topright"}).addTo(map);
    legend = L.control({position: "bottomright"});
    legend.onAdd = function () { return L.DomUtil.create("div", "ga-panel ga-legend ga-cells-legend"); };
    legend.addTo(map);
  }

  function start(leafletMap, pageConfig) {
    map = leafletMap;
    config = pageConfig;
    if (config.editable && map.pm) { L.PM.setOptIn(true); }
    buildLayers();
    $("#ga-figure").addEventListener("change", function (event) { figureKey = event.target.value; restyle(); });
    $("#ga-history-lookup").addEventListener("submit", function (event) {
      event.preventDefault();
      var code = event.target.elements.code.value.trim();
      if (code) { showHistory(code); }
    });
    if (config.editable && map.pm) { setUpEditor(); }
    Promise.all([loadCoverage(), loadCells()]).then(fitOnce);
    window.GridAtlasCells.map = map;
  }

  window.GridAtlasCells = {
    start: start, state: state,
    draft: function () { return draft; },
    layers: function () { return {cells: cellsLayer, problems: problemsLayer, uncovered: uncoveredLayer, compare: compareLayer, territory: territoryLayer}; },
    select: selectCell, reload: loadCells
  };
})();
