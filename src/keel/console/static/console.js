// keel console: draws the charts a page declares and nothing else. A chart is an element
// with class "chart" and a data-chart attribute holding JSON:
//   {"x": [unix seconds...], "series": [{"label": "...", "values": [...]}, ...],
//    "stacked": true|false, "unit": "$"|""}
// Loaded with defer, after uPlot; no inline script anywhere (the page's CSP forbids it).
(function () {
  "use strict";
  var palette = ["#1d4ed8", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490",
                 "#a16207", "#be185d", "#4d7c0f", "#334155"];

  function stack(series) {
    var sums = null;
    return series.map(function (s) {
      var vals = s.values.map(function (v) { return v == null ? 0 : v; });
      sums = sums ? sums.map(function (acc, i) { return acc + vals[i]; }) : vals.slice();
      return sums.slice();
    });
  }

  function draw(el) {
    var spec;
    try { spec = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    if (!spec || !spec.x || spec.x.length < 1) { return; }
    var values = spec.stacked ? stack(spec.series) : spec.series.map(function (s) { return s.values; });
    var unit = spec.unit || "";
    var series = [{}].concat(spec.series.map(function (s, i) {
      var color = palette[i % palette.length];
      return {label: s.label, stroke: color, fill: spec.stacked ? color + "33" : undefined,
              width: 1.5, value: function (u, v) { return v == null ? "–" : unit + v.toFixed(unit ? 4 : 0); }};
    }));
    if (spec.stacked) { values = values.slice().reverse(); series = [series[0]].concat(series.slice(1).reverse()); }
    var width = Math.max(320, el.clientWidth || 640);
    el.textContent = "";
    // eslint-disable-next-line no-new
    new uPlot({width: width, height: 240, series: series,
               axes: [{}, {values: function (u, ticks) { return ticks.map(function (t) { return unit + t; }); },
                           // wide enough for the longest tick label ("$0.00125"), not clipped
                           size: function (u, values) {
                             if (!values) { return 50; }
                             var longest = 0;
                             for (var i = 0; i < values.length; i++) { longest = Math.max(longest, String(values[i]).length); }
                             return Math.ceil(longest * 7 + 18);
                           }}],
               scales: {x: {time: true}}},
              [spec.x].concat(values), el);
  }

  function drawAll(root) {
    if (typeof uPlot === "undefined") { return; }
    var charts = (root || document).querySelectorAll(".chart[data-chart]");
    for (var i = 0; i < charts.length; i++) { draw(charts[i]); }
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:after:swap", function (ev) { drawAll(ev.target); });
})();
