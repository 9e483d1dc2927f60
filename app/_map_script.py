"""The stylesheet and script every outreach map page embeds (no third-party code).

``Outreach.areas`` turns the embedded area JSON into one Leaflet GeoJSON layer;
``Outreach.view`` is a base layer of the layer control that recolours it from the
pre-computed classes of one choropleth and shows that layer's legend; tooltips are built
on hover from the columns, HTML-escaped, with null counts and rates shown as
"suppressed". The legend control lists the legend of every layer on the map.
"""

#: Map page styles: title box, legend, tooltips, popups, plain background without tiles.
STYLE = """
.leaflet-container { background: #f2f1ee; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.or-title { background: rgba(255,255,255,.95); padding: 8px 12px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0,0,0,.3); max-width: 460px; font-size: 13px; line-height: 1.35; }
.or-title h1 { font-size: 16px; margin: 0 0 2px; font-weight: 600; }
.or-title .or-sub { color: #555; }
.or-title .or-note { margin-top: 6px; padding: 4px 8px; background: #fff3cd; border-left: 3px solid #e0a800; }
.or-legend { background: rgba(255,255,255,.95); padding: 6px 10px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0,0,0,.3); font-size: 12px; line-height: 1.25; max-height: 70vh; overflow-y: auto; }
.or-legend-block + .or-legend-block { margin-top: 8px; padding-top: 6px; border-top: 1px solid #ddd; }
.or-legend-title { font-weight: 600; margin-bottom: 3px; max-width: 230px; }
.or-row { display: flex; align-items: center; gap: 6px; margin: 1px 0; }
.or-swatch { display: inline-block; width: 18px; height: 12px; background: var(--c); border: 1px solid rgba(0,0,0,.25); }
.or-swatch-line { display: inline-block; width: 18px; height: 12px; border: 3px solid var(--c); }
.or-tip { font-size: 12px; }
.or-tip table { border-collapse: collapse; }
.or-tip th { font-weight: 500; color: #555; padding: 1px 10px 1px 0; text-align: left; }
.or-tip td { padding: 1px 0; }
.or-tip-head { font-size: 13px; margin-bottom: 3px; }
.or-supp { font-style: italic; color: #8a5a00; }
.or-muted { color: #888; }
.or-order { font-weight: 700; font-size: 12px; padding: 0 5px; border-radius: 9px; }
.or-popup { font-size: 13px; line-height: 1.4; }
.or-popup b { font-size: 14px; }
.or-popup table { border-collapse: collapse; font-size: 12px; margin-top: 4px; }
.or-popup th, .or-popup td { padding: 1px 8px 1px 0; text-align: left; }
.or-popup td.n { text-align: right; }
.leaflet-control-layers-list { font-size: 13px; }
"""

#: The browser side: shared area polygons, choropleth views, legends, tooltips. Kept free
#: of ``{{``, ``{%`` and ``{#``: folium renders it once more as a Jinja template.
SCRIPT = r"""
var Outreach = (function () {
  "use strict";
  var SUPP = '<span class="or-supp">suppressed</span>';
  var NA = '<span class="or-muted">not available</span>';
  var ENT = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
  var GROUPS = [["asian", "Asian"], ["black", "Black"], ["mixed", "Mixed"], ["white", "White"], ["other", "Other"]];
  var FLAGS = ["Not flagged", "Below target", "Below expected uptake", "Below target and expected"];
  var COUNTS = {elig: 1, vacc: 1, sf: 1, up: 1, lo: 1, hi: 1, sm: 1, ex: 1};
  var FIELD = {elig: "eligible", vacc: "vaccinated", sf: "shortfall", up: "uptake", lo: "ci_low",
    hi: "ci_high", sm: "smoothed_uptake", ex: "expected_uptake", imd: "imd_decile",
    asian: "eth_asian", black: "eth_black", mixed: "eth_mixed", white: "eth_white", other: "eth_other"};
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return ENT[c]; }); }
  function get(data, key, i) {
    var c = data.columns[key];
    if (c === undefined || c === null) return null;
    return Array.isArray(c) ? c[i] : c;
  }
  function listed(data, key, i) {
    var s = get(data, "sup", i);
    return !!s && ("," + s + ",").indexOf("," + FIELD[key] + ",") >= 0;
  }
  // Null counts and rates were suppressed by disclosure control: never show a number.
  function show(data, key, i, fmt) {
    var v = get(data, key, i);
    if (v === null || v === undefined) return (COUNTS[key] || listed(data, key, i)) ? SUPP : NA;
    return fmt(v);
  }
  function count(v) { return Math.round(v).toLocaleString("en-GB"); }
  function pct(v) { return (100 * v).toFixed(1) + "%"; }
  function row(label, value) { return "<tr><th>" + label + "</th><td>" + value + "</td></tr>"; }
  function groups(data, i) {
    var found = [], supp = false;
    GROUPS.forEach(function (g) {
      var v = get(data, g[0], i);
      if (v === null || v === undefined) { supp = supp || listed(data, g[0], i); return; }
      if (v >= 0.05) found.push([v, g[1]]);
    });
    if (!found.length) return supp ? SUPP : NA;
    found.sort(function (a, b) { return b[0] - a[0]; });
    return found.slice(0, 3).map(function (g) { return g[1] + " " + (100 * g[0]).toFixed(0) + "%"; }).join(", ");
  }
  function tooltip(data, i) {
    var name = get(data, "name", i), n = get(data, "nsub", i), head = "<b>" + esc(get(data, "code", i)) + "</b>";
    if (name) head += " " + esc(name);
    if (n) head += ' <span class="or-muted">(' + count(n) + " areas)</span>";
    var up = get(data, "up", i), lo = get(data, "lo", i), hi = get(data, "hi", i);
    var uptake = show(data, "up", i, pct);
    if (up !== null && lo !== null && hi !== null) uptake += ' <span class="or-muted">(95% CI ' + pct(lo) + "–" + pct(hi) + ")</span>";
    var rows = row("Uptake", uptake) + row("Target", show(data, "tg", i, pct)) +
      row("Smoothed uptake", show(data, "sm", i, pct)) + row("Expected uptake", show(data, "ex", i, pct)) +
      row("Shortfall", show(data, "sf", i, function (v) { return count(v) + " people"; })) +
      row("Eligible / vaccinated", show(data, "elig", i, count) + " / " + show(data, "vacc", i, count)) +
      row("IMD decile", show(data, "imd", i, function (v) { return v.toFixed(0) + ' <span class="or-muted">(1 = most deprived)</span>'; })) +
      row("Main ethnic groups", groups(data, i));
    var flag = get(data, "flag", i) || 0, q = get(data, "q", i);
    rows += row("Flag", FLAGS[flag] + (flag && q !== null ? ' <span class="or-muted">(q = ' + q.toPrecision(2) + ")</span>" : ""));
    var pr = get(data, "pr", i), cl = get(data, "cl", i);
    if (pr !== null) rows += row("Priority", count(pr));
    if (cl !== null && data.clusters && data.clusters[cl]) rows += row("Cluster", data.clusters[cl]);
    var ns = get(data, "nsup", i);
    if (ns) rows += row("Note", count(ns) + " areas with suppressed counts are left out of the sums");
    return '<div class="or-tip-head">' + head + "</div><table>" + rows + "</table>";
  }
  function legend(map) {
    if (map._orLegend) return map._orLegend;
    var ctrl = L.control({position: "bottomright"}), entries = {}, order = [];
    function render() {
      if (!ctrl._div) return;
      var html = order.filter(function (id) { return entries[id]; }).map(function (id) { return entries[id]; }).join("");
      ctrl._div.innerHTML = html;
      ctrl._div.style.display = html ? "" : "none";
    }
    ctrl.onAdd = function () {
      ctrl._div = L.DomUtil.create("div", "or-legend");
      L.DomEvent.disableClickPropagation(ctrl._div);
      L.DomEvent.disableScrollPropagation(ctrl._div);
      render();
      return ctrl._div;
    };
    ctrl.set = function (id, html) { if (order.indexOf(id) < 0) order.push(id); entries[id] = html; render(); };
    ctrl.unset = function (id) { delete entries[id]; render(); };
    map._orLegend = ctrl.addTo(map);
    return ctrl;
  }
  function withLegend(map, layer, id, html) {
    layer.on("add", function () { legend(map).set(id, html); });
    layer.on("remove", function () { legend(map).unset(id); });
    return layer;
  }
  function areas(map, data, opts) {
    var features = data.geometries.map(function (g, i) { return {type: "Feature", geometry: g, properties: {i: i}}; });
    var shared = {map: map, data: data, features: features, active: null};
    function style(f) {
      var v = shared.active, c = v ? get(data, "c_" + v.key, f.properties.i) : -1;
      return {pane: opts.pane, weight: opts.weight, color: opts.stroke, opacity: 0.8, fillOpacity: opts.fillOpacity,
        fillColor: (v && c !== null && c >= 0) ? v.colours[c] : opts.missing};
    }
    shared.layer = L.geoJson(features, {pane: opts.pane, style: style});
    shared.layer.bindTooltip(function (l) { return tooltip(data, l.feature.properties.i); }, {sticky: true, opacity: 0.97, className: "or-tip"});
    shared.layer.on("mouseover", function (e) { e.layer.setStyle({weight: 2.5, color: "#222", opacity: 1}); e.layer.bringToFront(); });
    shared.layer.on("mouseout", function (e) { shared.layer.resetStyle(e.layer); });
    return shared;
  }
  var View = null;
  function view(shared, key, colours, legendHtml) {
    View = View || L.Layer.extend({
      initialize: function (s, k, c, h) { this._shared = s; this.key = k; this.colours = c; this.legendHtml = h; },
      onAdd: function (map) {
        var s = this._shared;
        s.active = this;
        s.layer.setStyle(s.layer.options.style);
        if (!map.hasLayer(s.layer)) map.addLayer(s.layer);
        legend(map).set("choropleth", this.legendHtml);
      },
      onRemove: function (map) {
        var s = this._shared;
        if (s.active === this) s.active = null;
        // A base-layer switch removes the old view before adding the new one: wait a tick
        // so the shared polygons stay on the map instead of being redrawn.
        setTimeout(function () {
          if (!s.active && map.hasLayer(s.layer)) { map.removeLayer(s.layer); legend(map).unset("choropleth"); }
        }, 0);
      }
    });
    return new View(shared, key, colours, legendHtml);
  }
  function flags(shared, colours, weights, legendHtml) {
    var data = shared.data;
    var flagged = shared.features.filter(function (f) { return get(data, "flag", f.properties.i) > 0; });
    var layer = L.geoJson(flagged, {pane: "outreach-flags", interactive: false, style: function (f) {
      var k = get(data, "flag", f.properties.i);
      return {pane: "outreach-flags", color: colours[k], weight: weights[k], opacity: 1, fill: false};
    }});
    return withLegend(shared.map, layer, "flags", legendHtml);
  }
  function outlines(map, geojson, style, id, legendHtml) {
    var layer = L.geoJson(geojson, {pane: style.pane, style: function () { return style; },
      onEachFeature: function (f, l) { if (f.properties.tip) l.bindTooltip(f.properties.tip, {sticky: true, className: "or-tip"}); }});
    return withLegend(map, layer, id, legendHtml);
  }
  function circles(map, items, geojson, id, legendHtml) {
    var group = L.featureGroup();
    items.forEach(function (c) {
      L.circle([c.lat, c.lon], {radius: c.r, pane: "outreach-catchments", interactive: false, color: c.colour,
        weight: 1.5, opacity: 0.9, fillColor: c.colour, fillOpacity: 0.08}).addTo(group);
    });
    if (geojson.features.length) {
      L.geoJson(geojson, {pane: "outreach-catchments", interactive: false, style: function (f) {
        return {pane: "outreach-catchments", color: f.properties.colour, weight: 1.5, opacity: 0.9,
          fillColor: f.properties.colour, fillOpacity: 0.08};
      }}).addTo(group);
    }
    return withLegend(map, group, id, legendHtml);
  }
  function points(map, pts, style, id, legendHtml) {
    var group = L.featureGroup();
    pts.lat.forEach(function (lat, i) {
      L.circleMarker([lat, pts.lon[i]], style).bindTooltip(esc(pts.label[i]), {className: "or-tip"}).addTo(group);
    });
    return withLegend(map, group, id, legendHtml);
  }
  function attach(map, layer, id, html) {
    withLegend(map, layer, id, html);
    if (map.hasLayer(layer)) legend(map).set(id, html);
    return layer;
  }
  function title(map, html) {
    var ctrl = L.control({position: "topleft"});
    ctrl.onAdd = function () {
      var div = L.DomUtil.create("div", "or-title");
      div.innerHTML = html;
      L.DomEvent.disableClickPropagation(div);
      return div;
    };
    return ctrl.addTo(map);
  }
  return {areas: areas, view: view, flags: flags, outlines: outlines, circles: circles,
    points: points, title: title, legend: legend, attach: attach, esc: esc};
})();
"""
