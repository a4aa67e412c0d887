// The citizens' pages: file a report, follow it by its tracking code, see the open incidents.
// Romanian first (the city's default), English on request; nothing is fetched from elsewhere.

const TEXT = {
  ro: {
    'title.report': 'Trimite o sesizare', 'title.status': 'Starea unei sesizări', 'title.map': 'Incidente deschise',
    'nav.report': 'Sesizare', 'nav.status': 'Stare', 'nav.map': 'Hartă',
    'form.category': 'Ce problemă este?', 'form.category.pick': 'Alegeți categoria',
    'form.place': 'Unde? Atingeți harta pentru a pune un marcaj', 'form.locate': 'Folosește poziția mea',
    'form.place.none': 'Niciun loc ales încă', 'form.place.set': 'Loc ales: {lat}, {lon}',
    'form.place.locating': 'Se caută poziția…', 'form.place.denied': 'Poziția nu a putut fi aflată; atingeți harta.',
    'form.description': 'Descriere',
    'form.photo': 'Fotografie (opțional, JPEG sau PNG, cel mult 5 MB)',
    'form.photo.choose': 'Alegeți o fotografie', 'form.photo.none': 'Nicio fotografie aleasă',
    'form.photo.note': 'Datele ascunse din fotografie (locul, aparatul) sunt șterse înainte de păstrare.',
    'form.contact': 'Date de contact (opțional)',
    'form.contact.note': 'Le văd doar dispecerii și instituția responsabilă, ca să vă poată întreba ceva. Nu apar public.',
    'form.name': 'Nume', 'form.email': 'E-mail', 'form.phone': 'Telefon',
    'form.submit': 'Trimite sesizarea', 'form.sending': 'Se trimite…',
    'err.category': 'Alegeți o categorie.', 'err.place': 'Alegeți locul pe hartă.',
    'err.photo.size': 'Fotografia are peste 5 MB.', 'err.photo.type': 'Fotografia trebuie să fie JPEG sau PNG.',
    'err.network': 'Nu s-a putut trimite. Verificați conexiunea și încercați din nou.',
    'err.server': 'Sesizarea nu a fost primită: {detail}',
    'done.title': 'Sesizarea a fost înregistrată', 'done.code': 'Codul de urmărire:',
    'done.follow': 'Urmăriți starea sesizării', 'done.again': 'Trimite altă sesizare',
    'status.code': 'Codul de urmărire', 'status.look': 'Caută', 'status.category': 'Categorie',
    'status.state': 'Stare', 'status.agency': 'Instituția responsabilă', 'status.received': 'Primită',
    'status.updated': 'Ultima schimbare', 'status.expected': 'Termen de rezolvare',
    'status.none': 'Nu există nicio sesizare cu acest cod.', 'status.open': 'deschisă', 'status.closed': 'închisă',
    'state.new': 'Nouă', 'state.assigned': 'Trimisă instituției', 'state.acknowledged': 'Preluată de instituție',
    'state.in_progress': 'În lucru', 'state.resolved': 'Rezolvată', 'state.closed': 'Închisă',
    'state.rejected': 'Respinsă', 'state.duplicate': 'Urmărită în altă sesizare', 'state.reopened': 'Redeschisă',
    'map.count': '{n} incidente deschise', 'map.opened': 'Deschis la {t}',
    'map.warnings': 'Avertizări publice în vigoare', 'map.warnings.cap': 'documentul CAP', 'map.warnings.feed': 'Flux Atom al avertizărilor',
  },
  en: {
    'title.report': 'Report a problem', 'title.status': 'Status of a report', 'title.map': 'Open incidents',
    'nav.report': 'Report', 'nav.status': 'Status', 'nav.map': 'Map',
    'form.category': 'What is the problem?', 'form.category.pick': 'Choose a category',
    'form.place': 'Where? Tap the map to drop a pin', 'form.locate': 'Use my position',
    'form.place.none': 'No place chosen yet', 'form.place.set': 'Place chosen: {lat}, {lon}',
    'form.place.locating': 'Finding your position…', 'form.place.denied': 'Your position could not be found; tap the map.',
    'form.description': 'Description',
    'form.photo': 'Photo (optional, JPEG or PNG, at most 5 MB)',
    'form.photo.choose': 'Choose a photo', 'form.photo.none': 'No photo chosen',
    'form.photo.note': 'Hidden data in the photo (place, camera) is removed before it is kept.',
    'form.contact': 'Contact details (optional)',
    'form.contact.note': 'Only the dispatchers and the agency responsible see them, to ask you something. Never shown publicly.',
    'form.name': 'Name', 'form.email': 'E-mail', 'form.phone': 'Phone',
    'form.submit': 'Send the report', 'form.sending': 'Sending…',
    'err.category': 'Choose a category.', 'err.place': 'Choose the place on the map.',
    'err.photo.size': 'The photo is larger than 5 MB.', 'err.photo.type': 'The photo must be a JPEG or PNG.',
    'err.network': 'Could not send. Check the connection and try again.',
    'err.server': 'The report was not accepted: {detail}',
    'done.title': 'Your report was recorded', 'done.code': 'Tracking code:',
    'done.follow': 'Follow the report', 'done.again': 'Send another report',
    'status.code': 'Tracking code', 'status.look': 'Look up', 'status.category': 'Category',
    'status.state': 'Status', 'status.agency': 'Agency responsible', 'status.received': 'Received',
    'status.updated': 'Last change', 'status.expected': 'Due to be resolved',
    'status.none': 'There is no report with this code.', 'status.open': 'open', 'status.closed': 'closed',
    'state.new': 'New', 'state.assigned': 'Sent to the agency', 'state.acknowledged': 'Taken by the agency',
    'state.in_progress': 'In progress', 'state.resolved': 'Resolved', 'state.closed': 'Closed',
    'state.rejected': 'Rejected', 'state.duplicate': 'Followed in another report', 'state.reopened': 'Reopened',
    'map.count': '{n} open incidents', 'map.opened': 'Opened {t}',
    'map.warnings': 'Public warnings in force', 'map.warnings.cap': 'CAP document', 'map.warnings.feed': 'Atom feed of the warnings',
  },
};

const MAX_PHOTO = 5 * 1024 * 1024;
let lang = localStorage.getItem('dispecer.lang') === 'en' ? 'en' : 'ro';
let city = null;

function t(key, vars = {}) {
  const s = TEXT[lang][key] ?? TEXT.ro[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function named(n) {
  if (n == null) return '';
  if (typeof n === 'string') return n;
  return n[lang] ?? n.ro ?? '';
}

function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(lang === 'ro' ? 'ro-RO' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

const refreshers = [];

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === lang));
  const title = document.querySelector('h1[data-i18n]');
  if (title) document.title = title.textContent;
  for (const f of refreshers) f();
}

for (const b of document.querySelectorAll('[data-lang]')) {
  b.addEventListener('click', () => {
    lang = b.dataset.lang === 'en' ? 'en' : 'ro';
    localStorage.setItem('dispecer.lang', lang);
    applyLanguage();
  });
}

async function loadCity() {
  const r = await fetch('/api/v1/city');
  if (!r.ok) throw new Error(`city: ${r.status}`);
  city = await r.json();
}

function categoryName(id) {
  return named(city?.categories?.find((c) => c.id === id)?.name) || id;
}

function cityMap(element) {
  const map = L.map(element, { zoomSnap: 0.25 });
  map.attributionControl.setPrefix('Leaflet');
  const b = city.bounds;
  const bounds = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
  map.fitBounds(bounds, { padding: [4, 4] });
  map.setMaxBounds(bounds.pad(1));
  if (typeof city.tile_url === 'string' && city.tile_url !== '') {
    L.tileLayer(city.tile_url, { maxZoom: 19 }).addTo(map);
  }
  if (city.districts?.type === 'FeatureCollection') {
    // Outlines only: on a phone, names of a dozen districts would hide the place being chosen.
    const districts = L.geoJSON(city.districts, {
      interactive: false,
      style: () => ({ className: 'district', color: '#5d6d7e', weight: 1, fillColor: '#ffffff', fillOpacity: city.tile_url ? 0.05 : 0.8 }),
    }).addTo(map);
    const inner = districts.getBounds();
    if (inner.isValid()) map.fitBounds(inner, { padding: [4, 4] });
  }
  return map;
}

// 48 random bits: short enough to read out on the phone, far too many to guess or to collide.
function randomId() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function reportPage() {
  const form = document.getElementById('report-form');
  const select = document.getElementById('category');
  const error = document.getElementById('error');
  const place = document.getElementById('place');
  const submit = document.getElementById('submit');
  let formId = randomId();
  let pin = null;
  let position = null;

  const fillCategories = () => {
    const chosen = select.value;
    select.replaceChildren(new Option(t('form.category.pick'), ''));
    const sorted = [...city.categories].sort((a, b) => named(a.name).localeCompare(named(b.name), lang));
    for (const c of sorted) select.add(new Option(named(c.name), c.id));
    select.value = chosen;
  };
  fillCategories();
  refreshers.push(fillCategories);

  const photoInput = document.getElementById('photo');
  const showPhoto = () => {
    document.getElementById('photo-name').textContent = photoInput.files[0]?.name ?? t('form.photo.none');
  };
  photoInput.addEventListener('change', showPhoto);
  refreshers.push(showPhoto);
  showPhoto();

  const map = cityMap('map');
  const showPlace = () => {
    place.textContent = position
      ? t('form.place.set', { lat: position.lat.toFixed(5), lon: position.lng.toFixed(5) })
      : t('form.place.none');
  };
  refreshers.push(showPlace);
  const setPlace = (latlng) => {
    position = latlng;
    error.hidden = true;
    if (pin) pin.setLatLng(latlng);
    else pin = L.marker(latlng, { keyboard: false }).addTo(map);
    showPlace();
  };
  map.on('click', (e) => setPlace(e.latlng));
  document.getElementById('locate').addEventListener('click', () => {
    if (!navigator.geolocation) { place.textContent = t('form.place.denied'); return; }
    place.textContent = t('form.place.locating');
    navigator.geolocation.getCurrentPosition(
      (p) => { const ll = L.latLng(p.coords.latitude, p.coords.longitude); setPlace(ll); map.setView(ll, 16); },
      () => { place.textContent = t('form.place.denied'); },
      { enableHighAccuracy: true, timeout: 15000 },
    );
  });

  const fail = (message) => { error.textContent = message; error.hidden = false; error.focus?.(); };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    if (!select.value) return fail(t('err.category'));
    if (!position) return fail(t('err.place'));
    const photo = document.getElementById('photo').files[0];
    if (photo && photo.size > MAX_PHOTO) return fail(t('err.photo.size'));
    if (photo && !['image/jpeg', 'image/png'].includes(photo.type)) return fail(t('err.photo.type'));
    const data = new FormData();
    data.set('id', formId);
    data.set('category', select.value);
    data.set('lat', String(position.lat));
    data.set('lon', String(position.lng));
    for (const name of ['description', 'name', 'email', 'phone']) {
      const v = document.getElementById(name).value.trim();
      if (v) data.set(name, v);
    }
    if (photo) data.set('photo', photo);
    submit.disabled = true;
    submit.textContent = t('form.sending');
    try {
      const r = await fetch('/api/v1/reports', { method: 'POST', body: data });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) return fail(t('err.server', { detail: body.detail ?? r.status }));
      document.getElementById('code').textContent = body.tracking_code;
      document.getElementById('status-link').href = `status.html?code=${encodeURIComponent(body.tracking_code)}`;
      form.hidden = true;
      document.getElementById('done').hidden = false;
      window.scrollTo(0, 0);
      document.getElementById('code').focus?.();
    } catch {
      fail(t('err.network'));
    } finally {
      submit.disabled = false;
      submit.textContent = t('form.submit');
    }
  });

  document.getElementById('again').addEventListener('click', () => {
    form.reset();
    showPhoto();
    formId = randomId();
    position = null;
    if (pin) { pin.remove(); pin = null; }
    showPlace();
    form.hidden = false;
    document.getElementById('done').hidden = true;
  });
}

async function statusPage() {
  const form = document.getElementById('status-form');
  const input = document.getElementById('code-input');
  const error = document.getElementById('error');
  const result = document.getElementById('result');
  let last = null;
  const show = () => {
    if (!last) return;
    document.getElementById('r-category').textContent = categoryName(last.category);
    const state = document.getElementById('r-state');
    state.textContent = `${t(`state.${last.state}`)} (${t(`status.${last.status}`)})`;
    state.className = last.status === 'open' ? 'state-open' : 'state-closed';
    document.getElementById('r-agency').textContent = named(last.agency);
    document.getElementById('r-received').textContent = when(last.received_at);
    document.getElementById('r-updated').textContent = when(last.updated_at);
    document.getElementById('r-expected').textContent = when(last.expected_at);
  };
  refreshers.push(show);
  const look = async (code) => {
    error.hidden = true;
    result.hidden = true;
    const r = await fetch(`/api/v1/public/reports/${encodeURIComponent(code)}`).catch(() => null);
    if (!r) { error.textContent = t('err.network'); error.hidden = false; return; }
    if (r.status === 404) { error.textContent = t('status.none'); error.hidden = false; return; }
    if (!r.ok) { error.textContent = t('err.network'); error.hidden = false; return; }
    last = await r.json();
    show();
    result.hidden = false;
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const code = input.value.trim();
    if (!code) return;
    history.replaceState(null, '', `?code=${encodeURIComponent(code)}`);
    look(code);
  });
  const code = new URLSearchParams(location.search).get('code');
  if (code) { input.value = code; await look(code); }
}

async function mapPage() {
  const map = cityMap('map');
  const r = await fetch('/api/v1/public/incidents');
  const doc = r.ok ? await r.json() : { features: [] };
  const count = document.getElementById('count');
  const features = doc.features ?? [];
  const showCount = () => { count.textContent = t('map.count', { n: features.length }); };
  refreshers.push(showCount);
  showCount();
  for (const f of features) {
    const [lon, lat] = f.geometry.coordinates;
    const p = f.properties;
    const marker = L.circleMarker([lat, lon], { radius: 8, color: '#1b2430', weight: 1.5, fillColor: '#f4b400', fillOpacity: 0.9 }).addTo(map);
    const label = () => `${esc(categoryName(p.category))} — ${esc(t(`state.${p.status}`))}<br>${esc(t('map.opened', { t: when(p.opened_at) }))}`;
    marker.bindPopup(label());
    refreshers.push(() => marker.setPopupContent(label()));
  }
  await showWarnings(map);
}

/** The public warnings in force: their areas on the map and their texts above it. */
async function showWarnings(map) {
  const r = await fetch('/api/v1/public/warnings');
  const list = (r.ok ? await r.json() : []).filter((w) => w.active === true);
  const box = document.getElementById('warnings');
  if (!box || !list.length) return;
  const text = (w) => `<strong>${esc(w.headline?.[lang] ?? '')}</strong><br>${esc(w.instruction?.[lang] ?? '')}`;
  const style = { color: '#b3261e', weight: 2, fillColor: '#b3261e', fillOpacity: 0.15 };
  for (const w of list) {
    const layer = w.area?.type === 'Point' && Array.isArray(w.area.coordinates)
      ? L.circle([w.area.coordinates[1], w.area.coordinates[0]], { ...style, radius: Number(w.radius_m) || 0 })
      : L.geoJSON(w.area, { style: () => style });
    layer.addTo(map).bindPopup(text(w));
    refreshers.push(() => layer.setPopupContent(text(w)));
  }
  const render = () => {
    box.innerHTML = `<h2>${esc(t('map.warnings'))}</h2><ul>${list.map((w) => `<li>${text(w)}
      <a href="${esc(w.cap)}">${esc(t('map.warnings.cap'))}</a></li>`).join('')}</ul>
      <a href="/api/v1/public/warnings.atom">${esc(t('map.warnings.feed'))}</a>`;
  };
  refreshers.push(render);
  render();
  box.hidden = false;
}

applyLanguage();
try {
  await loadCity();
  const page = document.body.dataset.page;
  if (page === 'report') await reportPage();
  if (page === 'status') await statusPage();
  if (page === 'map') await mapPage();
  applyLanguage();
} catch (e) {
  const error = document.getElementById('error') ?? document.getElementById('count');
  if (error) { error.textContent = t('err.network'); error.hidden = false; }
  console.error(e);
}
