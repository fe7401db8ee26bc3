// citywatch console: progressive enhancement of server-rendered pages.
// Without this script every page still works (forms post, filters submit, tables show the data);
// with it, the desk and event pages follow the event stream,
// and charts are drawn (Chart.js, vendored in static/vendor).
(function () {
  "use strict";

  var body = document.body;
  var prefix = body.dataset.prefix || "/console";

  // Times are rendered by the server in the district's zone (the gateway's TIMEZONE); charts use the
  // same zone, so every screen in the room shows one clock whatever the browser's own zone.
  var zone = body.dataset.timezone || "UTC";

  // -- live: the event stream (the API's /events/stream under the console session) ------------------
  function connect(onChange) {
    var status = document.getElementById("live-status");
    var source = new EventSource(prefix + "/stream");
    function show(on) {
      if (!status) return;
      status.textContent = on ? status.dataset.textOn : status.dataset.textOff;
      status.classList.toggle("on", on);
      status.classList.toggle("off", !on);
    }
    source.onopen = function () { show(true); };
    source.onerror = function () { show(false); };  // EventSource reconnects by itself
    source.onmessage = function (message) {
      var change;
      try { change = JSON.parse(message.data); } catch (e) { return; }
      onChange(change);
    };
    return source;
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function liveDesk() {
    var known = new Set();
    function remember() {
      document.querySelectorAll("#desk-rows tr[data-event-id]").forEach(function (row) {
        known.add(row.dataset.eventId);
      });
    }
    remember();
    var created = [];
    var refresh = debounce(function () {
      var rows = document.getElementById("desk-rows");
      if (!rows || !window.htmx) return;
      htmx.ajax("GET", rows.dataset.refreshUrl, { target: "#desk-rows", swap: "outerHTML" });
    }, 80);
    document.body.addEventListener("htmx:afterSettle", function () {
      var fresh = [];
      document.querySelectorAll("#desk-rows tr[data-event-id]").forEach(function (row) {
        if (!known.has(row.dataset.eventId)) {
          row.classList.add("fresh");
          fresh.push(row.dataset.eventId);
        }
      });
      remember();
      var announce = document.getElementById("announce");
      if (announce && fresh.length) {
        announce.textContent = created.length ? created.join("; ") : "#" + fresh.join(", #");
      }
      created = [];
    });
    connect(function (change) {
      if (change.action === "created") {
        created.push("#" + change.event_id + " " + change.type + " " + change.device_id);
      }
      refresh();
    });
  }

  function liveEvent() {
    var main = document.getElementById("main");
    var id = main.dataset.eventId;
    var refresh = debounce(function () {
      // Someone is filling in an action: do not take the form away; say that the event changed.
      if (document.querySelector("details.action[open]")) {
        var note = document.getElementById("changed");
        if (note) note.hidden = false;
        return;
      }
      htmx.ajax("GET", window.location.pathname, { target: "#event-live", select: "#event-live", swap: "outerHTML" });
    }, 80);
    document.body.addEventListener("htmx:afterSettle", function () {
      drawCharts(document.getElementById("event-live"));
    });
    connect(function (change) {
      if (String(change.event_id) === id && window.htmx) refresh();
    });
  }

  // -- confirmation: an action's form opens in place; Escape closes it --------------------------------
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    document.querySelectorAll("details.action[open]").forEach(function (d) {
      d.open = false;
      d.querySelector("summary").focus();
    });
  });
  document.addEventListener("toggle", function (e) {
    var d = e.target;
    if (!(d instanceof HTMLDetailsElement) || !d.classList.contains("action") || !d.open) return;
    document.querySelectorAll("details.action[open]").forEach(function (other) {
      if (other !== d) other.open = false;
    });
    var first = d.querySelector("select, input:not([type=hidden]), textarea");
    if (first) first.focus();
  }, true);

  // -- charts -----------------------------------------------------------------------------------------
  var PALETTE = ["#4cc9f0", "#f8961e", "#90be6d", "#f94144", "#c77dff", "#f9c74f", "#43aa8b", "#ff70a6", "#adb5bd"];
  var charts = [];

  function readJson(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function timeLabel(ms) {
    var d = new Date(ms);
    return d.toLocaleString(undefined, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone });
  }

  function drawCharts(root) {
    if (!window.Chart) return;
    Chart.defaults.color = "#d5dbe3";
    Chart.defaults.borderColor = "rgba(213,219,227,0.15)";
    Chart.defaults.font.size = 13;
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var existing = Chart.getChart(canvas);
      if (existing) existing.destroy();
      var data = readJson(canvas.dataset.source);
      if (!data) return;
      var kind = canvas.dataset.chart;
      var chart = null;
      if (kind === "timeseries") {
        var s = canvas.dataset.index !== undefined ? data[Number(canvas.dataset.index)] : data;
        chart = timeseries(canvas, s);
        fillTable(canvas, s);
      } else if (kind === "stacked") {
        chart = stacked(canvas, data[canvas.dataset.key]);
      } else if (kind === "hbar") {
        chart = hbar(canvas, data[canvas.dataset.key]);
      }
      if (chart) {
        charts.push(chart);
        canvas.dataset.points = String(chart.data.datasets.reduce(function (n, d) { return n + d.data.length; }, 0));
      }
    });
  }

  function timeseries(canvas, s) {
    if (!s || !s.points || !s.points.length) {
      var empty = canvas.closest("section, figure").querySelector(".chart-empty");
      if (empty) empty.hidden = false;
      return null;
    }
    var datasets = [{
      label: canvas.dataset.label || s.field,
      data: s.points.map(function (p) { return { x: p[0], y: p[1] }; }),
      borderColor: PALETTE[0],
      backgroundColor: "rgba(76,201,240,0.15)",
      fill: true,
      pointRadius: s.points.length > 60 ? 0 : 2,
      tension: 0,  // straight lines between samples: no curve the device did not report
    }];
    if (s.threshold !== undefined && s.threshold !== null) {
      var first = s.points[0][0], last = s.points[s.points.length - 1][0];
      datasets.push({
        label: canvas.dataset.thresholdLabel || "threshold",
        data: [{ x: first, y: s.threshold }, { x: last, y: s.threshold }],
        borderColor: PALETTE[3],
        borderDash: [6, 4],
        pointRadius: 0,
        fill: false,
      });
    }
    return new Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        scales: {
          // The chosen window, whole (a device heard from only lately shows as such), else the data's span.
          x: {
            type: "linear",
            min: s.window ? s.window[0] : undefined,
            max: s.window ? s.window[1] : undefined,
            ticks: { callback: timeLabel, maxTicksLimit: 8 },
          },
          y: { beginAtZero: false },
        },
        plugins: {
          tooltip: { callbacks: { title: function (items) { return timeLabel(items[0].parsed.x); } } },
        },
      },
    });
  }

  function stacked(canvas, d) {
    if (!d) return null;
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: d.labels.map(function (day) { return day.slice(5); }),
        datasets: d.series.map(function (s, i) {
          return { label: s.name, data: s.values, backgroundColor: PALETTE[i % PALETTE.length] };
        }),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }

  function hbar(canvas, d) {
    if (!d) return null;
    return new Chart(canvas, {
      type: "bar",
      data: { labels: d.labels, datasets: [{ label: canvas.dataset.label, data: d.values, backgroundColor: PALETTE[3] }] },
      options: {
        indexAxis: "y",
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }

  // The chart's numbers as a table (in a closed <details>): for screen readers and for copying.
  function fillTable(canvas, s) {
    var section = canvas.closest("section");
    var holder = section && section.querySelector('.data-table[data-table-for="' + canvas.dataset.source + '"]');
    if (!holder || !s || !s.points) return;
    var table = document.createElement("table");
    table.className = "compact";
    var head = table.createTHead().insertRow();
    ["time", canvas.dataset.label || s.field].forEach(function (text) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      head.appendChild(th);
    });
    var tbody = table.createTBody();
    s.points.forEach(function (p) {
      var row = tbody.insertRow();
      row.insertCell().textContent = new Date(p[0]).toISOString();
      row.insertCell().textContent = String(p[1]);
    });
    holder.replaceChildren(table);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    var main = document.getElementById("main");
    if (main && main.dataset.live === "desk") liveDesk();
    if (main && main.dataset.live === "event") liveEvent();
  });
})();
