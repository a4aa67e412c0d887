// Dispecer operators' console: the live map and queue of the city's incidents.
//
// Data: GET api/v1/city once, GET api/v1/incidents for a first paint, then the WebSocket
// api/v1/stream, whose snapshots replace the whole list and whose "incident" messages open or
// update one incident. Every 10 s it also asks api/v1/feeds (which senders are heard from, and which
// have gone silent) and api/v1/health (whether the store answers). All URLs are relative to this page, so the console works at "/" and under a
// prefix alike. Nothing is loaded from outside the server: Leaflet and Leaflet.markercluster are
// vendored (see ../vendor.sh).
//
// The map's layers (a Leaflet layers control switches each): the districts, the agencies'
// jurisdictions (one colour per agency; off for the city's staff, an agency user's own on), the
// sensor sites, the open incidents (clustered when crowded: a cluster shows how many and is
// coloured like the worst of them) and the recently closed ones (small, grey, never clustered).
//
// People log in first (POST api/v1/session; the cookie then rides along with every request and the
// WebSocket: the incidents, the stream, the feeds and the readings need it, and a 401 there brings
// the login screen back); actions send the session's CSRF token in X-CSRF-Token. An agency user's list and
// stream are limited to its agency by the server. A sensor site on the map opens a uPlot chart of
// its readings with a baseline (vendored too).
//
// Every value that comes from the server goes through `esc` before it reaches HTML.

import { LANGUAGES, LOCALES, formatNumber, isSupported, localName, plural, translate } from './i18n.js';

const L = window.L;

/** Severities, worst first. */
const SEVERITIES = ['extreme', 'severe', 'moderate', 'minor'];
/** States in which an incident no longer needs anyone to act (mirrors IncidentStatus::is_open). */
const CLOSED_STATUSES = new Set(['resolved', 'closed', 'rejected', 'duplicate']);
const KNOWN_STATUSES = new Set([
  'new', 'assigned', 'acknowledged', 'in_progress', 'resolved', 'closed', 'rejected', 'duplicate', 'reopened',
]);
const LANGUAGE_KEY = 'dispecer.console.language';
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 15000;
/** Zoom the map flies to when an operator picks an incident in the queue. */
const FOCUS_ZOOM = 16;
/** The map's deepest zoom (the clusters are computed for every zoom up to it). */
const MAX_ZOOM = 19;
/**
 * Open incidents whose markers (30 px across) come closer than this many pixels, so that they
 * would overlap, are drawn as one cluster below street zoom (FOCUS_ZOOM)…
 */
const CLUSTER_RADIUS_PX = 32;
/** …and from street zoom on, only those nearly on top of one another (they spread out on a click). */
const STREET_CLUSTER_RADIUS_PX = 12;
/** The agencies' colours on the jurisdictions layer, in the city's order of agencies; then hues. */
const AGENCY_COLOURS = [
  '#1f6fb4', '#c2185b', '#2e7d32', '#6a3d9a', '#e65100', '#00838f', '#8d6e63', '#ad1457',
  '#556b2f', '#283593', '#9e7c00', '#00695c', '#7b1fa2', '#bf360c', '#37474f', '#4e342e',
];
/** Below this zoom the district names would overlap: hide them. */
const DISTRICT_LABEL_MIN_ZOOM = 12.5;
/** How often the feeds and the store's health are asked for, and how long one answer may take. */
const POLL_MS = 10000;
const POLL_TIMEOUT_MS = 8000;
/**
 * Seconds of silence after which a feed is in alarm, by the feed name's prefix. Citizen reports have
 * no rhythm (citizens report when they report), so the citizen feed is never silent.
 */
const FEED_EXPECTED_S = { traffic: 300, utility: 3600 };
const STORE_NAMES = { sqlite: 'SQLite', postgresql: 'PostgreSQL', postgres: 'PostgreSQL', timescaledb: 'TimescaleDB' };

// Small line icons (24×24, stroke = currentColor), one per category family.
const ICON_PATHS = {
  water: '<path d="M12 3.5c-3 4-6 7.3-6 10.7a6 6 0 0 0 12 0c0-3.4-3-6.7-6-10.7z"/>',
  power: '<path d="M13.5 2.5 5 13.5h6l-1 8 8.5-11h-6z"/>',
  electricity: '<path d="M13.5 2.5 5 13.5h6l-1 8 8.5-11h-6z"/>',
  gas: '<path d="M12 2.5c.6 3.6 5.5 5.6 5.5 11a5.5 5.5 0 0 1-11 0c0-2.6 1.4-4.4 2.6-5.5.2 1.8 1 2.8 2.1 3.1-.4-3 .1-5.8.8-8.6z"/>',
  fire: '<path d="M12 2.5c.6 3.6 5.5 5.6 5.5 11a5.5 5.5 0 0 1-11 0c0-2.6 1.4-4.4 2.6-5.5.2 1.8 1 2.8 2.1 3.1-.4-3 .1-5.8.8-8.6z"/>',
  heating: '<path d="M10 14.5V5a2 2 0 0 1 4 0v9.5a4 4 0 1 1-4 0z"/><path d="M12 9v7.5"/>',
  lighting: '<path d="M9.5 18h5M10.5 21h3"/><path d="M12 3a6 6 0 0 0-3.6 10.8c.7.6 1.1 1.3 1.1 2.2h5c0-.9.4-1.6 1.1-2.2A6 6 0 0 0 12 3z"/>',
  traffic: '<rect x="8" y="2.5" width="8" height="19" rx="2"/><circle cx="12" cy="7" r="1.3"/><circle cx="12" cy="12" r="1.3"/><circle cx="12" cy="17" r="1.3"/>',
  road: '<path d="M7 21 10 3M17 21 14 3M12 6v2M12 11v2M12 16v2"/>',
  green: '<path d="M12 21.5V16M12 2.5l-6 8.5h3l-4 5.5h14l-4-5.5h3z"/>',
  waste: '<path d="M4 6.5h16M9.5 6.5v-2h5v2M6 6.5l1.2 14h9.6l1.2-14M10 10.5v6M14 10.5v6"/>',
  public_order: '<path d="M12 2.5l7.5 3v5.6c0 4.6-3.2 8.6-7.5 10.4-4.3-1.8-7.5-5.8-7.5-10.4V5.5z"/>',
  safety: '<path d="M12 2.5l7.5 3v5.6c0 4.6-3.2 8.6-7.5 10.4-4.3-1.8-7.5-5.8-7.5-10.4V5.5z"/>',
  building: '<path d="M3.5 11 12 4l8.5 7M6 9.5V20h12V9.5M10 20v-5h4v5"/>',
  sewer: '<circle cx="12" cy="12" r="8.5"/><path d="M6.5 9h11M4.5 12h15M6.5 15h11"/>',
  flood: '<path d="M3 8c2 0 2-1.5 4.5-1.5S10 8 12 8s2.5-1.5 4.5-1.5S19 8 21 8M3 13c2 0 2-1.5 4.5-1.5S10 13 12 13s2.5-1.5 4.5-1.5S19 13 21 13M3 18c2 0 2-1.5 4.5-1.5S10 18 12 18s2.5-1.5 4.5-1.5S19 18 21 18"/>',
  snow: '<path d="M12 2.5v19M3.8 7.25l16.4 9.5M3.8 16.75l16.4-9.5M9.5 4.2 12 6l2.5-1.8M9.5 19.8 12 18l2.5 1.8"/>',
  car: '<path d="M3.5 16v-4l2.5-5.5h12l2.5 5.5v4z"/><path d="M3.5 12h17"/><circle cx="7.5" cy="18.5" r="1.6"/><circle cx="16.5" cy="18.5" r="1.6"/>',
  default: '<path d="M12 3.5 2.5 20h19z"/><path d="M12 10v4.5M12 17.2v.3"/>',
};
// Families whose icon is another family's.
ICON_PATHS.environment = ICON_PATHS.green;
ICON_PATHS.sanitation = ICON_PATHS.waste;
ICON_PATHS.public_lighting = ICON_PATHS.lighting;
// Some categories deserve their own icon whatever their family (matched on the category id).
const CATEGORY_ICONS = [
  [/traffic_light|semafor/, 'traffic'],
  [/light|lamp|iluminat/, 'lighting'],
  [/tree|copac/, 'green'],
  [/flood|inunda/, 'flood'],
  [/snow|ice|zapad|polei/, 'snow'],
  [/pothole|road_damage|groapa/, 'road'],
  [/accident|crash/, 'default'],
  [/congestion|vehicle|car\b/, 'car'],
];

const state = {
  lang: initialLanguage(null),
  city: null,
  categories: new Map(),
  agencies: new Map(),
  districts: new Map(),
  /** sensor id → its name */
  sensors: new Map(),
  /** GET api/v1/feeds: the last answer, when it came, and whether the last try failed. */
  feeds: { list: null, fetchedAt: null, failed: false, alarm: null },
  /** GET api/v1/health: `checking`, `ok` or `degraded`, and why. */
  store: { state: 'checking', backend: null, status: null, checkedAt: null },
  /** id → GeoJSON Feature */
  incidents: new Map(),
  /** id → L.Marker (in `openLayer` while the incident is open, else in `closedLayer`) */
  markers: new Map(),
  /** id → the icon's inputs, to know when the icon must be redrawn */
  markerKeys: new Map(),
  selectedId: null,
  snapshotSeen: false,
  loaded: false,
  conn: { state: 'connecting', retryAt: 0, attempt: 0, lastMessageAt: null, socket: null },
  /** GET api/v1/session: { username, role, agency, csrf } once logged in. */
  session: null,
  /** id → { kind: 'ok' | 'error' | 'busy', text }: the last action's outcome, shown in the popup. */
  actionNotes: new Map(),
  /** id → the incident's timeline entries (GET api/v1/incidents/{id}/timeline), for its popup. */
  timelines: new Map(),
  /** id → the incident's reports (the timeline's `events`: id, source, received_at), to split one out. */
  reports: new Map(),
  /** The queue's filters ('' = any) and order: newest, severity or due (soonest deadline first). */
  filter: { status: '', severity: '', category: '', agency: '', district: '', overdue: false, sort: 'newest' },
  /** id → citizens' contact details, asked for explicitly (each reading is logged); dropped when its popup closes. */
  contacts: new Map(),
  /** id → its public warning (GET api/v1/public/warnings: the latest version), or null for none. */
  warnings: new Map(),
  /** id → what is typed in its public warning form, kept across redraws of the popup. */
  warningDrafts: new Map(),
  /** id → { kind, text }: the last warning action's outcome. */
  warningNotes: new Map(),
  /** The sensor chart: which sensor, range and measure, and the uPlot instance. */
  sensor: { feature: null, range: '24h', metric: 'speed', plot: null, seq: 0, data: null },
  /** The jurisdictions layer: the agency whose areas it draws ('' = every agency). */
  jurisdictionAgency: '',
};

let map = null;
/** Open incidents' markers, clustered (L.MarkerClusterGroup). */
let openLayer = null;
/** No longer open incidents' markers, never clustered. */
let closedLayer = null;
let districtLayer = null;
let jurisdictionLayer = null;
let sensorLayer = null;
let legendControl = null;
let layersControl = null;
let jurisdictionControl = null;
/** Set while a marker moves between `openLayer` and `closedLayer` (its popup closes and reopens). */
let relayering = false;
let renderQueued = false;

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Escapes text for HTML content and attribute values. */
function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => (
    { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]
  ));
}

function t(key, params) {
  return translate(state.lang, key, params);
}

function $(id) {
  return document.getElementById(id);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function backoffMs(attempt) {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempt);
  const jittered = base * (0.85 + Math.random() * 0.3);
  return Math.round(Math.min(RECONNECT_MAX_MS, Math.max(RECONNECT_MIN_MS, jittered)));
}

function apiUrl(path) {
  return new URL(path, document.baseURI).href;
}

function streamUrl() {
  const url = new URL('api/v1/stream', document.baseURI);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

async function fetchJson(path) {
  const response = await fetch(apiUrl(path), { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (response.status === 401) sessionEnded();
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

function initialLanguage(city) {
  let stored = null;
  try {
    stored = localStorage.getItem(LANGUAGE_KEY);
  } catch {
    // Storage can be disabled; the default language then applies.
  }
  const offered = offeredLanguages(city);
  if (stored && offered.includes(stored)) return stored;
  const fallback = city?.default_language;
  if (fallback && offered.includes(fallback)) return fallback;
  return offered[0] ?? 'ro';
}

/** The city's languages that this console has strings for (all of ours before the city is known). */
function offeredLanguages(city) {
  const wanted = Array.isArray(city?.languages) && city.languages.length ? city.languages : LANGUAGES;
  const offered = wanted.filter((l) => isSupported(l));
  return offered.length ? offered : ['ro'];
}

function severityOf(feature) {
  const s = feature?.properties?.severity;
  return SEVERITIES.includes(s) ? s : 'unknown';
}

function statusOf(feature) {
  const s = feature?.properties?.status;
  return typeof s === 'string' ? s : 'unknown';
}

function isOpen(feature) {
  return !CLOSED_STATUSES.has(statusOf(feature));
}

/** States in which an incident still waits for its agency's acknowledgement. */
const AWAITING_ACK = new Set(['new', 'assigned', 'reopened']);

/**
 * Whether an open incident is past a deadline it still has to meet at `now` (as the engine
 * decides it: the acknowledgement deadline while unacknowledged, the resolution one until
 * resolved). Computed here from the deadlines, so that the mark appears when the time passes,
 * not only when a frame arrives.
 */
function isOverdue(feature, now = Date.now()) {
  if (!isOpen(feature)) return false;
  const p = feature.properties ?? {};
  const missed = (due) => {
    const ms = parseTime(due);
    return ms != null && now >= ms;
  };
  return (AWAITING_ACK.has(statusOf(feature)) && missed(p.ack_due)) || missed(p.resolve_due);
}

function statusName(status) {
  return KNOWN_STATUSES.has(status) ? t(`status.${status}`) : String(status);
}

function severityName(severity) {
  return t(`severity.${SEVERITIES.includes(severity) ? severity : 'unknown'}`);
}

function categoryName(id) {
  if (id == null) return '—';
  return localName(state.categories.get(id)?.name, state.lang) ?? String(id);
}

function agencyName(id) {
  if (id == null) return '—';
  return localName(state.agencies.get(id)?.name, state.lang) ?? String(id);
}

function districtName(id) {
  if (id == null) return t('district.none');
  return localName(state.districts.get(id), state.lang) ?? String(id);
}

/**
 * A routing area's name: the name the server gave (optional `area_name`), a district's name,
 * "the whole city", or the id itself.
 */
function areaName(id, given) {
  const named = localName(given, state.lang);
  if (named) return named;
  if (id == null || id === '') return null;
  if (state.districts.has(id)) return districtName(id);
  if (id === 'city') return t('map.area.city');
  return String(id);
}

function iconSvg(categoryId) {
  const id = String(categoryId ?? '');
  const family = state.categories.get(id)?.family;
  const byId = CATEGORY_ICONS.find(([pattern]) => pattern.test(id))?.[1];
  const paths = ICON_PATHS[byId] ?? (Object.hasOwn(ICON_PATHS, family) ? ICON_PATHS[family] : ICON_PATHS.default);
  return `<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">${paths}</svg>`;
}

function parseTime(value) {
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

function formatDateTime(value) {
  const ms = typeof value === 'number' ? value : parseTime(value);
  if (ms == null) return value == null ? '—' : String(value);
  const options = { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' };
  const zone = state.city?.time_zone;
  try {
    return new Intl.DateTimeFormat(LOCALES[state.lang], zone ? { ...options, timeZone: zone } : options).format(ms);
  } catch {
    return new Intl.DateTimeFormat(LOCALES[state.lang], options).format(ms);
  }
}

function formatClock(ms) {
  if (ms == null) return '—';
  return new Intl.DateTimeFormat(LOCALES[state.lang], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    .format(ms);
}

function formatAge(openedAt, now = Date.now()) {
  const ms = parseTime(openedAt);
  if (ms == null) return '—';
  const minutes = Math.max(0, Math.floor((now - ms) / 60000));
  if (minutes < 1) return t('age.now');
  if (minutes < 60) return t('age.minutes', { m: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return t('age.hours', { h: hours, m: minutes % 60 });
  return t('age.days', { d: Math.floor(hours / 24), h: hours % 24 });
}

function reportsText(n) {
  const count = Number.isFinite(Number(n)) ? Number(n) : 0;
  return plural(state.lang, 'reports', count);
}

/** [lat, lng] of a feature, or null if its geometry is not a usable Point. */
function latLngOf(feature) {
  const c = feature?.geometry?.type === 'Point' ? feature.geometry.coordinates : null;
  if (!Array.isArray(c) || c.length < 2) return null;
  const [lon, lat] = c.map(Number);
  if (!Number.isFinite(lon) || !Number.isFinite(lat) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  return [lat, lon];
}

function idOf(feature) {
  const id = feature?.id ?? feature?.properties?.id;
  return id == null ? null : String(id);
}

// ---------------------------------------------------------------------------------------------
// Static text and the header

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.title = state.city
    ? `${localName(state.city.name, state.lang) ?? ''} · ${t('app.title')}`
    : t('app.title');
  for (const el of document.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of document.querySelectorAll('[data-i18n-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  }
  for (const el of document.querySelectorAll('[data-i18n-title]')) {
    el.title = t(el.dataset.i18nTitle);
  }
  $('city-name').textContent = state.city ? localName(state.city.name, state.lang) ?? state.city.id : 'Dispecer';
  $('login-city').textContent = $('city-name').textContent;
  renderLanguageSwitch();
  renderUser();
  renderFilters();
  renderSensorPanel();
  renderConnection();
  renderStore();
  renderFeeds();
  if (map) {
    map.getContainer().setAttribute('aria-label', t('map.label'));
    renderLegend();
    renderLayersControl();
    renderJurisdictionPanel();
    refreshSensorTooltips();
    for (const [id, feature] of state.incidents) updateMarker(id, feature);
    // The clusters' counts and titles, in the new language.
    openLayer.refreshClusters();
  }
  scheduleRender();
}

function renderLanguageSwitch() {
  const offered = offeredLanguages(state.city);
  for (const box of [$('lang-switch'), $('login-lang')]) {
    box.innerHTML = offered.map((l) => `
    <button type="button" data-lang="${esc(l)}" aria-pressed="${l === state.lang}" lang="${esc(l)}"
      title="${esc(t(`lang.${l}`))}">${esc(l.toUpperCase())}</button>`).join('');
  }
}

function setLanguage(lang) {
  if (!isSupported(lang) || lang === state.lang) return;
  state.lang = lang;
  try {
    localStorage.setItem(LANGUAGE_KEY, lang);
  } catch {
    // Not kept across reloads then; nothing else to do.
  }
  applyLanguage();
}

function renderCounts() {
  const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
  let open = 0;
  let overdue = 0;
  const now = Date.now();
  for (const f of state.incidents.values()) {
    if (!isOpen(f)) continue;
    open += 1;
    if (isOverdue(f, now)) overdue += 1;
    const s = severityOf(f);
    if (s in counts) counts[s] += 1;
  }
  const box = $('counts');
  box.setAttribute('aria-label', t('counts.label'));
  box.innerHTML = `
    <div class="count count-total" title="${esc(t('counts.open'))}">
      <span class="count-label">${esc(t('counts.open'))}</span>
      <span class="count-value" data-count="open">${esc(formatNumber(state.lang, open))}</span>
    </div>
    <div class="count count-overdue${overdue ? '' : ' is-zero'}" title="${esc(t('counts.overdue.title'))}">
      <span class="count-label">${esc(t('counts.overdue'))}</span>
      <span class="count-value" data-count="overdue">${esc(formatNumber(state.lang, overdue))}</span>
    </div>
    ${SEVERITIES.map((s) => `
    <div class="count sev-${s}${counts[s] ? '' : ' is-zero'}" title="${esc(severityName(s))}">
      <span class="sev-dot" aria-hidden="true"></span>
      <span class="count-label">${esc(severityName(s))}</span>
      <span class="count-value" data-count="${s}">${esc(formatNumber(state.lang, counts[s]))}</span>
    </div>`).join('')}`;
}

// ---------------------------------------------------------------------------------------------
// Connection state

let connectionTimer = null;

function setConnection(next) {
  state.conn.state = next;
  renderConnection();
  clearInterval(connectionTimer);
  connectionTimer = null;
  if (next === 'reconnecting') {
    connectionTimer = setInterval(renderConnection, 1000);
  }
}

function renderConnection() {
  const el = $('connection');
  const { state: s, retryAt, lastMessageAt } = state.conn;
  el.dataset.state = s;
  $('queue').classList.toggle('is-stale', s !== 'live' && state.loaded);
  let label;
  if (s === 'live') label = t('conn.live');
  else if (s === 'reconnecting') {
    const seconds = Math.ceil((retryAt - Date.now()) / 1000);
    label = seconds > 0 ? t('conn.reconnecting', { seconds }) : t('conn.reconnecting_now');
  } else label = t('conn.connecting');
  el.querySelector('.label').textContent = label;
  let title;
  if (lastMessageAt == null) title = t('conn.title.never');
  else if (s === 'live') title = t('conn.title.live', { time: formatClock(lastMessageAt) });
  else title = t('conn.title.down', { time: formatClock(lastMessageAt) });
  el.title = title;
}

// ---------------------------------------------------------------------------------------------
// Feeds and store (polled)

/** Runs `task` now and then POLL_MS after each run ends, so two runs never overlap. */
function poll(task) {
  const run = async () => {
    try {
      await task();
    } catch (error) {
      console.warn('dispecer: poll failed', error);
    } finally {
      setTimeout(run, POLL_MS);
    }
  };
  run();
}

/** fetch, given up after POLL_TIMEOUT_MS (a server that hangs counts as one that does not answer). */
async function fetchBounded(path) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), POLL_TIMEOUT_MS);
  try {
    return await fetch(apiUrl(path), {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
      signal: controller.signal,
    });
  } finally {
    clearTimeout(timer);
  }
}

/** "45 s", "12 min", "2 h 5 min", "3 z 4 h" for a number of seconds. */
function formatSeconds(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return t('duration.seconds', { s });
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return t('age.minutes', { m: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    return minutes % 60 ? t('age.hours', { h: hours, m: minutes % 60 }) : t('duration.hours', { h: hours });
  }
  return hours % 24 ? t('age.days', { d: Math.floor(hours / 24), h: hours % 24 }) : t('duration.days', { d: hours / 24 });
}

/** `text` with its spaces made non-breaking, so that "1 h 30 min" is never cut over two lines. */
function nbsp(text) {
  return text.replaceAll(' ', '\u00a0');
}

/** "acum 5 minute" / "5 minutes ago" for a number of seconds in the past. */
function formatAgo(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const [value, unit] = s < 60 ? [s, 'second']
    : s < 3600 ? [Math.floor(s / 60), 'minute']
      : s < 86400 ? [Math.floor(s / 3600), 'hour']
        : [Math.floor(s / 86400), 'day'];
  try {
    return new Intl.RelativeTimeFormat(LOCALES[state.lang], { numeric: 'auto' }).format(-value, unit);
  } catch {
    return formatSeconds(s);
  }
}

async function checkHealth() {
  const checkedAt = Date.now();
  const previous = state.store;
  let next;
  try {
    const response = await fetchBounded('api/v1/health');
    let body = null;
    try {
      body = await response.json();
    } catch {
      // A 503 may come without a body; the status is enough.
    }
    const backend = typeof body?.store === 'string' && body.store !== '' ? body.store : previous.backend;
    next = response.ok
      ? { state: 'ok', backend, status: response.status, checkedAt }
      : { state: 'degraded', backend, status: response.status, checkedAt };
  } catch {
    next = { state: 'degraded', backend: previous.backend, status: null, checkedAt };
  }
  if (next.state !== previous.state && next.state === 'degraded') {
    console.warn(`dispecer: the store check failed (${next.status == null ? 'no answer' : `HTTP ${next.status}`})`);
  }
  state.store = next;
  renderStore();
}

function backendName(backend) {
  if (backend == null) return t('store.name');
  return Object.hasOwn(STORE_NAMES, backend) ? STORE_NAMES[backend] : String(backend);
}

function renderStore() {
  const el = $('store');
  const { state: s, backend, status, checkedAt } = state.store;
  el.dataset.state = s;
  let label;
  let title;
  if (s === 'ok') {
    label = `<span class="sr-only">${esc(t('store.name'))}: </span>${esc(backendName(backend))}`;
    title = t('store.title.ok', { backend: backendName(backend), time: formatClock(checkedAt) });
  } else if (s === 'degraded') {
    label = esc(t('store.degraded'));
    title = status == null
      ? t('store.title.network', { time: formatClock(checkedAt) })
      : t('store.title.http', { status, time: formatClock(checkedAt) });
  } else {
    label = esc(t('store.checking'));
    title = t('store.title.checking');
  }
  const labelEl = el.querySelector('.label');
  if (labelEl.innerHTML !== label) labelEl.innerHTML = label;
  el.title = title;
}

function count(value) {
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

/** The feeds of an answer, checked field by field (nothing from the server is trusted to be well formed). */
function normaliseFeeds(body) {
  const feeds = Array.isArray(body?.feeds) ? body.feeds : [];
  return feeds
    .filter((f) => f && typeof f === 'object' && f.feed != null)
    .map((f) => {
      const silent = Number(f.silent_for_s);
      return {
        feed: String(f.feed),
        accepted: count(f.accepted),
        rejected: count(f.rejected),
        duplicates: count(f.duplicates),
        lastSeen: typeof f.last_seen === 'string' ? f.last_seen : null,
        silentFor: f.silent_for_s != null && Number.isFinite(silent) ? Math.max(0, silent) : null,
      };
    });
}

async function checkFeeds() {
  try {
    const response = await fetchBounded('api/v1/feeds');
    if (response.status === 401) sessionEnded();
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    state.feeds.list = normaliseFeeds(body);
    state.feeds.fetchedAt = Date.now();
    state.feeds.failed = false;
  } catch (error) {
    if (!state.feeds.failed) console.warn('dispecer: could not read the feeds', error);
    state.feeds.failed = true;
  }
  renderFeeds();
}

/** Seconds of silence after which `feed` is in alarm, or null if it has no rhythm. */
function expectedInterval(feed) {
  const kind = feed.split(':', 1)[0];
  return Object.hasOwn(FEED_EXPECTED_S, kind) && feed.includes(':') ? FEED_EXPECTED_S[kind] : null;
}

function feedName(feed) {
  if (feed === 'citizen') return t('feeds.name.citizen');
  if (feed === 'traffic:http') return t('feeds.name.traffic_http');
  const colon = feed.indexOf(':');
  const kind = colon < 0 ? feed : feed.slice(0, colon);
  const id = colon < 0 ? '' : feed.slice(colon + 1);
  if (kind === 'utility' && id) {
    return t('feeds.name.utility', { name: localName(state.agencies.get(id)?.name, state.lang) ?? id });
  }
  if (kind === 'traffic' && id) {
    return t('feeds.name.traffic', { name: localName(state.sensors.get(id), state.lang) ?? id });
  }
  return feed;
}

/**
 * Each feed with its silence now (the server's figure aged by the time since it answered, so the
 * alarm still comes on while the server cannot be reached) and whether that is an alarm.
 */
function feedRows(now = Date.now()) {
  const { list, fetchedAt } = state.feeds;
  if (!list) return null;
  const aged = Math.max(0, (now - fetchedAt) / 1000);
  return list.map((f) => {
    const silentFor = f.silentFor == null ? null : f.silentFor + aged;
    const expected = expectedInterval(f.feed);
    return { ...f, name: feedName(f.feed), silentFor, expected, silent: expected != null && silentFor != null && silentFor > expected };
  }).sort((a, b) => (b.silent - a.silent) || (a.silent ? b.silentFor - a.silentFor : 0) || a.name.localeCompare(b.name, LOCALES[state.lang]));
}

function renderFeeds() {
  const box = $('feeds');
  const button = $('feeds-button');
  const rows = feedRows();
  const lines = [];
  let label;
  let alarm = null;
  if (rows == null) {
    box.dataset.state = 'unknown';
    label = t('feeds.unknown');
    lines.push(t('feeds.title.never'));
  } else {
    const silent = rows.filter((r) => r.silent);
    const active = rows.filter((r) => !r.silent && r.silentFor != null).length;
    box.dataset.state = silent.length ? 'silent' : 'ok';
    label = silent.length ? plural(state.lang, 'feeds.silent', silent.length) : plural(state.lang, 'feeds.active', active);
    if (rows.length) {
      lines.push(t('feeds.title.summary', {
        active: formatNumber(state.lang, active),
        silent: formatNumber(state.lang, silent.length),
        total: formatNumber(state.lang, rows.length),
      }));
    } else {
      lines.push(t('feeds.title.none'));
    }
    if (silent.length) {
      lines.push(t('feeds.title.silent'));
      for (const r of silent) {
        lines.push(`• ${t('feeds.title.silent_item', { feed: r.name, duration: formatSeconds(r.silentFor), expected: formatSeconds(r.expected) })}`);
      }
      alarm = silent.map((r) => r.name).join(', ');
    }
    const rejected = rows.filter((r) => r.rejected > 0);
    if (rejected.length) {
      const total = rejected.reduce((sum, r) => sum + r.rejected, 0);
      lines.push(t('feeds.title.rejected', { n: formatNumber(state.lang, total) }));
      for (const r of rejected) lines.push(`• ${r.name}: ${formatNumber(state.lang, r.rejected)}`);
    } else if (rows.length) {
      lines.push(t('feeds.title.rejected_none'));
    }
    if (state.feeds.failed) lines.push(t('feeds.title.stale', { time: formatClock(state.feeds.fetchedAt) }));
  }
  box.classList.toggle('is-stale', state.feeds.failed && rows != null);
  lines.push(t('feeds.title.hint'));
  const labelEl = button.querySelector('.label');
  if (labelEl.textContent !== label) labelEl.textContent = label;
  button.title = lines.join('\n');
  announceFeeds(alarm);
  renderFeedsPopover(rows);
}

/** Tells screen readers when the feeds' alarm starts, changes or ends (not at every poll). */
function announceFeeds(alarm) {
  if (alarm === state.feeds.alarm) return;
  const before = state.feeds.alarm;
  state.feeds.alarm = alarm;
  const live = $('feeds-live');
  if (alarm) live.textContent = t('feeds.live.silent', { list: alarm });
  else if (before) live.textContent = t('feeds.live.ok');
}

/** What the popover's body last showed. */
let feedsPopoverHtml = null;

function renderFeedsPopover(rows) {
  const pop = $('feeds-popover');
  pop.querySelector('.feeds-updated').textContent = state.feeds.fetchedAt == null
    ? '' : t('feeds.popover.updated', { time: formatClock(state.feeds.fetchedAt) });
  pop.querySelector('.feeds-note').textContent = t('feeds.note', {
    traffic: nbsp(formatSeconds(FEED_EXPECTED_S.traffic)),
    utility: nbsp(formatSeconds(FEED_EXPECTED_S.utility)),
  });
  const body = pop.querySelector('.feeds-body');
  let html;
  if (rows == null) {
    html = `<p class="feeds-empty">${esc(t('feeds.title.never'))}</p>`;
  } else if (!rows.length) {
    html = `<p class="feeds-empty">${esc(t('feeds.title.none'))}</p>`;
  } else {
    const n = (v) => esc(formatNumber(state.lang, v));
    const when = (r) => (r.silentFor == null ? t('feeds.never') : formatAgo(r.silentFor));
    html = `
      <div class="feeds-scroll" tabindex="0" role="group" aria-label="${esc(t('feeds.popover.scroll'))}">
      <table class="feeds-table">
        <thead><tr>
          <th scope="col">${esc(t('feeds.col.feed'))}</th>
          <th scope="col" class="num">${esc(t('feeds.col.accepted'))}</th>
          <th scope="col" class="num">${esc(t('feeds.col.rejected'))}</th>
          <th scope="col" class="num">${esc(t('feeds.col.duplicates'))}</th>
          <th scope="col">${esc(t('feeds.col.last_seen'))}</th>
        </tr></thead>
        <tbody>${rows.map((r) => `
          <tr class="${r.silent ? 'is-silent' : ''}" data-feed="${esc(r.feed)}">
            <th scope="row">${esc(r.name)}${r.silent ? `<span class="feed-silent">${esc(t('feeds.silent_for', { duration: nbsp(formatSeconds(r.silentFor)) }))}</span>` : ''}<span class="feed-when-inline">${esc(t('feeds.col.last_seen'))}: ${esc(when(r))}</span></th>
            <td class="num">${n(r.accepted)}</td>
            <td class="num${r.rejected ? ' has-rejected' : ''}">${n(r.rejected)}</td>
            <td class="num">${n(r.duplicates)}</td>
            <td class="when" title="${esc(r.lastSeen ? formatDateTime(r.lastSeen) : '')}">${esc(when(r))}</td>
          </tr>`).join('')}
        </tbody>
      </table>
      </div>`;
  }
  // Rewritten only when something changed, so a scrolled list keeps its place between polls.
  if (feedsPopoverHtml !== html) {
    const scroller = body.querySelector('.feeds-scroll');
    const top = scroller?.scrollTop ?? 0;
    const hadFocus = scroller != null && scroller === document.activeElement;
    body.innerHTML = html;
    feedsPopoverHtml = html;
    const fresh = body.querySelector('.feeds-scroll');
    if (fresh) {
      fresh.scrollTop = top;
      if (hadFocus) fresh.focus();
    }
  }
}

function setFeedsOpen(open) {
  $('feeds-popover').hidden = !open;
  $('feeds-button').setAttribute('aria-expanded', String(open));
  if (open) renderFeeds();
}

// ---------------------------------------------------------------------------------------------
// The map

function setupMap(city) {
  map = L.map('map', {
    zoomSnap: 0.25,
    zoomDelta: 0.5,
    wheelPxPerZoomLevel: 90,
    worldCopyJump: false,
    attributionControl: true,
    maxZoom: MAX_ZOOM,
  });
  map.attributionControl.setPrefix('Leaflet');

  const b = Array.isArray(city.bounds) && city.bounds.length === 4 ? city.bounds.map(Number) : null;
  let bounds = null;
  if (b && b.every(Number.isFinite)) {
    bounds = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
  }
  const center = Array.isArray(city.center) ? city.center.map(Number) : null;
  // The whole city: the first view, and the button under the zoom buttons.
  const home = () => {
    if (bounds && bounds.isValid()) map.fitBounds(bounds, { padding: [8, 8] });
    else if (center && center.every(Number.isFinite)) map.setView([center[1], center[0]], 13);
    else map.setView([0, 0], 2);
  };
  home();
  // Loose, so an incident reported just outside the city can still be reached.
  if (bounds && bounds.isValid()) map.setMaxBounds(bounds.pad(2));

  if (typeof city.tile_url === 'string' && city.tile_url !== '') {
    L.tileLayer(city.tile_url, {
      maxZoom: MAX_ZOOM,
      attribution: typeof city.tile_attribution === 'string' ? esc(city.tile_attribution) : '',
    }).addTo(map);
    map.getContainer().classList.add('has-tiles');
  } else {
    map.getContainer().classList.add('no-tiles');
  }

  map.createPane('districts').style.zIndex = 350;
  map.createPane('jurisdictions').style.zIndex = 360;
  map.createPane('districtLabels').style.zIndex = 380;
  map.createPane('sensors').style.zIndex = 450;

  districtLayer = L.geoJSON(city.districts?.type === 'FeatureCollection' ? city.districts : null, {
    pane: 'districts',
    interactive: false,
    style: () => ({
      className: 'district-shape',
      color: '#5d6d7e',
      weight: 1.2,
      opacity: 0.9,
      fillColor: '#ffffff',
      fillOpacity: city.tile_url ? 0.06 : 0.7,
    }),
    onEachFeature: (feature, layer) => {
      const name = feature?.properties?.name ?? feature?.properties?.id;
      if (name == null) return;
      layer.bindTooltip(esc(localName(name, state.lang)), {
        permanent: true,
        direction: 'center',
        className: 'district-label',
        interactive: false,
        pane: 'districtLabels',
      });
    },
  }).addTo(map);

  // An agency user sees its own agency's jurisdiction from the start; the city's staff turn the
  // layer on when they need it (every agency's areas at once cover the whole city several times).
  const own = state.session?.role === 'agency' ? state.session.agency : null;
  state.jurisdictionAgency = own && state.agencies.has(own) ? own : '';
  jurisdictionLayer = L.layerGroup();
  drawJurisdictions();
  if (state.jurisdictionAgency) jurisdictionLayer.addTo(map);

  sensorLayer = L.layerGroup().addTo(map);
  for (const feature of city.sensors?.features ?? []) {
    const ll = latLngOf(feature);
    if (!ll) continue;
    const marker = L.marker(ll, {
      pane: 'sensors',
      keyboard: true,
      title: String(feature?.properties?.name ?? feature?.properties?.id ?? ''),
      icon: L.divIcon({ className: 'sensor-icon', html: '<div class="sensor-site"></div>', iconSize: [10, 10], iconAnchor: [5, 5] }),
    });
    marker.feature = feature;
    marker.bindTooltip('', { direction: 'top', offset: [0, -6], className: 'sensor-tooltip' });
    marker.on('click', () => openSensor(feature));
    // Focused with the keyboard (Tab), Enter opens the chart too.
    marker.on('keypress', (event) => {
      if (event.originalEvent?.key === 'Enter') openSensor(feature);
    });
    sensorLayer.addLayer(marker);
  }
  refreshSensorTooltips();

  closedLayer = L.layerGroup().addTo(map);
  openLayer = L.markerClusterGroup({
    maxClusterRadius: (zoom) => (zoom >= FOCUS_ZOOM ? STREET_CLUSTER_RADIUS_PX : CLUSTER_RADIUS_PX),
    // A click zooms into a cluster; at the deepest zoom (reports at one address) it spreads out.
    zoomToBoundsOnClick: true,
    spiderfyOnMaxZoom: true,
    showCoverageOnHover: false,
    // Clusters split and merge with a short animation (MarkerCluster.css), unless the person
    // asked for less motion.
    animate: !window.matchMedia?.('(prefers-reduced-motion: reduce)').matches,
    iconCreateFunction: clusterIcon,
    spiderLegPolylineOptions: { weight: 1.5, color: '#1b2430', opacity: 0.55 },
  }).addTo(map);
  // A cluster has the keyboard focus like a marker: Enter does what a click does.
  openLayer.on('clusterkeypress', (event) => {
    if (event.originalEvent?.key !== 'Enter') return;
    const cluster = event.layer;
    if (map.getZoom() >= map.getMaxZoom() || map.getBoundsZoom(cluster.getBounds()) <= map.getZoom()) {
      cluster.spiderfy();
    } else {
      cluster.zoomToBounds({ padding: [40, 40] });
    }
  });

  // The layout can change the map's size without a window resize (narrow screens, the queue growing).
  if ('ResizeObserver' in window) {
    let pending = false;
    new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        map.invalidateSize({ pan: false });
      });
    }).observe(map.getContainer());
  }

  // Back to the whole city, under the zoom buttons.
  const homeControl = L.control({ position: 'topleft' });
  homeControl.onAdd = () => {
    const div = L.DomUtil.create('div', 'leaflet-bar home-control');
    const button = L.DomUtil.create('button', 'home-button', div);
    button.type = 'button';
    button.id = 'map-home';
    button.dataset.i18nLabel = 'map.home';
    button.dataset.i18nTitle = 'map.home';
    button.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M4 4h5M4 4v5M20 4h-5M20 4v5M4 20h5M4 20v-5M20 20h-5M20 20v-5"/><circle cx="12" cy="12" r="3"/></svg>';
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.on(button, 'click', home);
    return div;
  };
  homeControl.addTo(map);

  legendControl = L.control({ position: 'bottomleft' });
  legendControl.onAdd = () => {
    const div = L.DomUtil.create('div', 'legend');
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  legendControl.addTo(map);
  renderLegend();
  renderLayersControl();

  jurisdictionControl = L.control({ position: 'topright' });
  jurisdictionControl.onAdd = () => {
    const div = L.DomUtil.create('div', 'jurisdictions-panel');
    div.id = 'jurisdictions-panel';
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.disableScrollPropagation(div);
    div.addEventListener('change', (event) => {
      if (event.target.id !== 'jurisdictions-agency') return;
      state.jurisdictionAgency = event.target.value;
      drawJurisdictions();
      renderJurisdictionPanel();
    });
    return div;
  };
  jurisdictionControl.addTo(map);
  renderJurisdictionPanel();
  map.on('overlayadd overlayremove', (event) => {
    if (event.layer === jurisdictionLayer) renderJurisdictionPanel();
  });

  const updateLabelVisibility = () => {
    map.getContainer().classList.toggle('hide-district-labels', map.getZoom() < DISTRICT_LABEL_MIN_ZOOM);
  };
  map.on('zoomend', updateLabelVisibility);
  updateLabelVisibility();
}

/**
 * The layers control (top right): districts, jurisdictions, sensors, open and closed incidents.
 * Leaflet's control cannot rename an entry, so it is built again in the page's language.
 */
function renderLayersControl() {
  if (!map) return;
  layersControl?.remove();
  const name = (key) => `<span class="layer-name">${esc(t(key))}</span>`;
  layersControl = L.control.layers(null, {
    [name('layers.districts')]: districtLayer,
    [name('layers.jurisdictions')]: jurisdictionLayer,
    [name('layers.sensors')]: sensorLayer,
    [name('layers.open')]: openLayer,
    [name('layers.closed')]: closedLayer,
  }, { collapsed: false, position: 'topright', sortLayers: false }).addTo(map);
  const box = layersControl.getContainer();
  box.id = 'layers';
  box.setAttribute('role', 'group');
  box.setAttribute('aria-label', t('layers.label'));
  // Above the jurisdictions' panel, whichever was added first.
  box.parentNode?.prepend(box);
}

// ---------------------------------------------------------------------------------------------
// The agencies' jurisdictions

/** An agency's colour on the map: its place in the city's list of agencies. */
function agencyColour(id) {
  const i = [...state.agencies.keys()].indexOf(id);
  if (i < 0) return '#5d6d7e';
  if (i < AGENCY_COLOURS.length) return AGENCY_COLOURS[i];
  return `hsl(${Math.round((i * 137.508) % 360)}, 62%, 36%)`;
}

/** The jurisdictions' features from GET api/v1/city (properties `agency`, `area`, `name`). */
function jurisdictionFeatures() {
  const features = state.city?.jurisdictions?.features;
  return Array.isArray(features) ? features.filter((f) => f?.geometry && f?.properties?.agency != null) : [];
}

/** The agencies that have at least one jurisdiction area, in the city's order. */
function agenciesWithJurisdictions() {
  const have = new Set(jurisdictionFeatures().map((f) => String(f.properties.agency)));
  return [...state.agencies.keys()].filter((a) => have.has(a));
}

/**
 * Draws the jurisdictions of the chosen agency (or of all): one path per area, in the agency's
 * colour, the largest first so that a small area stays on top of the whole city and can be
 * pointed at. Areas of several agencies with the same shape (the whole city) name them all.
 */
function drawJurisdictions() {
  if (!jurisdictionLayer) return;
  jurisdictionLayer.clearLayers();
  const all = jurisdictionFeatures();
  const sameShape = new Map();
  for (const f of all) {
    const key = JSON.stringify(f.geometry);
    sameShape.set(key, [...(sameShape.get(key) ?? []), String(f.properties.agency)]);
  }
  const chosen = state.jurisdictionAgency;
  const drawn = [];
  for (const feature of all) {
    const agency = String(feature.properties.agency);
    if (chosen && agency !== chosen) continue;
    const colour = agencyColour(agency);
    const layer = L.geoJSON(feature, {
      pane: 'jurisdictions',
      style: () => ({
        className: 'jurisdiction-shape',
        color: colour,
        weight: 2.5,
        opacity: 0.9,
        fillColor: colour,
        // Every agency's at once: outlines only (a dozen fills over the whole city are mud).
        fillOpacity: chosen ? 0.14 : 0,
      }),
    });
    const agencies = chosen ? [agency] : sameShape.get(JSON.stringify(feature.geometry)) ?? [agency];
    const area = feature.properties.name ?? feature.properties.area;
    layer.bindTooltip(() => jurisdictionTooltip(agencies, area), { sticky: true, className: 'jurisdiction-tooltip' });
    layer.on('add', () => {
      layer.eachLayer((path) => {
        const el = path.getElement?.();
        if (el) {
          el.dataset.agency = agency;
          el.dataset.area = String(feature.properties.area ?? '');
        }
      });
    });
    const box = layer.getBounds();
    const size = box.isValid() ? (box.getEast() - box.getWest()) * (box.getNorth() - box.getSouth()) : 0;
    drawn.push([size, layer]);
  }
  drawn.sort((a, b) => b[0] - a[0]);
  for (const [, layer] of drawn) jurisdictionLayer.addLayer(layer);
}

function jurisdictionTooltip(agencies, area) {
  const names = agencies.map((a) => `<li><svg class="swatch" viewBox="0 0 12 12" aria-hidden="true"><rect x="1" y="1" width="10" height="10" rx="2" fill="${esc(agencyColour(a))}"/></svg>${esc(agencyName(a))}</li>`);
  const where = area === 'city' ? t('map.area.city') : localName(area, state.lang) ?? '';
  return `<div class="jurisdiction-area">${esc(t('jurisdictions.area', { area: where }))}</div><ul>${names.join('')}</ul>`;
}

/** The jurisdictions' panel (under the layers control), shown while the layer is on. */
function renderJurisdictionPanel() {
  const div = jurisdictionControl?.getContainer();
  if (!div) return;
  const on = map.hasLayer(jurisdictionLayer);
  div.hidden = !on;
  if (!on) return;
  const agencies = agenciesWithJurisdictions();
  const chosen = state.jurisdictionAgency;
  const shown = chosen ? [chosen] : agencies;
  div.innerHTML = `
    <label class="jurisdictions-title" for="jurisdictions-agency">${esc(t('jurisdictions.title'))}</label>
    <select id="jurisdictions-agency">
      <option value="">${esc(t('jurisdictions.all'))}</option>
      ${agencies.map((a) => `<option value="${esc(a)}"${a === chosen ? ' selected' : ''}>${esc(agencyName(a))}</option>`).join('')}
    </select>
    <ul class="jurisdictions-legend">
      ${shown.map((a) => `<li data-agency="${esc(a)}"><svg class="swatch" viewBox="0 0 14 12" aria-hidden="true"><rect x="1" y="1" width="12" height="10" rx="2" fill="${esc(agencyColour(a))}" fill-opacity="0.25" stroke="${esc(agencyColour(a))}" stroke-width="2"/></svg>${esc(agencyName(a))}</li>`).join('')}
    </ul>`;
}

function refreshSensorTooltips() {
  if (!sensorLayer) return;
  sensorLayer.eachLayer((marker) => {
    const p = marker.feature?.properties ?? {};
    const speed = Number(p.free_flow_speed_kmh);
    marker.setTooltipContent(esc(t('sensor.tooltip', {
      name: p.name ?? p.id ?? '',
      road: p.road ?? '—',
      direction: p.direction ?? '—',
      speed: Number.isFinite(speed) ? formatNumber(state.lang, speed) : '—',
    })));
  });
}

function renderLegend() {
  const div = legendControl?.getContainer();
  if (!div) return;
  div.innerHTML = `
    <div class="legend-title">${esc(t('legend.title'))}</div>
    <ul>
      ${SEVERITIES.map((s) => `<li><span class="legend-swatch sev-${s}" aria-hidden="true"></span>${esc(severityName(s))}</li>`).join('')}
      <li><span class="legend-swatch closed" aria-hidden="true"></span>${esc(t('legend.closed'))}</li>
      <li><span class="legend-cluster sev-severe" aria-hidden="true">3</span>${esc(t('legend.cluster'))}</li>
      <li><span class="legend-sensor" aria-hidden="true"></span>${esc(t('legend.sensor'))}</li>
      <li><span class="legend-district" aria-hidden="true"></span>${esc(t('legend.district'))}</li>
    </ul>`;
}

function markerTitle(feature) {
  const p = feature.properties ?? {};
  return t('marker.title', {
    category: categoryName(p.category),
    severity: severityName(severityOf(feature)),
    status: statusName(statusOf(feature)),
  });
}

function markerIcon(id, feature) {
  const severity = severityOf(feature);
  const closed = isOpen(feature) ? '' : ' is-closed';
  const html = `<div class="incident-marker sev-${severity}${closed}" data-incident-id="${esc(id)}" title="${esc(markerTitle(feature))}">${iconSvg(feature.properties?.category)}</div>`;
  const size = closed ? 20 : 30;
  return L.divIcon({ className: 'incident-icon', html, iconSize: [size, size], iconAnchor: [size / 2, size / 2], popupAnchor: [0, -size / 2] });
}

/**
 * A cluster of open incidents: how many, coloured like the worst of them. It lists their ids
 * (`data-incident-ids`, space-separated), so that what is on the map can be checked.
 */
function clusterIcon(cluster) {
  const markers = cluster.getAllChildMarkers();
  let worst = SEVERITIES.length;
  const ids = [];
  for (const m of markers) {
    const id = m.options.incidentId;
    ids.push(id);
    const i = SEVERITIES.indexOf(severityOf(state.incidents.get(id)));
    if (i >= 0 && i < worst) worst = i;
  }
  const severity = SEVERITIES[worst] ?? 'unknown';
  const n = markers.length;
  const size = n < 10 ? 36 : n < 100 ? 42 : 48;
  const label = t('cluster.title', { incidents: plural(state.lang, 'incidents', n), severity: severityName(severity) });
  const html = `<div class="incident-cluster sev-${severity}" data-cluster-count="${n}" data-worst-severity="${severity}" data-incident-ids="${esc(ids.join(' '))}" title="${esc(label)}"><span aria-hidden="true">${esc(formatNumber(state.lang, n))}</span><span class="sr-only">${esc(label)}</span></div>`;
  return L.divIcon({ className: 'cluster-icon', html, iconSize: [size, size], iconAnchor: [size / 2, size / 2] });
}

function zIndexFor(feature) {
  if (!isOpen(feature)) return -1000;
  return (SEVERITIES.length - Math.max(0, SEVERITIES.indexOf(severityOf(feature)))) * 100;
}

/** The layer an incident's marker belongs in: open ones cluster, the others do not. */
function layerFor(feature) {
  return isOpen(feature) ? openLayer : closedLayer;
}

/** The layer `marker` is in now, or null. */
function layerOf(marker) {
  if (openLayer.hasLayer(marker)) return openLayer;
  if (closedLayer.hasLayer(marker)) return closedLayer;
  return null;
}

/**
 * Creates or updates `id`'s marker. With `batch` (an array), a new open incident's marker is
 * pushed there for one `openLayer.addLayers` instead of being added at once (a snapshot).
 */
function updateMarker(id, feature, batch) {
  const ll = latLngOf(feature);
  let marker = state.markers.get(id);
  if (!ll) {
    if (marker) removeMarker(id);
    return null;
  }
  const key = [state.lang, severityOf(feature), statusOf(feature), feature.properties?.category,
    state.categories.has(feature.properties?.category)].join('|');
  if (!marker) {
    marker = L.marker(ll, {
      icon: markerIcon(id, feature),
      riseOnHover: true,
      zIndexOffset: zIndexFor(feature),
      keyboard: true,
      incidentId: id,
    });
    marker.bindPopup(() => popupHtml(id), { className: 'incident-popup', maxWidth: 340, minWidth: 260, autoPanPadding: [24, 24] });
    marker.on('popupopen', (event) => {
      // Tall with its actions: scroll inside the popup rather than run off the map.
      const fits = Math.max(240, map.getSize().y - 90);
      if (event.popup.options.maxHeight !== fits) {
        event.popup.options.maxHeight = fits;
        event.popup.update();
      }
      selectRow(id);
      loadTimeline(id);
      loadWarning(id);
      // Opened from the queue with the keyboard: carry the focus into the popup.
      if ($('queue-list').contains(document.activeElement)) {
        event.popup.getElement()?.querySelector('button[data-act], select, input')?.focus();
      }
    });
    marker.on('popupclose', () => {
      if (relayering) return;
      state.contacts.delete(id);
      if (state.selectedId === id) selectRow(null);
    });
    state.markers.set(id, marker);
    const layer = layerFor(feature);
    if (batch && layer === openLayer) batch.push(marker);
    else layer.addLayer(marker);
  } else {
    const old = marker.getLatLng();
    const moved = old.lat !== ll[0] || old.lng !== ll[1];
    const layer = layerFor(feature);
    const current = layerOf(marker);
    if (moved || layer !== current) {
      // Into or out of the clusters (or to a new place in them): out, then in again, its popup
      // kept open.
      const popupOpen = marker.isPopupOpen();
      relayering = true;
      current?.removeLayer(marker);
      relayering = false;
      if (moved) marker.setLatLng(ll);
      marker.setIcon(markerIcon(id, feature));
      layer.addLayer(marker);
      if (popupOpen) showMarker(marker, () => marker.openPopup());
    } else if (state.markerKeys.get(id) !== key) {
      marker.setIcon(markerIcon(id, feature));
      // Its cluster may have a new worst severity.
      if (layer === openLayer) openLayer.refreshClusters(marker);
    }
    marker.setZIndexOffset(zIndexFor(feature));
    if (marker.isPopupOpen()) {
      marker.getPopup().update();
      loadTimeline(id);
    }
  }
  state.markerKeys.set(id, key);
  return marker;
}

function removeMarker(id) {
  const marker = state.markers.get(id);
  if (marker) {
    marker.closePopup();
    layerOf(marker)?.removeLayer(marker);
  }
  state.markers.delete(id);
  state.markerKeys.delete(id);
}

/**
 * Calls `then` once `marker` is drawn on its own: its layer shown, its cluster zoomed into, or
 * spread out when its reports share one place (markercluster's `zoomToShowLayer`).
 */
function showMarker(marker, then) {
  const layer = layerOf(marker);
  if (!layer || !map) return;
  // Picked in the queue while the incidents' layer is switched off: it comes back.
  if (!map.hasLayer(layer)) map.addLayer(layer);
  if (layer === openLayer) openLayer.zoomToShowLayer(marker, then);
  else then();
}

function flashMarker(id, kind) {
  const marker = state.markers.get(id);
  if (!marker) return;
  // Inside a cluster, the cluster flashes.
  const shown = layerOf(marker) === openLayer ? openLayer.getVisibleParent(marker) : marker;
  const el = shown?.getElement()?.querySelector('.incident-marker, .incident-cluster');
  if (!el) return;
  el.classList.remove('flash-opened', 'flash-updated');
  // Restart the animation even if the same class was just removed.
  void el.offsetWidth;
  el.classList.add(kind === 'opened' ? 'flash-opened' : 'flash-updated');
  el.addEventListener('animationend', () => el.classList.remove('flash-opened', 'flash-updated'), { once: true });
}

function routingText(p) {
  const routing = p.routing && typeof p.routing === 'object' ? p.routing : {};
  const agency = agencyName(routing.agency ?? p.agency);
  const area = areaName(routing.area, routing.area_name);
  switch (routing.rule) {
    case 'jurisdiction':
      return area ? t('routing.jurisdiction', { agency, area }) : t('routing.jurisdiction_noarea', { agency });
    case 'fallback':
      return t('routing.fallback', { agency });
    case undefined:
    case null:
      return t('routing.none', { agency });
    default:
      return t('routing.other', { agency, rule: routing.rule });
  }
}

const KNOWN_RULES = ['jurisdiction', 'fallback', 'category_kind', 'category_agency'];

function alternativeText(alt) {
  if (!alt || typeof alt !== 'object') return String(alt ?? '');
  const rule = KNOWN_RULES.includes(alt.rule) ? t(`rule.${alt.rule}`) : alt.rule;
  const parts = [rule, areaName(alt.area, alt.area_name)].filter((x) => x != null && x !== '');
  return `${agencyName(alt.agency)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

/** A deadline, marked when it has passed. */
function deadlineHtml(due) {
  const ms = parseTime(due);
  const passed = ms != null && Date.now() >= ms;
  return `<span class="deadline${passed ? ' is-passed' : ''}">${esc(formatDateTime(due))}${passed ? ` · ${esc(t('mark.overdue'))}` : ''}</span>`;
}

function popupHtml(id) {
  const feature = state.incidents.get(id);
  if (!feature) return '';
  const p = feature.properties ?? {};
  const severity = severityOf(feature);
  const status = statusOf(feature);
  const alternatives = Array.isArray(p.routing?.alternatives) ? p.routing.alternatives : [];
  const informed = Array.isArray(p.routing?.informed) ? p.routing.informed : [];
  const description = typeof p.description === 'string' && p.description.trim() !== '' ? p.description : null;
  const explainedBy = Array.isArray(p.explained_by) ? p.explained_by.filter((x) => typeof x === 'string') : [];
  const row = (label, value) => `<tr><th scope="row">${esc(label)}</th><td>${value}</td></tr>`;
  return `
    <div class="popup" lang="${esc(state.lang)}">
      <div class="popup-head sev-${severity}">
        <span class="popup-icon" aria-hidden="true">${iconSvg(p.category)}</span>
        <div>
          <div class="popup-title">${esc(categoryName(p.category))}</div>
          <div class="popup-sub">${esc(severityName(severity))} · <span class="status status-${esc(KNOWN_STATUSES.has(status) ? status : 'unknown')}">${esc(statusName(status))}</span></div>
        </div>
      </div>
      <table class="popup-facts">
        ${row(t('popup.agency'), esc(agencyName(p.agency)))}
        ${row(t('popup.district'), esc(districtName(p.district)))}
        ${row(t('popup.reports'), esc(formatNumber(state.lang, Number(p.report_count) || 0)))}
        ${row(t('popup.opened'), esc(formatDateTime(p.opened_at)))}
        ${p.updated_at && p.updated_at !== p.opened_at ? row(t('popup.updated'), esc(formatDateTime(p.updated_at))) : ''}
        ${p.ack_due && AWAITING_ACK.has(status) ? row(t('popup.ack_due'), deadlineHtml(p.ack_due)) : ''}
        ${p.resolve_due && isOpen(feature) ? row(t('popup.resolve_due'), deadlineHtml(p.resolve_due)) : ''}
        ${p.escalated === true ? row(t('popup.escalation'), `<span class="mark mark-escalated">${esc(t('mark.escalated'))}</span>`) : ''}
        ${explainedBy.length ? row(t('popup.explained_by'), explainedByHtml(explainedBy)) : ''}
      </table>
      ${actionsHtml(id, feature)}
      ${regroupHtml(id, feature)}
      <div class="popup-section popup-warning" data-warning-for="${esc(id)}">${warningHtml(id, feature)}</div>
      ${description ? `<div class="popup-section"><div class="popup-label">${esc(t('popup.description'))}</div><p class="popup-description">${esc(description)}</p></div>` : ''}
      <div class="popup-section">
        <div class="popup-label">${esc(t('popup.routing'))}</div>
        <p class="popup-routing">${esc(routingText(p))}</p>
        ${alternatives.length ? `<div class="popup-label">${esc(t('popup.alternatives'))}</div>
        <ul class="popup-alternatives">${alternatives.map((a) => `<li>${esc(alternativeText(a))}</li>`).join('')}</ul>` : ''}
        ${informed.length ? `<div class="popup-label">${esc(t('popup.informed'))}</div>
        <ul class="popup-informed">${informed.map((a) => `<li>${esc(alternativeText(a))}</li>`).join('')}</ul>` : ''}
      </div>
      ${contactsHtml(id, feature)}
      <div class="popup-section popup-timeline" data-timeline-for="${esc(id)}">${timelineHtml(id)}</div>
      <div class="popup-id">${esc(t('popup.id'))}: <code>${esc(id)}</code></div>
    </div>`;
}

// ---------------------------------------------------------------------------------------------
// The queue

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderCounts();
    renderQueue();
    renderConnection();
  });
}

function passesFilter(f, now) {
  const q = state.filter;
  const p = f.properties ?? {};
  return (!q.status || statusOf(f) === q.status)
    && (!q.severity || severityOf(f) === q.severity)
    && (!q.category || p.category === q.category)
    && (!q.agency || p.agency === q.agency)
    && (!q.district || p.district === q.district)
    && (!q.overdue || isOverdue(f, now));
}

/** The next deadline an open incident has (acknowledge while awaiting it, else resolve). */
function nextDue(f) {
  const p = f.properties ?? {};
  const ack = AWAITING_ACK.has(statusOf(f)) ? parseTime(p.ack_due) : null;
  return ack ?? parseTime(p.resolve_due) ?? Infinity;
}

function openIncidentsNewestFirst() {
  const rows = [];
  const now = Date.now();
  for (const [id, f] of state.incidents) {
    if (isOpen(f) && passesFilter(f, now)) rows.push([id, f, parseTime(f.properties?.opened_at) ?? 0]);
  }
  const newest = (a, b) => b[2] - a[2] || (a[0] < b[0] ? 1 : -1);
  const rank = (f) => {
    const i = SEVERITIES.indexOf(severityOf(f));
    return i < 0 ? SEVERITIES.length : i;
  };
  const orders = {
    newest,
    severity: (a, b) => rank(a[1]) - rank(b[1]) || newest(a, b),
    due: (a, b) => nextDue(a[1]) - nextDue(b[1]) || newest(a, b),
  };
  rows.sort(orders[state.filter.sort] ?? newest);
  return rows;
}

/** id → the queue's <li>, kept across renders so a row being clicked or focused is never replaced. */
const rowElements = new Map();
/** id → what the row last showed, to touch the DOM only when something changed. */
const rowSignatures = new Map();

function rowContent(id, f, now) {
  const p = f.properties ?? {};
  const severity = severityOf(f);
  const status = statusOf(f);
  const age = formatAge(p.opened_at, now);
  const reports = Number(p.report_count) || 0;
  const statusClass = KNOWN_STATUSES.has(status) ? status : 'unknown';
  const overdue = isOverdue(f, now);
  const escalated = p.escalated === true;
  const marks = [overdue ? t('mark.overdue') : null, escalated ? t('mark.escalated') : null]
    .filter(Boolean)
    .join(', ');
  const label = (marks ? `${marks}: ` : '') + t('queue.row.label', {
    category: categoryName(p.category),
    severity: severityName(severity),
    status: statusName(status),
    district: districtName(p.district),
    agency: agencyName(p.agency),
    reports: reportsText(reports),
    age,
  });
  const html = `
        <span class="row-icon" aria-hidden="true">${iconSvg(p.category)}</span>
        <span class="row-main">
          <span class="row-line">
            <span class="row-category">${esc(categoryName(p.category))}</span>
            <span class="row-age" data-opened-at="${esc(p.opened_at ?? '')}" title="${esc(t('age.title', { time: formatDateTime(p.opened_at) }))}">${esc(age)}</span>
          </span>
          <span class="row-line row-where">${esc(districtName(p.district))} · ${esc(agencyName(p.agency))}</span>
          <span class="row-line row-meta">
            <span class="status status-${statusClass}">${esc(statusName(status))}</span>
            <span class="row-severity">${esc(severityName(severity))}</span>
            <span class="row-reports${reports > 1 ? ' is-many' : ''}">${esc(reportsText(reports))}</span>
            ${overdue ? `<span class="mark mark-overdue">${esc(t('mark.overdue'))}</span>` : ''}
            ${escalated ? `<span class="mark mark-escalated">${esc(t('mark.escalated'))}</span>` : ''}
          </span>
        </span>`;
  return { severity, label, html, overdue };
}

function renderQueue() {
  const list = $('queue-list');
  const rows = openIncidentsNewestFirst();
  $('queue-count').textContent = formatNumber(state.lang, rows.length);

  let placeholder = list.querySelector('.queue-empty');
  const filtered = Object.entries(state.filter).some(([k, v]) => k !== 'sort' && v);
  const message = !state.loaded ? t('queue.loading') : rows.length ? null : t(filtered ? 'filters.none' : 'queue.empty');
  if (message != null) {
    if (!placeholder) {
      placeholder = document.createElement('li');
      placeholder.className = 'queue-empty';
      list.prepend(placeholder);
    }
    placeholder.textContent = message;
  } else {
    placeholder?.remove();
  }

  const now = Date.now();
  const wanted = new Set();
  rows.forEach(([id, f], index) => {
    wanted.add(id);
    let li = rowElements.get(id);
    if (!li) {
      li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.queueId = id;
      li.append(button);
      rowElements.set(id, li);
    }
    const button = li.firstElementChild;
    const { severity, label, html, overdue } = rowContent(id, f, now);
    const signature = `${severity}\u0000${label}\u0000${html}`;
    if (rowSignatures.get(id) !== signature) {
      button.className = `row sev-${severity}${overdue ? ' is-overdue' : ''}${id === state.selectedId ? ' is-selected' : ''}`;
      button.setAttribute('aria-label', label);
      button.innerHTML = html;
      rowSignatures.set(id, signature);
    }
    const at = list.children[index + (placeholder?.isConnected ? 1 : 0)];
    if (at !== li) list.insertBefore(li, at ?? null);
  });
  for (const [id, li] of rowElements) {
    if (!wanted.has(id)) {
      li.remove();
      rowElements.delete(id);
      rowSignatures.delete(id);
    }
  }
}

function refreshAges() {
  const now = Date.now();
  for (const el of document.querySelectorAll('#queue-list .row-age')) {
    el.textContent = formatAge(el.dataset.openedAt, now);
  }
}

function flashRow(id) {
  const el = $('queue-list').querySelector(`[data-queue-id="${CSS.escape(id)}"]`);
  if (!el) return;
  el.classList.remove('flash');
  void el.offsetWidth;
  el.classList.add('flash');
  el.addEventListener('animationend', () => el.classList.remove('flash'), { once: true });
}

function selectRow(id) {
  state.selectedId = id;
  for (const el of $('queue-list').querySelectorAll('.row.is-selected')) el.classList.remove('is-selected');
  if (id == null) return;
  const el = $('queue-list').querySelector(`[data-queue-id="${CSS.escape(id)}"]`);
  if (el) {
    el.classList.add('is-selected');
    el.scrollIntoView({ block: 'nearest' });
  }
}

/**
 * Shows `id` on the map with its popup open: flies to street zoom, then, if it is still inside a
 * cluster (reports at one place), spreads the cluster out.
 */
function focusIncident(id) {
  const marker = state.markers.get(id);
  if (!marker || !map) return;
  const ll = marker.getLatLng();
  const zoom = Math.max(map.getZoom(), FOCUS_ZOOM);
  selectRow(id);
  const reveal = () => {
    if (state.markers.get(id) === marker) showMarker(marker, () => marker.openPopup());
  };
  if (map.getZoom() >= zoom && map.getBounds().pad(-0.15).contains(ll)) {
    reveal();
    return;
  }
  let opened = false;
  const open = () => {
    if (opened) return;
    opened = true;
    map.off('moveend', open);
    reveal();
  };
  map.on('moveend', open);
  setTimeout(open, 2000);
  const reduceMotion = window.matchMedia?.('(prefers-reduced-motion: reduce)').matches;
  if (reduceMotion) map.setView(ll, zoom, { animate: false });
  else map.flyTo(ll, zoom, { duration: 0.8 });
}

// ---------------------------------------------------------------------------------------------
// Incident data

function replaceAll(collection) {
  const features = Array.isArray(collection?.features) ? collection.features : [];
  const seen = new Set();
  // New open incidents' markers join the clusters at once.
  const batch = [];
  for (const feature of features) {
    const id = idOf(feature);
    if (id == null || !visibleToSession(feature)) continue;
    seen.add(id);
    state.incidents.set(id, feature);
    updateMarker(id, feature, batch);
  }
  if (batch.length) openLayer.addLayers(batch);
  for (const id of [...state.incidents.keys()]) {
    if (!seen.has(id)) {
      state.incidents.delete(id);
      removeMarker(id);
    }
  }
  state.loaded = true;
  scheduleRender();
}

function drop(id) {
  if (id != null && state.incidents.delete(id)) {
    removeMarker(id);
    scheduleRender();
  }
}

function upsert(feature, change) {
  const id = idOf(feature);
  if (id == null) return;
  if (!visibleToSession(feature)) {
    // Reassigned away from this agency user's agency: it leaves their console.
    drop(id);
    return;
  }
  const previous = state.incidents.get(id);
  const before = parseTime(previous?.properties?.updated_at);
  const after = parseTime(feature.properties?.updated_at);
  // Never let an older copy (e.g. from the first REST fetch) overwrite a newer one.
  if (before != null && after != null && after < before) return;
  state.incidents.set(id, feature);
  updateMarker(id, feature);
  state.loaded = true;
  scheduleRender();
  const kind = change === 'opened' && !previous ? 'opened' : 'updated';
  // The marker's element exists now; the row after the next frame.
  flashMarker(id, kind);
  requestAnimationFrame(() => requestAnimationFrame(() => flashRow(id)));
}

function handleMessage(message) {
  if (!message || typeof message !== 'object') return;
  state.conn.lastMessageAt = Date.now();
  switch (message.type) {
    case 'snapshot':
      state.snapshotSeen = true;
      state.conn.attempt = 0;
      replaceAll(message.incidents);
      break;
    case 'incident':
      if (!message.incident) break;
      // The change took it out of what this console's stream hears of (e.g. reassigned away
      // from an agency user's agency): drop it.
      if (message.left_filter) drop(idOf(message.incident));
      else upsert(message.incident, message.change);
      break;
    default:
      // Newer servers may send more kinds of message; this page ignores what it does not know.
      break;
  }
  renderConnection();
}

async function loadFirstIncidents() {
  try {
    const collection = await fetchJson('api/v1/incidents');
    // The stream's snapshot is newer: keep it if it came first.
    if (!state.snapshotSeen) replaceAll(collection);
  } catch (error) {
    console.warn('dispecer: could not load incidents over HTTP; waiting for the stream', error);
  }
}

function connect() {
  let socket;
  try {
    socket = new WebSocket(streamUrl());
  } catch (error) {
    console.warn('dispecer: cannot open the stream', error);
    scheduleReconnect();
    return;
  }
  state.conn.socket = socket;
  socket.addEventListener('open', () => {
    setConnection('live');
  });
  socket.addEventListener('message', (event) => {
    if (typeof event.data !== 'string') return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      console.warn('dispecer: ignored a stream frame that is not JSON');
      return;
    }
    handleMessage(message);
  });
  socket.addEventListener('close', () => {
    if (state.conn.socket !== socket) return;
    state.conn.socket = null;
    // A refused upgrade (the session ended) looks like any close here: ask the server.
    checkSession();
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  const delay = backoffMs(state.conn.attempt);
  state.conn.attempt += 1;
  state.conn.retryAt = Date.now() + delay;
  setConnection('reconnecting');
  setTimeout(() => {
    state.conn.retryAt = 0;
    renderConnection();
    connect();
  }, delay);
}

// ---------------------------------------------------------------------------------------------
// Accounts: the login screen, the session, logging out

let loginResolve = null;

/**
 * The session ended (expired, logged out elsewhere, password changed): every private read now
 * answers 401. Reloading shows the login screen, as a refused action does.
 */
function sessionEnded() {
  window.location.reload();
}

/** After the stream closed: back to the login screen if the session is gone (not when the server is). */
async function checkSession() {
  try {
    const response = await fetch(apiUrl('api/v1/session'), { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (response.status === 401) sessionEnded();
  } catch {
    // The server is unreachable: the stream's reconnection says so and keeps trying.
  }
}

/** GET api/v1/session: who is logged in, or null. */
async function whoAmI() {
  try {
    const response = await fetch(apiUrl('api/v1/session'), { headers: { Accept: 'application/json' }, cache: 'no-store' });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

function showLoginError(text) {
  const el = $('login-error');
  el.textContent = text ?? '';
  el.hidden = !text;
}

/** Shows the login screen; resolves once someone has logged in. */
function showLogin(message) {
  document.body.classList.remove('is-checking', 'is-in');
  document.body.classList.add('is-out');
  $('login').hidden = false;
  showLoginError(message);
  $('login-username').focus();
  return new Promise((resolve) => {
    loginResolve = resolve;
  });
}

function enterConsole(me) {
  state.session = {
    username: String(me.username ?? ''),
    role: String(me.role ?? ''),
    agency: me.agency == null ? null : String(me.agency),
    csrf: String(me.csrf ?? ''),
  };
  document.body.classList.remove('is-checking', 'is-out');
  document.body.classList.add('is-in');
  document.body.dataset.role = state.session.role;
  $('login').hidden = true;
  renderUser();
}

async function submitLogin(event) {
  event.preventDefault();
  const username = $('login-username').value.trim();
  const password = $('login-password').value;
  if (!username || !password) {
    showLoginError(t('login.wrong'));
    (username ? $('login-password') : $('login-username')).focus();
    return;
  }
  const button = $('login-submit');
  button.disabled = true;
  button.textContent = t('login.busy');
  try {
    const response = await fetch(apiUrl('api/v1/session'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ username, password }),
      cache: 'no-store',
    });
    if (response.ok) {
      const me = await response.json();
      $('login-password').value = '';
      showLoginError(null);
      enterConsole(me);
      loginResolve?.(me);
      loginResolve = null;
      return;
    }
    if (response.status === 401) {
      showLoginError(t('login.wrong'));
    } else if (response.status === 429) {
      const seconds = Number(response.headers.get('Retry-After')) || 60;
      showLoginError(seconds > 90
        ? t('login.limited.minutes', { minutes: formatNumber(state.lang, Math.ceil(seconds / 60)) })
        : t('login.limited', { seconds: formatNumber(state.lang, seconds) }));
    } else {
      showLoginError(t('login.failed', { status: response.status }));
    }
    $('login-password').select();
    $('login-password').focus();
  } catch {
    showLoginError(t('login.network'));
  } finally {
    button.disabled = false;
    button.textContent = t('login.submit');
  }
}

async function logout() {
  try {
    await fetch(apiUrl('api/v1/session'), {
      method: 'DELETE',
      headers: { 'X-CSRF-Token': state.session?.csrf ?? '' },
    });
  } catch {
    // The page reloads anyway; a session left behind expires on its own.
  }
  window.location.reload();
}

function renderUser() {
  const box = $('user');
  const s = state.session;
  box.hidden = !s;
  if (!s) return;
  const role = t(`role.${s.role}`);
  box.querySelector('.user-name').textContent = s.username;
  box.querySelector('.user-role').textContent = s.agency ? `${role} · ${agencyName(s.agency)}` : role;
  $('queue-title-text').textContent = s.role === 'agency' && s.agency
    ? t('queue.title.agency', { agency: agencyName(s.agency) })
    : t('queue.title');
}

/** An agency user sees its agency's incidents only (the server filters too). */
function visibleToSession(feature) {
  const s = state.session;
  if (!s || s.role !== 'agency' || !s.agency) return true;
  return feature?.properties?.agency === s.agency;
}

// ---------------------------------------------------------------------------------------------
// Actions on an incident, by role (model::lifecycle's graph; the server decides in the end)

const STAFF = ['operator', 'supervisor', 'admin'];
const EVERYONE = [...STAFF, 'agency'];
const OPEN_STATUSES = ['new', 'assigned', 'acknowledged', 'in_progress', 'reopened'];
/** What each role may ask for, and from which states. Merge, unmerge and split: `regroupHtml`. */
const ACTIONS = [
  { action: 'acknowledge', roles: EVERYONE, from: ['assigned', 'reopened'] },
  { action: 'start', roles: EVERYONE, from: ['acknowledged', 'reopened'] },
  { action: 'resolve', roles: EVERYONE, from: ['assigned', 'acknowledged', 'in_progress', 'reopened'], primary: true },
  { action: 'reject', roles: STAFF, from: OPEN_STATUSES, danger: true },
  { action: 'assign', roles: STAFF, from: OPEN_STATUSES },
  { action: 'close', roles: STAFF, from: ['resolved'] },
  { action: 'reopen', roles: STAFF, from: ['resolved'] },
  { action: 'note', roles: EVERYONE, from: null },
];

function allowedActions(feature) {
  const role = state.session?.role;
  if (!role) return [];
  const status = statusOf(feature);
  return ACTIONS.filter((a) => a.roles.includes(role) && (a.from == null || a.from.includes(status)));
}

/** The agencies to assign to: the routing's alternatives first, then every other agency. */
function assignOptions(feature) {
  const current = feature.properties?.agency;
  const alternatives = [];
  for (const alt of feature.properties?.routing?.alternatives ?? []) {
    const id = alt?.agency;
    if (id != null && id !== current && !alternatives.includes(id)) alternatives.push(String(id));
  }
  const others = [...state.agencies.keys()]
    .filter((id) => id !== current && !alternatives.includes(id))
    .sort((a, b) => agencyName(a).localeCompare(agencyName(b), LOCALES[state.lang]));
  const option = (id) => `<option value="${esc(id)}">${esc(agencyName(id))}</option>`;
  return `${alternatives.length ? `<optgroup label="${esc(t('actions.assign.alternatives'))}">${alternatives.map(option).join('')}</optgroup>` : ''}
    <optgroup label="${esc(t('actions.assign.all'))}">${others.map(option).join('')}</optgroup>`;
}

function actionsHtml(id, feature) {
  const allowed = allowedActions(feature);
  if (!allowed.length) return '';
  const note = state.actionNotes.get(id);
  const button = (a) => `<button type="button" class="act act-${a.action}${a.primary ? ' is-primary' : ''}${a.danger ? ' is-danger' : ''}"
    data-act="${a.action}" data-incident="${esc(id)}">${esc(t(`actions.${a.action}`))}</button>`;
  const simple = allowed.filter((a) => a.action !== 'assign' && a.action !== 'note');
  const assign = allowed.find((a) => a.action === 'assign');
  const noteAction = allowed.find((a) => a.action === 'note');
  const reasonId = `reason-${id}`;
  const agencyId = `assign-${id}`;
  return `
      <div class="popup-section actions" data-actions-for="${esc(id)}">
        <div class="popup-label">${esc(t('actions.title'))}</div>
        <label class="action-field" for="${esc(reasonId)}">${esc(t('actions.reason'))}</label>
        <input id="${esc(reasonId)}" class="action-reason" maxlength="2000" placeholder="${esc(t('actions.reason.placeholder'))}">
        <div class="action-buttons">${simple.map(button).join('')}${noteAction ? button(noteAction) : ''}</div>
        ${assign ? `<label class="action-field" for="${esc(agencyId)}">${esc(t('actions.assign.label'))}</label>
        <div class="action-assign"><select id="${esc(agencyId)}" class="action-agency">${assignOptions(feature)}</select>${button(assign)}</div>` : ''}
        <p class="action-status${note ? ` is-${note.kind}` : ''}" role="status">${note ? esc(note.text) : ''}</p>
      </div>`;
}

/** The newest entries first: when, what, who, why. */
const TIMELINE_SHOWN = 8;

/** The filter bar above the queue; redrawn with the language (and the city's names). */
function renderFilters() {
  const form = $('queue-filters');
  if (!form || !state.city) return;
  const q = state.filter;
  const agencyUser = state.session?.role === 'agency';
  const byName = (entries) => entries.sort((a, b) => a[1].localeCompare(b[1], LOCALES[state.lang]));
  const select = (key, label, options) => `
    <label class="filter"><span>${esc(label)}</span>
      <select data-filter="${key}"><option value="">${esc(t('filters.any'))}</option>
      ${options.map(([v, text]) => `<option value="${esc(v)}"${q[key] === v ? ' selected' : ''}>${esc(text)}</option>`).join('')}</select>
    </label>`;
  $('queue-order').textContent = t(`filters.sort.${q.sort}`);
  form.innerHTML = `
    ${select('status', t('filters.status'), OPEN_STATUSES.map((st) => [st, statusName(st)]))}
    ${select('severity', t('filters.severity'), SEVERITIES.map((sv) => [sv, severityName(sv)]))}
    ${select('category', t('filters.category'), byName([...state.categories.keys()].map((c) => [c, categoryName(c)])))}
    ${agencyUser ? '' : select('agency', t('filters.agency'), byName([...state.agencies.keys()].map((a) => [a, agencyName(a)])))}
    ${select('district', t('filters.district'), byName([...state.districts.keys()].map((d) => [d, districtName(d)])))}
    <label class="filter filter-check"><input type="checkbox" data-filter="overdue"${q.overdue ? ' checked' : ''}><span>${esc(t('filters.overdue'))}</span></label>
    <label class="filter"><span>${esc(t('filters.sort'))}</span>
      <select data-filter="sort">${['newest', 'severity', 'due'].map((o) => `<option value="${o}"${q.sort === o ? ' selected' : ''}>${esc(t(`filters.sort.${o}`))}</option>`).join('')}</select>
    </label>`;
}

/** The incidents that explain one (a burst main beside a congestion): a button each, to show it. */
function explainedByHtml(ids) {
  return `<ul class="popup-explained">${ids.map((other) => {
    const f = state.incidents.get(other);
    const name = f ? categoryName(f.properties?.category) : other.slice(0, 8);
    return `<li><button type="button" class="link" data-focus-incident="${esc(other)}"
      title="${esc(t('popup.explained_by.go', { name }))}">${esc(name)}</button>
      <code>${esc(other.slice(0, 8))}</code></li>`;
  }).join('')}</ul>`;
}

function timelineHtml(id) {
  const entries = state.timelines.get(id);
  const label = `<div class="popup-label">${esc(t('timeline.title'))}</div>`;
  if (!entries) return `${label}<p class="timeline-empty">${esc(t('app.loading'))}</p>`;
  const shown = [...entries].reverse().slice(0, TIMELINE_SHOWN);
  const kindName = (kind) => {
    const key = `timeline.kind.${kind}`;
    const text = t(key);
    return text === key ? String(kind ?? '') : text;
  };
  return `${label}<ol class="timeline">${shown.map((e) => `
    <li><span class="timeline-at">${esc(formatDateTime(e.at))}</span>
      <span class="timeline-what">${esc(kindName(e.kind))}${e.to && e.from !== e.to ? ` → ${esc(statusName(e.to))}` : ''}</span>
      <span class="timeline-who">${esc(e.actor ?? '')}</span>
      ${e.reason ? `<span class="timeline-why">${esc(e.reason)}</span>` : ''}</li>`).join('')}</ol>
    ${entries.length > TIMELINE_SHOWN ? `<p class="timeline-more">${esc(t('timeline.more', { n: formatNumber(state.lang, entries.length - TIMELINE_SHOWN) }))}</p>` : ''}`;
}

/** Fetches an incident's timeline and redraws only that part of its popup (the reason being typed stays). */
async function loadTimeline(id) {
  try {
    const doc = await fetchJson(`api/v1/incidents/${encodeURIComponent(id)}/timeline`);
    state.timelines.set(id, Array.isArray(doc.timeline) ? doc.timeline : []);
    state.reports.set(id, Array.isArray(doc.events) ? doc.events : []);
  } catch {
    return;
  }
  redrawRegroup(id);
  const box = state.markers.get(id)?.getPopup()?.getElement()
    ?.querySelector(`[data-timeline-for="${CSS.escape(id)}"]`);
  if (box) box.innerHTML = timelineHtml(id);
}

/** Who may see citizens' contact details: operators, supervisors, admins, and the agency responsible. */
function maySeeContacts(feature) {
  const s = state.session;
  if (!s) return false;
  return STAFF.includes(s.role) || (s.role === 'agency' && s.agency === feature.properties?.agency);
}

function contactsHtml(id, feature) {
  if (!maySeeContacts(feature)) return '';
  const list = state.contacts.get(id);
  let body;
  if (list == null) {
    body = `<button type="button" class="act" data-contacts="${esc(id)}">${esc(t('contacts.show'))}</button>
      <p class="contacts-note">${esc(t('contacts.logged'))}</p>`;
  } else if (typeof list === 'string') {
    body = `<p class="action-status is-error">${esc(list)}</p>`;
  } else if (!list.length) {
    body = `<p class="contacts-note">${esc(t('contacts.none'))}</p>`;
  } else {
    body = `<ul class="contacts">${list.map((c) => `<li>
      ${c.name ? `<span class="contact-name">${esc(c.name)}</span>` : ''}
      ${c.email ? `<a href="mailto:${esc(c.email)}">${esc(c.email)}</a>` : ''}
      ${c.phone ? `<a href="tel:${esc(String(c.phone).replace(/[^+\d]/g, ''))}">${esc(c.phone)}</a>` : ''}
    </li>`).join('')}</ul>`;
  }
  return `<div class="popup-section popup-contacts" data-contacts-for="${esc(id)}">
    <div class="popup-label">${esc(t('contacts.title'))}</div>${body}</div>`;
}

async function loadContacts(id) {
  try {
    const response = await fetch(apiUrl(`api/v1/incidents/${encodeURIComponent(id)}/contacts`), {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    });
    const doc = await response.json().catch(() => null);
    state.contacts.set(id, response.ok && Array.isArray(doc?.contacts)
      ? doc.contacts
      : t('actions.refused', { detail: doc?.detail ?? `HTTP ${response.status}` }));
  } catch {
    state.contacts.set(id, t('login.network'));
  }
  const feature = state.incidents.get(id);
  const box = state.markers.get(id)?.getPopup()?.getElement()
    ?.querySelector(`[data-contacts-for="${CSS.escape(id)}"]`);
  if (box && feature) box.outerHTML = contactsHtml(id, feature);
}

// ---------------------------------------------------------------------------------------------
// Merge, unmerge, split (operators only): moving citizens' reports between incidents. The popup
// section is drawn apart from the lifecycle's actions; its buttons go through runAction.

const REGROUP_ACTIONS = new Set(['merge', 'unmerge', 'split']);
/** Open incidents of the same category within this many meters are offered as merge targets. */
const MERGE_NEAR_M = 2000;
/** At most this many are offered (nearest first); any other is typed by its id. */
const MERGE_OFFERED = 8;

function mayRegroup() {
  return STAFF.includes(state.session?.role);
}

/** Meters between two [lat, lng] points (haversine, mean Earth radius). */
function metersBetween([lat1, lng1], [lat2, lng2]) {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLng = (lng2 - lng1) * rad;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** Open incidents of `feature`'s category near it, nearest first: [{ id, feature, meters }]. */
function mergeTargets(id, feature) {
  const here = latLngOf(feature);
  if (!here) return [];
  const category = feature.properties?.category;
  const out = [];
  for (const [other, f] of state.incidents) {
    if (other === id || !isOpen(f) || f.properties?.category !== category) continue;
    const there = latLngOf(f);
    if (!there) continue;
    const meters = metersBetween(here, there);
    if (meters <= MERGE_NEAR_M) out.push({ id: other, feature: f, meters });
  }
  return out.sort((a, b) => a.meters - b.meters).slice(0, MERGE_OFFERED);
}

function regroupHtml(id, feature) {
  if (!mayRegroup()) return '';
  const p = feature.properties ?? {};
  const status = statusOf(feature);
  const button = (action) => `<button type="button" class="act act-${action}" data-act="${action}" data-incident="${esc(id)}">${esc(t(`regroup.${action}`))}</button>`;
  const parts = [];
  if (status === 'duplicate' && p.merged_into) {
    parts.push(`<p class="regroup-merged">${esc(t('regroup.merged_into'))} <code>${esc(p.merged_into)}</code></p>
      <div class="action-buttons">${button('unmerge')}</div>`);
  }
  if (isOpen(feature)) {
    const intoId = `merge-into-${id}`;
    const typedId = `merge-typed-${id}`;
    const targets = mergeTargets(id, feature);
    const option = (c) => `<option value="${esc(c.id)}">${esc(t('regroup.target', {
      distance: formatNumber(state.lang, Math.round(c.meters)),
      district: districtName(c.feature.properties?.district),
      status: statusName(statusOf(c.feature)),
      id: c.id,
    }))}</option>`;
    parts.push(`<label class="action-field" for="${esc(intoId)}">${esc(t('regroup.merge.label'))}</label>
      <div class="action-assign"><select id="${esc(intoId)}" class="regroup-into">
        <option value="">${esc(targets.length ? t('regroup.merge.choose') : t('regroup.merge.none_near'))}</option>
        ${targets.map(option).join('')}</select></div>
      <div class="action-assign"><input id="${esc(typedId)}" class="regroup-into-typed" maxlength="200"
        aria-label="${esc(t('regroup.merge.typed'))}" placeholder="${esc(t('regroup.merge.typed'))}">${button('merge')}</div>`);
    const reports = state.reports.get(id);
    if ((Number(p.report_count) || 0) > 1) {
      const eventId = `split-event-${id}`;
      parts.push(`<label class="action-field" for="${esc(eventId)}">${esc(t('regroup.split.label'))}</label>
        ${reports ? `<div class="action-assign"><select id="${esc(eventId)}" class="regroup-event">
          ${reports.map((e) => `<option value="${esc(e.id)}">${esc(formatDateTime(e.received_at))} · ${esc(e.id)}</option>`).join('')}
          </select>${button('split')}</div>` : `<p class="timeline-empty">${esc(t('app.loading'))}</p>`}`);
    }
  }
  if (!parts.length) return '';
  const reasonId = `regroup-reason-${id}`;
  return `
      <div class="popup-section actions regroup" data-regroup-for="${esc(id)}">
        <div class="popup-label">${esc(t('regroup.title'))}</div>
        ${parts.join('')}
        <label class="action-field" for="${esc(reasonId)}">${esc(t('regroup.reason'))}</label>
        <input id="${esc(reasonId)}" class="action-reason" maxlength="2000" placeholder="${esc(t('regroup.reason.placeholder'))}">
        <p class="action-status" role="status"></p>
      </div>`;
}

/** Redraws only the regroup section of `id`'s open popup (after its reports arrived), keeping what was chosen or typed. */
function redrawRegroup(id) {
  const feature = state.incidents.get(id);
  const box = state.markers.get(id)?.getPopup()?.getElement()
    ?.querySelector(`[data-regroup-for="${CSS.escape(id)}"]`);
  if (!box || !feature) return;
  const fields = ['.regroup-into', '.regroup-into-typed', '.regroup-event', '.action-reason'];
  const kept = fields.map((sel) => box.querySelector(sel)?.value);
  const focused = fields.find((sel) => box.querySelector(sel) === document.activeElement);
  const holder = document.createElement('div');
  holder.innerHTML = regroupHtml(id, feature);
  const fresh = holder.firstElementChild;
  if (!fresh) return;
  fields.forEach((sel, i) => {
    const field = fresh.querySelector(sel);
    if (field && kept[i] != null && [...(field.options ?? [{ value: kept[i] }])].some((o) => o.value === kept[i])) field.value = kept[i];
  });
  box.replaceWith(fresh);
  if (focused) fresh.querySelector(focused)?.focus();
}

/** The body's extra fields for a merge (`into`) or a split (`event`); null, said in the box, when missing. */
function regroupFields(action, box) {
  const missing = (key) => {
    const status = box.querySelector('.action-status');
    status.textContent = t(key);
    status.className = 'action-status is-error';
    return null;
  };
  if (action === 'merge') {
    const into = box.querySelector('.regroup-into-typed')?.value.trim() || box.querySelector('.regroup-into')?.value;
    return into ? { into } : missing('regroup.merge.needed');
  }
  if (action === 'split') {
    const event = box.querySelector('.regroup-event')?.value;
    return event ? { event } : missing('regroup.split.needed');
  }
  return {};
}

function refreshPopup(id) {
  const marker = state.markers.get(id);
  if (marker?.isPopupOpen()) marker.getPopup().update();
}

async function runAction(button) {
  const id = button.dataset.incident;
  const action = button.dataset.act;
  const box = button.closest('.actions');
  if (!id || !action || !box || !state.session) return;
  const reasonField = box.querySelector('.action-reason');
  const reason = reasonField?.value.trim() ?? '';
  const body = { action };
  if (reason) body.reason = reason;
  if (action === 'note' && !reason) {
    const status = box.querySelector('.action-status');
    status.textContent = t('actions.note.needed');
    status.className = 'action-status is-error';
    reasonField?.focus();
    return;
  }
  if (action === 'assign') {
    body.agency = box.querySelector('.action-agency')?.value;
    if (!body.agency) return;
  }
  if (REGROUP_ACTIONS.has(action)) {
    const extra = regroupFields(action, box);
    if (!extra) return;
    Object.assign(body, extra);
  }
  for (const b of box.querySelectorAll('button, input, select')) b.disabled = true;
  const status = box.querySelector('.action-status');
  status.textContent = t('actions.busy');
  status.className = 'action-status is-busy';
  let note;
  try {
    const response = await fetch(apiUrl(`api/v1/incidents/${encodeURIComponent(id)}/actions`), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': state.session.csrf },
      body: JSON.stringify(body),
      cache: 'no-store',
    });
    if (response.status === 401) {
      window.location.reload();
      return;
    }
    const doc = await response.json().catch(() => null);
    if (response.ok && doc) {
      note = { kind: 'ok', text: t('actions.done', { status: statusName(statusOf(doc)) }) };
      state.actionNotes.set(id, note);
      upsert(doc, 'updated');
    } else {
      note = { kind: 'error', text: t('actions.refused', { detail: doc?.detail ?? `HTTP ${response.status}` }) };
    }
  } catch {
    note = { kind: 'error', text: t('actions.network') };
  }
  state.actionNotes.set(id, note);
  refreshPopup(id);
  // The popup was drawn again: keep the keyboard in it.
  const popup = state.markers.get(id)?.getPopup()?.getElement();
  (popup?.querySelector('button[data-act]') ?? popup?.querySelector('.leaflet-popup-close-button'))?.focus();
}

// ---------------------------------------------------------------------------------------------
// Public warnings (OASIS CAP 1.2 for the public): operators, supervisors and admins publish one
// for an incident, update it and withdraw it; resolving the incident withdraws it too.

const WARNING_FIELDS = ['headline_ro', 'headline_en', 'instruction_ro', 'instruction_en', 'radius_m'];

/** The form's values: what was typed, else the active warning's texts. */
function warningDraft(id) {
  const draft = state.warningDrafts.get(id);
  if (draft) return draft;
  const w = state.warnings.get(id);
  return {
    headline_ro: w?.active ? w.headline?.ro ?? '' : '',
    headline_en: w?.active ? w.headline?.en ?? '' : '',
    instruction_ro: w?.active ? w.instruction?.ro ?? '' : '',
    instruction_en: w?.active ? w.instruction?.en ?? '' : '',
    radius_m: '',
  };
}

function warningHtml(id, feature) {
  if (!STAFF.includes(state.session?.role)) return '';
  const label = `<div class="popup-label">${esc(t('warning.title'))}</div>`;
  if (!state.warnings.has(id)) return `${label}<p class="timeline-empty">${esc(t('app.loading'))}</p>`;
  const w = state.warnings.get(id);
  const active = w?.active === true;
  const note = state.warningNotes.get(id);
  const noteHtml = `<p class="action-status${note ? ` is-${note.kind}` : ''}" role="status">${note ? esc(note.text) : ''}</p>`;
  const current = w ? `<p class="warning-current${active ? ' is-active' : ''}">
      <span class="mark ${active ? 'mark-overdue' : ''}">${esc(t(active ? 'warning.active' : 'warning.cancelled'))}</span>
      ${esc(w.headline?.[state.lang] ?? '')} · ${esc(t('warning.version', { n: formatNumber(state.lang, Number(w.seq) || 0) }))} · ${esc(formatDateTime(w.sent))}
      <a href="${esc(w.cap)}" target="_blank" rel="noopener">${esc(t('warning.cap'))}</a></p>` : '';
  if (!active && !isOpen(feature)) return `${label}${current || `<p class="timeline-empty">${esc(t('warning.none'))}</p>`}${noteHtml}`;
  const d = warningDraft(id);
  const field = (name, key, multiline) => {
    const fid = `warn-${name}-${id}`;
    const max = name.startsWith('headline') ? 200 : 2000;
    const input = multiline
      ? `<textarea id="${esc(fid)}" class="warning-field" rows="2" maxlength="${max}" data-warn-field="${name}" data-incident="${esc(id)}">${esc(d[name])}</textarea>`
      : `<input id="${esc(fid)}" class="warning-field" maxlength="${max}" data-warn-field="${name}" data-incident="${esc(id)}" value="${esc(d[name])}">`;
    return `<label class="action-field" for="${esc(fid)}">${esc(t(key))}</label>${input}`;
  };
  const radiusId = `warn-radius_m-${id}`;
  const button = (action, primary, danger) => `<button type="button" class="act${primary ? ' is-primary' : ''}${danger ? ' is-danger' : ''}"
    data-warn="${action}" data-incident="${esc(id)}">${esc(t(`warning.${action}`))}</button>`;
  return `${label}${current}
    ${field('headline_ro', 'warning.headline.ro')}
    ${field('headline_en', 'warning.headline.en')}
    ${field('instruction_ro', 'warning.instruction.ro', true)}
    ${field('instruction_en', 'warning.instruction.en', true)}
    <label class="action-field" for="${esc(radiusId)}">${esc(t('warning.radius'))}</label>
    <input id="${esc(radiusId)}" class="warning-field" type="number" min="10" max="20000" step="10" placeholder="${esc(t('warning.radius.placeholder'))}"
      data-warn-field="radius_m" data-incident="${esc(id)}" value="${esc(d.radius_m)}">
    <div class="action-buttons">${active
    ? `${button('update_warning', true)}${button('cancel_warning', false, true)}`
    : button('publish_warning', true)}</div>
    ${noteHtml}`;
}

function redrawWarning(id) {
  const feature = state.incidents.get(id);
  const box = state.markers.get(id)?.getPopup()?.getElement()
    ?.querySelector(`[data-warning-for="${CSS.escape(id)}"]`);
  if (box && feature) box.innerHTML = warningHtml(id, feature);
}

/** The incident's warning, from the public list (active ones and those withdrawn lately). */
async function loadWarning(id) {
  if (!STAFF.includes(state.session?.role)) return;
  try {
    const list = await fetchJson('api/v1/public/warnings');
    for (const w of Array.isArray(list) ? list : []) state.warnings.set(String(w.incident), w);
    if (!state.warnings.has(id)) state.warnings.set(id, null);
  } catch {
    return;
  }
  redrawWarning(id);
}

async function runWarning(button) {
  const id = button.dataset.incident;
  const action = button.dataset.warn;
  const feature = state.incidents.get(id);
  if (!id || !action || !feature || !state.session) return;
  const d = warningDraft(id);
  const body = { action };
  const texts = [d.headline_ro, d.headline_en, d.instruction_ro, d.instruction_en].map((v) => String(v ?? '').trim());
  if (action !== 'cancel_warning') {
    if (texts.some((v) => !v)) {
      state.warningNotes.set(id, { kind: 'error', text: t('warning.needed') });
      redrawWarning(id);
      return;
    }
    body.headline = { ro: texts[0], en: texts[1] };
    body.instruction = { ro: texts[2], en: texts[3] };
    const radius = Number(d.radius_m);
    const coords = feature.geometry?.coordinates;
    if (String(d.radius_m ?? '').trim() && Number.isFinite(radius) && Array.isArray(coords)) {
      body.area = { type: 'Point', coordinates: coords };
      body.radius_m = radius;
    }
  }
  const box = button.closest('.popup-warning');
  for (const b of box?.querySelectorAll('button, input, textarea') ?? []) b.disabled = true;
  let note;
  try {
    const response = await fetch(apiUrl(`api/v1/incidents/${encodeURIComponent(id)}/actions`), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': state.session.csrf },
      body: JSON.stringify(body),
      cache: 'no-store',
    });
    if (response.status === 401) {
      window.location.reload();
      return;
    }
    const doc = await response.json().catch(() => null);
    if (response.ok && doc) {
      state.warnings.set(id, doc);
      state.warningDrafts.delete(id);
      note = { kind: 'ok', text: t(`warning.done.${doc.msg_type}`) };
    } else {
      note = { kind: 'error', text: t('actions.refused', { detail: doc?.detail ?? `HTTP ${response.status}` }) };
    }
  } catch {
    note = { kind: 'error', text: t('actions.network') };
  }
  state.warningNotes.set(id, note);
  redrawWarning(id);
  loadTimeline(id);
}

// ---------------------------------------------------------------------------------------------
// The sensor chart (uPlot): one measure over a range, with a baseline

const SENSOR_RANGES = { '6h': { hours: 6, step: '1m' }, '24h': { hours: 24, step: '15m' }, '7d': { hours: 168, step: '1h' } };
const SENSOR_METRICS = ['speed', 'count', 'occupancy'];
/** Days of history the baseline averages, at the same time of day. */
const BASELINE_DAYS = 7;

function openSensor(feature) {
  state.sensor.feature = feature;
  $('sensor-panel').hidden = false;
  renderSensorPanel();
  loadSensor();
  $('sensor-close').focus();
}

function closeSensor() {
  const id = state.sensor.feature?.properties?.id;
  state.sensor.feature = null;
  state.sensor.data = null;
  state.sensor.plot?.destroy();
  state.sensor.plot = null;
  $('sensor-panel').hidden = true;
  // Back to the sensor's marker, for keyboard users.
  sensorLayer?.eachLayer((m) => {
    if (m.feature?.properties?.id === id) m.getElement()?.focus();
  });
}

function renderSensorPanel() {
  const f = state.sensor.feature;
  if (!f) return;
  const p = f.properties ?? {};
  $('sensor-title').textContent = `${p.name ?? p.id ?? ''}${p.road ? ` · ${p.road}` : ''}`;
  $('sensor-ranges').innerHTML = Object.keys(SENSOR_RANGES).map((r) => `
    <button type="button" data-range="${r}" aria-pressed="${r === state.sensor.range}">${esc(t(`sensor.range.${r}`))}</button>`).join('');
  $('sensor-metrics').innerHTML = SENSOR_METRICS.map((m) => `
    <button type="button" data-metric="${m}" aria-pressed="${m === state.sensor.metric}">${esc(t(`sensor.metric.${m}`))}</button>`).join('');
  if (state.sensor.data) drawSensor();
}

/** Fetches the range and the BASELINE_DAYS before it in one request, at the range's step. */
async function loadSensor() {
  const f = state.sensor.feature;
  if (!f) return;
  const seq = ++state.sensor.seq;
  const { hours, step } = SENSOR_RANGES[state.sensor.range];
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600e3);
  const historyFrom = new Date(from.getTime() - BASELINE_DAYS * 86400e3);
  renderSensorPanel();
  $('sensor-note').textContent = t('sensor.loading');
  const id = encodeURIComponent(f.properties?.id ?? '');
  const query = `from=${encodeURIComponent(historyFrom.toISOString())}&to=${encodeURIComponent(to.toISOString())}&step=${step}`;
  try {
    const response = await fetch(apiUrl(`api/v1/sensors/${id}/readings?${query}`), { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (seq !== state.sensor.seq) return;
    if (!response.ok) {
      state.sensor.data = null;
      state.sensor.plot?.destroy();
      state.sensor.plot = null;
      $('sensor-note').textContent = t('sensor.failed', { status: response.status });
      return;
    }
    const doc = await response.json();
    if (seq !== state.sensor.seq) return;
    state.sensor.data = { doc, from: from.getTime(), to: to.getTime(), step };
    drawSensor();
  } catch {
    if (seq === state.sensor.seq) $('sensor-note').textContent = t('login.network');
  }
}

/** [times (s), measured, baseline] for the current measure. */
function sensorSeries() {
  const { doc, from, to, step } = state.sensor.data;
  const stepMs = { '1m': 60e3, '15m': 900e3, '1h': 3600e3 }[step];
  const points = Array.isArray(doc.series?.[state.sensor.metric]) ? doc.series[state.sensor.metric] : [];
  const byBucket = new Map();
  for (const point of points) {
    const ms = parseTime(point.t);
    if (ms != null && Number.isFinite(Number(point.avg))) byBucket.set(ms, Number(point.avg));
  }
  const start = Math.ceil(from / stepMs) * stepMs;
  const xs = [];
  const measured = [];
  const baseline = [];
  let history = 0;
  for (let ms = start; ms <= to; ms += stepMs) {
    xs.push(ms / 1000);
    measured.push(byBucket.has(ms) ? byBucket.get(ms) : null);
    let sum = 0;
    let n = 0;
    for (let d = 1; d <= BASELINE_DAYS; d += 1) {
      const v = byBucket.get(ms - d * 86400e3);
      if (v != null) {
        sum += v;
        n += 1;
      }
    }
    if (n) history += 1;
    baseline.push(n ? sum / n : null);
  }
  let kind = history ? 'history' : 'none';
  const freeFlow = Number(doc.free_flow_speed_kmh);
  if (!history && state.sensor.metric === 'speed' && Number.isFinite(freeFlow)) {
    kind = 'freeflow';
    baseline.fill(freeFlow);
  }
  return { data: [xs, measured, baseline], kind, freeFlow, any: measured.some((v) => v != null) };
}

function drawSensor() {
  if (!state.sensor.data || !window.uPlot) return;
  const { data, kind, freeFlow, any } = sensorSeries();
  const box = $('sensor-chart');
  state.sensor.plot?.destroy();
  const width = Math.max(280, box.clientWidth || 560);
  const long = SENSOR_RANGES[state.sensor.range].hours > 24;
  const zone = state.city?.time_zone;
  const axisOptions = long
    ? { weekday: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }
    : { hour: '2-digit', minute: '2-digit' };
  let axisTime;
  try {
    axisTime = new Intl.DateTimeFormat(LOCALES[state.lang], zone ? { ...axisOptions, timeZone: zone } : axisOptions);
  } catch {
    axisTime = new Intl.DateTimeFormat(LOCALES[state.lang], axisOptions);
  }
  const opts = {
    width,
    height: 220,
    legend: { show: true },
    // Ticks fall on the city's hours, like every other time the console shows.
    ...(zone ? { tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), zone) } : {}),
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [
      {
        stroke: '#47525f',
        grid: { stroke: '#e3e7eb' },
        ticks: { stroke: '#d8dde3' },
        values: (u, splits) => splits.map((v) => axisTime.format(new Date(v * 1000))),
      },
      { stroke: '#47525f', grid: { stroke: '#e3e7eb' }, ticks: { stroke: '#d8dde3' }, size: 50 },
    ],
    series: [
      { label: t('sensor.series.time'), value: (u, v) => (v == null ? '—' : formatDateTime(v * 1000)) },
      { label: t('sensor.series.value'), stroke: '#1d63d8', width: 2, spanGaps: false, points: { show: false } },
      { label: t('sensor.series.baseline'), stroke: '#b3122d', width: 1.5, dash: [6, 4], spanGaps: true, points: { show: false } },
    ],
  };
  state.sensor.plot = new window.uPlot(opts, data, box);
  box.dataset.points = String(data[1].filter((v) => v != null).length);
  box.dataset.baseline = kind;
  const notes = [
    t('sensor.step', { step: state.sensor.data.step }),
    kind === 'history' ? t('sensor.baseline.history', { days: BASELINE_DAYS })
      : kind === 'freeflow' ? t('sensor.baseline.freeflow', { speed: formatNumber(state.lang, freeFlow) })
        : t('sensor.baseline.none'),
  ];
  if (!any) notes.unshift(t('sensor.empty'));
  $('sensor-note').textContent = notes.join(' · ');
}

// ---------------------------------------------------------------------------------------------
// Start

function useCity(city) {
  state.city = city;
  state.categories = new Map((city.categories ?? []).filter((c) => c?.id != null).map((c) => [String(c.id), c]));
  state.agencies = new Map((city.agencies ?? []).filter((a) => a?.id != null).map((a) => [String(a.id), a]));
  state.districts = new Map((city.districts?.features ?? [])
    .map((f) => [f?.properties?.id ?? f?.id, f?.properties?.name ?? null])
    .filter(([id]) => id != null)
    .map(([id, name]) => [String(id), name]));
  state.sensors = new Map((city.sensors?.features ?? [])
    .map((f) => [f?.properties?.id ?? f?.id, f?.properties?.name ?? null])
    .filter(([id]) => id != null)
    .map(([id, name]) => [String(id), name]));
  state.lang = initialLanguage(city);
}

async function loadCity() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const city = await fetchJson('api/v1/city');
      $('banner').hidden = true;
      return city;
    } catch (error) {
      const delay = backoffMs(attempt);
      const banner = $('banner');
      banner.textContent = t('banner.city', { error: error.message, seconds: Math.round(delay / 1000) });
      banner.hidden = false;
      console.warn('dispecer: could not load the city', error);
      await sleep(delay);
    }
  }
}

function wireEvents() {
  $('lang-switch').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-lang]');
    if (button) setLanguage(button.dataset.lang);
  });
  $('queue-list').addEventListener('click', (event) => {
    const row = event.target.closest('[data-queue-id]');
    if (row) focusIncident(row.dataset.queueId);
  });
  $('queue-list').addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp') return;
    const rows = [...$('queue-list').querySelectorAll('[data-queue-id]')];
    const i = rows.indexOf(document.activeElement);
    if (i < 0) return;
    const next = rows[event.key === 'ArrowDown' ? Math.min(rows.length - 1, i + 1) : Math.max(0, i - 1)];
    next.focus();
    event.preventDefault();
  });
  $('feeds-button').addEventListener('click', () => setFeedsOpen($('feeds-popover').hidden));
  // The popover closes on a click or a focus elsewhere, and on Escape (focus back on its button).
  document.addEventListener('click', (event) => {
    if (!$('feeds-popover').hidden && !$('feeds').contains(event.target)) setFeedsOpen(false);
  });
  $('feeds').addEventListener('focusout', (event) => {
    if (event.relatedTarget && !$('feeds').contains(event.relatedTarget)) setFeedsOpen(false);
  });
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    if (!$('feeds-popover').hidden) {
      setFeedsOpen(false);
      $('feeds-button').focus();
      return;
    }
    if (!$('sensor-panel').hidden && $('sensor-panel').contains(document.activeElement)) {
      closeSensor();
      return;
    }
    const inPopup = document.activeElement?.closest?.('.leaflet-popup');
    if (map) map.closePopup();
    if (inPopup && state.selectedId != null) {
      $('queue-list').querySelector(`[data-queue-id="${CSS.escape(state.selectedId)}"]`)?.focus();
    }
  });
  $('login-form').addEventListener('submit', submitLogin);
  $('login-lang').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-lang]');
    if (button) setLanguage(button.dataset.lang);
  });
  $('logout').addEventListener('click', logout);
  // Capture: Leaflet stops clicks inside a popup from bubbling.
  document.addEventListener('click', (event) => {
    const button = event.target.closest?.('button[data-act]');
    if (button) {
      event.preventDefault();
      runAction(button);
      return;
    }
    const linked = event.target.closest?.('button[data-focus-incident]');
    if (linked) {
      event.preventDefault();
      focusIncident(linked.dataset.focusIncident);
      return;
    }
    const contacts = event.target.closest?.('button[data-contacts]');
    if (contacts) {
      event.preventDefault();
      loadContacts(contacts.dataset.contacts);
      return;
    }
    const warn = event.target.closest?.('button[data-warn]');
    if (warn) {
      event.preventDefault();
      runWarning(warn);
    }
  }, true);
  // What is typed in a public warning form survives the popup being drawn again.
  document.addEventListener('input', (event) => {
    const field = event.target.closest?.('[data-warn-field]');
    const id = field?.dataset.incident;
    if (!id) return;
    const draft = { ...warningDraft(id), [field.dataset.warnField]: field.value };
    state.warningDrafts.set(id, draft);
  });
  $('sensor-close').addEventListener('click', closeSensor);
  $('queue-filters').addEventListener('change', (event) => {
    const key = event.target.dataset?.filter;
    if (!key || !(key in state.filter)) return;
    state.filter[key] = event.target.type === 'checkbox' ? event.target.checked : event.target.value;
    $('queue-order').textContent = t(`filters.sort.${state.filter.sort}`);
    scheduleRender();
  });
  $('queue-filters').addEventListener('submit', (event) => event.preventDefault());
  $('sensor-ranges').addEventListener('click', (event) => {
    const b = event.target.closest('button[data-range]');
    if (b && b.dataset.range !== state.sensor.range) {
      state.sensor.range = b.dataset.range;
      loadSensor();
    }
  });
  $('sensor-metrics').addEventListener('click', (event) => {
    const b = event.target.closest('button[data-metric]');
    if (b && b.dataset.metric !== state.sensor.metric) {
      state.sensor.metric = b.dataset.metric;
      renderSensorPanel();
      drawSensor();
    }
  });
}

async function main() {
  wireEvents();
  applyLanguage();
  const city = await loadCity();
  useCity(city);
  applyLanguage();
  const me = await whoAmI();
  if (me) enterConsole(me);
  else await showLogin(null);
  setConnection('connecting');
  scheduleRender();
  poll(checkHealth);
  poll(checkFeeds);
  if (!L) {
    $('banner').textContent = 'Leaflet did not load (vendor/leaflet/leaflet.js).';
    $('banner').hidden = false;
    return;
  }
  setupMap(city);
  applyLanguage();
  connect();
  loadFirstIncidents();
  setInterval(refreshAges, 30000);
  // Deadlines pass without any frame: re-evaluate the overdue marks every 15 s.
  setInterval(scheduleRender, 15000);
}

main();
