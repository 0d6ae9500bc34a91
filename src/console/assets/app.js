/*
 * The Lars console page: plain browser JavaScript, no build step.
 * #/                   the routes, worst first (refreshed from the console server every 2 s)
 * #/route/<m>/<c>      one route, live over server-sent events; a host's pictures and audit trail on click
 * Operator actions send the token typed in the header as a bearer token. A console
 * that wants its token for reading too (--console-auth all) reads it from a cookie the
 * token field sets (an EventSource cannot send headers); actions never rely on the cookie.
 */
'use strict';
(function () {
  const $ = (sel) => document.querySelector(sel);
  const view = $('#view');
  const STATES = ['overloaded', 'probing', 'draining', 'healthy'];
  const MARK_COLOR = { overloaded: '#c62828', probing: '#b07b00', draining: '#5a6b7d', healthy: '#1a7f37', none: '#888' };
  /** Render times by route version, read by the benchmarks and tests (epoch ms). */
  const rendered = (window.__lars = { loadId: Math.random().toString(36).slice(2), rendered: {}, drawnAt: 0 });

  const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
  function age(ms) {
    if (!ms) return '-';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ago';
    return Math.floor(s / 86400) + 'd ago';
  }
  const fmtNum = (n) => (Number.isInteger(n) ? String(n) : Math.abs(n) < 1 ? n.toFixed(3) : n.toFixed(1));
  /** The figures behind a transition: the telling ones first, zeros left out (all of them in the title). */
  const FIRST = ['err_rate', 'window_err_rate', 'consecutive_errors', 'latency_ms', 'peer_latency_ms', 'calls', 'ejections', 'ejection_ms'];
  function figures(f, all) {
    if (!f) return '';
    const keys = Object.keys(f).sort((a, b) => (FIRST.indexOf(a) + 1 || 99) - (FIRST.indexOf(b) + 1 || 99));
    return keys
      .filter((k) => all || f[k] !== 0)
      .map((k) => k + ' ' + fmtNum(f[k]))
      .join(', ');
  }
  const figCell = (f) => '<td class="figs" title="' + esc(figures(f, true)) + '">' + esc(figures(f, false)) + '</td>';

  /** Ages are filled in apart from the rows, so a row's HTML changes only when the host does. */
  function fillAges(root) {
    root.querySelectorAll('td.age').forEach((td) => (td.textContent = age(Number(td.dataset.t))));
  }
  setInterval(() => fillAges(document), 5000);

  function status(text, kind) {
    const el = $('#status');
    el.textContent = text;
    el.className = kind || '';
  }

  const user = $('#user');
  const token = $('#token');
  user.value = localStorage.getItem('lars.user') || '';
  user.addEventListener('change', () => localStorage.setItem('lars.user', user.value));
  token.addEventListener('change', () => {
    document.cookie = 'lars_console_token=' + encodeURIComponent(token.value) + '; path=/; SameSite=Strict' + (token.value ? '' : '; max-age=0');
    // a page refused for want of the token is read again with it
    if (document.body.dataset.needsToken === 'yes') {
      status('');
      navigate();
    }
  });

  async function getJson(url) {
    const r = await fetch(url, { cache: 'no-store' });
    const body = await r.json().catch(() => ({}));
    if (r.status === 401) document.body.dataset.needsToken = 'yes';
    if (!r.ok) throw new Error(r.status + ': ' + (body.error || r.statusText));
    document.body.dataset.needsToken = 'no';
    return body;
  }

  async function act(route, host, action, extra) {
    const headers = { 'content-type': 'application/json' };
    if (token.value) headers.authorization = 'Bearer ' + token.value;
    status(action + ' ' + host + ' …');
    try {
      const r = await fetch('/api/routes/' + route.replace('.', '/') + '/hosts/' + encodeURIComponent(host) + '/' + action, {
        method: 'POST',
        headers,
        body: JSON.stringify(Object.assign({ by: user.value }, extra || {})),
      });
      const body = await r.json().catch(() => ({}));
      // the last healthy hosts of the route (or into panic): say what would happen and ask
      if (r.status === 409 && body.consequence && !(extra && extra.force)) {
        if (window.confirm(action + ' ' + host + ': ' + body.consequence + '.\n\n' + action + ' anyway?')) return act(route, host, action, Object.assign({}, extra, { force: true }));
        status(action + ' ' + host + ': not done (' + body.consequence + ')', 'error');
        return;
      }
      if (!r.ok) throw new Error(r.status + ': ' + (body.error || r.statusText));
      // Named as the registry and the route event name the actor (console:<user>), whatever the action.
      status(body.changed ? action + ' ' + host + ': done (by ' + body.by + ')' : action + ' ' + host + ': nothing to do', 'ok');
    } catch (err) {
      status(action + ' ' + host + ' refused: ' + err.message, 'error');
    }
  }

  // ---- analytics note (kept visible: why there are no pictures) ----
  function showAnalytics(a) {
    const el = $('#analytics');
    if (!a) return;
    el.textContent = a.on ? 'analytics: ' + a.engine : 'analytics off: ' + a.reason;
    el.className = 'note' + (a.on ? '' : ' off');
    window.__analytics = a;
  }

  // ---- the routes ----
  let listTimer;
  let filterText = '';
  function routeRow(r) {
    const chips = STATES.filter((s) => r.states[s] > 0)
      .map((s) => '<span class="chip ' + s + '" title="' + s + '">' + r.states[s] + ' ' + s + '</span>')
      .join('');
    return (
      '<tr class="clickable" data-route="' + esc(r.route) + '" data-unhealthy="' + r.unhealthy + '">' +
      '<td><a href="#/route/' + r.modid + '/' + r.cmdid + '">' + esc(r.route) + '</a></td>' +
      '<td>' + esc(r.profile) + '</td>' +
      '<td class="num">' + r.hosts + '</td>' +
      '<td>' + (r.published ? chips : '<span class="chip unpublished">not published</span>') + (r.removed ? ' removed' : '') + '</td>' +
      '<td>' + (r.panic ? '<span class="badge panic">PANIC</span>' : '') + (r.shed > 0 ? ' <span class="badge panic" title="agents refuse this share of new calls">SHEDDING ' + Math.round(r.shed * 100) + ' %</span>' : '') + '</td>' +
      '<td class="num">' + r.version + '</td>' +
      '<td title="' + (r.ts ? esc(clock(r.ts)) : '') + '">' + age(r.ts) + '</td>' +
      '<td>' + esc(r.sender) + '</td></tr>'
    );
  }
  async function showRoutes() {
    view.innerHTML =
      '<h1>Routes</h1><input id="filter" placeholder="filter: route, profile, panic, overloaded…" value="' + esc(filterText) + '">' +
      '<div class="scroll"><table id="routes"><thead><tr><th>route</th><th>profile</th><th class="num">hosts</th><th>hosts by state</th><th>panic</th><th class="num">version</th><th>last change</th><th>by</th></tr></thead><tbody></tbody></table></div>';
    const f = $('#filter');
    f.addEventListener('input', () => {
      filterText = f.value;
      void refresh();
    });
    $('#routes').addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-route]');
      if (tr && e.target.tagName !== 'A') location.hash = '#/route/' + tr.dataset.route.replace('.', '/');
    });
    async function refresh() {
      try {
        const d = await getJson('/api/routes');
        showAnalytics(d.analytics);
        const words = filterText.toLowerCase().split(/\s+/).filter(Boolean);
        const rows = d.routes.filter((r) => {
          const text = (r.route + ' ' + r.profile + (r.panic ? ' panic' : '') + ' ' + STATES.filter((s) => r.states[s] > 0).join(' ')).toLowerCase();
          return words.every((w) => text.includes(w));
        });
        const tb = $('#routes tbody');
        if (!tb) return;
        tb.innerHTML = rows.length ? rows.slice(0, 2000).map(routeRow).join('') : '<tr><td colspan="8">no routes' + (d.routes.length ? ' match' : ' registered yet (lars route add …)') + '</td></tr>';
        $('#routes').dataset.count = String(d.routes.length);
      } catch (err) {
        status('routes: ' + err.message, 'error');
      }
    }
    await refresh();
    listTimer = setInterval(refresh, 2000);
  }

  // ---- one route ----
  let source;
  let chartTimer;
  let charts = [];
  function closeRoute() {
    if (source) source.close();
    source = undefined;
    clearInterval(chartTimer);
    charts.forEach((c) => c.destroy());
    charts = [];
  }

  function hostRow(h, route, selected) {
    const adminBtns =
      (h.admin && h.admin.state === 'drained' ? '<button data-act="undrain">undrain</button>' : '<button data-act="drain">drain</button>') +
      (h.admin && h.admin.state === 'ejected' ? '<button data-act="clear">clear</button>' : '<button data-act="eject">eject</button>');
    const last = h.last ? figCell(h.last.figures) : '<td></td>';
    return (
      '<tr class="clickable' + (selected ? ' selected' : '') + '" data-host="' + esc(h.host) + '" data-state="' + esc(h.state) + '" data-reason="' + esc(h.reason) + '">' +
      '<td>' + esc(h.host) + '</td>' +
      '<td><span class="chip ' + esc(h.state) + '">' + esc(h.state) + '</span></td>' +
      '<td>' + esc(h.reason) + '</td>' +
      last +
      '<td class="age" data-t="' + h.since + '" title="' + esc(clock(h.since)) + '"></td>' +
      '<td class="num">' + h.weight + '</td>' +
      '<td class="num">' + fmtNum(h.pick_weight) + '</td>' +
      '<td class="num">' + (h.share * 100).toFixed(1) + '%</td>' +
      '<td>' + esc(h.zone) + '</td>' +
      '<td>' + esc(h.origin) + '</td>' +
      '<td>' + (h.admin ? esc(h.admin.state + ' by ' + h.admin.by) : '') + '</td>' +
      '<td>' + (h.origin.startsWith('admin') ? adminBtns : '') + '</td></tr>'
    );
  }

  function auditTable(rows, withHost) {
    if (!rows.length) return '<p class="meta">no transitions recorded</p>';
    return (
      '<table class="audit"><thead><tr><th>time</th>' + (withHost ? '<th>host</th>' : '') + '<th>from → to</th><th>reason</th><th class="num">version</th><th>by</th><th>figures</th></tr></thead><tbody>' +
      rows
        .map(
          (a) =>
            '<tr data-to="' + esc(a.to) + '" data-reason="' + esc(a.reason) + '"><td>' + esc(clock(a.t * 1000)) + '</td>' + (withHost ? '<td>' + esc(a.host) + '</td>' : '') +
            '<td>' + esc(a.from) + ' → ' + esc(a.to) + '</td><td>' + esc(a.reason) + '</td><td class="num">' + a.version + '</td><td title="' + esc('published by ' + a.sender) + '">' + esc(a.by || a.sender) + '</td>' + figCell(a.figures) + '</tr>',
        )
        .join('') +
      '</tbody></table>'
    );
  }

  /** A uPlot plugin drawing the state changes as vertical lines with their target state. */
  function marksPlugin(marks) {
    return {
      hooks: {
        draw: (u) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.font = 11 * devicePixelRatio + 'px system-ui, sans-serif';
          marks.forEach((m, i) => {
            const x = u.valToPos(m.t, 'x', true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            ctx.strokeStyle = MARK_COLOR[m.to] || '#888';
            ctx.fillStyle = ctx.strokeStyle;
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.fillText(m.to, x + 3 * devicePixelRatio, u.bbox.top + (12 + 13 * (i % 4)) * devicePixelRatio);
          });
          ctx.restore();
        },
      },
    };
  }

  async function drawHost(route, host) {
    const panel = $('#hostpanel');
    if (!panel) return;
    const [m, c] = route.split('.');
    const a = window.__analytics;
    let html = '<h2>' + esc(host) + '</h2>';
    if (a && !a.on) html += '<p class="meta">no pictures over time: analytics off (' + esc(a.reason) + ')</p>';
    else html += '<div class="charts"><figure id="chart-traffic"></figure><figure id="chart-latency"></figure></div><figcaption id="chart-caption"></figcaption>';
    html += '<h2>Audit trail of ' + esc(host) + '</h2><div id="host-audit"></div>';
    if (panel.dataset.host !== host) {
      panel.innerHTML = html;
      panel.dataset.host = host;
      charts.forEach((x) => x.destroy());
      charts = [];
    }
    try {
      const audit = await getJson('/api/routes/' + m + '/' + c + '/audit?host=' + encodeURIComponent(host));
      const el = $('#host-audit');
      if (el) el.innerHTML = auditTable(audit.rows.slice(0, 100), false);
    } catch (err) {
      status('audit: ' + err.message, 'error');
    }
    if (a && !a.on) return;
    let s;
    try {
      s = await getJson('/api/routes/' + m + '/' + c + '/series?minutes=60&host=' + encodeURIComponent(host));
    } catch (err) {
      status('pictures: ' + err.message, 'error');
      return;
    }
    if (panel.dataset.host !== host) return;
    // The series is dense (zero calls, null latency where there were none): a hole is drawn as a hole
    // (spanGaps off), never as a line joining the calls on either side of it.
    const errPct = s.t.map((_, i) => (s.calls[i] ? (100 * s.errors[i]) / s.calls[i] : null));
    // The bucket still filling is rated over the seconds it has had.
    const perSec = s.calls.map((n, i) => n / Math.max(1, Math.min(s.bucketS, s.toS - s.t[i])));
    const width = Math.min(900, Math.max(420, Math.floor((panel.clientWidth - 60) / 2)));
    const axisTime = { stroke: '#67707a', grid: { stroke: '#eee' } };
    const xScale = { time: true, range: () => [s.fromS, s.toS] };
    const data = { traffic: [s.t, perSec, errPct], latency: [s.t, s.p50, s.p99] };
    charts.forEach((x) => x.destroy());
    charts = [
      new uPlot(
        {
          title: 'calls/s and error rate (' + s.bucketS + ' s buckets since ' + clock(s.fromS * 1000) + ')',
          width,
          height: 220,
          scales: { x: xScale, pct: { range: [0, 100] } },
          series: [{}, { label: 'calls/s', stroke: '#3465a4', width: 1.5, spanGaps: false }, { label: 'errors %', stroke: '#c62828', width: 2, scale: 'pct', spanGaps: false }],
          axes: [axisTime, { stroke: '#67707a', grid: { stroke: '#eee' } }, { side: 1, scale: 'pct', stroke: '#c62828', grid: { show: false } }],
          plugins: [marksPlugin(s.marks)],
        },
        data.traffic,
        $('#chart-traffic'),
      ),
      new uPlot(
        {
          title: 'latency ms',
          width,
          height: 220,
          scales: { x: xScale },
          series: [{}, { label: 'p50', stroke: '#1a7f37', width: 1.5, spanGaps: false }, { label: 'p99', stroke: '#8e44ad', width: 1.5, spanGaps: false }],
          axes: [axisTime, { stroke: '#67707a', grid: { stroke: '#eee' } }],
          plugins: [marksPlugin(s.marks)],
        },
        data.latency,
        $('#chart-latency'),
      ),
    ];
    // What the charts were given, read by the tests: [t, calls/s, errors %] and [t, p50, p99].
    const drawn = charts;
    rendered.chart = { host: host, bucketS: s.bucketS, traffic: drawn[0].data, latency: drawn[1].data, x: () => [drawn[0].scales.x.min, drawn[0].scales.x.max] };
    let peak = 0;
    let peakAt = 0;
    errPct.forEach((v, i) => {
      if (v !== null && v > peak) {
        peak = v;
        peakAt = s.t[i];
      }
    });
    const cap = $('#chart-caption');
    cap.dataset.peakErrPct = String(Math.round(peak));
    const total = s.calls.reduce((x, y) => x + y, 0);
    cap.dataset.calls = String(total);
    cap.dataset.marks = s.marks.map((mk) => mk.to).join(',');
    cap.textContent =
      (total ? 'peak error rate ' + peak.toFixed(0) + '%' + (peak > 0 ? ' at ' + clock(peakAt * 1000) : '') : 'no calls since ' + clock(s.fromS * 1000)) +
      (s.marks.length ? ' · state changes: ' + s.marks.map((mk) => clock(mk.t * 1000) + ' ' + mk.from + ' → ' + mk.to + ' (' + mk.reason + ')').join('; ') : ' · no state changes');
  }

  async function showRoute(m, c) {
    const route = m + '.' + c;
    view.innerHTML =
      '<h1>Route ' + esc(route) + ' <span id="live" class="badge stale">connecting</span> <span id="panic"></span></h1><div class="meta" id="meta"></div>' +
      '<div class="scroll"><table id="hosts"><thead><tr><th>host</th><th>state</th><th>reason</th><th>figures behind it</th><th>since</th><th class="num">weight</th><th class="num">pick weight</th><th class="num">share</th><th>zone</th><th>origin</th><th>admin</th><th>actions</th></tr></thead><tbody></tbody></table></div>' +
      '<div id="weightbox" class="meta"></div><div id="hostpanel" class="hostpanel" hidden></div>' +
      '<h2>Audit trail of the route</h2><div id="route-audit" class="wide"></div><h2>Callers (last hour)</h2><div id="callers" class="wide"></div>';
    let selected = new URLSearchParams(location.hash.split('?')[1] || '').get('host') || '';
    let last;
    let drawn;
    const meta = $('#meta');
    const tbody = $('#hosts tbody');
    function render(d) {
      last = d;
      if (d.missing) {
        meta.textContent = 'route ' + route + ' is neither registered nor published';
        tbody.innerHTML = '';
        return;
      }
      $('#panic').innerHTML =
        (d.panic ? '<span class="badge panic">PANIC: spreading over every host</span>' : '') +
        (d.shed > 0 ? ' <span class="badge panic">SHEDDING: agents refuse ' + Math.round(d.shed * 100) + ' % of new calls</span>' : '');
      meta.innerHTML =
        'version ' + d.version + ' · profile ' + esc(d.profile) + (d.strategy ? ' · strategy ' + esc(d.strategy) : '') +
        (d.calls
          ? ' · retries ≤ ' + Math.round(d.calls.retry_budget * 100) + ' % + ' + d.calls.retry_floor + '/s' +
            (d.calls.hedge_delay_ms !== undefined ? ' · hedge after ' + d.calls.hedge_delay_ms + ' ms (≤ ' + Math.round(d.calls.hedge_budget * 100) + ' %)' : '')
          : '') +
        (d.published ? ' · published ' + esc(age(d.ts)) + ' by ' + esc(d.sender) : ' · <b>not published</b>: no route node has taken it in') +
        ' · ' + STATES.filter((s) => d.states[s] > 0).map((s) => '<span class="chip ' + s + '">' + d.states[s] + ' ' + s + '</span>').join('');
      // Only the rows that changed are redrawn when the order holds (a transition on a route of 1,000 hosts touches one or two).
      const html = d.hosts.map((h) => hostRow(h, route, h.host === selected));
      const order = d.hosts.map((h) => h.host);
      if (drawn && drawn.order.length === order.length && drawn.order.every((k, i) => k === order[i])) {
        const trs = tbody.children;
        for (let i = 0; i < html.length; i++) if (html[i] !== drawn.html[i] && trs[i]) trs[i].outerHTML = html[i];
      } else tbody.innerHTML = html.join('');
      drawn = { order, html };
      fillAges(tbody);
      $('#hosts').dataset.version = String(d.version);
      rendered.rendered[d.version] = Date.now();
      if (!rendered.drawnAt) rendered.drawnAt = performance.now();
    }
    /** Transitions that came over the stream: shown at once, before ClickHouse has stored them. */
    const liveRows = [];
    const rowKey = (a) => a.host + '/' + a.version + '/' + a.to;
    async function loadAudit() {
      try {
        const a = await getJson('/api/routes/' + m + '/' + c + '/audit');
        const el = $('#route-audit');
        const stored = new Set(a.rows.map(rowKey));
        const rows = liveRows.filter((x) => !stored.has(rowKey(x))).concat(a.rows).sort((x, y) => y.t - x.t || y.version - x.version);
        if (el) el.innerHTML = (a.source === 'live' ? '<p class="meta">transitions seen since this console started (analytics off)</p>' : '') + auditTable(rows.slice(0, 50), true);
      } catch (err) {
        status('audit: ' + err.message, 'error');
      }
    }
    async function loadCallers() {
      const el = $('#callers');
      if (window.__analytics && !window.__analytics.on) return void (el.innerHTML = '<p class="meta">analytics off</p>');
      try {
        const r = await getJson('/api/routes/' + m + '/' + c + '/callers');
        el.innerHTML = r.rows.length
          ? '<table><thead><tr><th>caller</th><th class="num">calls</th><th class="num">errors</th><th class="num">error rate</th></tr></thead><tbody>' +
            r.rows.map((x) => '<tr><td>' + esc(x.caller) + '</td><td class="num">' + x.calls + '</td><td class="num">' + x.errors + '</td><td class="num">' + (100 * x.error_rate).toFixed(1) + '%</td></tr>').join('') +
            '</tbody></table>'
          : '<p class="meta">no calls in the last hour</p>';
      } catch (err) {
        el.innerHTML = '<p class="meta">' + esc(err.message) + '</p>';
      }
    }
    function select(host) {
      selected = host;
      history.replaceState(null, '', '#/route/' + m + '/' + c + '?host=' + encodeURIComponent(host));
      tbody.querySelectorAll('tr.selected').forEach((tr) => tr.classList.remove('selected'));
      const tr = tbody.querySelector('tr[data-host="' + CSS.escape(host) + '"]');
      if (tr) tr.classList.add('selected');
      const panel = $('#hostpanel');
      panel.hidden = false;
      const h = last && last.hosts.find((x) => x.host === host);
      $('#weightbox').innerHTML = h && h.origin.startsWith('admin')
        ? 'weight of ' + esc(host) + ': <input id="weight" size="5" value="' + h.weight + '"> <button id="setweight">set weight</button>'
        : '';
      const sw = $('#setweight');
      if (sw) sw.addEventListener('click', () => act(route, host, 'weight', { weight: Number($('#weight').value) }));
      void drawHost(route, host);
    }
    tbody.addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-host]');
      if (!tr) return;
      const btn = e.target.closest('button[data-act]');
      if (btn) return void act(route, tr.dataset.host, btn.dataset.act);
      select(tr.dataset.host);
    });

    const info = await getJson('/api/routes').catch(() => undefined);
    if (info) showAnalytics(info.analytics);
    source = new EventSource('/api/routes/' + m + '/' + c + '/stream');
    let firstRender = true;
    source.addEventListener('route', (e) => {
      render(JSON.parse(e.data));
      if (firstRender) {
        firstRender = false;
        if (selected) select(selected);
      }
    });
    let pendingChart;
    source.addEventListener('transition', (e) => {
      const a = JSON.parse(e.data);
      liveRows.unshift(a);
      if (liveRows.length > 200) liveRows.pop();
      void loadAudit();
      if (a.host === selected) {
        clearTimeout(pendingChart);
        pendingChart = setTimeout(() => drawHost(route, selected), 300);
      }
    });
    source.onopen = () => {
      $('#live').textContent = 'live';
      $('#live').className = 'badge live';
    };
    source.onerror = () => {
      $('#live').textContent = 'reconnecting';
      $('#live').className = 'badge stale';
    };
    void loadAudit();
    void loadCallers();
    chartTimer = setInterval(() => {
      if (selected) void drawHost(route, selected);
      void loadCallers();
    }, 5000);
  }

  function navigate() {
    clearInterval(listTimer);
    closeRoute();
    const m = /^#\/route\/(\d+)\/(\d+)/.exec(location.hash);
    if (m) void showRoute(m[1], m[2]);
    else void showRoutes();
  }
  window.addEventListener('hashchange', navigate);
  navigate();
})();
