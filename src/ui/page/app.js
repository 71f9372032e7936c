// scale ui: draws the page model that `scale ui` pushes (src/ui_model decides everything
// shown; this only paints it). No libraries: the page must work offline.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
let previous = null; // the model drawn last, to see which counters grew
const seen = {}; // node name -> { state, at }: when this page saw it change state

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function html(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function clear(e) {
  while (e.firstChild) e.removeChild(e.firstChild);
  return e;
}

const ROLE_WORD = { 'load-balancer': 'load balancer', 'user': 'user' };

// The cubic curve of an arrow: right side of `a` to left side of `b`, or straight down
// when `b` is not to the right.
function curve(a, b) {
  if (b.x > a.x + a.w) {
    const p0 = [a.x + a.w, a.y + a.h / 2], p3 = [b.x - 6, b.y + b.h / 2];
    const dx = (p3[0] - p0[0]) / 2;
    return [p0, [p0[0] + dx, p0[1]], [p3[0] - dx, p3[1]], p3];
  }
  const p0 = [a.x + a.w / 2, a.y + a.h], p3 = [b.x + b.w / 2, b.y - 6];
  return [p0, [p0[0], p0[1] + 30], [p3[0], p3[1] - 30], p3];
}

function at(c, t) {
  const u = 1 - t;
  const k = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
  return [0, 1].map(i => k[0] * c[0][i] + k[1] * c[1][i] + k[2] * c[2][i] + k[3] * c[3][i]);
}

function pathOf(c) {
  return `M${c[0][0]},${c[0][1]} C${c[1][0]},${c[1][1]} ${c[2][0]},${c[2][1]} ${c[3][0]},${c[3][1]}`;
}

function drawPicture(m) {
  const p = m.picture;
  const root = clear(document.getElementById('picture'));
  root.setAttribute('viewBox', `0 0 ${p.width} ${p.height}`);
  root.setAttribute('width', p.width);
  root.setAttribute('height', p.height);
  const defs = svg('defs');
  for (const kind of ['publish', 'pool', 'write', 'read', 'replication', 'uses', 'mount', 'down']) {
    const marker = svg('marker', { id: `arrow-${kind}`, viewBox: '0 0 10 10', refX: '9', refY: '5',
      markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' });
    marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', class: `head ${kind}` }));
    defs.append(marker);
  }
  root.append(defs);
  for (const c of p.clusters) {
    const g = svg('g', { class: 'cluster' + (c.internal ? ' internal' : ''), 'data-network': c.id });
    g.append(svg('rect', { x: c.x, y: c.y, width: c.w, height: c.h, rx: 12 }));
    g.append(svg('text', { x: c.x + 12, y: c.y + 16, class: 'cluster-label' }, c.label));
    root.append(g);
  }
  const byId = Object.fromEntries(p.nodes.map(n => [n.id, n]));
  const edges = svg('g', { class: 'edges' });
  const labels = svg('g', { class: 'edge-labels' });
  for (const e of p.edges) {
    const a = byId[e.from], b = byId[e.to];
    if (!a || !b) continue;
    const c = curve(a, b);
    const kind = e.down ? 'down' : e.kind;
    const g = svg('g', { class: `edge ${e.kind}${e.down ? ' is-down' : ''}`, 'data-from': a.name, 'data-to': b.name });
    const line = svg('path', { d: pathOf(c), class: 'line', 'marker-end': `url(#arrow-${kind})` });
    line.append(svg('title', {}, `${a.name} → ${b.name}: ${e.label || e.kind}`));
    g.append(line);
    edges.append(g);
    const label = edgeLabel(m, e, b);
    if (label) {
      const mid = at(c, 0.5);
      labels.append(svg('text', { x: mid[0], y: mid[1] - 5, class: `edge-label ${e.down ? 'is-down' : ''}`,
        'text-anchor': 'middle' }, label));
    }
  }
  root.append(edges);
  for (const n of p.nodes) root.append(drawNode(n));
  // Labels over the boxes, so that a narrow gap between columns never hides them.
  root.append(labels);
  root.append(svg('g', { id: 'dots' }));
  animateRequests(m, byId);
}

// Short labels (the gaps between columns are narrow): a pool arrow says how many requests
// its server has had, a published port its host port; the rest say it in the legend.
function edgeLabel(m, e, to) {
  if (e.kind === 'pool') return e.requests != null ? `${e.requests} req` : null;
  if (e.kind !== 'publish') return null;
  const ep = m.endpoints.find(x => x.container === to.name);
  return ep ? `:${ep.address.split(':').pop()}` : null;
}

function drawNode(n) {
  const state = n.state || 'none';
  const mark = seen[n.name];
  if (!mark || mark.state !== state) seen[n.name] = { state, at: Date.now() };
  const g = svg('g', {
    class: `node role-${n.role} state-${state}`, 'data-name': n.name, 'data-role': n.role,
    'data-state': state, 'data-since': seen[n.name].at,
  });
  g.append(svg('rect', { x: n.x, y: n.y, width: n.w, height: n.h, rx: 9, class: 'box' }));
  g.append(svg('text', { x: n.x + 12, y: n.y + 21, class: 'name' }, n.name));
  // The role as a coloured stripe on the left (the words are in the lines below the name).
  g.append(svg('rect', { x: n.x, y: n.y + 6, width: 5, height: n.h - 12, rx: 2, class: 'stripe' }));
  g.append(svg('title', {}, `${n.name}: ${ROLE_WORD[n.role] || n.role}, ${state}`));
  n.lines.forEach((line, i) => {
    g.append(svg('text', { x: n.x + 12, y: n.y + 38 + 16 * i, class: 'detail' }, line));
  });
  if (n.state) {
    const cls = `dot-state ${state}`;
    g.append(svg('circle', { cx: n.x + n.w - 4, cy: n.y + 4, r: 6, class: cls }));
  }
  return g;
}

// Requests moving: one dot per request the load balancer sent a server since the last
// model (at most eight per arrow), travelling along its pool arrow.
function animateRequests(m, byId) {
  if (!previous) return;
  const before = {};
  for (const e of previous.picture.edges) if (e.kind === 'pool') before[e.from + '>' + e.to] = e.requests;
  const layer = document.getElementById('dots');
  for (const e of m.picture.edges) {
    if (e.kind !== 'pool' || e.requests == null) continue;
    const grew = e.requests - (before[e.from + '>' + e.to] ?? e.requests);
    if (grew <= 0) continue;
    const c = curve(byId[e.from], byId[e.to]);
    for (let i = 0; i < Math.min(grew, 8); i++) {
      const dot = svg('circle', { r: 4.5, class: 'request' });
      layer.append(dot);
      const start = performance.now() + i * 50;
      const step = now => {
        const t = (now - start) / 600;
        if (t > 1 || !dot.isConnected) { dot.remove(); return; }
        const [x, y] = at(c, Math.max(0, t));
        dot.setAttribute('cx', x);
        dot.setAttribute('cy', y);
        dot.style.opacity = t < 0 ? 0 : 1;
        requestAnimationFrame(step);
      };
      requestAnimationFrame(step);
    }
  }
}

function pill(text, cls) {
  return html('span', { class: `pill ${cls}` }, text);
}

function drawTables(m) {
  const eps = clear(document.getElementById('endpoints'));
  if (!m.endpoints.length) eps.append(html('li', { class: 'muted' }, 'nothing published'));
  for (const e of m.endpoints) {
    const target = e.url ? html('a', { href: e.url, target: '_blank', rel: 'noopener' }, e.url) : e.address;
    eps.append(html('li', {}, html('b', {}, e.service), ` :${e.container_port} → `, target));
  }
  const pools = clear(document.getElementById('pools'));
  if (!m.pools.length) pools.append(html('p', { class: 'muted' }, 'no load balancer at this stage'));
  const old = {};
  for (const p of (previous ? previous.pools : [])) for (const s of p.servers) old[p.balancer + '>' + s.server] = s.total;
  for (const p of m.pools) {
    const table = html('table', { class: 'pool', 'data-balancer': p.balancer });
    table.append(html('caption', {}, `${p.balancer} → backend ${p.backend}`));
    table.append(html('tr', {}, html('th', {}, 'server'), html('th', {}, 'state'), html('th', {}, 'now'),
      html('th', {}, 'served'), html('th', {}, 'last refresh')));
    for (const s of p.servers) {
      const grew = s.total - (old[p.balancer + '>' + s.server] ?? s.total);
      table.append(html('tr', { 'data-server': s.server, 'data-up': s.up },
        html('td', {}, s.server), html('td', {}, pill(s.status, s.up ? 'up' : 'down')),
        html('td', { class: 'num' }, String(s.current)), html('td', { class: 'num total' }, String(s.total)),
        html('td', { class: 'num' + (grew > 0 ? ' grew' : '') }, grew > 0 ? `+${grew}` : '')));
    }
    pools.append(table);
    if (p.error) pools.append(html('p', { class: 'error' }, p.error));
  }
  const rows = clear(document.getElementById('containers'));
  rows.append(html('tr', {}, ...['container', 'role', 'state', 'health', 'lag'].map(t => html('th', {}, t))));
  for (const c of m.containers) {
    rows.append(html('tr', { 'data-name': c.name, 'data-state': c.state, 'data-role': c.role },
      html('td', {}, c.name), html('td', {}, ROLE_WORD[c.role] || c.role), html('td', {}, pill(c.state, c.state)),
      html('td', {}, c.health), html('td', {}, c.lag || '')));
  }
  const events = clear(document.getElementById('events'));
  if (!m.events.length) events.append(html('li', { class: 'muted' }, 'nothing yet: try `scale chaos kill web-1`'));
  for (const e of [...m.events].reverse()) {
    const time = new Date(e.at_ms).toLocaleTimeString([], { hour12: false });
    events.append(html('li', { class: `event ${e.kind}` }, html('time', {}, time), ' ', e.text));
  }
}

function render(m) {
  document.getElementById('project').textContent = m.project;
  document.getElementById('source').textContent = `from ${m.source}`;
  const s = m.summary;
  const summary = clear(document.getElementById('summary'));
  summary.append(pill(`${s.up}/${s.containers} up`, s.down ? 'down' : 'up'));
  if (s.starting) summary.append(pill(`${s.starting} starting`, 'starting'));
  if (s.down) summary.append(pill(`${s.down} down`, 'down'));
  const error = document.getElementById('error');
  error.hidden = !m.error;
  error.textContent = m.error || '';
  drawPicture(m);
  drawTables(m);
  previous = m;
  window.lastModel = m; // for tests and the curious: the document last drawn
  document.body.dataset.updatedAt = Date.now();
}

function connect() {
  const conn = document.getElementById('conn');
  const stream = new EventSource('/events');
  stream.addEventListener('model', e => render(JSON.parse(e.data)));
  stream.onopen = () => { conn.textContent = 'live'; conn.className = 'conn live'; };
  stream.onerror = () => { conn.textContent = 'reconnecting…'; conn.className = 'conn lost'; };
}

connect();
