// The sluice dashboard: one page, routed by the URL's hash, reading /api/v1 with the
// bearer token the user gives (kept in this tab's sessionStorage). Data is only ever put
// into the page as text (textContent), never as HTML.

const TOKEN = "sluice-token";
const COLORS = ["#2f5fd0", "#d0632f", "#2f9d5f", "#9d2f8f", "#8f8f2f", "#2f8f9d"];

// -- talking to the server

class ApiError extends Error {}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders();
  const options = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, options);
  if (response.status === 401) {
    askToken("This server asks for credentials.");
    throw new ApiError("not signed in");
  }
  const type = response.headers.get("content-type") || "";
  const answer = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    throw new ApiError(answer && answer.message ? answer.message : `${response.status} ${response.statusText}`);
  }
  return answer;
}

// Server-sent events read with fetch (EventSource cannot send the Authorization header);
// a stream that ends (a server restart) is opened again after 3 s, until the page leaves.
async function subscribe(path, onEvent, signal) {
  while (!signal.aborted) {
    try {
      await readEvents(path, onEvent, signal);
    } catch (error) {
      if (signal.aborted) return;
    }
    setConnection("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

async function readEvents(path, onEvent, signal) {
  const response = await fetch(`/api/v1${path}`, { headers: authHeaders(), signal });
  if (!response.ok || !response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

function askToken(why) {
  const dialog = document.getElementById("login");
  document.getElementById("login-why").textContent = why;
  if (!dialog.open) dialog.showModal();
}

// -- building the page

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const badge = (state) => h("span", { class: `badge ${state}` }, state);
const fixed = (value, digits = 1) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const percent = (value) => (value === null || value === undefined ? "–" : `${(value * 100).toFixed(2)} %`);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

function sparkline(points, width = 160, height = 28) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  const values = points.map((p) => p[1]).filter((v) => v !== null);
  if (values.length < 2) return svg;
  const times = points.map((p) => p[0]);
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  const top = Math.max(...values) || 1;
  let d = "";
  for (const [t, v] of points) {
    if (v === null) continue;
    const x = ((t - t0) / (t1 - t0 || 1)) * (width - 2) + 1;
    const y = height - 1 - (v / top) * (height - 2);
    d += `${d ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
  }
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", COLORS[0]);
  path.setAttribute("stroke-width", "1.5");
  svg.append(path);
  svg.dataset.points = String(values.length);
  return svg;
}

// -- pages

async function overviewPage(main, signal) {
  const data = await api("/dashboard/overview");
  const rows = new Map();
  const table = h("table", { id: "endpoints" },
    h("thead", {}, h("tr", {},
      h("th", {}, "Endpoint"), h("th", {}, "Status"), h("th", {}, "Variants"),
      h("th", { class: "num" }, "req/s"), h("th", { class: "num" }, "errors"),
      h("th", { class: "num" }, "p99 ms"), h("th", {}, "p99, last 30 min"))),
    h("tbody", {}, data.endpoints.map((endpoint) => {
      const cells = {
        rps: h("td", { class: "num rps" }, fixed(endpoint.rps)),
        errors: h("td", { class: "num errors" }, percent(endpoint.error_rate)),
        p99: h("td", { class: "num p99" }, fixed(endpoint.p99_ms, 2)),
      };
      rows.set(endpoint.name, cells);
      return h("tr", { "data-endpoint": endpoint.name },
        h("td", {}, h("a", { href: `#/endpoints/${encodeURIComponent(endpoint.name)}` }, endpoint.name)),
        h("td", {}, badge(endpoint.status)),
        h("td", {}, endpoint.variants.map((v) =>
          h("div", {}, `${v.name} (${v.kind === "shadow" ? "shadow" : `${fixed(v.weight, 2)}`}) × ${v.instances}`))),
        cells.rps, cells.errors, cells.p99,
        h("td", {}, sparkline(endpoint.spark.map((p) => [p[0], p[2]]))));
    })));
  main.replaceChildren(
    h("h1", {}, "Endpoints"),
    data.endpoints.length ? table : h("p", { class: "muted" }, "No endpoints yet."),
    h("h2", {}, "Alarms in ALARM"),
    data.alarms_in_alarm.length
      ? h("ul", { id: "alarms" }, data.alarms_in_alarm.map((a) =>
          h("li", {}, badge("ALARM"), " ", a.name, a.endpoint ? ` (${a.endpoint})` : "", h("div", { class: "muted" }, a.reason))))
      : h("p", { class: "muted" }, "None."),
    h("h2", {}, "Jobs running or failed"),
    data.jobs.length
      ? h("ul", { id: "jobs" }, data.jobs.map((j) => h("li", {}, badge(j.status), " ", j.name, j.failure_reason ? ` — ${j.failure_reason}` : "")))
      : h("p", { class: "muted" }, "None."));
  subscribe("/dashboard/events", (event, live) => {
    if (event !== "live") return;
    for (const [name, variants] of Object.entries(live.endpoints)) {
      const cells = rows.get(name);
      if (!cells) continue;
      const figures = Object.values(variants);
      const rps = figures.reduce((sum, v) => sum + v.rps, 0);
      const p99s = figures.map((v) => v.p99_ms).filter((v) => v !== null);
      cells.rps.textContent = fixed(rps);
      cells.p99.textContent = p99s.length ? fixed(Math.max(...p99s), 2) : "–";
    }
    setConnection(`live ${new Date(live.at * 1000).toLocaleTimeString()}`);
  }, signal);
}

const CHARTS = [
  ["invocations", "Requests per 10 s", 0],
  ["p50_ms", "p50 model latency (ms)", 2],
  ["p99_ms", "p99 model latency (ms)", 2],
  ["errors_4xx", "4xx errors", 0],
  ["errors_5xx", "5xx errors", 0],
  ["cpu_percent", "CPU (% of a core, per instance)", 1],
  ["memory_percent", "Memory (% of the machine, per instance)", 2],
  ["instances", "Instances", 0],
];

async function endpointPage(main, signal, name) {
  const [endpoint, deployments, series, configs, alarms] = await Promise.all([
    api(`/endpoints/${encodeURIComponent(name)}`),
    api(`/endpoints/${encodeURIComponent(name)}/deployments`),
    api(`/dashboard/endpoints/${encodeURIComponent(name)}/series?minutes=30`),
    api("/endpoint-configs"),
    api(`/alarms?endpoint=${encodeURIComponent(name)}`),
  ]);
  const production = endpoint.variants.filter((v) => v.kind === "production");
  const message = h("p", { class: "error", id: "action-error" });
  const weights = h("form", { class: "inline", id: "weights-form" },
    production.map((v) => h("label", {}, `${v.name} weight`,
      h("input", { name: v.name, type: "number", min: "0", step: "any", value: v.current_weight }))),
    h("button", { type: "submit" }, "Save weights"));
  weights.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { weights: {} };
    for (const input of weights.querySelectorAll("input")) body.weights[input.name] = Number(input.value);
    try {
      await api(`/endpoints/${encodeURIComponent(name)}/weights`, { method: "PUT", body });
      message.textContent = "";
      route();
    } catch (error) {
      message.textContent = error.message;
    }
  });
  const update = h("form", { class: "inline", id: "update-form" },
    h("label", {}, "Endpoint config", h("select", { name: "config" },
      configs.filter((c) => c.name !== endpoint.config).map((c) => h("option", { value: c.name }, c.name)))),
    h("label", {}, "Traffic", h("select", { name: "type" },
      ["CANARY", "LINEAR", "ALL_AT_ONCE"].map((t) => h("option", { value: t }, t)))),
    h("label", {}, "Step (% of capacity)", h("input", { name: "size", type: "number", min: "1", max: "100", value: "10" })),
    h("label", {}, "Bake (s)", h("input", { name: "wait", type: "number", min: "0", value: "60" })),
    h("label", {}, "Alarms (comma-separated)", h("input", { name: "alarms", type: "text" })),
    h("button", { type: "submit" }, "Start guarded update"));
  update.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(update);
    const routing = { Type: form.get("type"), WaitIntervalInSeconds: Number(form.get("wait")) };
    const size = { Type: "CAPACITY_PERCENT", Value: Number(form.get("size")) };
    if (routing.Type === "CANARY") routing.CanarySize = size;
    if (routing.Type === "LINEAR") routing.LinearStepSize = size;
    const alarms = String(form.get("alarms")).split(",").map((a) => a.trim()).filter(Boolean);
    const policy = { BlueGreenUpdatePolicy: { TrafficRoutingConfiguration: routing } };
    if (alarms.length) policy.AutoRollbackConfiguration = { Alarms: alarms.map((a) => ({ AlarmName: a })) };
    try {
      await api(`/endpoints/${encodeURIComponent(name)}/deployments`, {
        method: "POST", body: { config: form.get("config"), deployment_config: policy },
      });
      message.textContent = "";
      route();
    } catch (error) {
      message.textContent = error.message;
    }
  });
  const running = deployments.find((d) => !["Completed", "RolledBack", "Failed"].includes(d.state));
  const cancel = running
    ? h("button", { class: "danger", type: "button", id: "cancel-update", onclick: async () => {
        try { await api(`/endpoints/${encodeURIComponent(name)}/cancel-update`, { method: "POST" }); route(); }
        catch (error) { message.textContent = error.message; }
      } }, "Cancel the update and roll back")
    : null;

  const variantNames = Object.keys(series.variants);
  const legend = h("p", {}, variantNames.map((v, i) =>
    h("span", {}, h("span", { class: "legend-swatch", style: `background:${COLORS[i % COLORS.length]}` }), v, "  ")));
  const marks = deployments.flatMap((d) => [
    ...d.steps.map((s) => ({ at: Date.parse(s.started_at) / 1000, color: "#9a6700" })),
    ...(d.finished_at ? [{ at: Date.parse(d.finished_at) / 1000, color: d.state === "Completed" ? "#1a7f37" : "#c62828" }] : []),
  ]);
  const charts = h("div", { class: "cards", id: "charts" });
  main.replaceChildren(...[
    h("h1", {}, `Endpoint ${endpoint.name} `, badge(endpoint.status)),
    h("p", { class: "muted" }, `Endpoint config ${endpoint.config}`, endpoint.failure_reason ? ` — ${endpoint.failure_reason}` : ""),
    h("table", { id: "variants" },
      h("thead", {}, h("tr", {}, h("th", {}, "Variant"), h("th", {}, "Kind"), h("th", {}, "Model"),
        h("th", { class: "num" }, "Weight"), h("th", { class: "num" }, "Instances"),
        h("th", { class: "num" }, "req/s now"), h("th", { class: "num" }, "p99 ms now"))),
      h("tbody", {}, endpoint.variants.map((v) => h("tr", { "data-variant": v.name },
        h("td", {}, v.name), h("td", {}, v.kind), h("td", {}, v.model),
        h("td", { class: "num weight" }, v.kind === "shadow" ? `${v.sampling_percentage} % copied` : fixed(v.current_weight, 2)),
        h("td", { class: "num" }, `${v.current_instance_count}`),
        h("td", { class: "num rps" }, "–"), h("td", { class: "num p99" }, "–"))))),
    h("h2", {}, "Alarms"),
    alarms.length ? h("table", { id: "alarms" },
      h("thead", {}, h("tr", {}, h("th", {}, "Alarm"), h("th", {}, "State"), h("th", {}, "Watches"), h("th", {}, "Why"))),
      h("tbody", {}, alarms.map((a) => h("tr", { "data-alarm": a.name },
        h("td", {}, a.name), h("td", {}, badge(a.state)),
        h("td", {}, `${a.metric} ${a.statistic} ${a.comparison} ${a.threshold} over ${a.period_s} s${a.variant ? ` (${a.variant})` : ""}`),
        h("td", { class: "muted" }, a.state_reason)))))
      : h("p", { class: "muted" }, "No alarm watches this endpoint."),
    h("h2", {}, "Weights"), weights,
    h("h2", {}, "Update"), update, cancel, message,
    h("h2", {}, "Last 30 minutes"), legend, charts,
    h("h2", {}, "Deployments"),
    deployments.length ? h("ul", { class: "timeline", id: "deployments" }, deployments.map(deploymentItem))
      : h("p", { class: "muted" }, "No update yet."),
  ].filter(Boolean));
  drawCharts(charts, series, marks);
  subscribe("/dashboard/events", (event, live) => {
    if (event !== "live") return;
    const variants = live.endpoints[name] || {};
    for (const row of main.querySelectorAll("#variants tbody tr")) {
      const figures = variants[row.dataset.variant];
      row.querySelector(".rps").textContent = figures ? fixed(figures.rps) : "–";
      row.querySelector(".p99").textContent = figures ? fixed(figures.p99_ms, 2) : "–";
    }
    setConnection(`live ${new Date(live.at * 1000).toLocaleTimeString()}`);
  }, signal);
}

function deploymentItem(d) {
  return h("li", { class: d.state, "data-deployment": d.id },
    h("strong", {}, `#${d.id} ${d.from_config} → ${d.to_config}`), " ", badge(d.state), " ",
    h("span", { class: "muted" }, `${d.kind}, ${when(d.created_at)}, ${fixed(d.duration_s)} s`),
    d.reason ? h("div", { class: d.state === "Completed" ? "muted" : "error" }, d.reason) : null,
    h("ol", { class: "steps" }, d.steps.map((s) => h("li", {},
      `${s.label}: green ${Object.entries(s.green_shares).map(([v, share]) => `${v} ${(share * 100).toFixed(0)} %`).join(", ")}, `,
      `bake ${fixed(s.bake_s, 0)} s, `, s.decision ? `${s.decision}` : "running",
      s.reason ? h("span", { class: "muted" }, ` — ${s.reason}`) : null,
      Object.keys(s.alarms).length ? h("span", { class: "muted" }, ` — alarms: ${Object.entries(s.alarms).map(([a, st]) => `${a} ${st}`).join(", ")}`) : null))));
}

function drawCharts(container, series, marks) {
  const names = Object.keys(series.variants);
  const width = Math.max(480, container.clientWidth / 2 - 40);
  const annotate = {
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        ctx.save();
        for (const mark of marks) {
          if (mark.at < u.scales.x.min || mark.at > u.scales.x.max) continue;
          const x = u.valToPos(mark.at, "x", true);
          ctx.strokeStyle = mark.color;
          ctx.setLineDash([4, 3]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      }],
    },
  };
  for (const [key, title, digits] of CHARTS) {
    const card = h("div", { class: "card", "data-chart": key }, h("h3", {}, title));
    container.append(card);
    const data = [series.times, ...names.map((v) => series.variants[v][key])];
    card.dataset.points = String(data.slice(1).reduce((n, s) => n + s.filter((v) => v !== null).length, 0));
    new uPlot({
      width, height: 180,
      cursor: { sync: { key: "endpoint" } },
      legend: { show: false },
      plugins: [annotate],
      series: [{}, ...names.map((v, i) => ({
        label: v, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
        points: { show: true, size: 4, fill: COLORS[i % COLORS.length] },
        value: (u, value) => fixed(value, digits),
      }))],
      axes: [{}, { size: 50 }],
    }, data, card);
  }
}

// -- registry

async function registryPage(main) {
  const groups = await api("/model-package-groups");
  const sections = [];
  for (const group of groups) {
    const packages = await api(`/model-package-groups/${encodeURIComponent(group.name)}/packages`);
    const metricNames = [...new Set(packages.flatMap((p) => Object.keys(p.metrics)))].sort();
    const message = h("p", { class: "error" });
    const rows = packages.map((p) => {
      const comment = h("input", { type: "text", placeholder: "comment", name: "comment" });
      const decide = (status) => async () => {
        try {
          await api(`/model-package-groups/${encodeURIComponent(group.name)}/packages/${p.version}/approval`, {
            method: "PUT", body: { status, by: "dashboard", reason: comment.value || null },
          });
          route();
        } catch (error) {
          message.textContent = error.message;
        }
      };
      const served = h("td", { class: "served muted" }, "…");
      api(`/lineage?package=${encodeURIComponent(`${group.name}/${p.version}`)}`)
        .then((found) => {
          const endpoints = [...new Set((found.served || []).map((s) => s.endpoint))];
          served.textContent = endpoints.length ? endpoints.join(", ") : "not served";
        })
        .catch((error) => { served.textContent = error.message; });
      return h("tr", { "data-version": p.version },
        h("td", {}, `v${p.version}`), h("td", {}, badge(p.approval)),
        h("td", { class: "muted" }, p.approval_reason || ""),
        metricNames.map((m) => h("td", { class: "num" }, p.metrics[m] === undefined ? "–" : fixed(p.metrics[m], 4))),
        served,
        h("td", {}, comment, " ",
          h("button", { type: "button", class: "approve", onclick: decide("Approved") }, "Approve"), " ",
          h("button", { type: "button", class: "secondary reject", onclick: decide("Rejected") }, "Reject")));
    });
    sections.push(h("section", { "data-group": group.name },
      h("h2", {}, group.name, group.requires_approval ? h("span", { class: "muted" }, " (approval required to deploy)") : ""),
      group.description ? h("p", { class: "muted" }, group.description) : null,
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "Approval"), h("th", {}, "Comment"),
          metricNames.map((m) => h("th", { class: "num" }, m)), h("th", {}, "Served by"), h("th", {}, "Decide"))),
        h("tbody", {}, rows)),
      message));
  }
  main.replaceChildren(h("h1", {}, "Model registry"),
    ...(sections.length ? sections : [h("p", { class: "muted" }, "No model package group yet.")]));
}

// -- monitoring

async function monitoringPage(main) {
  const schedules = await api("/monitoring-schedules");
  const sections = [];
  for (const schedule of schedules) {
    const executions = await api(`/monitoring-schedules/${encodeURIComponent(schedule.name)}/executions`);
    const features = new Map();
    for (const run of executions) {
      for (const [feature, found] of Object.entries((run.summary && run.summary.features) || {})) {
        if (found.drift === null || found.drift === undefined) continue;
        if (!features.has(feature)) features.set(feature, []);
        features.get(feature).push([Date.parse(run.scheduled_at) / 1000, found.drift]);
      }
    }
    sections.push(h("section", { "data-schedule": schedule.name },
      h("h2", {}, `${schedule.name} `, badge(schedule.status)),
      h("p", { class: "muted" }, `${schedule.job.kind} on ${schedule.job.endpoint}, ${schedule.schedule}; alert state ${schedule.alert_state}`),
      h("table", { class: "executions" },
        h("thead", {}, h("tr", {}, h("th", {}, "Run"), h("th", {}, "Status"), h("th", { class: "num" }, "Violations"), h("th", {}, "Reason"))),
        h("tbody", {}, executions.slice(0, 20).map((run) => h("tr", {},
          h("td", {}, when(run.scheduled_at)), h("td", {}, badge(run.status)),
          h("td", { class: "num" }, run.summary && run.summary.violations !== undefined ? run.summary.violations : "–"),
          h("td", { class: "muted" }, run.failure_reason || ""))))),
      features.size ? h("h3", {}, "Drift per feature") : null,
      features.size ? h("table", { class: "drift" },
        h("thead", {}, h("tr", {}, h("th", {}, "Feature"), h("th", { class: "num" }, "latest"), h("th", {}, "over time"))),
        h("tbody", {}, [...features.entries()].sort((a, b) => b[1][0][1] - a[1][0][1]).map(([feature, points]) => h("tr", {},
          h("td", {}, feature), h("td", { class: "num" }, fixed(points[0][1], 4)),
          h("td", {}, sparkline([...points].reverse())))))) : null));
  }
  main.replaceChildren(h("h1", {}, "Monitoring"),
    ...(sections.length ? sections : [h("p", { class: "muted" }, "No monitoring schedule yet.")]));
}

// -- jobs

async function jobsPage(main) {
  const [transforms, overview, jobs, pipelines] = await Promise.all([
    api("/transform-jobs"), api("/dashboard/overview"), api("/jobs"), api("/pipelines"),
  ]);
  const executions = await Promise.all(pipelines.map((p) => api(`/pipelines/${encodeURIComponent(p.name)}/executions`)));
  const seconds = (value) => (value === null || value === undefined ? "–" : fixed(value, 1));
  main.replaceChildren(
    h("h1", {}, "Jobs"),
    h("h2", {}, "Pipelines"),
    pipelines.length ? h("table", { id: "pipelines" },
      h("thead", {}, h("tr", {}, h("th", {}, "Pipeline"), h("th", {}, "Steps"), h("th", {}, "Latest executions"))),
      h("tbody", {}, pipelines.map((p, i) => h("tr", { "data-pipeline": p.name },
        h("td", {}, p.name), h("td", {}, p.steps.map((s) => s.name).join(" · ")),
        h("td", {}, executions[i].slice(-5).reverse().map((x) => h("a", { href: `#/executions/${x.id}`, class: "execution", "data-execution": x.id }, badge(x.status), ` ${x.id} `)))))))
      : h("p", { class: "muted" }, "No pipeline yet."),
    h("h2", {}, "Processing and training"),
    jobs.length ? h("table", { id: "jobs-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "Kind"), h("th", {}, "Status"), h("th", {}, "Stage"),
        h("th", { class: "num" }, "Seconds"), h("th", {}, "Metrics"), h("th", {}, "Failure"))),
      h("tbody", {}, jobs.slice().reverse().map((j) => h("tr", { "data-job": j.name },
        h("td", {}, h("a", { href: `#/jobs/${j.kind}/${encodeURIComponent(j.name)}` }, j.name)), h("td", {}, j.kind),
        h("td", {}, badge(j.status)), h("td", {}, j.secondary_status || ""), h("td", { class: "num" }, seconds(j.duration_s)),
        h("td", {}, Object.entries(j.metrics).map(([k, v]) => `${k}=${Number(v).toPrecision(4)}`).join(", ")),
        h("td", {}, j.failure_reason || "")))))
      : h("p", { class: "muted" }, "No processing or training job yet."),
    h("h2", {}, "Batch transform"),
    transforms.length ? h("table", { id: "transforms" },
      h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "Model"), h("th", {}, "Status"),
        h("th", { class: "num" }, "Records done"), h("th", { class: "num" }, "Failed"), h("th", {}, "Progress"),
        h("th", {}, "Started"))),
      h("tbody", {}, transforms.map((job) => {
        const p = job.progress;
        const share = p.records ? (p.records_done + p.records_failed) / p.records : null;
        return h("tr", { "data-job": job.name },
          h("td", {}, job.name), h("td", {}, job.model), h("td", {}, badge(job.status)),
          h("td", { class: "num" }, `${p.records_done}${p.records ? ` of ${p.records}` : ""}`),
          h("td", { class: "num" }, p.records_failed),
          h("td", {}, share === null ? "–" : h("progress", { max: "1", value: String(share) })),
          h("td", {}, when(job.started_at)));
      }))) : h("p", { class: "muted" }, "No transform job yet."),
    h("h2", {}, "Asynchronous inference backlog"),
    overview.async_backlogs.length ? h("table", { id: "backlogs" },
      h("thead", {}, h("tr", {}, h("th", {}, "Endpoint"), h("th", { class: "num" }, "Queued or running"),
        h("th", { class: "num" }, "Oldest (s)"), h("th", { class: "num" }, "Instances"))),
      h("tbody", {}, overview.async_backlogs.map((b) => h("tr", {},
        h("td", {}, b.endpoint), h("td", { class: "num" }, b.backlog), h("td", { class: "num" }, fixed(b.oldest_age_s)),
        h("td", { class: "num" }, b.instances))))) : h("p", { class: "muted" }, "No async endpoint has reported a backlog."));
}

// A job: its state, metrics and log, refreshed every 2 s while it runs.
async function jobPage(main, signal, kind, name) {
  const path = `/jobs/${kind}/${encodeURIComponent(name)}`;
  const message = h("p", { class: "error" });
  for (;;) {
    const [job, log] = await Promise.all([api(path), api(`${path}/log?lines=500`)]);
    if (signal.aborted) return;
    const running = ["InProgress", "Stopping"].includes(job.status);
    const stop = h("button", { type: "button", id: "stop-job", onclick: async () => {
      try { await api(`${path}/stop`, { method: "POST" }); } catch (error) { message.textContent = error.message; }
    } }, "Stop the job");
    main.replaceChildren(...[
      h("h1", {}, `${kind === "training" ? "Training" : "Processing"} job ${job.name} `, badge(job.status)),
      h("p", { class: "muted" }, `${job.secondary_status || ""} · attempt ${job.attempts} · image ${job.image || "(the server's Python)"} · folder ${job.folder}`),
      job.failure_reason ? h("p", { class: "error", id: "job-failure" }, job.failure_reason) : null,
      Object.keys(job.metrics).length ? h("table", { id: "job-metrics" },
        h("tbody", {}, Object.entries(job.metrics).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, String(v))))))
        : null,
      job.model_artifacts ? h("p", {}, "Model: ", h("code", {}, job.model_artifacts)) : null,
      running ? stop : null, message,
      h("h2", {}, "Log"),
      h("pre", { id: "job-log" }, log.lines.join("\n")),
    ].filter(Boolean));
    if (!running) return;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    if (signal.aborted) return;
  }
}

// A pipeline execution: its steps as they run, with stop and retry.
async function executionPage(main, signal, id) {
  const message = h("p", { class: "error" });
  const act = (verb) => async () => {
    try { await api(`/executions/${id}/${verb}`, { method: "POST" }); } catch (error) { message.textContent = error.message; }
  };
  for (;;) {
    const x = await api(`/executions/${id}`);
    if (signal.aborted) return;
    const running = ["Executing", "Stopping"].includes(x.status);
    const jobLink = (s) => {
      if (!s.job) return s.outcome ? `outcome ${s.outcome}` : "";
      const kind = { Processing: "processing", Training: "training" }[s.type];
      return kind ? h("a", { href: `#/jobs/${kind}/${encodeURIComponent(s.job)}` }, s.job) : s.job;
    };
    main.replaceChildren(...[
      h("h1", {}, `Execution ${x.id} of ${x.pipeline} `, badge(x.status)),
      h("p", { class: "muted" }, `started ${when(x.created_at)}${x.ended_at ? `, ended ${when(x.ended_at)}` : ""} · folder ${x.folder}`),
      x.failure_reason ? h("p", { class: "error", id: "execution-failure" }, x.failure_reason) : null,
      h("p", { class: "muted" }, "Parameters: ", Object.entries(x.parameters).map(([k, v]) => `${k}=${v}`).join(", ") || "none"),
      h("table", { id: "steps" },
        h("thead", {}, h("tr", {}, h("th", {}, "Step"), h("th", {}, "Type"), h("th", {}, "Status"), h("th", { class: "num" }, "Attempts"),
          h("th", {}, "Cache"), h("th", {}, "Ran"), h("th", { class: "num" }, "Seconds"), h("th", {}, "Failure"))),
        h("tbody", {}, x.steps.map((s) => h("tr", { "data-step": s.name },
          h("td", {}, s.name), h("td", {}, s.type), h("td", {}, badge(s.status)), h("td", { class: "num" }, s.attempts),
          h("td", {}, s.cached_from ? h("a", { href: `#/executions/${s.cached_from}` }, `hit (${s.cached_from})`) : ""),
          h("td", {}, jobLink(s)),
          h("td", { class: "num" }, s.ended_at ? fixed((new Date(s.ended_at) - new Date(s.started_at)) / 1000, 1) : "–"),
          h("td", {}, s.failure_reason || ""))))),
      running ? h("button", { type: "button", id: "stop-execution", onclick: act("stop") }, "Stop the execution") : null,
      ["Failed", "Stopped"].includes(x.status) ? h("button", { type: "button", id: "retry-execution", onclick: act("retry") }, "Retry the failed steps") : null,
      message,
    ].filter(Boolean));
    if (!running && x.status !== "Failed" && x.status !== "Stopped") return;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    if (signal.aborted) return;
  }
}

// -- experiments

async function experimentsPage(main) {
  const experiments = await api("/experiments");
  main.replaceChildren(h("h1", {}, "Experiments"),
    experiments.length ? h("table", { id: "experiments" },
      h("thead", {}, h("tr", {}, h("th", {}, "Experiment"), h("th", {}, "Endpoint"), h("th", {}, "Status"), h("th", {}, "Variants"), h("th", {}, "Ends"))),
      h("tbody", {}, experiments.map((x) => h("tr", {},
        h("td", {}, h("a", { href: `#/experiments/${encodeURIComponent(x.name)}` }, x.name)),
        h("td", {}, x.endpoint), h("td", {}, badge(x.status)),
        h("td", {}, x.variants.map((v) => v.variant_name).join(", ")), h("td", {}, when(x.end))))))
      : h("p", { class: "muted" }, "No experiment yet."));
}

async function experimentPage(main, name) {
  const experiment = await api(`/experiments/${encodeURIComponent(name)}`);
  const report = await api(`/experiments/${encodeURIComponent(name)}/report?format=html`);
  const message = h("p", { class: "error" });
  const running = !["Completed", "Cancelled"].includes(experiment.status);
  const actions = h("form", { class: "inline", id: "stop-form" },
    experiment.variants.map((v) => h("label", {}, `${v.variant_name} (${v.role})`,
      h("select", { name: v.variant_name }, ["Retain", "Promote", "Remove"].map((a) => h("option", { value: a }, a))))),
    h("label", {}, "Reason", h("input", { name: "reason", type: "text" })),
    h("button", { type: "submit" }, "End the experiment"));
  actions.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(actions);
    const chosen = {};
    for (const v of experiment.variants) chosen[v.variant_name] = form.get(v.variant_name);
    try {
      await api(`/experiments/${encodeURIComponent(name)}/stop`, {
        method: "POST", body: { actions: chosen, reason: form.get("reason") || null },
      });
      route();
    } catch (error) {
      message.textContent = error.message;
    }
  });
  // The report is a self-contained page of its own: shown as it is, with no script run.
  const frame = h("iframe", { id: "report", sandbox: "", title: "comparison report", style: "width:100%;height:900px;border:1px solid var(--line);background:#fff" });
  frame.srcdoc = report;
  main.replaceChildren(...[
    h("h1", {}, `Experiment ${experiment.name} `, badge(experiment.status)),
    h("p", { class: "muted" }, `${experiment.type} on ${experiment.endpoint}; ${when(experiment.start)} to ${when(experiment.end)}`),
    experiment.status_reason ? h("p", { class: "muted" }, experiment.status_reason) : null,
    running ? h("h2", {}, "Promote, retain or remove") : null,
    running ? actions : null, message,
    h("h2", {}, "Comparison report"), frame,
  ].filter(Boolean));
}

async function docsPage(main) {
  const spec = await api("/openapi.json");
  const holder = h("div", { id: "docs" });
  main.replaceChildren(holder);
  if (!document.getElementById("swagger-css")) {
    document.head.append(h("link", { id: "swagger-css", rel: "stylesheet", href: "/ui/static/vendor/swagger-ui/swagger-ui.css" }));
  }
  if (typeof window.SwaggerUIBundle === "undefined") {
    await new Promise((resolve, reject) => {
      document.head.append(h("script", { src: "/ui/static/vendor/swagger-ui/swagger-ui-bundle.js", onload: resolve, onerror: reject }));
    });
  }
  spec.servers = [{ url: "/api/v1" }];
  window.SwaggerUIBundle({
    spec,
    domNode: holder,
    requestInterceptor: (request) => {
      Object.assign(request.headers, authHeaders());
      return request;
    },
  });
}

// -- routing

let stopping = null;

function setConnection(text) {
  document.getElementById("connection").textContent = text;
}

async function route() {
  if (stopping) stopping.abort();
  stopping = new AbortController();
  const main = document.getElementById("main");
  const path = location.hash.replace(/^#/, "") || "/";
  const endpoint = path.match(/^\/endpoints\/([^/]+)$/);
  const experiment = path.match(/^\/experiments\/([^/]+)$/);
  const job = path.match(/^\/jobs\/(processing|training)\/([^/]+)$/);
  const execution = path.match(/^\/executions\/([^/]+)$/);
  try {
    if (endpoint) await endpointPage(main, stopping.signal, decodeURIComponent(endpoint[1]));
    else if (experiment) await experimentPage(main, decodeURIComponent(experiment[1]));
    else if (job) await jobPage(main, stopping.signal, job[1], decodeURIComponent(job[2]));
    else if (execution) await executionPage(main, stopping.signal, decodeURIComponent(execution[1]));
    else if (path === "/experiments") await experimentsPage(main);
    else if (path === "/registry") await registryPage(main);
    else if (path === "/monitoring") await monitoringPage(main);
    else if (path === "/jobs") await jobsPage(main);
    else if (path === "/docs") await docsPage(main);
    else await overviewPage(main, stopping.signal);
  } catch (error) {
    if (error instanceof ApiError && error.message === "not signed in") return;
    main.replaceChildren(h("p", { class: "error", id: "page-error" }, error.message || String(error)));
  }
}

document.getElementById("login-form").addEventListener("submit", () => {
  sessionStorage.setItem(TOKEN, document.getElementById("login-token").value.trim());
  document.getElementById("sign-out").hidden = false;
  route();
});
document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN);
  location.reload();
});
document.getElementById("sign-out").hidden = !sessionStorage.getItem(TOKEN);
window.addEventListener("hashchange", route);
window.addEventListener("load", route);
