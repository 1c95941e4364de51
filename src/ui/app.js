// The Custos web UI: seal status and unsealing, sign-in with a token, and a KV browser, over the
// same /v1/ API every client uses. Everything shown is put in the page as text (textContent),
// never as markup; the token stays in this tab's sessionStorage.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem('custos-token') || '',
  mounts: {}
};

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers['X-Vault-Token'] = state.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch('/v1/' + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (e) {
    json = null;
  }
  if (!r.ok) {
    const why = json && Array.isArray(json.errors) && json.errors.length ? json.errors.join('; ') :
                                                                           `HTTP ${r.status}`;
    const err = new Error(why);
    err.status = r.status;
    throw err;
  }
  return json;
}

function showError(e) {
  const el = $('error');
  if (!e) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.textContent = e.message || String(e);
  el.hidden = false;
}

function show(view) {
  for (const v of ['unseal-view', 'login-view', 'secrets-view']) $(v).hidden = v !== view;
}

async function refresh() {
  showError(null);
  let seal;
  try {
    seal = await api('GET', 'sys/seal-status');
  } catch (e) {
    showError(e);
    return;
  }
  const status = $('status');
  if (!seal.initialized) {
    status.textContent = 'Not initialised';
    status.className = 'badge bad';
    show(null);
    showError(new Error('Initialise this server first (custos operator init).'));
    return;
  }
  if (seal.sealed) {
    status.textContent = 'Sealed';
    status.className = 'badge bad';
    $('unseal-progress').textContent = `${seal.progress} of ${seal.t}`;
    $('whoami').textContent = '';
    $('logout').hidden = true;
    show('unseal-view');
    return;
  }
  status.textContent = 'Unsealed';
  status.className = 'badge ok';
  try {
    const leader = await api('GET', 'sys/leader');
    if (leader.ha_enabled) {
      $('ha').textContent = leader.is_self ?
          'HA: active' :
          `HA: standby (active: ${leader.leader_address || 'none'})`;
      if (!leader.is_self) status.className = 'badge standby';
    } else {
      $('ha').textContent = '';
    }
  } catch (e) {
    $('ha').textContent = '';
  }
  if (!state.token) {
    show('login-view');
    return;
  }
  try {
    const me = await api('GET', 'auth/token/lookup-self');
    $('whoami').textContent = `${me.data.display_name} (${(me.data.policies || []).join(', ')})`;
    $('logout').hidden = false;
  } catch (e) {
    signOut();
    showError(e);
    return;
  }
  show('secrets-view');
  await loadMounts();
}

function signOut() {
  state.token = '';
  sessionStorage.removeItem('custos-token');
  $('whoami').textContent = '';
  $('logout').hidden = true;
  // Nothing of the previous session stays on the page.
  state.mounts = {};
  $('mount').replaceChildren();
  $('keys').replaceChildren();
  $('secret-data').replaceChildren();
  $('secret').hidden = true;
  show('login-view');
}

function addMount(path, version) {
  state.mounts[path] = version;
  const o = document.createElement('option');
  o.value = path;
  o.textContent = `${path} (kv v${version})`;
  $('mount').appendChild(o);
}

// The KV mounts this token can reach (the server filters sys/internal/ui/mounts, as Vault does).
async function loadMounts() {
  const select = $('mount');
  const chosen = select.value;
  state.mounts = {};
  select.replaceChildren();
  let resp;
  try {
    resp = await api('GET', 'sys/internal/ui/mounts');
  } catch (e) {
    showError(e);
    return;
  }
  const secret = (resp.data && resp.data.secret) || {};
  for (const [path, m] of Object.entries(secret)) {
    if (m.type === 'kv') addMount(path, (m.options && m.options.version) === '2' ? 2 : 1);
  }
  if (chosen && state.mounts[chosen]) select.value = chosen;
  await loadKeys();
}

function browse(ev) {
  ev.preventDefault();
  showError(null);
  const p = $('browse-path').value.trim().replace(/^\/+/, '');
  try {
    checkPath(p || 'x');
  } catch (e) {
    showError(e);
    return;
  }
  if (!p || p.endsWith('/')) {
    loadKeys(p);
  } else {
    readSecret(p);
  }
}

function listPath(mount, prefix) {
  return state.mounts[mount] === 2 ? `${mount}metadata/${prefix}` : `${mount}${prefix}`;
}
function dataPath(mount, key) {
  return state.mounts[mount] === 2 ? `${mount}data/${key}` : `${mount}${key}`;
}
// A typed path must stay inside its mount: the browser resolves "." and ".." segments (even
// escaped) before sending, which would reach another API path with the user's token.
function checkPath(p) {
  const segs = p.split('/');
  segs.forEach((s, i) => {
    if (s === '.' || s === '..' || (s === '' && i !== segs.length - 1)) {
      throw new Error('invalid path: empty, "." and ".." segments are not allowed');
    }
  });
}
function encodePath(p) {
  checkPath(p);
  return p.split('/').map(encodeURIComponent).join('/');
}

async function loadKeys(prefix = '') {
  const mount = $('mount').value;
  const list = $('keys');
  list.replaceChildren();
  $('secret').hidden = true;
  if (!mount) return;
  let keys = [];
  try {
    const r = await api('LIST', encodePath(listPath(mount, prefix)));
    keys = (r && r.data && r.data.keys) || [];
  } catch (e) {
    if (e.status !== 404 && e.status !== 403) {
      showError(e);
      return;
    }
  }
  if (prefix) {
    const up = document.createElement('li');
    const b = document.createElement('button');
    b.textContent = '..';
    const parent = prefix.replace(/[^/]*\/$/, '');
    b.addEventListener('click', () => loadKeys(parent));
    up.appendChild(b);
    list.appendChild(up);
  }
  for (const k of keys) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.textContent = prefix + k;
    b.dataset.key = prefix + k;
    b.addEventListener(
        'click', () => (k.endsWith('/') ? loadKeys(prefix + k) : readSecret(prefix + k)));
    li.appendChild(b);
    list.appendChild(li);
  }
}

async function readSecret(key) {
  const mount = $('mount').value;
  showError(null);
  let r;
  try {
    r = await api('GET', encodePath(dataPath(mount, key)));
  } catch (e) {
    showError(e);
    return;
  }
  const data = state.mounts[mount] === 2 ? (r.data && r.data.data) || {} : r.data || {};
  const table = $('secret-data');
  table.replaceChildren();
  for (const [k, v] of Object.entries(data)) {
    const tr = document.createElement('tr');
    const a = document.createElement('td');
    const b = document.createElement('td');
    a.textContent = k;
    b.textContent = typeof v === 'string' ? v : JSON.stringify(v);
    tr.append(a, b);
    table.appendChild(tr);
  }
  $('secret-path').textContent = mount + key;
  $('secret').hidden = false;
}

async function writeSecret(ev) {
  ev.preventDefault();
  showError(null);
  const mount = $('mount').value;
  const key = $('new-path').value.trim().replace(/^\/+/, '');
  try {
    checkPath(key);
  } catch (e) {
    showError(e);
    return;
  }
  let data;
  try {
    data = JSON.parse($('new-data').value);
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw new Error('the data must be a JSON object');
  } catch (e) {
    showError(new Error('Invalid JSON: ' + e.message));
    return;
  }
  try {
    await api('POST', encodePath(dataPath(mount, key)), state.mounts[mount] === 2 ? {data} : data);
  } catch (e) {
    showError(e);
    return;
  }
  $('new-path').value = '';
  $('new-data').value = '';
  await loadKeys(key.includes('/') ? key.replace(/[^/]*$/, '') : '');
  await readSecret(key);
}

async function unseal(ev) {
  ev.preventDefault();
  showError(null);
  const key = $('unseal-key').value;
  $('unseal-key').value = '';
  try {
    await api('PUT', 'sys/unseal', {key});
  } catch (e) {
    showError(e);
  }
  await refresh();
}

async function signIn(ev) {
  ev.preventDefault();
  state.token = $('token').value.trim();
  $('token').value = '';
  sessionStorage.setItem('custos-token', state.token);
  await refresh();
}

document.addEventListener('DOMContentLoaded', () => {
  $('unseal-form').addEventListener('submit', unseal);
  $('login-form').addEventListener('submit', signIn);
  $('write-form').addEventListener('submit', writeSecret);
  $('logout').addEventListener('click', signOut);
  $('mount').addEventListener('change', () => loadKeys());
  $('browse-form').addEventListener('submit', browse);
  refresh();
});
