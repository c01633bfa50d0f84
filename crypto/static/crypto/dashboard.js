/* Charts of the dashboard, drawn with the vendored uPlot from the JSON each page embeds.
   window.kasparroCharts lists what was drawn (name, series, points): the browser tests read it. */
(function () {
  "use strict";
  const drawn = (window.kasparroCharts = []);
  const colors = { coingecko: "#2f5fd0", coinpaprika: "#d9730d", csv: "#7a4fbf" };
  const status = { succeeded: "#1f9d55", failed: "#d64545", skipped: "#9aa1ad", running: "#2f5fd0" };

  function data(el) {
    const script = document.getElementById(el.dataset.source);
    return script ? JSON.parse(script.textContent) : null;
  }
  function width(el) { return Math.max(320, el.clientWidth || 900); }
  const compact = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 4 });
  function axis(extra) {
    return Object.assign({ size: 70, values: (u, ticks) => ticks.map((v) => (v === null ? "" : compact.format(v))) }, extra || {});
  }
  function dot(color, size) {
    return { show: true, size: size || 7, stroke: color, fill: color };
  }
  function record(name, plot, series) {
    drawn.push({ name: name, series: series.length, points: series.reduce((n, s) => n + s.filter((v) => v !== null).length, 0) });
    return plot;
  }

  // Recent runs of one source: one dot a run, by status, at its start and its records (flagged
  // runs amber), and a line of how long each took; a click opens the run.
  function timeline(el, d) {
    const runs = d.sources[Number(el.dataset.index)].runs;
    if (!runs.length) { el.textContent = "No run yet."; el.classList.add("muted"); el.style.minHeight = "0"; return; }
    const xs = runs.map((r) => r.at);
    const by = (test) => runs.map((r) => (test(r) ? r.records : null));
    const series = [
      by((r) => r.status === "succeeded" && !r.flags),
      by((r) => r.status === "failed"),
      by((r) => r.status !== "succeeded" && r.status !== "failed"),
      by((r) => r.status === "succeeded" && r.flags > 0),
    ];
    const seconds = runs.map((r) => r.seconds);
    const opts = {
      width: width(el), height: 200,
      series: [
        {},
        { label: "succeeded", stroke: status.succeeded, points: dot(status.succeeded), paths: () => null },
        { label: "failed", stroke: status.failed, points: dot(status.failed), paths: () => null },
        { label: "skipped or running", stroke: status.skipped, points: dot(status.skipped), paths: () => null },
        { label: "flagged", stroke: "#d98e04", points: dot("#d98e04", 9), paths: () => null },
        { label: "seconds", stroke: "#9aa1ad", width: 1, dash: [3, 3], scale: "s", spanGaps: true, points: { show: false } },
      ],
      scales: { s: {} },
      axes: [{}, axis({ label: "records" }), axis({ scale: "s", side: 1, grid: { show: false }, label: "seconds" })],
      hooks: { ready: [(u) => u.over.addEventListener("click", () => {
        const i = u.cursor.idx; if (i !== null && i !== undefined) window.location = "/dashboard/runs/" + runs[i].id + "/";
      })] },
    };
    record("timeline", new uPlot(opts, [xs, ...series, seconds], el), series);
  }

  // Price of each source overlaid on one time axis; flags as markers; a click opens the point's body.
  function aligned(d, key) {
    const times = Array.from(new Set(d.series.flatMap((s) => s.t))).sort((a, b) => a - b);
    const index = new Map(times.map((t, i) => [t, i]));
    const columns = d.series.map((s) => {
      const col = new Array(times.length).fill(null);
      s.t.forEach((t, i) => { col[index.get(t)] = s[key][i]; });
      return col;
    });
    return { times: times, index: index, columns: columns };
  }
  function markers(d, a, which) {
    return d.series.map((s, k) => {
      const col = new Array(a.times.length).fill(null);
      s[which].forEach((t) => { const i = a.index.get(t); if (i !== undefined) col[i] = a.columns[k][i]; });
      return col;
    });
  }
  function price(el, d) {
    const a = aligned(d, "price");
    const moves = markers(d, a, "moves");
    const apart = markers(d, a, "apart");
    const series = [{}];
    d.series.forEach((s) => series.push({ label: s.label, stroke: colors[s.source] || "#555", width: 1.5, spanGaps: true, points: { show: false } }));
    d.series.forEach((s) => series.push({ label: "price move (" + s.source + ")", stroke: "#d64545", paths: () => null, points: { show: true, size: 9, stroke: "#d64545", fill: "#fff", space: 0 } }));
    d.series.forEach((s) => series.push({ label: "sources apart (" + s.source + ")", stroke: "#d98e04", paths: () => null, points: { show: true, size: 9, stroke: "#d98e04", fill: "#d98e04", space: 0 } }));
    const values = [...a.columns, ...moves, ...apart];
    const opts = {
      width: width(el), height: 340, series: series, axes: [{}, axis()],
      hooks: { ready: [(u) => u.over.addEventListener("click", () => {
        const i = u.cursor.idx; if (i === null || i === undefined) return;
        const t = a.times[i];
        for (const s of d.series) { const j = s.t.indexOf(t); if (j >= 0 && s.raw[j]) { window.location = "/api/raw/" + s.raw[j] + "/"; return; } }
      })] },
    };
    record("price", new uPlot(opts, [a.times, ...values], el), a.columns);
  }
  function market(el, d) {
    const cap = aligned(d, "market_cap");
    const vol = aligned(d, "volume");
    const series = [{}];
    d.series.forEach((s) => series.push({ label: "market cap, " + s.source, stroke: colors[s.source] || "#555", width: 1.5, spanGaps: true, points: { show: false } }));
    d.series.forEach((s) => series.push({ label: "volume 24 h, " + s.source, stroke: colors[s.source] || "#555", dash: [4, 4], spanGaps: true, points: { show: false }, scale: "vol" }));
    const opts = {
      width: width(el), height: 260, series: series, scales: { vol: {} },
      axes: [{}, axis({ label: "market cap" }), axis({ scale: "vol", side: 1, grid: { show: false }, label: "volume" })],
    };
    record("market", new uPlot(opts, [cap.times, ...cap.columns, ...vol.columns], el), [...cap.columns, ...vol.columns]);
  }

  const draw = { timeline: timeline, price: price, market: market };
  document.querySelectorAll("[data-chart]").forEach((el) => {
    const d = data(el);
    if (d) draw[el.dataset.chart](el, d);
  });
})();
