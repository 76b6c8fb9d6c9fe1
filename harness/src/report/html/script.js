// hil report: filters, brushing, zoom and toggles. No dependencies, no requests.
// State can also come from the address (#status=failed&s0.kind=publish&s0.range=0-50),
// so a link opens the report filtered.
(function () {
  "use strict";
  var errors = 0;
  window.addEventListener("error", function () { errors += 1; mark(); });
  function $(sel, el) { return (el || document).querySelector(sel); }
  function $$(sel, el) { return Array.prototype.slice.call((el || document).querySelectorAll(sel)); }
  function num(x) { return parseFloat(x); }

  var wanted = {};
  if (location.hash.indexOf("=") >= 0) {
    location.hash.slice(1).split("&").forEach(function (pair) {
      var at = pair.indexOf("=");
      if (at > 0) wanted[decodeURIComponent(pair.slice(0, at))] = decodeURIComponent(pair.slice(at + 1));
    });
  }

  // The overview: status boxes and a name filter hide rows and their sections.
  var boxes = $$("#ov-status input"), name = $("#ov-name");
  if (wanted.status) boxes.forEach(function (b) { b.checked = wanted.status.split(",").indexOf(b.value) >= 0; });
  if (wanted.name && name) name.value = wanted.name;
  function filterOverview() {
    var on = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
    var text = name ? name.value.toLowerCase() : "", shown = 0, rows = $$("#overview tbody tr");
    rows.forEach(function (row) {
      var show = on.indexOf(row.dataset.status) >= 0 && row.dataset.name.toLowerCase().indexOf(text) >= 0;
      row.hidden = !show;
      if (show) shown += 1;
      var section = document.getElementById(row.dataset.section);
      if (section) section.hidden = !show;
    });
    var count = $("#overview .count");
    if (count) count.textContent = shown + " of " + rows.length + " scenarios";
  }
  boxes.forEach(function (b) { b.addEventListener("change", filterOverview); });
  if (name) name.addEventListener("input", filterOverview);
  filterOverview();

  // An MQTT filter against a topic: + is one level, # the rest.
  function topicMatches(filter, topic) {
    if (!filter) return true;
    if (topic === undefined) return false;
    var f = filter.split("/"), t = topic.split("/");
    for (var i = 0; i < f.length; i++) {
      if (f[i] === "#") return true;
      if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
    }
    return f.length === t.length;
  }

  function Scenario(section) {
    var id = section.id, seq = $("svg.seq", section), line = $("svg.timeline", section);
    var table = $("table.trace", section), bar = $(".tablefilters", section);
    var actor = $(".f-actor", bar), kind = $(".f-kind", bar), topic = $(".f-topic", bar);
    var minor = $(".t-minor", section), range = null, zoomed = false;
    var keys = seq.dataset.keys.split(" ").map(function (k) { var p = k.split(":"); return [num(p[0]), num(p[1])]; });
    var rows = $$("tbody tr", table);

    function yOf(t) {
      for (var i = 0; i < keys.length; i++) {
        if (keys[i][0] >= t) {
          if (i === 0) return keys[0][1];
          var a = keys[i - 1], b = keys[i];
          return a[1] + (t - a[0]) / Math.max(b[0] - a[0], 1e-9) * (b[1] - a[1]);
        }
      }
      return keys[keys.length - 1][1];
    }
    function tOf(y) {
      for (var i = 0; i < keys.length; i++) {
        if (keys[i][1] >= y) {
          if (i === 0) return keys[0][0];
          var a = keys[i - 1], b = keys[i];
          return a[0] + (y - a[1]) / Math.max(b[1] - a[1], 1) * (b[0] - a[0]);
        }
      }
      return keys[keys.length - 1][0];
    }
    function tAtX(x) {
      var x0 = num(line.dataset.x0), x1 = num(line.dataset.x1), t1 = num(line.dataset.t1);
      return Math.max(0, Math.min(t1, (x - x0) / (x1 - x0) * t1));
    }
    function xOfT(t) {
      var x0 = num(line.dataset.x0), x1 = num(line.dataset.x1), t1 = num(line.dataset.t1) || 1;
      return x0 + t / t1 * (x1 - x0);
    }

    function apply() {
      var a = actor.value, k = kind.value, f = topic.value.trim(), shown = 0;
      rows.forEach(function (row) {
        var cells = row.cells, t = num(cells[0].textContent);
        var show = (!a || cells[2].textContent === a) && (!k || cells[4].textContent === k) &&
          (!f || topicMatches(f, cells[4].textContent === "publish" ? cells[5].textContent : undefined)) && (!range || (t >= range[0] && t <= range[1]));
        row.hidden = !show;
        if (show) shown += 1;
      });
      $(".count", bar).textContent = shown + " of " + rows.length + " events";
      $(".range", bar).textContent = range ? "range +" + range[0].toFixed(1) + " … +" + range[1].toFixed(1) + " ms" : "";
      seq.classList.toggle("show-minor", minor.checked);
      var seqBrush = $("rect.brush", seq), lineBrush = $("rect.brush", line);
      if (range) {
        var y0 = yOf(range[0]) - 14, y1 = yOf(range[1]) + 4;
        seqBrush.setAttribute("y", y0); seqBrush.setAttribute("height", Math.max(y1 - y0, 2));
        var x0 = xOfT(range[0]), x1 = xOfT(range[1]);
        lineBrush.setAttribute("x", x0); lineBrush.setAttribute("width", Math.max(x1 - x0, 2));
      } else {
        seqBrush.setAttribute("height", 0); lineBrush.setAttribute("width", 0);
      }
      var width = seq.getAttribute("width"), full = num(seq.dataset.height);
      if (zoomed && range) {
        var top = Math.max(0, yOf(range[0]) - 30), bottom = Math.min(full, yOf(range[1]) + 16);
        seq.setAttribute("viewBox", "0 " + top + " " + width + " " + (bottom - top));
        seq.setAttribute("height", bottom - top);
      } else {
        seq.setAttribute("viewBox", "0 0 " + width + " " + full);
        seq.setAttribute("height", full);
      }
      section.dataset.shownRows = shown;
      section.dataset.zoomed = zoomed && range ? "1" : "0";
    }

    function brush(svg, pick) {
      var start = null;
      function point(e) {
        var box = svg.getBoundingClientRect(), view = svg.viewBox.baseVal;
        return { x: (e.clientX - box.left) * view.width / box.width + view.x, y: (e.clientY - box.top) * view.height / box.height + view.y };
      }
      svg.addEventListener("mousedown", function (e) {
        var p = point(e);
        if (pick(p) === null) return;
        start = pick(p); e.preventDefault();
      });
      window.addEventListener("mousemove", function (e) {
        if (start === null) return;
        var t = pick(point(e), true);
        range = [Math.min(start, t), Math.max(start, t)]; apply();
      });
      window.addEventListener("mouseup", function () { start = null; });
    }
    brush(seq, function (p, dragging) { return dragging || p.x < num(seq.dataset.gutter) ? tOf(p.y) : null; });
    brush(line, function (p) { return tAtX(p.x); });

    [actor, kind].forEach(function (el) { el.addEventListener("change", apply); });
    topic.addEventListener("input", apply);
    minor.addEventListener("change", apply);
    $(".clear", bar).addEventListener("click", function () { range = null; zoomed = false; apply(); });
    $(".zoom", section).addEventListener("click", function () { zoomed = true; apply(); });
    $(".unzoom", section).addEventListener("click", function () { zoomed = false; apply(); });
    $$("a.nearmiss", section).forEach(function (link) {
      link.addEventListener("click", function () {
        var arrow = document.getElementById(id + "-e" + link.dataset.seq);
        if (arrow) { arrow.classList.add("flash"); setTimeout(function () { arrow.classList.remove("flash"); }, 1500); }
      });
    });

    if (wanted[id + ".actor"]) actor.value = wanted[id + ".actor"];
    if (wanted[id + ".kind"]) kind.value = wanted[id + ".kind"];
    if (wanted[id + ".topic"]) topic.value = wanted[id + ".topic"];
    if (wanted[id + ".minor"]) minor.checked = true;
    if (wanted[id + ".range"]) {
      var r = wanted[id + ".range"].split("-").map(num);
      if (r.length === 2 && !isNaN(r[0]) && !isNaN(r[1])) range = [Math.min(r[0], r[1]), Math.max(r[0], r[1])];
    }
    zoomed = !!wanted[id + ".zoom"];
    // A link that sets this scenario's view opens its drawings.
    if (Object.keys(wanted).some(function (key) { return key.indexOf(id + ".") === 0; })) {
      $("details.drawings", section).open = true;
    }
    apply();
  }

  $$("section.scenario").forEach(function (section) {
    if ($("svg.seq", section)) Scenario(section);
  });

  // What a test reads back from the page: the script ran, errors, requests, first paint.
  function mark() {
    var body = document.body.dataset, paint = performance.getEntriesByType("paint");
    body.hilErrors = errors;
    body.hilRequests = performance.getEntriesByType("resource").length;
    paint.forEach(function (p) { if (p.name === "first-contentful-paint" || p.name === "first-paint") body[p.name === "first-paint" ? "hilFirstPaint" : "hilFirstContentfulPaint"] = p.startTime.toFixed(1); });
    body.hilReady = "1";
  }
  mark();
  if (window.PerformanceObserver) {
    try { new PerformanceObserver(mark).observe({ type: "paint", buffered: true }); } catch (e) { mark(); }
  }
})();
