"""The report page's inline stylesheet and script (no external file, no CDN)."""

CSS = """
:root { --ink: #1b1b1b; --muted: #4a4a4a; --line: #d0d4da; --accent: #1f5fa8;
  --bad: #a4161a; --good: #1e6b35; --warn: #8a4b00; --panel: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
  sans-serif; color: var(--ink); background: #fff; overflow-wrap: break-word; }
p, blockquote, figcaption, dd { overflow-wrap: anywhere; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 20px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.6rem; margin: 0 0 4px; overflow-wrap: anywhere; }
h1 .version { font-weight: normal; color: var(--muted); font-size: 1.1rem; }
h2 { font-size: 1.3rem; margin: 0 0 8px; }
h3 { font-size: 1.05rem; margin: 16px 0 6px; }
a { color: var(--accent); }
nav ul { list-style: none; padding: 0; margin: 8px 0 12px; display: flex; flex-wrap: wrap;
  gap: 4px 14px; }
section { padding: 18px 0; border-bottom: 1px solid var(--line); }
.lead { color: var(--muted); margin: 0 0 8px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  gap: 10px; margin: 8px 0 14px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 10px; }
.tile .label { display: block; font-size: .8rem; color: var(--muted); }
.tile .value { display: block; font-size: 1.35rem; font-weight: 600;
  overflow-wrap: normal; word-break: normal; hyphens: manual; }
.tile .value.words { font-size: 1.05rem; line-height: 1.3; }
.tile .value.bad { color: var(--bad); } .tile .value.good { color: var(--good); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr));
  gap: 18px; align-items: start; }
.grid2 > * { min-width: 0; }
figure { margin: 0; }
figcaption { font-size: .85rem; color: var(--muted); }
svg.chart { width: 100%; height: auto; max-width: 620px; display: block; }
svg.chart.square { max-width: 440px; } svg.chart.wide { max-width: 980px; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: .9rem; margin: 4px 0 10px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td > code { white-space: nowrap; }
code, .hash { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85rem;
  overflow-wrap: anywhere; }
.missing { background: #fff8e6; border-left: 4px solid var(--warn); padding: 8px 12px;
  margin: 8px 0; }
.examples { display: grid; grid-template-columns: repeat(auto-fill, minmax(132px, 1fr));
  gap: 12px; }
.examples figure { border: 1px solid var(--line); border-radius: 6px; padding: 8px;
  text-align: center; }
.examples img, .sample img { width: 112px; height: 112px; image-rendering: pixelated; }
.overlay img { width: 224px; height: 224px; max-width: 100%; image-rendering: pixelated; }
blockquote { margin: 6px 0 12px; padding: 8px 12px; background: var(--panel);
  border-left: 4px solid var(--line); }
.verdict { font-size: .9rem; }
.verdict .wrong { color: var(--bad); font-weight: 600; }
.tokens { line-height: 2; }
.tokens span { padding: 2px 3px; border-radius: 3px; margin: 0 1px; }
.tokens .unknown { text-decoration: underline dotted; font-style: italic; }
.flag { font-weight: 600; } .flag.on { color: var(--bad); } .flag.off { color: var(--good); }
.status { font-size: .85rem; color: var(--muted); }
details summary { cursor: pointer; color: var(--accent); }
footer { padding: 16px; color: var(--muted); font-size: .85rem; }
@media (max-width: 600px) {
  body { font-size: 15px; }
  h1 { font-size: 1.3rem; }
  .tile .value { font-size: 1.15rem; } .tile .value.words { font-size: 1rem; }
  .examples { grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); }
}
"""

# Reads the page's config (JSON in a script element), refreshes the live section every few
# seconds and fills the optional parts from their JSON endpoints. DOM nodes are built with
# textContent only: nothing from a response is ever parsed as HTML.
JS = r"""
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("report-config").textContent);
  var key = new URLSearchParams(window.location.search).get("key");
  var SVG = "http://www.w3.org/2000/svg";

  function headers(extra) {
    var h = Object.assign({"Accept": "application/json"}, extra || {});
    if (key) { h["Authorization"] = "Bearer " + key; }
    return h;
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function fill(id, nodes) {
    var target = document.getElementById(id);
    if (!target) { return; }
    target.replaceChildren.apply(target, nodes);
  }
  function fmt(x, digits) {
    return (x === null || x === undefined) ? "n/a" : Number(x).toFixed(digits);
  }
  function pct(x) { return (x === null || x === undefined) ? "n/a" : (100 * x).toFixed(1) + "%"; }
  function tile(label, value, cls) {
    return el("div", {"class": "tile"}, [
      el("span", {"class": "label"}, [label]),
      el("span", {"class": "value" + (cls ? " " + cls : "")}, [value])]);
  }
  function notice(text) { return el("p", {"class": "missing"}, [text]); }
  function request(url, options) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, options.timeout_ms || 10000);
    return fetch(url, Object.assign({credentials: "same-origin", signal: controller.signal},
      options)).then(function (response) {
        clearTimeout(timer);
        return response.text().then(function (text) {
          var body = null;
          try { body = JSON.parse(text); } catch (e) { body = null; }
          return {status: response.status, body: body};
        });
      }, function (error) {
        clearTimeout(timer);
        return {status: 0, body: {error: String(error && error.message || error)}};
      });
  }
  function problem(what, result) {
    if (result.status === 404 || result.status === 405) {
      return notice(what + ": not available on this server" +
        (result.body && result.body.error ? " (" + result.body.error + ")" : "") + ".");
    }
    return notice(what + ": the server answered " + (result.status || "nothing") +
      (result.body && result.body.error ? ": " + result.body.error : "") + ".");
  }

  function labelChart(labels, shares) {
    var longest = labels.reduce(function (m, l) { return Math.max(m, l.length); }, 1);
    var rowH = 22, labelW = 14 + 7.5 * longest, barW = 220, width = labelW + barW + 90;
    var svg = svgEl("svg", {"class": "chart square", "role": "img",
      "viewBox": "0 0 " + width + " " + (rowH * labels.length + 30)});
    var described = labels.map(function (l) {
      var s = shares[l]; return l + " " + (s ? s.count : 0);
    }).join(", ");
    svg.setAttribute("aria-label", "Predicted labels since start, count per label: " + described);
    var title = svgEl("title", {}); title.textContent = "Predicted labels since start";
    svg.appendChild(title);
    labels.forEach(function (label, i) {
      var s = shares[label] || {count: 0, share: 0};
      var y = i * rowH + 4;
      var name = svgEl("text", {x: labelW - 6, y: y + 14, "text-anchor": "end",
        "font-size": "12", fill: "#1b1b1b"});
      name.textContent = label;
      svg.appendChild(name);
      svg.appendChild(svgEl("rect", {x: labelW, y: y + 2, height: rowH - 6,
        width: Math.max(1, barW * (s.share || 0)), fill: "#1f5fa8"}));
      var value = svgEl("text", {x: labelW + barW * (s.share || 0) + 6, y: y + 14,
        "font-size": "12", fill: "#1b1b1b"});
      value.textContent = s.count + " (" + pct(s.share) + ")";
      svg.appendChild(value);
    });
    var axis = svgEl("text", {x: labelW, y: rowH * labels.length + 24, "font-size": "12",
      fill: "#4a4a4a"});
    axis.textContent = "Bar: share of predicted rows (0-100%)";
    svg.appendChild(axis);
    return svg;
  }

  function renderServing(serving) {
    var latency = serving.latency_ms || {};
    var errors = serving.errors || 0;
    var warned = serving.input_warnings || {};
    var codes = Object.keys(warned.by_code || {}).map(function (code) {
      return code + " " + warned.by_code[code]; }).join(", ");
    fill("live-tiles", [
      tile("Requests", String(serving.requests)),
      tile("Errors", String(errors), errors ? "bad" : ""),
      tile("Latency p50 (ms)", fmt(latency.p50, 1)),
      tile("Latency p90 (ms)", fmt(latency.p90, 1)),
      tile("Latency p99 (ms)", fmt(latency.p99, 1)),
      tile("Predictions warned (input unlike training data)",
        String(warned.warned_predictions || 0) + " (" + pct(warned.share) + ")" +
        (codes ? ": " + codes : ""), warned.warned_predictions ? "bad" : "")]);
    var total = Object.keys(serving.predicted_labels || {}).reduce(function (n, k) {
      return n + serving.predicted_labels[k].count; }, 0);
    fill("live-labels", total ? [labelChart(config.labels, serving.predicted_labels)] :
      [el("p", {"class": "lead"}, ["No predictions yet since the server started."])]);
  }

  function renderMonitoring(result) {
    if (result.status !== 200 || !result.body) {
      fill("live-monitoring", [problem("Live accuracy and drift", result)]);
      return;
    }
    var report = (result.body.versions || []).filter(function (v) {
      return v.version === config.version; })[0] || (result.body.versions || [])[0];
    if (!report) {
      fill("live-monitoring", [notice("No monitoring report for this version.")]);
      return;
    }
    var acc = report.accuracy || {};
    var recent = acc.recent || {}, all = acc.all_time || {};
    var heldOut = report.held_out_accuracy;
    var below = recent.below_held_out;
    var nodes = [el("div", {"class": "tiles"}, [
      tile("Held-out accuracy", pct(heldOut)),
      tile("Live accuracy, recent " + (recent.window_rows || "") + " rows", pct(recent.accuracy),
        below ? "bad" : ""),
      tile("Live accuracy, all time", pct(all.accuracy)),
      tile("Rows with feedback", String(report.rows_with_feedback || 0)),
      tile("Rows predicted", String(report.rows_predicted || 0))])];
    if (recent.interval_95) {
      nodes.push(el("p", {}, ["Recent live accuracy 95% interval: " + pct(recent.interval_95[0]) +
        " to " + pct(recent.interval_95[1]) + (below ? ": below the held-out figure." :
        ": consistent with the held-out figure or not enough feedback to tell.")]));
    }
    var drift = report.drift || {};
    var flag = el("span", {"class": "flag " + (drift.flagged ? "on" : "off")},
      [drift.flagged ? "flagged" : "not flagged"]);
    nodes.push(el("p", {}, ["Drift: ", flag, " (" + (drift.rows || 0) + " recent rows tested" +
      (drift.note ? "; " + drift.note : "") + ")"]));
    if ((drift.statistics || []).length) {
      var rows = drift.statistics.map(function (s) {
        return el("tr", {}, [el("td", {}, [s.statistic]), el("td", {}, [s.test || ""]),
          el("td", {"class": "num"}, [fmt(s.score, 4)]),
          el("td", {"class": "num"}, [String(s.p_value)]),
          el("td", {}, [el("span", {"class": "flag " + (s.flag ? "on" : "off")},
            [s.flag ? "drift" : "ok"])])]);
      });
      nodes.push(el("div", {"class": "table-wrap"}, [el("table", {}, [
        el("thead", {}, [el("tr", {}, ["Statistic", "Test", "Score", "p-value", "Flag"].map(
          function (h) { return el("th", {"scope": "col"}, [h]); }))]),
        el("tbody", {}, rows)])]));
    }
    fill("live-monitoring", nodes);
  }

  function refresh() {
    if (document.hidden) { return; }
    var stamp = new Date().toLocaleTimeString();
    request(config.urls.metrics, {headers: headers()}).then(function (result) {
      if (result.status === 200 && result.body && result.body.serving) {
        renderServing(result.body.serving);
        fill("live-status", ["Updated " + stamp + ", every " + config.refresh_s + " s."]);
      } else {
        fill("live-status", ["Live stats could not be refreshed (" +
          (result.status || "no answer") + "); showing the last figures."]);
      }
    });
    if (config.urls.monitoring) {
      request(config.urls.monitoring, {headers: headers()}).then(renderMonitoring);
    }
  }

  function attributionColour(value, scale) {
    var a = Math.min(1, Math.abs(value) / (scale || 1));
    return value >= 0 ? "rgba(31, 95, 168, " + (0.15 + 0.6 * a).toFixed(2) + ")" :
      "rgba(181, 83, 11, " + (0.15 + 0.6 * a).toFixed(2) + ")";
  }

  function renderExplanation(result) {
    if (result.status !== 200 || !result.body) {
      fill("explanation-result", [problem("Explanations", result)]);
      return;
    }
    var body = result.body;
    var item = (body.explanations || body.predictions || [body])[0] || {};
    var nodes = [el("p", {}, ["Predicted ", el("strong", {}, [String(item.label)]),
      "; explained label ", el("strong", {}, [String(item.explained_label || item.label)]),
      item.method && item.method.name ? " (" + item.method.name + ")." : "."])];
    if (item.overlay_png) {
      nodes.push(el("figure", {"class": "overlay"}, [
        el("img", {src: "data:image/png;base64," + item.overlay_png, width: "224", height: "224",
          alt: "Attribution overlay on the sample digit: red pixels pushed towards " +
            (item.explained_label || item.label) + ", blue pixels away from it"}),
        el("figcaption", {}, ["Attribution map over the input (red: for, blue: against)."])]));
    } else if (item.tokens) {
      // The review word by word (word pairs folded into the words they cover), so it reads
      // as the review; the n-grams as the model looked them up are listed below it.
      var words = item.words || item.tokens.map(function (t) {
        return {word: t.token, attribution: t.attribution, unknown: t.unknown}; });
      var scale = words.reduce(function (m, w) {
        return Math.max(m, Math.abs(w.attribution)); }, 0);
      var spans = [];
      words.forEach(function (w, i) {
        var span = el("span", {"class": w.unknown ? "unknown" : "", "title":
          (w.unknown ? "not in the vocabulary; " : "") +
          "attribution " + fmt(w.attribution, 4)}, [w.word]);
        span.style.background = attributionColour(w.attribution, scale);
        if (i) spans.push(" ");
        spans.push(span);
      });
      nodes.push(el("p", {"class": "tokens", "aria-label": "The review word by word, " +
        "shaded by attribution: blue for, orange against the explained label"}, spans));
      var grams = item.tokens.slice().sort(function (a, b) {
        return Math.abs(b.attribution) - Math.abs(a.attribution); });
      nodes.push(el("details", {}, [
        el("summary", {}, ["The " + grams.length + " words and word pairs the model looked " +
          "up, strongest first"]),
        el("div", {"class": "table-wrap"}, [el("table", {}, [
          el("thead", {}, [el("tr", {}, [el("th", {}, ["n-gram"]),
            el("th", {}, ["attribution"])])]),
          el("tbody", {}, grams.map(function (g) {
            return el("tr", {}, [el("td", {}, [g.unknown ? "[UNK] (" +
              (g.stands_for || []).join(", ") + ")" : g.token]),
              el("td", {"class": "num"}, [fmt(g.attribution, 4)])]); }))])])]));
      nodes.push(el("p", {"class": "status"}, ["Blue: pushed towards " +
        (item.explained_label || item.label) + "; orange: against; dotted italics: words not " +
        "in the vocabulary" + ((item.unknown_words || []).length ?
          " (" + item.unknown_words.join(", ") + ")" : "") + "."]));
    } else if (item.attributions) {
      var names = Object.keys(item.attributions);
      nodes.push(el("div", {"class": "table-wrap"}, [el("table", {}, [
        el("thead", {}, [el("tr", {}, [el("th", {"scope": "col"}, ["Feature"]),
          el("th", {"scope": "col", "class": "num"}, ["Attribution"])])]),
        el("tbody", {}, names.map(function (n) {
          return el("tr", {}, [el("td", {}, [n]),
            el("td", {"class": "num"}, [fmt(item.attributions[n], 4)])]); }))])]));
    }
    if (item.completeness) {
      nodes.push(el("p", {"class": "status"}, ["Attributions sum to " +
        fmt(item.completeness.sum_of_attributions, 4) + "; prediction minus baseline " +
        fmt(item.completeness.prediction_minus_baseline, 4) + "."]));
    }
    fill("explanation-result", nodes);
  }

  if (config.initial_serving) { renderServing(config.initial_serving); }
  if (config.urls.monitoring) {
    fill("live-monitoring", [el("p", {"class": "status"}, ["Loading live accuracy and drift..."])]);
  }
  if (config.urls.explain && config.sample !== null) {
    fill("explanation-result", [el("p", {"class": "status"}, ["Computing the explanation..."])]);
    request(config.urls.explain, {method: "POST", timeout_ms: 60000,
      headers: headers({"Content-Type": "application/json"}),
      body: JSON.stringify({instances: [config.sample]})}).then(renderExplanation);
  }
  refresh();
  setInterval(refresh, config.refresh_s * 1000);
  document.addEventListener("visibilitychange", refresh);
})();
"""
