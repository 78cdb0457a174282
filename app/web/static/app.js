// synmon's dashboard: the session's CSRF token on every htmx request, and the check
// page's response-time chart (uPlot). No inline script: the pages' CSP forbids it.
"use strict";

document.addEventListener("htmx:configRequest", function (event) {
  var token = document.body.dataset.csrf;
  if (token) {
    event.detail.headers["X-CSRF-Token"] = token;
  }
});

var COLOURS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"];
var DASHES = [[], [6, 3], [2, 2], [10, 4, 2, 4], [1, 4], [8, 8]];

function drawChart(element) {
  var status = document.getElementById("chart-status");
  fetch(element.dataset.src, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    })
    .then(function (body) {
      var runs = body.data[0].length;
      if (runs === 0) {
        status.textContent = "No run in this window.";
        return;
      }
      var series = [{}].concat(body.locations.map(function (name, n) {
        // A dash pattern per location as well as a colour: colour is never the only signal.
        return {
          label: name, stroke: COLOURS[n % COLOURS.length], dash: DASHES[n % DASHES.length],
          width: 2, spanGaps: true, points: { show: runs < 200 },
          value: function (u, v) { return v == null ? "–" : v.toFixed(0) + " ms"; }
        };
      }));
      var width = Math.max(320, element.clientWidth || 800);
      var chart = new uPlot({
        width: width, height: 300, series: series,
        axes: [{}, { label: "ms" }],
        scales: { x: { time: true } }
      }, body.data, element);
      element.dataset.points = String(runs);
      element.uplot = chart;
      status.textContent = runs + " runs from " + body.locations.join(", ") + ".";
    })
    .catch(function (error) {
      status.textContent = "The chart could not be loaded: " + error.message;
    });
}

document.addEventListener("DOMContentLoaded", function () {
  var chart = document.getElementById("chart");
  if (chart && window.uPlot) {
    drawChart(chart);
  }
});
