// lumpy web UI: one page, plain JS, no dependencies. Every view reads its
// state from the URL (path + query string), so every view is a deep link.
// Data is only ever inserted as text nodes or attributes (never as HTML).
'use strict';

const $ = (sel, root) => (root || document).querySelector(sel);
const SVG = 'http://www.w3.org/2000/svg';

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

/** Replaces an element's children, skipping null/false ones. */
function put(el, ...kids) {
  el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
}

// ---------------------------------------------------------------- formatting
const PROTO = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmp6', 132: 'sctp' };
const proto = (p) => PROTO[p] || String(p);
const pad = (n, w = 2) => String(n).padStart(w, '0');
function ts(sec) {
  if (!sec) return '—';
  const d = new Date(sec * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
function bytes(n) {
  if (n < 1024) return `${n} B`;
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${u[i]}`;
}
function ago(secs) {
  if (secs === null || secs === undefined) return '—';
  if (secs < 90) return `${secs}s`;
  if (secs < 5400) return `${Math.round(secs / 60)} min`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h`;
  return `${Math.round(secs / 86400)} d`;
}
const num = (n) => Number(n).toLocaleString('en-US');
function dur(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}
const endpoint = (ip, port, p) => (p === 6 || p === 17) ? `${ip.includes(':') ? `[${ip}]` : ip}:${port}` : ip;

// ------------------------------------------------------------------- fetching
class HttpError extends Error {
  constructor(status, message, param) { super(message); this.status = status; this.param = param || null; }
}

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (r.status === 401) {
    const back = location.pathname + location.search;
    navigate('/login?next=' + encodeURIComponent(back), true);
    throw new HttpError(401, 'log in first');
  }
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  if (!r.ok) throw new HttpError(r.status, (body && body.error) || r.statusText, body && body.param);
  return body;
}

async function post(path, data) {
  return fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(data || {}),
  });
}

// -------------------------------------------------------------------- routing
function navigate(url, replace) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || a.hasAttribute('download') || a.getAttribute('target') || e.ctrlKey || e.metaKey || e.shiftKey) return;
  // getAttribute: an SVG link's `href` property is not a string.
  const url = new URL(a.getAttribute('href') || '', location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);

let me = null;

async function route() {
  const path = location.pathname;
  const q = new URLSearchParams(location.search);
  const main = $('#main');
  delete main.dataset.ready;
  if (path === '/login') {
    $('#top').hidden = true;
    return viewLogin(main, q);
  }
  if (!me) {
    try { me = (await api('/api/v1/me')).user; } catch (_) { return; }
  }
  $('#top').hidden = false;
  $('#whoami').textContent = me;
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const view = parts[0] || 'overview';
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.view === view ||
      (view === 'flow' && a.dataset.view === 'flows'));
  }
  put(main, h('p', { class: 'muted' }, 'Loading…'));
  main.dataset.view = view;
  try {
    switch (view) {
      case 'overview': await viewOverview(main); break;
      case 'flows': await viewFlows(main, q); break;
      case 'aggregate': await viewAggregate(main, q); break;
      case 'flow': await viewFlow(main, parts[1], parts[2], q); break;
      case 'host': await viewHost(main, parts[1]); break;
      case 'process': await viewProcess(main, parts[1], parts[2], q); break;
      case 'sessions': await viewSessions(main, q); break;
      case 'dag': await viewDag(main); break;
      case 'plots': await viewPlots(main, q); break;
      case 'graph': await viewGraph(main, q); break;
      default: put(main, h('h1', {}, 'Not found'), h('p', {}, `No view at ${path}.`));
    }
    document.title = `lumpy · ${main.querySelector('h1') ? main.querySelector('h1').textContent : view}`;
  } catch (err) {
    if (err.status === 401) return;
    put(main, h('h1', {}, 'Error'), h('p', { class: 'error', id: 'error' }, err.message));
  }
  main.dataset.ready = '1';
}

// ---------------------------------------------------------------------- login
function viewLogin(main, q) {
  me = null;
  const err = h('p', { class: 'error', id: 'login-error', role: 'alert' });
  const form = h('form', { id: 'login', class: 'login', autocomplete: 'on' },
    h('h1', {}, h('img', { src: '/assets/icon.svg', alt: '', width: 28, height: 28 }), ' lumpy'),
    h('p', { class: 'muted' }, 'Honeynet archive — sign in'),
    h('label', {}, 'User', h('input', { id: 'user', name: 'user', autocomplete: 'username', required: true, autofocus: true })),
    h('label', {}, 'Password', h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { id: 'login-submit', type: 'submit' }, 'Sign in'),
    err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const r = await post('/api/v1/login', { user: $('#user').value, password: $('#password').value });
    if (r.ok) {
      me = (await r.json()).user;
      const next = q.get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', true);
    } else {
      let msg = 'login failed';
      try { msg = (await r.json()).error; } catch (_) { /* keep */ }
      err.textContent = msg;
      $('#password').value = '';
    }
  });
  put(main, form);
  main.dataset.view = 'login';
  main.dataset.ready = '1';
  document.title = 'lumpy · sign in';
}

$('#logout') && $('#logout').addEventListener('click', async () => {
  await post('/api/v1/logout');
  me = null;
  navigate('/login', true);
});

// ------------------------------------------------------------------- overview
function activity(a) {
  return [
    h('td', { class: 'num' }, num(a.inbound_flows)),
    h('td', { class: 'num' }, num(a.outbound_flows)),
    h('td', { class: 'num' }, num(a.sebek_processes)),
  ];
}

const STATUS_TITLE = {
  online: 'a record arrived within the silence limit',
  silent: 'no record for longer than the silence limit',
  decommissioned: 'listed as decommissioned in this node\'s configuration',
};

async function viewOverview(main) {
  const d = await api('/api/v1/sensors');
  const silent = d.sensors.filter((x) => x.silent).length;
  const rows = d.sensors.map((x) => h('tr', { class: `sensor ${x.status}`, 'data-sensor': x.sensor_id },
    h('td', { class: 'status' }, h('span', { class: x.silent ? 'dot bad' : 'dot ok' }), ' ',
      h('span', { class: `status-word ${x.silent ? 'bad' : ''}`, title: STATUS_TITLE[x.status] || '' }, x.status),
      x.state && x.state !== x.status ? h('div', { class: 'muted small', title: 'state recorded in the sensor table' }, `recorded: ${x.state}`) : null),
    h('td', {}, h('a', { href: `/flows?sensor=${x.sensor_id}` }, String(x.sensor_id)),
      x.name ? h('div', { class: 'muted small' }, x.name) : null),
    h('td', { class: 'small incarnation' },
      h('span', { class: 'mono', title: 'first segment of this incarnation' }, x.incarnation || '—'),
      h('div', { class: 'muted' }, `installed ${ts(x.install_sec)}`),
      x.manage_ip ? h('div', { class: 'muted' }, `at ${x.manage_ip}`) : null,
      x.earlier.length ? h('div', {}, 'reinstall of ', ...x.earlier.map((n) => h('a', { href: `/flows?sensor=${n.sensor_id}`, title: `installed ${ts(n.install_sec)}; same address by ${n.by}` }, String(n.sensor_id) + ' '))) : null,
      x.later.length ? h('div', { class: 'bad' }, 'replaced by ', ...x.later.map((n) => h('a', { href: `/flows?sensor=${n.sensor_id}`, title: `installed ${ts(n.install_sec)}; same address by ${n.by}` }, String(n.sensor_id) + ' '))) : null),
    h('td', { class: 'small' }, ts(x.newest_record_sec),
      h('div', { class: x.silent ? 'bad' : 'muted' }, x.lag_secs === null ? 'no data' : `${ago(x.lag_secs)} ago`)),
    h('td', { class: 'small' }, x.last_pull ? `${ts(x.last_pull)}` : (x.hops === 0 ? 'local' : '—'),
      x.last_pull_error ? h('div', { class: 'bad' }, x.last_pull_error) : null,
      h('div', { class: 'muted path' }, x.path.join(' ← '))),
    h('td', { class: 'small nets' }, x.honeypot_nets === null ? h('span', { class: 'muted', title: 'set at the sensor\'s origin' }, 'at origin')
      : (x.honeypot_nets.length ? x.honeypot_nets.join(', ') : h('span', { class: 'bad', title: 'every flow counts as inbound' }, 'none set'))),
    h('td', { class: 'num totals' }, h('a', { href: `/flows?sensor=${x.sensor_id}` }, num(x.totals.flows)),
      h('div', { class: 'muted small' }, `${num(x.totals.packets)} pkts · ${bytes(x.totals.bytes)}`)),
    h('td', { class: 'small' }, x.totals.flows ? [ts(x.totals.first_sec), h('div', {}, ts(x.totals.last_sec))] : '—'),
    ...activity(x.last_hour), ...activity(x.last_day)));
  put(main,
    h('h1', {}, 'Sensors'),
    h('p', { class: 'muted' }, `${d.sensors.length} sensor${d.sensors.length === 1 ? '' : 's'} at node ${d.node_id.slice(0, 12)} · `,
      silent ? h('span', { class: 'bad', id: 'silent-count' }, `${silent} silent (no record for more than ${ago(d.silent_after_secs)})`) : 'all online',
      ` · honeypot networks of this node (they decide a flow's direction): `,
      h('span', { id: 'honeypot-nets', class: 'mono' }, d.honeypot_nets.length ? d.honeypot_nets.join(', ') : 'none set'),
      ` · all-time totals refreshed every ${ago(d.totals_max_age_secs)}`),
    h('div', { class: 'scroll' }, h('table', { id: 'sensors', class: 'grid' },
      h('thead', {},
        h('tr', {}, h('th', { colspan: 6 }), h('th', { colspan: 2, class: 'group' }, 'all time'), h('th', { colspan: 3, class: 'group' }, 'last 1 h'), h('th', { colspan: 3, class: 'group' }, 'last 24 h')),
        h('tr', {}, ['Status', 'Sensor', 'Incarnation', 'Newest record', 'Last pull · path', 'Honeypot nets', 'Flows', 'First · last flow',
          'in', 'out', 'sebek', 'in', 'out', 'sebek'].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows))));
}

// ---------------------------------------------------------- connection table
const FILTERS = ['sensor', 'since', 'until', 'ip', 'ip_side', 'port', 'port_side', 'proto', 'bidir', 'min_bytes', 'alerts', 'client_os', 'server_os'];
const TABLE = ['sort', 'collapse'];

/** The filters of `q` (and `more` keys) as a query string. */
function carry(q, more) {
  const out = new URLSearchParams();
  for (const k of [...FILTERS, ...(more || [])]) if (q.get(k)) out.set(k, q.get(k));
  return out;
}

// The results last shown by each view, kept on screen under a bad filter.
const lastResults = {};

/**
 * A refused filter: the form stays as typed, the message sits next to the
 * field it names (or above the results), and the previous results stay.
 */
function filterError(main, view, title, form, err) {
  if (err.status !== 400) throw err;
  const field = err.param ? form.querySelector(`[name="${CSS.escape(err.param)}"]`) : null;
  const msg = h('span', { class: 'field-error', id: 'field-error', role: 'alert' }, err.message);
  if (field) {
    field.classList.add('invalid');
    field.setAttribute('aria-invalid', 'true');
    field.setAttribute('aria-describedby', 'field-error');
    (field.closest('label') || form).append(msg);
  }
  const prev = lastResults[view];
  put(main, h('h1', {}, title), form,
    field ? null : h('p', { class: 'error', id: 'error', role: 'alert' }, err.message),
    prev ? h('div', { class: 'stale', id: 'previous-results' },
      h('p', { class: 'muted' }, 'Results of the previous filter, kept while you correct this one:'), prev) : null);
  if (field) field.focus();
}

async function sensorOptions(selected) {
  let list = [];
  try { list = (await api('/api/v1/sensors')).sensors; } catch (e) { if (e.status === 401) throw e; }
  const known = list.some((x) => String(x.sensor_id) === selected);
  return [h('option', { value: '' }, 'all sensors'),
    ...list.map((x) => h('option', { value: x.sensor_id, selected: String(x.sensor_id) === selected },
      `${x.sensor_id}${x.name ? ' ' + x.name : ''}`)),
    // A sensor typed into the URL that is not listed stays selected, so the
    // refusal is shown beside it rather than silently dropped.
    selected && !known ? h('option', { value: selected, selected: true }, `${selected} (not listed)`) : null];
}

async function filterForm(q, action, ...extra) {
  const sideSel = (name) => h('select', { name, id: name },
    ['either', 'src', 'dst'].map((v) => h('option', { value: v, selected: (q.get(name) || 'either') === v }, v)));
  const input = (name, attrs) => h('input', Object.assign({ name, id: name, value: q.get(name) || '' }, attrs));
  const check = (name, label) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name, id: name, value: '1', checked: q.get(name) === '1' }), label);
  const form = h('form', { id: 'filters', class: 'filters' },
    h('label', {}, 'Sensor', h('select', { name: 'sensor', id: 'sensor' }, await sensorOptions(q.get('sensor') || ''))),
    h('label', {}, 'Since', input('since', { placeholder: 'YYYY-MM-DD HH:MM', size: 16 })),
    h('label', {}, 'Until', input('until', { placeholder: 'UTC or epoch', size: 16 })),
    h('label', {}, 'IP / CIDR', h('span', { class: 'pair' }, input('ip', { placeholder: '10.0.0.0/8', size: 16 }), sideSel('ip_side'))),
    h('label', {}, 'Port', h('span', { class: 'pair' }, input('port', { size: 6, inputmode: 'numeric', placeholder: '0-65535' }), sideSel('port_side'))),
    h('label', {}, 'Proto', input('proto', { placeholder: 'tcp', size: 6 })),
    h('label', {}, 'Bytes ≥', input('min_bytes', { size: 9, inputmode: 'numeric' })),
    q.get('client_os') ? h('label', {}, 'Client OS id', input('client_os', { size: 11 })) : null,
    q.get('server_os') ? h('label', {}, 'Server OS id', input('server_os', { size: 11 })) : null,
    check('bidir', 'bidirectional'),
    check('alerts', 'IDS alerts'),
    ...extra,
    h('button', { type: 'submit', id: 'apply' }, 'Filter'),
    h('a', { href: action, class: 'reset' }, 'reset'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const out = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (v === '' || (k.endsWith('_side') && v === 'either') || (k === 'sort' && v === 'time')) continue;
      out.set(k, v);
    }
    navigate(action + (out.toString() ? '?' + out : ''));
  });
  return form;
}

/** An address (linked to its host view) and port; IPv6 in brackets; the OS p0f saw. */
function hostCell(ip, port, p, os) {
  const v6 = ip.includes(':');
  const withPort = p === 6 || p === 17 || port;
  return h('td', { class: 'mono host' }, withPort && v6 ? '[' : '',
    h('a', { class: 'host-link', href: `/host/${ip}` }, ip),
    withPort ? `${v6 ? ']' : ''}:${port}` : '',
    os ? h('div', { class: 'os small muted', title: 'p0f' }, os) : null);
}

function flowRow(f) {
  const id = `${f.sensor_id}/${f.flow_id}`;
  const dir = f.is_local ? h('span', { class: 'tag out', title: 'initiated by a honeypot' }, 'out') : h('span', { class: 'tag in' }, 'in');
  const reps = f.repeats > 1
    ? h('span', { class: 'tag repeats', title: `${f.repeats} identical flows from ${ts(f.repeat_first_sec)} to ${ts(f.start_sec)}` }, `×${num(f.repeats)}`) : null;
  return h('tr', { 'data-flow': id, 'data-repeats': f.repeats || 1 },
    h('td', { class: 'mono' }, h('a', { class: 'flow-link', href: `/flow/${id}` }, ts(f.start_sec)), reps ? h('div', {}, reps) : null),
    h('td', {}, String(f.sensor_id)),
    h('td', {}, proto(f.ip_proto), h('div', {}, dir)),
    hostCell(f.src_ip, f.src_port, f.ip_proto, f.client_os),
    hostCell(f.dst_ip, f.dst_port, f.ip_proto, f.server_os),
    h('td', { class: 'num' }, dur(Math.max(0, f.end_ms - (f.start_sec * 1000 + f.start_msec)))),
    h('td', { class: 'num' }, num(f.src_packets), h('div', { class: 'muted' }, num(f.dst_packets))),
    h('td', { class: 'num' }, bytes(f.src_bytes), h('div', { class: 'muted' }, bytes(f.dst_bytes))),
    h('td', { class: 'links' },
      f.alerts ? h('span', { class: 'tag alert' }, `${f.alerts} IDS`) : null,
      h('a', { class: 'pcap-link', href: `/api/v1/flows/${id}/pcap`, download: `sensor${f.sensor_id}-flow${f.flow_id}.pcap`, title: 'packets of this flow (here or from the child that holds them)' }, 'pcap'),
      f.process_id !== null && f.process_id !== undefined
        ? h('a', { class: 'proc-link', href: `/process/${f.sensor_id}/${f.process_id}`, title: `${f.processes} sebek process(es) on this flow` }, 'process tree') : null));
}

/** A column heading; with `sort`, a link that orders the table by it. */
function sortHead(label, key, q) {
  if (!key || !q) return h('th', {}, label);
  const cur = q.get('sort') || 'time';
  const n = new URLSearchParams(location.search);
  for (const k of ['after', 'back', 'offset']) n.delete(k);
  if (key === 'time') n.delete('sort'); else n.set('sort', key);
  return h('th', { 'aria-sort': cur === key ? 'descending' : null },
    h('a', { href: '/flows?' + n, class: cur === key ? 'sorted' : '', id: `sort-${key}`, title: `largest ${key} first` }, label, cur === key ? ' ▼' : ''));
}

function flowTable(rows, id, q) {
  const heads = [['Start (UTC)', 'time'], ['Sensor'], ['Proto'], ['Source'], ['Destination'], ['Duration', 'duration'],
    ['Packets', 'packets'], ['Bytes', 'bytes'], ['']];
  return h('div', { class: 'scroll' }, h('table', { class: 'grid flows', id },
    h('thead', {}, h('tr', {}, heads.map(([t, k]) => sortHead(t, k, q)))),
    h('tbody', {}, rows.length ? rows.map(flowRow) : h('tr', {}, h('td', { colspan: heads.length, class: 'muted empty' }, 'No flows match.')))));
}

function totalText(page) {
  const total = page.total_exact ? `${num(page.total)} flow${page.total === 1 ? '' : 's'}` : `at least ${num(page.total)} flows (counting stops there)`;
  return total;
}

async function viewFlows(main, q) {
  const apiQ = carry(q, [...TABLE, 'after', 'offset', 'limit']);
  const sortSel = h('label', {}, 'Sort by', h('select', { name: 'sort', id: 'sort' },
    ['time', 'bytes', 'packets', 'duration'].map((v) => h('option', { value: v, selected: (q.get('sort') || 'time') === v }, v))));
  const collapse = h('label', { class: 'check', title: 'same addresses, destination port, protocol and sizes (any source port)' },
    h('input', { type: 'checkbox', name: 'collapse', id: 'collapse', value: '1', checked: q.get('collapse') === '1' }), 'collapse repeats');
  const form = await filterForm(q, '/flows', sortSel, collapse);
  const t0 = performance.now();
  let page;
  try {
    page = await api('/api/v1/flows?' + apiQ);
  } catch (err) {
    return filterError(main, 'flows', 'Connections', form, err);
  }
  const ms = Math.round(performance.now() - t0);
  let pagers;
  if (page.window) {
    // Sorted or collapsed: pages by offset within the window.
    const w = page.window;
    const go = (off) => {
      const n = new URLSearchParams(location.search);
      if (off) n.set('offset', off); else n.delete('offset');
      navigate('/flows?' + n);
    };
    const prevOff = Math.max(0, w.offset - (+q.get('limit') || 100));
    pagers = (where) => h('div', { class: 'pager', id: `pager-${where}` },
      w.offset > 0 ? h('button', { id: where === 'top' ? 'prev' : 'prev-bottom', type: 'button', onclick: () => go(prevOff) }, '← previous') : null,
      h('span', { class: 'muted' }, `rows ${num(w.offset + (page.rows.length ? 1 : 0))}–${num(w.offset + page.rows.length)} of ${num(w.rows)}${page.collapsed ? ' groups' : ''} · ${ms} ms`),
      w.next_offset !== null ? h('button', { id: where === 'top' ? 'next' : 'next-bottom', type: 'button', onclick: () => go(w.next_offset) }, 'next →') : null);
  } else {
    // The cursors of the pages before this one ride in the URL (`back`), so
    // "newer" works from a pasted link too.
    const back = q.get('back') ? q.get('back').split(',') : [];
    const pageNo = back.length + 1;
    const go = (after, stack) => {
      const n = new URLSearchParams(location.search);
      if (after && after !== 'first') n.set('after', after); else n.delete('after');
      if (stack.length) n.set('back', stack.join(',')); else n.delete('back');
      n.delete('page');
      navigate('/flows?' + n);
    };
    pagers = (where) => h('div', { class: 'pager', id: `pager-${where}` },
      pageNo > 1 ? h('button', { id: where === 'top' ? 'prev' : 'prev-bottom', type: 'button', onclick: () => go(back[back.length - 1], back.slice(0, -1)) }, '← newer') : null,
      h('span', { class: 'muted' }, `page ${pageNo} · ${page.rows.length} flows · ${ms} ms`),
      page.next ? h('button', { id: where === 'top' ? 'next' : 'next-bottom', type: 'button', onclick: () => go(page.next, [...back, q.get('after') || 'first']) }, 'older →') : null);
  }
  const w = page.window;
  const notice = w && w.cut
    ? h('p', { class: 'notice', id: 'window-notice' }, `${page.collapsed ? 'Collapsed' : 'Sorted'} among the newest ${num(w.matches)} matching flows only; narrow the filters to ${page.collapsed ? 'collapse' : 'sort'} all of them.`)
    : null;
  const pcapQ = carry(q);
  const pcapLink = q.get('sensor')
    ? h('a', { id: 'results-pcap', href: '/api/v1/pcap?' + pcapQ, download: `sensor${q.get('sensor')}-results.pcap`, title: 'the packets of these results, as pcap' }, 'pcap of these results')
    : h('span', { class: 'muted', id: 'results-pcap', title: 'a pcap holds one sensor\'s packets' }, 'pcap of these results: choose a sensor');
  const results = h('div', { id: 'results' },
    h('div', { class: 'toolbar' }, pagers('top'), h('span', { class: 'spacer' }),
      h('span', { class: 'links' },
        pcapLink, ' · ',
        h('a', { href: '/aggregate?' + carry(q), id: 'aggregate-these' }, 'aggregate these'), ' · ',
        h('a', { href: '/plots?' + carry(q), id: 'plot-these' }, 'plot these'), ' · ',
        h('a', { href: '/graph?' + carry(q), id: 'graph-these' }, 'graph these'))),
    notice,
    flowTable(page.rows, 'flows', q),
    h('div', { class: 'toolbar' }, pagers('bottom')));
  lastResults.flows = results;
  const histogram = h('div', { id: 'histogram', class: 'histogram' });
  put(main,
    h('h1', {}, 'Connections'),
    form,
    h('p', { class: 'lead', id: 'total' }, totalText(page), page.collapsed ? ` · identical repeats collapsed` : '',
      page.sort !== 'time' ? ` · largest ${page.sort} first` : ''),
    histogram,
    results);
  // The time histogram comes after the table (it is not needed to read it).
  timeHistogram(q).then((svg) => put(histogram, svg)).catch((e) => {
    if (e.status !== 401) put(histogram, h('p', { class: 'muted small' }, `no histogram: ${e.message}`));
  });
}

/**
 * Flows of the filter per time bucket (all sensors together), over the
 * filter's time range or the newest day: each bar selects its time window.
 */
async function timeHistogram(q) {
  const d = await api('/api/v1/plots?' + carry(q));
  const sums = new Map();
  for (const p of d.series) sums.set(p.t, (sums.get(p.t) || 0) + p.flows);
  const W = chartWidth(), H = 96, L = 8, R = 8, T = 20, B = 18;
  const from = Math.floor(d.since / d.bucket) * d.bucket, to = d.until + 1;
  const X = (t) => L + (W - L - R) * (to > from ? (t - from) / (to - from) : 0);
  const max = Math.max(1, ...sums.values());
  const bw = Math.max(1.5, (W - L - R) * d.bucket / Math.max(1, to - from) - 1);
  const svg = s('svg', { id: 'time-histogram', class: 'chart histogram', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': 'flows per time bucket; each bar opens its time window' },
    s('text', { x: L, y: 13, 'font-size': 11, fill: '#656d76' },
      `flows per ${ago(d.bucket)}, ${ts(d.since)} to ${ts(d.until)} UTC · click a bar for its time window`));
  for (const [t, n] of [...sums.entries()].sort((a, b) => a[0] - b[0])) {
    const hgt = Math.max(1, (H - T - B) * n / max);
    const link = carry(q);
    link.set('since', String(t)); link.set('until', String(t + d.bucket - 1));
    for (const k of ['sort', 'collapse']) if (q.get(k)) link.set(k, q.get(k));
    svg.append(s('a', { href: '/flows?' + link, class: 'bucket', 'data-t': t },
      s('rect', { x: X(t), y: H - B - hgt, width: bw, height: hgt, fill: '#1f6feb' }),
      s('title', {}, `${ts(t)} UTC: ${num(n)} flows — show only these`)));
  }
  svg.append(s('text', { x: L, y: H - 4, 'font-size': 10, fill: '#656d76', class: 'axis-label' }, axisLabel(d.since, d.since, d.until)),
    s('text', { x: W - R, y: H - 4, 'font-size': 10, fill: '#656d76', 'text-anchor': 'end', class: 'axis-label' }, axisLabel(d.until, d.since, d.until)));
  return svg;
}

// ----------------------------------------------------------------- aggregate
const GROUP_KEYS = {
  src_ip: 'source address', dst_ip: 'destination address', src_port: 'source port', dst_port: 'destination port',
  proto: 'protocol', sensor: 'sensor', client_os: 'client OS', server_os: 'server OS',
};

/** The connection-table link of one group: the filters plus the group's key. */
function drill(q, by, key) {
  const n = carry(q);
  switch (by) {
    case 'src_ip': case 'dst_ip': n.set('ip', key); n.set('ip_side', by.slice(0, 3)); break;
    case 'src_port': case 'dst_port': n.set('port', key); n.set('port_side', by.slice(0, 3)); break;
    default: n.set(by, key);
  }
  return '/flows?' + n;
}

async function viewAggregate(main, q) {
  const by = q.get('by') || 'dst_ip';
  const apiQ = carry(q, ['by', 'limit']);
  const bySel = h('label', {}, 'Group by', h('select', { name: 'by', id: 'by' },
    Object.entries(GROUP_KEYS).map(([v, t]) => h('option', { value: v, selected: v === by }, t))));
  const form = await filterForm(q, '/aggregate', bySel);
  const title = `Flows by ${GROUP_KEYS[by] || by}`;
  let d;
  try {
    d = await api('/api/v1/aggregate?' + apiQ);
  } catch (err) {
    return filterError(main, 'aggregate', title, form, err);
  }
  const max = Math.max(1, ...d.rows.map((r) => r.flows));
  const label = (r) => by === 'proto' ? `${proto(+r.key)}` : (r.label ? r.label : r.key);
  const results = h('div', { id: 'results' },
    d.cut ? h('p', { class: 'notice', id: 'agg-cut' }, `Only the ${num(d.limit)} largest groups are shown; more matched. Narrow the filters, or raise the limit (up to 1000).`) : null,
    h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'aggregate' },
      h('thead', {}, h('tr', {}, [GROUP_KEYS[by] || by, 'Flows', '', 'Packets', 'Bytes', 'Sensors', 'First', 'Last'].map((t) => h('th', {}, t)))),
      h('tbody', {}, d.rows.map((r) => {
        const bar = h('span', { class: 'bar' }); bar.style.width = `${Math.max(1, Math.round(100 * r.flows / max))}%`;
        return h('tr', { 'data-key': r.key },
          h('td', { class: 'mono' }, h('a', { class: 'group-link', href: drill(q, by, r.key), title: `these flows in the table` }, label(r)),
            r.label && by.endsWith('_os') ? h('span', { class: 'muted small' }, ` id ${r.key}`) : null),
          h('td', { class: 'num' }, num(r.flows)), h('td', { class: 'barcell' }, bar),
          h('td', { class: 'num' }, num(r.packets)), h('td', { class: 'num' }, bytes(r.bytes)),
          h('td', { class: 'wrap' }, r.sensors.join(', ')), h('td', {}, ts(r.first_sec)), h('td', {}, ts(r.last_sec)));
      })))));
  lastResults.aggregate = results;
  put(main, h('h1', {}, title), form, results);
}

// ---------------------------------------------------------------- flow detail
function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function processList(procs, sensor) {
  if (!procs.length) return h('p', { class: 'muted' }, 'No sebek process has a socket on this flow.');
  return h('table', { class: 'grid', id: 'flow-processes' },
    h('thead', {}, h('tr', {}, ['Process', 'PID', 'Commands', 'Honeypot', 'First', 'Last', 'Sockets'].map((t) => h('th', {}, t)))),
    h('tbody', {}, procs.map((p) => h('tr', {},
      h('td', {}, h('a', { href: `/process/${sensor}/${p.process_id}` }, String(p.process_id))),
      h('td', {}, String(p.pid)), h('td', { class: 'mono' }, p.commands.join(' → ')),
      h('td', { class: 'mono' }, p.src_ip), h('td', {}, ts(p.time_min)), h('td', {}, ts(p.time_max)),
      h('td', {}, String(p.sockets.length))))));
}

/** p0f's name of an OS, with its id in small print. */
function osText(name, id) {
  if (!id) return h('span', { class: 'muted' }, 'unknown (no p0f match)');
  return h('span', { class: 'os' }, name || 'unnamed signature', h('span', { class: 'muted small' }, ` (id ${id})`));
}

async function viewFlow(main, sensor, flow, q) {
  const d = await api(`/api/v1/flows/${encodeURIComponent(sensor)}/${encodeURIComponent(flow)}`);
  const f = d.flow;
  const packets = h('div', { id: 'packets-view' }, h('p', { class: 'muted' }, 'Reading the packets…'));
  put(main, 
    h('h1', {}, `Flow ${f.flow_id} of sensor ${f.sensor_id}`),
    h('p', { class: 'lead mono' }, `${proto(f.ip_proto)} `,
      h('a', { href: `/host/${f.src_ip}`, id: 'src-host' }, endpoint(f.src_ip, f.src_port, f.ip_proto)), ' → ',
      h('a', { href: `/host/${f.dst_ip}`, id: 'dst-host' }, endpoint(f.dst_ip, f.dst_port, f.ip_proto))),
    h('div', { class: 'actions' },
      h('a', { class: 'button', id: 'pcap', href: d.pcap, download: `sensor${f.sensor_id}-flow${f.flow_id}.pcap` }, 'Download pcap'),
      h('a', { class: 'button ghost', href: `/flows?sensor=${f.sensor_id}&ip=${encodeURIComponent(f.src_ip)}` }, 'flows of source'),
      h('a', { class: 'button ghost', href: `/flows?sensor=${f.sensor_id}&ip=${encodeURIComponent(f.dst_ip)}` }, 'flows of destination')),
    h('div', { class: 'cols' },
      h('section', {}, h('h2', {}, 'Flow'), kv([
        ['Sensor', String(f.sensor_id)], ['Flow id', String(f.flow_id)],
        ['Direction', f.is_local ? 'outbound (honeypot initiated)' : 'inbound'],
        ['Start', `${ts(f.start_sec)}.${pad(f.start_msec, 3)} UTC`],
        ['End', `${ts(Math.floor(f.end_ms / 1000))}.${pad(f.end_ms % 1000, 3)} UTC`],
        ['Duration', dur(Math.max(0, f.end_ms - (f.start_sec * 1000 + f.start_msec)))],
        ['Client OS', osText(f.client_os, f.client_os_id)], ['Server OS', osText(f.server_os, f.server_os_id)],
        ['Community ID', h('span', { class: 'mono', id: 'community-id', title: 'Community ID v1, seed 0: the same connection in Zeek, Suricata and Arkime' }, d.community_id || '—')],
      ])),
      h('section', {}, h('h2', {}, 'Traffic'), kv([
        ['Source packets', num(f.src_packets)], ['Source bytes', `${num(f.src_bytes)} (${bytes(f.src_bytes)})`],
        ['Destination packets', num(f.dst_packets)], ['Destination bytes', `${num(f.dst_bytes)} (${bytes(f.dst_bytes)})`],
        ['IDS alerts', String(f.alerts)], ['Processes', String(f.processes)],
      ]))),
    h('h2', {}, 'IDS alerts'),
    d.alerts.length ? h('table', { class: 'grid', id: 'alerts' },
      h('thead', {}, h('tr', {}, ['Time', 'Priority', 'Signature', 'Name', 'Class'].map((t) => h('th', {}, t)))),
      h('tbody', {}, d.alerts.map((a) => h('tr', {}, h('td', {}, ts(a.sec)), h('td', {}, String(a.priority)),
        h('td', { class: 'mono' }, `${a.sig_gen}:${a.sig_id}`), h('td', {}, a.sig_name), h('td', {}, String(a.classification))))))
      : h('p', { class: 'muted' }, 'None.'),
    h('h2', { id: 'processes' }, 'Processes'),
    processList(d.processes, f.sensor_id),
    h('h2', { id: 'packets' }, 'Packets and payload'),
    packets);
  // The packets come through the pcap service (maybe from a child): after
  // the rest of the page.
  const mode = q.get('payload') || (f.ip_proto === 6 ? 'streams' : 'packets');
  const pq = new URLSearchParams();
  for (const k of ['packets', 'kib']) if (q.get(k)) pq.set(k, q.get(k));
  try {
    const p = await api(`/api/v1/flows/${f.sensor_id}/${f.flow_id}/packets${pq.toString() ? '?' + pq : ''}`);
    put(packets, packetView(p, mode, f));
  } catch (e) {
    if (e.status === 401) throw e;
    put(packets, h('p', { class: 'error', id: 'packets-error' }, `No packets: ${e.message}`));
  }
}

/**
 * A hex dump of `hex` (a payload as hex digits): offset, 16 bytes, and the
 * printable ASCII of them (others as "."), one text node: the payload is
 * attacker-written and never becomes markup.
 */
function hexdump(hex) {
  const b = hex.match(/../g) || [];
  const lines = [];
  for (let i = 0; i < b.length; i += 16) {
    const row = b.slice(i, i + 16);
    const ascii = row.map((x) => { const c = parseInt(x, 16); return c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.'; }).join('');
    lines.push(`${i.toString(16).padStart(6, '0')}  ${row.join(' ').padEnd(47)}  ${ascii}`);
  }
  return lines.join('\n');
}

/** The packets table and the payload of both directions (or of each packet). */
function packetView(p, mode, f) {
  const t0 = p.packets.length ? p.packets[0].sec * 1e6 + p.packets[0].usec : 0;
  const rel = (x) => `+${((x.sec * 1e6 + x.usec - t0) / 1000).toFixed(3)} ms`;
  const link = (m, label) => {
    const n = new URLSearchParams(location.search);
    n.set('payload', m);
    return m === mode ? h('strong', {}, label) : h('a', { href: `${location.pathname}?${n}`, id: `payload-${m}` }, label);
  };
  const more = () => {
    const n = new URLSearchParams(location.search);
    n.set('packets', String(Math.min(2000, p.limit_packets * 5)));
    return h('a', { href: `${location.pathname}?${n}`, id: 'more-packets' }, 'show more packets');
  };
  const head = h('p', { class: 'muted', id: 'packets-summary' },
    `${num(p.packets.length)} packet${p.packets.length === 1 ? '' : 's'}`,
    p.more_packets ? ` (the first ${num(p.limit_packets)}; the flow has more) · ` : ' · ',
    p.more_packets && p.limit_packets < 2000 ? [more(), ' · '] : null,
    `payload: the first ${bytes(p.limit_bytes)} of each direction · `,
    link('streams', f.ip_proto === 6 ? 'reassembled per direction' : 'per direction'), ' · ', link('packets', 'per packet'));
  const row = (x) => h('tr', { class: x.from, 'data-n': x.n },
    h('td', { class: 'num' }, String(x.n)),
    h('td', { class: 'mono', title: `${ts(x.sec)}.${pad(x.usec, 6)} UTC` }, rel(x)),
    h('td', {}, x.from === 'client' ? '→' : '←', ' ', x.from),
    h('td', { class: 'mono host' }, x.src ? endpoint(x.src, x.src_port, x.proto) : '—'),
    h('td', { class: 'mono host' }, x.dst ? endpoint(x.dst, x.dst_port, x.proto) : '—'),
    h('td', { class: 'mono flags' }, x.flags || (x.icmp_type !== null ? `type ${x.icmp_type} code ${x.icmp_code}` : ''), x.fragment ? ' frag' : '', x.note ? h('div', { class: 'muted small' }, x.note) : null),
    h('td', { class: 'mono small' }, x.seq !== null ? `seq ${x.seq}` : '', x.ack !== null ? h('div', {}, `ack ${x.ack}`) : null, x.window !== null ? h('div', { class: 'muted' }, `win ${x.window}`) : null),
    h('td', { class: 'num' }, x.ttl !== null ? String(x.ttl) : '—'),
    h('td', { class: 'num' }, x.ip_len !== null ? num(x.ip_len) : '—', h('div', { class: 'muted small' }, `${num(x.caplen)}/${num(x.len)}`)),
    h('td', { class: 'num' }, num(x.payload_len)));
  const table = h('div', { class: 'scroll' }, h('table', { class: 'grid packets', id: 'packets-table' },
    h('thead', {}, h('tr', {}, ['#', 'Time', 'From', 'Source', 'Destination', 'Flags', 'TCP', 'TTL', 'IP / cap / wire', 'Payload'].map((t) => h('th', {}, t)))),
    h('tbody', {}, p.packets.map(row))));
  let payload;
  if (mode === 'packets') {
    const withData = p.packets.filter((x) => x.payload);
    payload = h('div', { id: 'payload-per-packet' }, withData.length ? withData.map((x) => h('div', { class: `payload ${x.from}` },
      h('div', { class: 'small muted' }, `#${x.n} ${x.from === 'client' ? 'client → server' : 'server → client'}, ${num(x.payload_len)} bytes${x.payload.length / 2 < x.payload_len ? ` (first ${num(x.payload.length / 2)} shown)` : ''}`),
      h('pre', { class: `hexdump ${x.from}`, 'data-n': x.n }, hexdump(x.payload)))) : h('p', { class: 'muted' }, 'No payload in these packets.'));
  } else {
    payload = h('div', { class: 'streams' }, p.streams.map((st) => h('section', { class: `payload ${st.from}` },
      h('h3', {}, st.from === 'client' ? `Client → server (${p.client.ip})` : `Server → client (${p.server.ip})`),
      h('p', { class: 'small muted' }, `${num(st.payload_bytes)} payload bytes in these packets`,
        st.cut ? `; the first ${bytes(p.limit_bytes)} shown` : '',
        st.hole ? '; a packet was not captured: shown up to the gap' : ''),
      st.hex ? h('pre', { class: `hexdump ${st.from}`, id: `payload-${st.from}` }, hexdump(st.hex)) : h('p', { class: 'muted', id: `payload-${st.from}` }, 'No payload.'))));
  }
  return [head, table, payload];
}

// ---------------------------------------------------------------- host detail
async function viewHost(main, ip) {
  const d = await api(`/api/v1/hosts/${encodeURIComponent(ip)}`);
  put(main, 
    h('h1', {}, `Host ${d.ip}`),
    h('div', { class: 'actions' }, h('a', { class: 'button ghost', href: `/flows?ip=${encodeURIComponent(d.ip)}` }, 'all flows of this host'),
      d.ip.includes(':') ? null : h('a', { class: 'button ghost', id: 'host-sessions', href: `/sessions?host=${encodeURIComponent(d.ip)}` }, 'sebek sessions on this honeypot'),
      h('a', { class: 'button ghost', href: `/aggregate?ip=${encodeURIComponent(d.ip)}&ip_side=src&by=dst_port` }, 'ports it contacted')),
    h('h2', {}, 'Operating system (p0f) history'),
    d.os_history_cut ? h('p', { class: 'muted small', id: 'os-cut' }, `From this host's newest ${num(d.os_history_window)} flows per sensor and role (it has more): first seen and flows count those only.`) : null,
    d.os_history.length ? h('table', { class: 'grid', id: 'os-history' },
      h('thead', {}, h('tr', {}, ['Sensor', 'Role', 'Genre', 'Detail', 'First', 'Last', 'Flows'].map((t) => h('th', {}, t)))),
      h('tbody', {}, d.os_history.map((o) => h('tr', {}, h('td', {}, String(o.sensor_id)), h('td', {}, o.role), h('td', {}, o.genre),
        h('td', {}, o.detail), h('td', {}, ts(o.first_sec)), h('td', {}, ts(o.last_sec)), h('td', { class: 'num' }, num(o.flows))))))
      : h('p', { class: 'muted' }, 'No fingerprint recorded for this host.'),
    h('h2', {}, 'Flows as source'), flowTable(d.as_source.rows, 'as-source'),
    d.as_source.next ? h('p', {}, h('a', { href: `/flows?ip=${encodeURIComponent(d.ip)}&ip_side=src&after=${d.as_source.next}&back=first` }, 'more…')) : null,
    h('h2', {}, 'Flows as destination'), flowTable(d.as_destination.rows, 'as-destination'),
    d.as_destination.next ? h('p', {}, h('a', { href: `/flows?ip=${encodeURIComponent(d.ip)}&ip_side=dst&after=${d.as_destination.next}&back=first` }, 'more…')) : null);
}

// --------------------------------------------------------------- process tree
function treeSvg(procs, focus, sensor) {
  const by = new Map(procs.map((p) => [p.process_id, p]));
  const roots = procs.filter((p) => !p.parents.some((x) => by.has(x)));
  const depth = new Map(); const order = [];
  const walk = (p, d) => {
    if (depth.has(p.process_id)) return;
    depth.set(p.process_id, d); order.push(p);
    for (const c of p.children) if (by.has(c)) walk(by.get(c), d + 1);
  };
  roots.forEach((r) => walk(r, 0));
  procs.forEach((p) => walk(p, 0));
  const W = 210, H = 44, GX = 40, GY = 14;
  const pos = new Map();
  order.forEach((p, i) => pos.set(p.process_id, { x: 10 + depth.get(p.process_id) * (W + GX), y: 10 + i * (H + GY) }));
  const width = 20 + (Math.max(0, ...depth.values()) + 1) * (W + GX);
  const height = 20 + order.length * (H + GY);
  const svg = s('svg', { id: 'tree', class: 'tree', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' });
  for (const p of order) {
    for (const c of p.children) {
      if (!pos.has(c)) continue;
      const a = pos.get(p.process_id), b = pos.get(c);
      svg.append(s('path', { d: `M${a.x + 16} ${a.y + H} V${b.y + H / 2} H${b.x}`, fill: 'none', stroke: '#8b949e', 'stroke-width': 1.5 }));
    }
  }
  for (const p of order) {
    const { x, y } = pos.get(p.process_id);
    const isFocus = p.process_id === focus;
    const a = s('a', { href: `/process/${sensor}/${p.process_id}`, class: 'node' },
      s('rect', { x, y, width: W, height: H, rx: 6, fill: isFocus ? '#1f6feb' : '#ffffff', stroke: isFocus ? '#1f6feb' : '#d0d7de' }),
      s('text', { x: x + 10, y: y + 18, fill: isFocus ? '#ffffff' : '#1f2328', 'font-size': 13, 'font-weight': 600 },
        (p.commands[p.commands.length - 1] || '?').slice(0, 24)),
      s('text', { x: x + 10, y: y + 34, fill: isFocus ? '#dbe9ff' : '#656d76', 'font-size': 11 },
        `pid ${p.pid} · #${p.process_id} · ${p.sockets.length} sock · ${p.opens.length} open`));
    a.addEventListener('click', (e) => { e.preventDefault(); navigate(`/process/${sensor}/${p.process_id}`); });
    svg.append(a);
  }
  return svg;
}

async function viewProcess(main, sensor, pid, q) {
  const d = await api(`/api/v1/processes/${encodeURIComponent(sensor)}/${encodeURIComponent(pid)}`);
  const p = d.processes.find((x) => x.process_id === d.process_id);
  const fd = q.get('fd');
  const reads = await api(`/api/v1/processes/${encodeURIComponent(sensor)}/${encodeURIComponent(pid)}/reads` + (fd ? `?fd=${encodeURIComponent(fd)}` : ''));
  const log = await api(`/api/v1/processes/${encodeURIComponent(sensor)}/${encodeURIComponent(pid)}/keystrokes`);
  const fdLinks = h('div', { class: 'fds' }, 'Descriptor: ',
    h('a', { href: `/process/${sensor}/${pid}`, class: fd ? '' : 'active' }, 'all'),
    reads.fds.map((n) => h('a', { href: `/process/${sensor}/${pid}?fd=${n}`, class: String(n) === fd ? 'active' : '' }, String(n))));
  put(main, 
    h('h1', {}, `Process ${p.process_id} (pid ${p.pid}) on sensor ${d.sensor_id}`),
    h('p', { class: 'lead mono' }, p.commands.join(' → ') || '?'),
    h('div', { class: 'cols' },
      h('section', {}, h('h2', {}, 'Process'), kv([
        ['Honeypot', h('a', { href: `/sessions?host=${encodeURIComponent(p.src_ip)}&sensor=${d.sensor_id}` }, p.src_ip)],
        ['First seen', ts(p.pcap_time_min)], ['Last seen', ts(p.pcap_time_max)],
        ['Honeypot clock', `${ts(p.time_min)} .. ${ts(p.time_max)}`],
        ['PID / PPID', `${p.pid} / ${p.ppid === null ? '?' : p.ppid}`], ['UID', p.uids.join(', ') || '?'],
        ['Bytes read', num(p.bytes_read)],
        ...(p.truncated ? [['Cut by the snaplen', h('span', { id: 'truncated' }, `${num(p.truncated)} records (kept with their header fields)`)]] : []),
        ['Parents', p.parents.join(', ') || '—'], ['Children', p.children.join(', ') || '—'],
      ])),
      h('section', { class: 'wide' }, h('h2', {}, 'Ancestors and descendants'), h('div', { class: 'scroll' }, treeSvg(d.processes, d.process_id, d.sensor_id)))),
    h('h2', { id: 'log' }, 'Keystroke log (this process and its descendants)'), keyModes(`/process/${sensor}/${pid}`, q),
    keyLog(log.lines, q.get('keys') || 'cooked', 'keylog'),
    h('h2', {}, 'Reads (bytes)'), fdLinks,
    h('pre', { id: 'keystrokes', class: 'keys' }, reads.keystrokes || '(no reads)'),
    h('h2', {}, 'Opens'),
    p.opens.length ? h('table', { class: 'grid', id: 'opens' }, h('thead', {}, h('tr', {}, ['Time', 'fd', 'File'].map((t) => h('th', {}, t)))),
      h('tbody', {}, p.opens.map((o) => h('tr', {}, h('td', {}, ts(o.time)), h('td', {}, h('a', { href: `/process/${sensor}/${pid}?fd=${o.filed}` }, String(o.filed))), h('td', { class: 'mono' }, o.filename)))))
      : h('p', { class: 'muted' }, 'None.'),
    h('h2', {}, 'Sockets'),
    socketTable(p.sockets, d.sensor_id, 'sockets'));
}

// ------------------------------------------------------------ sebek sessions
/** A socket's end, or `?` when unknown. */
const sockEnd = (ip, port) => (ip === null || ip === undefined) ? '?' : `${ip}:${port}`;

function socketTable(sockets, sensor, id) {
  if (!sockets.length) return h('p', { class: 'muted' }, 'None.');
  return h('table', { class: 'grid', id }, h('thead', {}, h('tr', {}, ['Time', 'Call', 'Proto', 'Local', 'Remote', 'UID', 'Flow'].map((t) => h('th', {}, t)))),
    h('tbody', {}, sockets.map((k) => h('tr', {}, h('td', {}, ts(k.pcap_time || k.time)), h('td', {}, k.call_name),
      h('td', {}, k.proto === null ? '?' : proto(k.proto)),
      h('td', { class: 'mono' }, sockEnd(k.local_ip, k.local_port)),
      h('td', { class: 'mono remote' }, k.remote_ip ? h('a', { href: `/host/${k.remote_ip}` }, sockEnd(k.remote_ip, k.remote_port)) : '?'),
      h('td', {}, String(k.uid)),
      h('td', {}, k.flow_id ? h('a', { class: 'socket-flow', href: `/flow/${sensor}/${k.flow_id}` }, `flow ${k.flow_id}`) : h('span', { class: 'muted' }, 'no flow seen'))))));
}

/** Links choosing how keystroke lines are shown: backspaces applied, as sbk_ks_log.pl prints them, or raw bytes. */
function keyModes(base, q) {
  const mode = q.get('keys') || 'cooked';
  const rest = new URLSearchParams(q); rest.delete('keys');
  const href = (m) => { const u = new URLSearchParams(rest); if (m !== 'cooked') u.set('keys', m); return base + (u.toString() ? '?' + u : ''); };
  return h('div', { class: 'fds', id: 'key-modes' }, 'Show: ',
    [['cooked', 'backspaces applied'], ['sbk', 'as sbk_ks_log.pl'], ['raw', 'raw bytes']].map(([m, label]) =>
      h('a', { href: href(m), id: `keys-${m}`, class: m === mode ? 'active' : '' }, label)));
}

/** Keystroke lines, one per command, with time (honeypot clock, as sbk_ks_log.pl) and the process. */
function keyLog(lines, mode, id) {
  if (!lines.length) return h('p', { class: 'muted', id }, 'No keystrokes.');
  const text = (l) => mode === 'raw' ? l.raw : mode === 'sbk' ? l.text : l.cooked;
  return h('table', { class: 'grid keylog', id },
    h('thead', {}, h('tr', {}, ['Time (honeypot)', 'PID', 'Command', 'UID', 'FD', 'Typed'].map((t) => h('th', {}, t)))),
    h('tbody', {}, lines.map((l) => h('tr', { 'data-process': l.process_id },
      h('td', { class: 'mono' }, ts(l.time)),
      h('td', {}, h('a', { href: `/process/${l.sensor_id}/${l.process_id}` }, String(l.pid))),
      h('td', { class: 'mono' }, l.coms.join('/')), h('td', {}, l.uids.join('/')), h('td', {}, String(l.fd)),
      h('td', { class: 'mono typed' }, text(l), l.truncated ? h('span', { class: 'muted truncated', title: "a read of this line was cut by the capture's snaplen" }, ' [truncated]') : false)))));
}

async function viewSessions(main, q) {
  const apiQ = new URLSearchParams();
  for (const k of ['sensor', 'host', 'q', 'limit']) if (q.get(k)) apiQ.set(k, q.get(k));
  const input = (name, attrs) => h('input', Object.assign({ name, id: `s-${name}`, value: q.get(name) || '' }, attrs));
  const form = h('form', { id: 'session-filters', class: 'filters' },
    h('label', {}, 'Sensor', h('select', { name: 'sensor', id: 's-sensor' }, await sensorOptions(q.get('sensor') || ''))),
    h('label', {}, 'Honeypot', input('host', { placeholder: '10.0.0.5', size: 16 })),
    h('label', {}, 'Search commands and keystrokes', input('q', { placeholder: 'passwd', size: 28 })),
    h('button', { type: 'submit', id: 's-apply' }, 'Search'),
    h('a', { href: '/sessions', class: 'reset' }, 'reset'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const out = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v !== '') out.set(k, v);
    navigate('/sessions' + (out.toString() ? '?' + out : ''));
  });
  const heading = h('h1', {}, q.get('host') ? `Sebek sessions on ${q.get('host')}` : 'Sebek sessions');
  let d;
  try {
    d = await api('/api/v1/sessions' + (apiQ.toString() ? '?' + apiQ : ''));
  } catch (err) {
    if (err.status === 401) throw err;
    put(main, heading, form, h('p', { class: 'error', id: 'error' }, err.message));
    return;
  }
  const mode = q.get('keys') || 'cooked';
  const typed = (x) => x.lines.slice(0, 8).map((l) => (mode === 'raw' ? l.raw : mode === 'sbk' ? l.text : l.cooked) + (l.truncated ? ' [truncated]' : '')).join('\n') +
    (x.lines.length > 8 ? `\n… ${x.lines.length - 8} more` : '');
  put(main, heading, form,
    h('p', { class: 'muted', id: 'sessions-count' }, d.cut ? `${num(d.matched)} processes match; the first ${num(d.sessions.length)} are shown.` : `${num(d.matched)} processes.`),
    keyModes('/sessions', q),
    h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'sessions' },
      h('thead', {}, h('tr', {}, ['Start (UTC)', 'Honeypot', 'Process', 'PID / PPID', 'UID', 'Commands', 'Parent chain', 'Bytes read', 'Sockets', 'Typed'].map((t) => h('th', {}, t)))),
      h('tbody', {}, d.sessions.length ? d.sessions.map((x) => h('tr', { 'data-process': `${x.sensor_id}/${x.process_id}` },
        h('td', { class: 'mono' }, ts(x.pcap_time_min)),
        h('td', { class: 'mono' }, h('a', { href: `/host/${x.src_ip}` }, x.src_ip)),
        h('td', {}, h('a', { class: 'process-link', href: `/process/${x.sensor_id}/${x.process_id}` }, `#${x.process_id}`)),
        h('td', {}, `${x.pid} / ${x.ppid === null ? '?' : x.ppid}`),
        h('td', {}, x.uids.join(', ') || '?'),
        h('td', { class: 'mono' }, x.commands.join(' → ')),
        h('td', { class: 'mono small' }, x.chain.map((c) => `${c.command}(${c.pid})`).join(' ← ') || '—'),
        h('td', { class: 'num' }, num(x.bytes_read)),
        h('td', { class: 'mono small' }, x.sockets.map((k) => `${k.call_name} ${sockEnd(k.remote_ip, k.remote_port)}${k.flow_id ? ` flow ${k.flow_id}` : ' no flow seen'}`).join('\n')),
        h('td', {}, x.lines.length ? h('pre', { class: 'typed-cell' }, typed(x)) : '')))
        : h('tr', {}, h('td', { colspan: 10, class: 'muted empty' }, 'No process matches.'))))));
}

// ------------------------------------------------------------------------ DAG
async function viewDag(main) {
  const d = await api('/api/v1/dag');
  const n = d.children.length;
  const ex = d.exports || [];
  // Exports (ClickHouse targets this node keeps current) sit above it: the
  // records flow up out of the node into them.
  const up = ex.length ? 100 : 0;
  const W = Math.max(560, 40 + n * 250, 40 + ex.length * 250), H = (n ? 230 : 84) + up;
  const svg = s('svg', { id: 'dag', class: 'dag', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' });
  const top = { x: W / 2 - 150, y: 12 + up };
  ex.forEach((e, i) => {
    const x = 20 + i * 250 + (W - 40 - ex.length * 250) / 2, y = 12;
    const lag = e.lag_secs === null ? 'never exported' : `lag ${ago(e.lag_secs)}`;
    svg.append(s('line', { x1: top.x + 150, y1: top.y, x2: x + 110, y2: y + 66, stroke: e.healthy ? '#2da44e' : '#cf222e', 'stroke-width': 2, 'stroke-dasharray': '2 3' }));
    const g = s('g', { class: 'export-node', 'data-name': e.name, 'data-healthy': e.healthy ? '1' : '0', 'data-lag': e.lag_secs === null ? '' : String(e.lag_secs) },
      s('rect', { x, y, width: 220, height: 66, rx: 8, fill: e.healthy ? '#dafbe1' : '#ffebe9', stroke: e.healthy ? '#2da44e' : '#cf222e' }),
      s('text', { x: x + 12, y: y + 22, 'font-size': 14, 'font-weight': 600, fill: '#1f2328' }, `${e.name} (${e.kind})`),
      s('text', { x: x + 12, y: y + 40, 'font-size': 11, fill: '#656d76' }, `database ${e.database}${e.cluster ? ` · cluster ${e.cluster}` : ''}`),
      s('text', { x: x + 12, y: y + 56, 'font-size': 11, fill: e.healthy ? '#656d76' : '#cf222e', class: 'export-lag' }, lag),
      s('title', {}, e.last_error ? `${e.name}: ${e.last_error}` : `${e.name}: ${lag}`));
    svg.append(g);
  });
  d.children.forEach((c, i) => {
    const x = 20 + i * 250 + (W - 40 - n * 250) / 2, y = 140 + up;
    svg.append(s('line', { x1: top.x + 150, y1: top.y + 56, x2: x + 110, y2: y, stroke: c.healthy ? '#2da44e' : '#cf222e', 'stroke-width': 2, 'stroke-dasharray': c.pcap === 'proxy' ? '6 4' : null }));
    svg.append(s('rect', { x, y, width: 220, height: 66, rx: 8, fill: c.healthy ? '#dafbe1' : '#ffebe9', stroke: c.healthy ? '#2da44e' : '#cf222e' }));
    svg.append(s('text', { x: x + 12, y: y + 22, 'font-size': 14, 'font-weight': 600, fill: '#1f2328' }, c.name));
    svg.append(s('text', { x: x + 12, y: y + 40, 'font-size': 11, fill: '#656d76' }, `${c.sensors.length} sensor(s) · pcap ${c.pcap}`));
    svg.append(s('text', { x: x + 12, y: y + 56, 'font-size': 11, fill: '#656d76' }, c.last_success ? `pulled ${ts(c.last_success)}` : 'never pulled'));
  });
  svg.append(s('rect', { x: top.x, y: top.y, width: 300, height: 56, rx: 8, fill: '#1f6feb' }));
  svg.append(s('text', { x: top.x + 12, y: top.y + 24, 'font-size': 14, 'font-weight': 600, fill: '#fff' }, `this node ${d.node_id.slice(0, 8)}`));
  svg.append(s('text', { x: top.x + 12, y: top.y + 42, 'font-size': 11, fill: '#dbe9ff' }, `${d.below} node(s) at or below · ${d.local_sensors.length} local sensor(s)`));
  put(main, h('h1', {}, 'DAG'),
    h('p', { class: 'muted' }, 'Solid link: records and pcap copied up; dashed: records copied, pcap fetched on request; dotted, above: analytics exports this node keeps current, with their lag. Red: unhealthy.'),
    h('div', { class: 'scroll' }, svg),
    h('h2', {}, 'Children'),
    n ? h('table', { class: 'grid', id: 'children' },
      h('thead', {}, h('tr', {}, ['Child', 'Health', 'URL', 'Mirrors', 'Every', 'Last success', 'Last error', 'Fetched', 'Sensors (hops)'].map((t) => h('th', {}, t)))),
      h('tbody', {}, d.children.map((c) => h('tr', { class: c.healthy ? '' : 'silent' },
        h('td', {}, c.name), h('td', {}, h('span', { class: c.healthy ? 'dot ok' : 'dot bad' }), c.healthy ? ' ok' : ' failing'),
        h('td', { class: 'mono small' }, c.url), h('td', {}, c.mirrors), h('td', {}, `${c.interval_secs}s`),
        h('td', {}, ts(c.last_success)), h('td', { class: 'bad small' }, c.last_error || ''),
        h('td', {}, `${num(c.segments_fetched)} seg · ${bytes(c.bytes_in)}`),
        h('td', {}, c.sensors.map((x) => `${x.sensor_id} (${x.hops})`).join(', ') + (c.conflicts.length ? ` · conflicts: ${c.conflicts.join(', ')}` : ''))))))
      : h('p', { class: 'muted' }, 'This node pulls from no child.'),
    h('h2', {}, 'Exports'),
    ex.length ? h('table', { class: 'grid', id: 'exports' },
      h('thead', {}, h('tr', {}, ['Export', 'Health', 'Target', 'Every', 'Last success', 'Lag', 'Rows (last run)', 'Last error'].map((t) => h('th', {}, t)))),
      h('tbody', {}, ex.map((e) => h('tr', { class: e.healthy ? '' : 'silent', 'data-name': e.name },
        h('td', {}, e.name), h('td', {}, h('span', { class: e.healthy ? 'dot ok' : 'dot bad' }), e.healthy ? ' ok' : ' failing'),
        h('td', { class: 'mono small' }, `${e.url} · ${e.database}` + (e.cluster ? ` · cluster ${e.cluster} (${e.shards.length} shards)` : '')),
        h('td', {}, `${e.interval_secs}s`), h('td', {}, ts(e.last_success)),
        h('td', { class: 'export-lag' }, e.lag_secs === null ? 'never exported' : ago(e.lag_secs)),
        h('td', { class: 'num' }, num(e.rows_last)), h('td', { class: 'bad small wrap' }, e.last_error || '')))))
      : h('p', { class: 'muted' }, 'No [[export]] target in lumpy.toml.'),
    h('h2', {}, 'Parents allowed to pull from this node'),
    d.parents.length ? h('ul', {}, d.parents.map((p) => h('li', {}, p.name, p.allow.length ? ` (from ${p.allow.join(', ')})` : ''))) : h('p', { class: 'muted' }, 'None.'));
}

// ---------------------------------------------------------------------- plots
const COLORS = ['#1f6feb', '#d1242f', '#2da44e', '#bf8700', '#8250df', '#0598bc', '#e16f24', '#57606a'];

/** An axis label for `t` on a range `from`..`to`: the year whenever the range spans years. */
function axisLabel(t, from, to) {
  const full = ts(Math.round(t));
  const span = to - from;
  const years = new Date(from * 1000).getUTCFullYear() !== new Date(to * 1000).getUTCFullYear();
  if (span > 60 * 86400) return full.slice(0, 10);
  if (years) return full.slice(0, 16);
  if (span < 3600) return full.slice(11, 19);
  return full.slice(5, 16);
}

/** Width for a chart: the main column's, so charts fill the window. */
function chartWidth() {
  const m = $('#main');
  return Math.max(560, Math.floor((m ? m.clientWidth : 900) - 44));
}

/**
 * Lines per sensor over time; every bucket is a link (and a keyboard
 * stop) to the connection table over that bucket's time, with `q`'s filters.
 */
function lineChart(id, title, series, from, to, bucket, fmt, q) {
  const W = chartWidth(), H = 240, L = 64, R = 12, T = 28, B = 28;
  const maxY = Math.max(1, ...series.flatMap((x) => x.points.map((p) => p[1])));
  const X = (t) => L + (W - L - R) * (to > from ? (t - from) / (to - from) : 0);
  const Y = (v) => T + (H - T - B) * (1 - v / maxY);
  const svg = s('svg', { id, class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title },
    s('text', { x: L, y: 16, 'font-size': 13, 'font-weight': 600, fill: '#1f2328' }, title));
  for (let i = 0; i <= 4; i++) {
    const v = maxY * i / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: '#eaeef2' }),
      s('text', { x: L - 6, y: Y(v) + 4, 'font-size': 10, fill: '#656d76', 'text-anchor': 'end' }, fmt(Math.round(v))));
  }
  const ticks = Math.max(2, Math.min(8, Math.floor(W / 150)));
  for (let i = 0; i <= ticks; i++) {
    const t = from + (to - from) * i / ticks;
    svg.append(s('text', { x: X(t), y: H - 8, 'font-size': 10, fill: '#656d76', class: 'axis-label', 'text-anchor': i === 0 ? 'start' : (i === ticks ? 'end' : 'middle') }, axisLabel(t, from, to)));
  }
  // The buckets, under the lines: each a link into the table.
  const times = [...new Set(series.flatMap((x) => x.points.filter((p) => p[1] > 0).map((p) => p[0])))].sort((a, b) => a - b);
  const bw = Math.max(2, (W - L - R) * bucket / Math.max(1, to - from));
  const sums = new Map();
  for (const x of series) for (const p of x.points) sums.set(p[0], (sums.get(p[0]) || 0) + p[1]);
  if (times.length <= 2000) {
    for (const t of times) {
      const n = carry(q);
      n.set('since', String(t)); n.set('until', String(t + bucket - 1));
      svg.append(s('a', { href: '/flows?' + n, class: 'bucket', 'data-t': t, 'aria-label': `${ts(t)}: ${fmt(sums.get(t))}` },
        s('rect', { x: Math.max(L, X(t) - bw / 2), y: T, width: bw, height: H - T - B, fill: 'transparent' }),
        s('title', {}, `${ts(t)} UTC, ${ago(bucket)}: ${fmt(sums.get(t))} — open these flows`)));
    }
  }
  series.forEach((x, i) => {
    if (!x.points.length) return;
    const d = x.points.map((p, j) => `${j ? 'L' : 'M'}${X(p[0]).toFixed(1)} ${Y(p[1]).toFixed(1)}`).join(' ');
    svg.append(s('path', { d, fill: 'none', stroke: COLORS[i % COLORS.length], 'stroke-width': 2, class: 'series', 'data-sensor': x.name, 'pointer-events': 'none' }));
    if (x.points.length <= 200) for (const p of x.points) if (p[1] > 0) svg.append(s('circle', { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: COLORS[i % COLORS.length], 'pointer-events': 'none' }));
  });
  return svg;
}

function barChart(id, title, items) {
  const W = chartWidth(), rowH = 22, L = 120, T = 28;
  const H = T + items.length * rowH + 8;
  const max = Math.max(1, ...items.map((x) => x.value));
  const svg = s('svg', { id, class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title },
    s('text', { x: 8, y: 16, 'font-size': 13, 'font-weight': 600, fill: '#1f2328' }, title));
  items.forEach((x, i) => {
    const y = T + i * rowH;
    const w = Math.max(2, (W - L - 90) * x.value / max);
    svg.append(s('a', { href: x.href, class: 'bar-link' },
      s('text', { x: L - 8, y: y + 15, 'font-size': 12, fill: '#1f6feb', 'text-anchor': 'end', 'font-family': 'monospace' }, x.label),
      s('rect', { x: L, y: y + 3, width: w, height: rowH - 6, rx: 3, fill: '#1f6feb' }),
      s('text', { x: L + w + 6, y: y + 15, 'font-size': 11, fill: '#656d76' }, num(x.value)),
      s('title', {}, `${x.label}: ${num(x.value)} flows — open them`)));
  });
  return svg;
}

async function viewPlots(main, q) {
  const form = await filterForm(q, '/plots');
  let d;
  try {
    d = await api('/api/v1/plots?' + carry(q, ['bucket']));
  } catch (err) {
    return filterError(main, 'plots', 'Plots', form, err);
  }
  const sensors = [...new Set(d.series.map((p) => p.sensor_id))];
  // Every bucket of the range, empty ones as 0, so a quiet gap shows as one.
  const first = Math.floor(d.since / d.bucket) * d.bucket;
  const buckets = (d.until - first) / d.bucket <= 5000 ? Math.floor((d.until - first) / d.bucket) + 1 : 0;
  const per = (field) => sensors.map((id) => {
    const got = new Map(d.series.filter((p) => p.sensor_id === id).map((p) => [p.t, p[field]]));
    const points = buckets
      ? Array.from({ length: buckets }, (_, i) => first + i * d.bucket).map((t) => [t, got.get(t) || 0])
      : [...got.entries()];
    return { name: String(id), points };
  });
  const legend = h('div', { class: 'legend' }, sensors.map((id, i) => {
    const sw = h('span', { class: 'swatch' }); sw.style.background = COLORS[i % COLORS.length];
    return h('span', {}, sw, `sensor ${id}`);
  }));
  const range = carry(q);
  if (!q.get('since')) range.set('since', String(d.since));
  if (!q.get('until')) range.set('until', String(d.until));
  const portLink = (p) => {
    const n = new URLSearchParams(range);
    n.set('port', String(p.port)); n.set('port_side', 'dst'); n.set('proto', proto(p.proto));
    return '/flows?' + n;
  };
  const results = h('div', { id: 'results' },
    h('p', { class: 'muted' }, `${ts(d.since)} to ${ts(d.until)} UTC, ${ago(d.bucket)} buckets · click a bucket or a port for its flows · `,
      h('a', { href: '/flows?' + range, id: 'table-these' }, 'these flows in the table')),
    legend,
    lineChart('plot-flows', 'Flows started per bucket', per('flows'), d.since, d.until, d.bucket, num, q),
    lineChart('plot-bytes', 'Bytes per bucket', per('bytes'), d.since, d.until, d.bucket, bytes, q),
    barChart('plot-ports', 'Top destination ports (TCP/UDP flows)', d.top_ports.map((p) => ({ label: `${p.port}/${proto(p.proto)}`, value: p.flows, href: portLink(p) }))));
  lastResults.plots = results;
  put(main, h('h1', {}, 'Plots'), form, results);
}

// ---------------------------------------------------------- connections graph
/**
 * Positions for the graph's hosts: a force-directed layout (repulsion
 * between hosts nearer than 3 k, attraction along edges, gravity to the middle, a
 * cooling step), started
 * from a circle so the same data always gives the same picture.
 */
function graphLayout(nodes, edges, W, H, margin) {
  const n = nodes.length;
  const at = new Map(nodes.map((x, i) => [x.ip, i]));
  const pos = nodes.map((_, i) => ({
    x: W / 2 + (W / 2 - margin) * 0.8 * Math.cos(2 * Math.PI * i / Math.max(1, n)),
    y: H / 2 + (H / 2 - margin) * 0.8 * Math.sin(2 * Math.PI * i / Math.max(1, n)),
  }));
  const k = 0.7 * Math.sqrt((W - 2 * margin) * (H - 2 * margin) / Math.max(1, n));
  let temp = W / 10;
  for (let it = 0; it < 220; it++) {
    const dx = new Float64Array(n), dy = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const ax = pos[i].x - pos[j].x, ay = pos[i].y - pos[j].y;
        const d = Math.max(0.5, Math.hypot(ax, ay));
        if (d > 3 * k) continue;
        const f = k * k / d;
        dx[i] += ax / d * f; dy[i] += ay / d * f; dx[j] -= ax / d * f; dy[j] -= ay / d * f;
      }
    }
    for (const e of edges) {
      const a = at.get(e.src), b = at.get(e.dst);
      if (a === undefined || b === undefined || a === b) continue;
      const ax = pos[a].x - pos[b].x, ay = pos[a].y - pos[b].y;
      const d = Math.max(0.5, Math.hypot(ax, ay)), f = d * d / k;
      dx[a] -= ax / d * f; dy[a] -= ay / d * f; dx[b] += ax / d * f; dy[b] += ay / d * f;
    }
    for (let i = 0; i < n; i++) {
      // Gravity: separate groups of hosts stay near the middle.
      dx[i] -= (pos[i].x - W / 2) * 0.3; dy[i] -= (pos[i].y - H / 2) * 0.3;
      const len = Math.max(0.01, Math.hypot(dx[i], dy[i])), step = Math.min(len, temp);
      pos[i].x = Math.min(W - margin, Math.max(margin, pos[i].x + dx[i] / len * step));
      pos[i].y = Math.min(H - margin, Math.max(margin, pos[i].y + dy[i] / len * step));
    }
    temp = Math.max(1, temp * 0.97);
  }
  return pos;
}

function graphSvg(d, q) {
  const W = chartWidth(), H = Math.max(420, Math.min(760, Math.round(W * 0.6))), M = 40;
  const pos = graphLayout(d.nodes, d.edges, W, H, M);
  const at = new Map(d.nodes.map((x, i) => [x.ip, i]));
  const maxN = Math.max(1, ...d.nodes.map((x) => x.bytes)), maxE = Math.max(1, ...d.edges.map((e) => e.bytes));
  const radius = (x) => 4 + 14 * Math.sqrt(x.bytes / maxN);
  const svg = s('svg', { id: 'graph', class: 'chart graph', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': 'hosts as nodes, flows between two hosts as edges, sized by bytes' });
  for (const e of d.edges) {
    const a = pos[at.get(e.src)], b = pos[at.get(e.dst)];
    const link = carry(q);
    link.set('ip', e.src); link.set('ip_side', 'src');
    const ports = e.dst_ports.length ? ` ports ${e.dst_ports.join(', ')}` : '';
    svg.append(s('a', { href: '/flows?' + link, class: 'edge-link' },
      s('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: 'edge', stroke: '#8c959f', 'stroke-opacity': 0.7,
        'stroke-width': (1 + 5 * Math.sqrt(e.bytes / maxE)).toFixed(1) }),
      s('title', {}, `${e.src} → ${e.dst}: ${num(e.flows)} flows, ${bytes(e.bytes)}, ${e.protos.map(proto).join('/')}${ports} — flows of ${e.src} as source`)));
  }
  // Labels for the heaviest hosts only (the rest in their tooltips).
  const labelled = new Set([...d.nodes].sort((x, y) => y.bytes - x.bytes).slice(0, 30).map((x) => x.ip));
  d.nodes.forEach((x, i) => {
    const p = pos[i], r = radius(x);
    svg.append(s('a', { href: `/host/${x.ip}`, class: 'node-link', 'data-ip': x.ip },
      s('circle', { cx: p.x, cy: p.y, r, class: `node${x.honeypot ? ' honeypot' : ''}`, fill: x.honeypot ? '#d1242f' : '#1f6feb', stroke: '#fff', 'stroke-width': 1.5 }),
      labelled.has(x.ip) ? s('text', p.x > W - 160
        ? { x: p.x - r - 3, y: p.y + 4, 'font-size': 11, fill: '#1f2328', class: 'node-label', 'text-anchor': 'end' }
        : { x: p.x + r + 3, y: p.y + 4, 'font-size': 11, fill: '#1f2328', class: 'node-label' }, x.ip) : null,
      s('title', {}, `${x.ip}${x.honeypot ? ' (honeypot)' : ''}: ${num(x.flows)} flows, ${bytes(x.bytes)}`)));
  });
  return svg;
}

async function viewGraph(main, q) {
  const form = await filterForm(q, '/graph');
  let d;
  try {
    d = await api('/api/v1/graph?' + carry(q, ['nodes', 'edges']));
  } catch (err) {
    return filterError(main, 'graph', 'Connections graph', form, err);
  }
  const legend = (color, label) => { const sw = h('span', { class: 'swatch' }); sw.style.background = color; return h('span', {}, sw, label); };
  const results = h('div', { id: 'results' },
    h('p', { class: 'muted' }, `${num(d.nodes.length)} hosts and ${num(d.edges.length)} host pairs drawn from ${num(d.flows)} flows · sized by bytes · click a host for its page, an edge for its flows · `,
      h('a', { href: '/flows?' + carry(q), id: 'table-these' }, 'these flows in the table')),
    d.window_cut ? h('p', { class: 'notice', id: 'graph-window' }, `Drawn from the newest ${num(d.flows)} matching flows only; narrow the filters (a time range, a host) to see the rest.`) : null,
    d.cut ? h('p', { class: 'notice', id: 'graph-cut' }, `Cut: the heaviest ${num(d.edges.length)} of ${num(d.edges_total)} host pairs are drawn (at most ${num(d.max_edges)} pairs and ${num(d.max_nodes)} hosts; ${num(d.nodes_total)} hosts in all). Narrow the filters to see the others.`) : null,
    h('div', { class: 'legend' }, legend('#d1242f', 'honeypot'), legend('#1f6feb', 'other host')),
    d.nodes.length ? graphSvg(d, q) : h('p', { class: 'muted' }, 'No flows match.'),
    h('h2', {}, 'Host pairs, heaviest first'),
    h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'graph-edges' },
      h('thead', {}, h('tr', {}, ['Source', 'Destination', 'Flows', 'Packets', 'Bytes', 'Protocols', 'Destination ports'].map((t) => h('th', {}, t)))),
      h('tbody', {}, d.edges.map((e) => {
        const link = carry(q); link.set('ip', e.src); link.set('ip_side', 'src');
        return h('tr', {},
          h('td', { class: 'mono host' }, h('a', { href: `/host/${e.src}` }, e.src)),
          h('td', { class: 'mono host' }, h('a', { href: `/host/${e.dst}` }, e.dst)),
          h('td', { class: 'num' }, h('a', { href: '/flows?' + link }, num(e.flows))),
          h('td', { class: 'num' }, num(e.packets)), h('td', { class: 'num' }, bytes(e.bytes)),
          h('td', {}, e.protos.map(proto).join(', ')), h('td', { class: 'wrap' }, e.dst_ports.join(', ')));
      })))));
  lastResults.graph = results;
  put(main, h('h1', {}, 'Connections graph'), form, results);
}

// ----------------------------------------------------------------- keyboard
// "/" focuses the first filter; "n" / "p" turn the page (as the pager's
// buttons do); links, buttons and chart buckets are ordinary tab stops.
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) return;
  const click = (sel) => { const b = $(sel); if (b) { e.preventDefault(); b.click(); } };
  if (e.key === '/') { const f = $('#filters input, #filters select'); if (f) { e.preventDefault(); f.focus(); } }
  else if (e.key === 'n') click('#next');
  else if (e.key === 'p') click('#prev');
});

route();
