// Every string the operators' console shows, in Romanian and English.
//
// Names that belong to the city (its name, categories, agencies) are not here: they come from
// GET /api/v1/city as {"ro": "...", "en": "..."} and are picked with `localName`.
// Placeholders are written {name}; `translate` fills them in as plain text (the caller escapes
// the result before it goes into HTML).

/** Languages this file has strings for, in the order the switch shows them. */
export const LANGUAGES = ['ro', 'en'];

/** BCP 47 locale used for dates and numbers in each language. */
export const LOCALES = { ro: 'ro-RO', en: 'en-GB' };

const STRINGS = {
  ro: {
    'app.title': 'Dispecer — consola operatorilor',
    'app.subtitle': 'Dispecerat tehnic integrat',
    'app.loading': 'Se încarcă…',
    'skip.queue': 'Sari la coada de incidente',

    'lang.group': 'Limba interfeței',
    'lang.ro': 'Română',
    'lang.en': 'English',

    'counts.label': 'Incidente deschise, după gravitate',
    'counts.open': 'Deschise',
    'counts.overdue': 'Depășite',
    'counts.overdue.title': 'Incidente deschise care au depășit un termen (de confirmare sau de rezolvare)',
    'mark.overdue': 'termen depășit',
    'mark.escalated': 'escaladat',
    'popup.ack_due': 'De confirmat până la',
    'popup.resolve_due': 'De rezolvat până la',
    'popup.escalation': 'Escaladare',

    'severity.extreme': 'Extremă',
    'severity.severe': 'Gravă',
    'severity.moderate': 'Moderată',
    'severity.minor': 'Minoră',
    'severity.unknown': 'Necunoscută',

    'status.new': 'Nou',
    'status.assigned': 'Atribuit',
    'status.acknowledged': 'Confirmat',
    'status.in_progress': 'În lucru',
    'status.resolved': 'Rezolvat',
    'status.closed': 'Închis',
    'status.rejected': 'Respins',
    'status.duplicate': 'Duplicat',
    'status.reopened': 'Redeschis',

    'conn.connecting': 'Conectare…',
    'conn.live': 'În direct',
    'conn.reconnecting': 'Reconectare în {seconds} s',
    'conn.reconnecting_now': 'Reconectare…',
    'conn.title.live': 'Conectat la fluxul de incidente. Ultimul mesaj: {time}.',
    'conn.title.down': 'Legătura cu serverul s-a întrerupt. Datele afișate pot fi vechi (ultimul mesaj: {time}).',
    'conn.title.never': 'Încă nu s-a primit niciun mesaj de la server.',
    'conn.stale': 'Legătura cu serverul este întreruptă: lista poate fi neactualizată.',

    'banner.city': 'Serverul nu răspunde ({error}). Reîncerc în {seconds} s.',

    'map.label': 'Harta orașului cu incidentele deschise',
    'map.area.city': 'întregul municipiu',

    'legend.title': 'Gravitate',
    'legend.sensor': 'Senzor de trafic',
    'legend.district': 'Cartier',
    'legend.closed': 'Închis / rezolvat',

    'queue.title': 'Incidente deschise',
    'queue.order': 'cele mai noi primele',
    'queue.empty': 'Niciun incident deschis.',
    'queue.loading': 'Se încarcă incidentele…',
    'queue.row.label': '{category}, gravitate {severity}, {status}, {district}, {agency}, {reports}, deschis acum {age}',

    'district.none': 'în afara cartierelor',

    'reports.one': '{n} sesizare',
    'reports.few': '{n} sesizări',
    'reports.other': '{n} de sesizări',

    'age.now': 'acum',
    'age.minutes': '{m} min',
    'age.hours': '{h} h {m} min',
    'age.days': '{d} z {h} h',
    'age.title': 'Deschis la {time}',

    'popup.status': 'Stare',
    'popup.agency': 'Instituție',
    'popup.district': 'Cartier',
    'popup.reports': 'Sesizări',
    'popup.opened': 'Deschis',
    'popup.updated': 'Actualizat',
    'popup.description': 'Descriere',
    'popup.routing': 'De ce această instituție',
    'popup.alternatives': 'Alte instituții posibile',
    'popup.informed': 'Instituții informate',
    'popup.id': 'Cod',

    'routing.jurisdiction': 'Atribuit {agency}: jurisdicția conține locul ({area})',
    'routing.jurisdiction_noarea': 'Atribuit {agency}: jurisdicția conține locul',
    'routing.fallback':
      'Atribuit {agency}: nicio instituție nu acoperă acest loc și această categorie; trimis dispeceratului primăriei',
    'routing.other': 'Atribuit {agency} (regula „{rule}”)',
    'routing.none': 'Atribuit {agency}',
    'rule.jurisdiction': 'jurisdicție',
    'rule.fallback': 'dispeceratul primăriei',
    'rule.category_kind': 'categoria cere informarea acestui tip de instituție',
    'rule.category_agency': 'categoria cere informarea acestei instituții',

    'marker.title': '{category} — {severity} — {status}',
    'sensor.tooltip': '{name}: {road}, sens {direction}, viteză la trafic liber {speed} km/h',

    'feeds.active.one': 'Fluxuri: {n} activ',
    'feeds.active.few': 'Fluxuri: {n} active',
    'feeds.active.other': 'Fluxuri: {n} active',
    'feeds.silent.one': 'Fluxuri: {n} fără semnal',
    'feeds.silent.few': 'Fluxuri: {n} fără semnal',
    'feeds.silent.other': 'Fluxuri: {n} fără semnal',
    'feeds.unknown': 'Fluxuri: —',
    'feeds.title.summary': 'Fluxuri de date: {active} active, {silent} fără semnal, {total} în total.',
    'feeds.title.none': 'Niciun flux nu a trimis încă date.',
    'feeds.title.never': 'Starea fluxurilor nu a putut fi citită încă.',
    'feeds.title.silent': 'Fără semnal:',
    'feeds.title.silent_item': '{feed} — de {duration} (se așteaptă date cel puțin o dată la {expected})',
    'feeds.title.rejected': 'Mesaje respinse (păstrate pentru verificare): {n}',
    'feeds.title.rejected_none': 'Niciun mesaj respins.',
    'feeds.title.stale': 'Neactualizat din {time}: serverul nu răspunde.',
    'feeds.title.hint': 'Apăsați pentru detalii.',
    'feeds.popover.title': 'Fluxuri de date',
    'feeds.popover.updated': 'actualizat la {time}',
    'feeds.popover.scroll': 'Lista fluxurilor',
    'feeds.col.feed': 'Flux',
    'feeds.col.accepted': 'Acceptate',
    'feeds.col.rejected': 'Respinse',
    'feeds.col.duplicates': 'Duplicate',
    'feeds.col.last_seen': 'Ultimul mesaj',
    'feeds.never': 'niciodată',
    'feeds.silent_for': 'fără semnal de {duration}',
    'feeds.note': 'Alarmă când un senzor de trafic tace peste {traffic}, iar o companie de utilități peste {utility}. Sesizările cetățenilor nu au un ritm fix.',
    'feeds.name.citizen': 'Sesizări cetățeni',
    'feeds.name.utility': 'Utilitate: {name}',
    'feeds.name.traffic': 'Trafic: {name}',
    'feeds.name.traffic_http': 'Trafic (HTTP)',
    'feeds.live.silent': 'Alarmă, fluxuri fără semnal: {list}.',
    'feeds.live.ok': 'Toate fluxurile transmit din nou.',

    'store.name': 'Stocare',
    'store.checking': 'Stocare…',
    'store.degraded': 'Stocare degradată',
    'store.title.checking': 'Se verifică stocarea…',
    'store.title.ok': 'Stocarea ({backend}) răspunde. Verificat la {time}.',
    'store.title.http': 'Stocarea nu răspunde (serverul a întors HTTP {status}). Sesizările noi pot întârzia. Verificat la {time}.',
    'store.title.network': 'Serverul nu răspunde la verificarea stocării. Verificat la {time}.',

    'duration.seconds': '{s} s',
    'duration.hours': '{h} h',
    'duration.days': '{d} z',

    'login.title': 'Autentificare',
    'login.intro': 'Consola dispeceratului tehnic: intrați cu contul primit de la administrator.',
    'login.username': 'Utilizator',
    'login.password': 'Parolă',
    'login.submit': 'Intră',
    'login.busy': 'Se verifică…',
    'login.wrong': 'Utilizator sau parolă greșită.',
    'login.limited': 'Prea multe încercări greșite. Încercați din nou peste {seconds} s.',
    'login.limited.minutes': 'Prea multe încercări greșite. Încercați din nou peste {minutes} min.',
    'login.failed': 'Autentificarea nu a reușit (HTTP {status}). Încercați din nou.',
    'login.network': 'Serverul nu răspunde. Verificați conexiunea și încercați din nou.',
    'login.expired': 'Sesiunea a expirat. Autentificați-vă din nou.',

    'user.label': 'Utilizator conectat',
    'user.logout': 'Ieșire',
    'role.operator': 'operator',
    'role.supervisor': 'supervizor',
    'role.agency': 'agenție',
    'role.admin': 'administrator',
    'queue.title.agency': 'Incidentele agenției {agency}',

    'actions.title': 'Acțiuni',
    'actions.reason': 'Motiv sau notă',
    'actions.reason.placeholder': 'opțional; obligatoriu pentru o notă',
    'actions.acknowledge': 'Confirmă',
    'actions.start': 'Începe lucrul',
    'actions.resolve': 'Rezolvat',
    'actions.reject': 'Respinge',
    'actions.note': 'Adaugă nota',
    'actions.close': 'Închide',
    'actions.reopen': 'Redeschide',
    'actions.assign': 'Atribuie',
    'actions.assign.label': 'Atribuie altei agenții',
    'actions.assign.alternatives': 'Alternative de rutare',
    'actions.assign.all': 'Toate agențiile',
    'actions.busy': 'Se trimite…',
    'actions.done': 'Gata: {status}.',
    'actions.note.needed': 'Scrieți nota în câmpul de mai sus.',
    'actions.refused': 'Refuzat: {detail}',
    'actions.network': 'Serverul nu răspunde; acțiunea nu a fost înregistrată.',

    'contacts.title': 'Date de contact ale cetățenilor',
    'contacts.show': 'Arată datele de contact',
    'contacts.logged': 'Date personale: fiecare consultare este înregistrată.',
    'contacts.none': 'Niciun cetățean nu și-a lăsat datele de contact.',
    'filters.label': 'Filtrează coada',
    'filters.any': 'oricare',
    'filters.status': 'Stare',
    'filters.severity': 'Gravitate',
    'filters.category': 'Categorie',
    'filters.agency': 'Instituție',
    'filters.district': 'Cartier',
    'filters.overdue': 'Doar cu termen depășit',
    'filters.sort': 'Ordine',
    'filters.sort.newest': 'cele mai noi primele',
    'filters.sort.severity': 'cele mai grave primele',
    'filters.sort.due': 'termenul cel mai apropiat primul',
    'filters.none': 'Niciun incident deschis nu trece de filtre.',
    'timeline.title': 'Istoric',
    'timeline.more': 'și încă {n} mai vechi',
    'timeline.kind.opened': 'Deschis',
    'timeline.kind.report_joined': 'Încă o sesizare',
    'timeline.kind.updated': 'Actualizat de sursă',
    'timeline.kind.resolved': 'Rezolvat de sursă',
    'timeline.kind.escalated': 'Escaladat',
    'timeline.kind.assign': 'Atribuit',
    'timeline.kind.acknowledge': 'Confirmat',
    'timeline.kind.start': 'Lucru început',
    'timeline.kind.resolve': 'Rezolvat',
    'timeline.kind.close': 'Închis',
    'timeline.kind.reject': 'Respins',
    'timeline.kind.duplicate': 'Duplicat',
    'timeline.kind.reopen': 'Redeschis',
    'timeline.kind.note': 'Notă',
    'timeline.kind.publish_warning': 'Avertizare publică emisă',
    'timeline.kind.update_warning': 'Avertizare publică actualizată',
    'timeline.kind.cancel_warning': 'Avertizare publică retrasă',
    'warning.title': 'Avertizare publică (CAP)',
    'warning.active': 'în vigoare',
    'warning.cancelled': 'retrasă',
    'warning.none': 'Nicio avertizare publică.',
    'warning.version': 'versiunea {n}',
    'warning.cap': 'documentul CAP',
    'warning.headline.ro': 'Titlu (română)',
    'warning.headline.en': 'Titlu (engleză)',
    'warning.instruction.ro': 'Ce să facă oamenii (română)',
    'warning.instruction.en': 'Ce să facă oamenii (engleză)',
    'warning.radius': 'Rază în jurul incidentului, metri',
    'warning.radius.placeholder': 'implicit: zona incidentului sau 500 m',
    'warning.publish_warning': 'Publică avertizarea',
    'warning.update_warning': 'Actualizează',
    'warning.cancel_warning': 'Retrage avertizarea',
    'warning.needed': 'Completați titlul și instrucțiunile în ambele limbi.',
    'warning.done.Alert': 'Avertizarea a fost publicată.',
    'warning.done.Update': 'Avertizarea a fost actualizată.',
    'warning.done.Cancel': 'Avertizarea a fost retrasă.',

    'sensor.open': 'Deschide graficul senzorului {name}',
    'sensor.panel.close': 'Închide graficul',
    'sensor.range': 'Interval',
    'sensor.range.6h': '6 ore',
    'sensor.range.24h': '24 de ore',
    'sensor.range.7d': '7 zile',
    'sensor.metric': 'Mărime',
    'sensor.metric.speed': 'Viteză (km/h)',
    'sensor.metric.count': 'Vehicule (pe interval)',
    'sensor.metric.occupancy': 'Ocupare (%)',
    'sensor.series.time': 'Ora',
    'sensor.series.value': 'Măsurat',
    'sensor.series.baseline': 'Referință',
    'sensor.baseline.history': 'Referința: media aceleiași ore din ultimele {days} zile.',
    'sensor.baseline.freeflow': 'Fără istoric: referința este viteza la trafic liber din datele orașului ({speed} km/h).',
    'sensor.baseline.none': 'Fără istoric pentru referință încă.',
    'sensor.step': 'pas {step}',
    'sensor.loading': 'Se încarcă citirile…',
    'sensor.empty': 'Nicio citire în acest interval.',
    'sensor.failed': 'Citirile nu au putut fi încărcate (HTTP {status}).',
  },

  en: {
    'app.title': 'Dispecer — operators’ console',
    'app.subtitle': 'Integrated technical dispatch',
    'app.loading': 'Loading…',
    'skip.queue': 'Skip to the incident queue',

    'lang.group': 'Interface language',
    'lang.ro': 'Română',
    'lang.en': 'English',

    'counts.label': 'Open incidents by severity',
    'counts.open': 'Open',
    'counts.overdue': 'Overdue',
    'counts.overdue.title': 'Open incidents past a deadline (to acknowledge or to resolve)',
    'mark.overdue': 'overdue',
    'mark.escalated': 'escalated',
    'popup.ack_due': 'Acknowledge by',
    'popup.resolve_due': 'Resolve by',
    'popup.escalation': 'Escalation',

    'severity.extreme': 'Extreme',
    'severity.severe': 'Severe',
    'severity.moderate': 'Moderate',
    'severity.minor': 'Minor',
    'severity.unknown': 'Unknown',

    'status.new': 'New',
    'status.assigned': 'Assigned',
    'status.acknowledged': 'Acknowledged',
    'status.in_progress': 'In progress',
    'status.resolved': 'Resolved',
    'status.closed': 'Closed',
    'status.rejected': 'Rejected',
    'status.duplicate': 'Duplicate',
    'status.reopened': 'Reopened',

    'conn.connecting': 'Connecting…',
    'conn.live': 'Live',
    'conn.reconnecting': 'Reconnecting in {seconds} s',
    'conn.reconnecting_now': 'Reconnecting…',
    'conn.title.live': 'Connected to the incident stream. Last message: {time}.',
    'conn.title.down': 'The connection to the server dropped. What is shown may be out of date (last message: {time}).',
    'conn.title.never': 'No message from the server yet.',
    'conn.stale': 'The connection to the server is down: this list may be out of date.',

    'banner.city': 'The server does not answer ({error}). Retrying in {seconds} s.',

    'map.label': 'City map with the open incidents',
    'map.area.city': 'the whole city',

    'legend.title': 'Severity',
    'legend.sensor': 'Traffic sensor',
    'legend.district': 'District',
    'legend.closed': 'Closed / resolved',

    'queue.title': 'Open incidents',
    'queue.order': 'newest first',
    'queue.empty': 'No open incidents.',
    'queue.loading': 'Loading incidents…',
    'queue.row.label': '{category}, {severity} severity, {status}, {district}, {agency}, {reports}, opened {age} ago',

    'district.none': 'outside any district',

    'reports.one': '{n} report',
    'reports.other': '{n} reports',

    'age.now': 'now',
    'age.minutes': '{m} min',
    'age.hours': '{h} h {m} min',
    'age.days': '{d} d {h} h',
    'age.title': 'Opened {time}',

    'popup.status': 'Status',
    'popup.agency': 'Agency',
    'popup.district': 'District',
    'popup.reports': 'Reports',
    'popup.opened': 'Opened',
    'popup.updated': 'Updated',
    'popup.description': 'Description',
    'popup.routing': 'Why this agency',
    'popup.alternatives': 'Other possible agencies',
    'popup.informed': 'Agencies informed',
    'popup.id': 'ID',

    'routing.jurisdiction': 'Assigned to {agency}: its jurisdiction contains the location ({area})',
    'routing.jurisdiction_noarea': 'Assigned to {agency}: its jurisdiction contains the location',
    'routing.fallback':
      'Assigned to {agency}: no agency covers this place and category; sent to the city hall dispatch',
    'routing.other': 'Assigned to {agency} (rule “{rule}”)',
    'routing.none': 'Assigned to {agency}',
    'rule.jurisdiction': 'jurisdiction',
    'rule.fallback': 'city hall dispatch',
    'rule.category_kind': 'the category informs this kind of agency',
    'rule.category_agency': 'the category informs this agency',

    'marker.title': '{category} — {severity} — {status}',
    'sensor.tooltip': '{name}: {road}, direction {direction}, free-flow speed {speed} km/h',

    'feeds.active.one': 'Feeds: {n} active',
    'feeds.active.other': 'Feeds: {n} active',
    'feeds.silent.one': 'Feeds: {n} silent',
    'feeds.silent.other': 'Feeds: {n} silent',
    'feeds.unknown': 'Feeds: —',
    'feeds.title.summary': 'Data feeds: {active} active, {silent} silent, {total} in all.',
    'feeds.title.none': 'No feed has sent anything yet.',
    'feeds.title.never': 'The state of the feeds could not be read yet.',
    'feeds.title.silent': 'Silent:',
    'feeds.title.silent_item': '{feed} — for {duration} (expected at least every {expected})',
    'feeds.title.rejected': 'Rejected messages (dead letters): {n}',
    'feeds.title.rejected_none': 'No message rejected.',
    'feeds.title.stale': 'Not refreshed since {time}: the server does not answer.',
    'feeds.title.hint': 'Press for details.',
    'feeds.popover.title': 'Data feeds',
    'feeds.popover.updated': 'updated at {time}',
    'feeds.popover.scroll': 'List of feeds',
    'feeds.col.feed': 'Feed',
    'feeds.col.accepted': 'Accepted',
    'feeds.col.rejected': 'Rejected',
    'feeds.col.duplicates': 'Duplicates',
    'feeds.col.last_seen': 'Last seen',
    'feeds.never': 'never',
    'feeds.silent_for': 'silent for {duration}',
    'feeds.note': 'Alarm when a traffic sensor is silent for over {traffic}, a utility for over {utility}. Citizens report when they report.',
    'feeds.name.citizen': 'Citizen reports',
    'feeds.name.utility': 'Utility: {name}',
    'feeds.name.traffic': 'Traffic: {name}',
    'feeds.name.traffic_http': 'Traffic (HTTP)',
    'feeds.live.silent': 'Alarm, silent feeds: {list}.',
    'feeds.live.ok': 'All feeds are sending again.',

    'store.name': 'Store',
    'store.checking': 'Store…',
    'store.degraded': 'Store degraded',
    'store.title.checking': 'Checking the store…',
    'store.title.ok': 'The store ({backend}) answers. Checked at {time}.',
    'store.title.http': 'The store does not answer (the server returned HTTP {status}). New reports may be delayed. Checked at {time}.',
    'store.title.network': 'The server does not answer the store check. Checked at {time}.',

    'duration.seconds': '{s} s',
    'duration.hours': '{h} h',
    'duration.days': '{d} d',

    'login.title': 'Log in',
    'login.intro': 'The dispatch center’s console: log in with the account your administrator gave you.',
    'login.username': 'User name',
    'login.password': 'Password',
    'login.submit': 'Log in',
    'login.busy': 'Checking…',
    'login.wrong': 'Wrong user name or password.',
    'login.limited': 'Too many failed attempts. Try again in {seconds} s.',
    'login.limited.minutes': 'Too many failed attempts. Try again in {minutes} min.',
    'login.failed': 'Logging in failed (HTTP {status}). Please try again.',
    'login.network': 'The server does not answer. Check the connection and try again.',
    'login.expired': 'Your session has ended. Please log in again.',

    'user.label': 'Logged-in user',
    'user.logout': 'Log out',
    'role.operator': 'operator',
    'role.supervisor': 'supervisor',
    'role.agency': 'agency',
    'role.admin': 'administrator',
    'queue.title.agency': 'Incidents of {agency}',

    'actions.title': 'Actions',
    'actions.reason': 'Reason or note',
    'actions.reason.placeholder': 'optional; required for a note',
    'actions.acknowledge': 'Acknowledge',
    'actions.start': 'Start work',
    'actions.resolve': 'Resolved',
    'actions.reject': 'Reject',
    'actions.note': 'Add note',
    'actions.close': 'Close',
    'actions.reopen': 'Reopen',
    'actions.assign': 'Assign',
    'actions.assign.label': 'Assign to another agency',
    'actions.assign.alternatives': 'Routing alternatives',
    'actions.assign.all': 'All agencies',
    'actions.busy': 'Sending…',
    'actions.done': 'Done: {status}.',
    'actions.note.needed': 'Write the note in the field above.',
    'actions.refused': 'Refused: {detail}',
    'actions.network': 'The server does not answer; the action was not recorded.',

    'contacts.title': 'Citizens’ contact details',
    'contacts.show': 'Show contact details',
    'contacts.logged': 'Personal data: every reading is logged.',
    'contacts.none': 'No citizen left contact details.',
    'filters.label': 'Filter the queue',
    'filters.any': 'any',
    'filters.status': 'Status',
    'filters.severity': 'Severity',
    'filters.category': 'Category',
    'filters.agency': 'Agency',
    'filters.district': 'District',
    'filters.overdue': 'Overdue only',
    'filters.sort': 'Order',
    'filters.sort.newest': 'newest first',
    'filters.sort.severity': 'most severe first',
    'filters.sort.due': 'soonest deadline first',
    'filters.none': 'No open incident passes the filters.',
    'timeline.title': 'History',
    'timeline.more': 'and {n} older',
    'timeline.kind.opened': 'Opened',
    'timeline.kind.report_joined': 'One more report',
    'timeline.kind.updated': 'Updated by the sender',
    'timeline.kind.resolved': 'Resolved by the sender',
    'timeline.kind.escalated': 'Escalated',
    'timeline.kind.assign': 'Assigned',
    'timeline.kind.acknowledge': 'Acknowledged',
    'timeline.kind.start': 'Work started',
    'timeline.kind.resolve': 'Resolved',
    'timeline.kind.close': 'Closed',
    'timeline.kind.reject': 'Rejected',
    'timeline.kind.duplicate': 'Duplicate',
    'timeline.kind.reopen': 'Reopened',
    'timeline.kind.note': 'Note',
    'timeline.kind.publish_warning': 'Public warning issued',
    'timeline.kind.update_warning': 'Public warning updated',
    'timeline.kind.cancel_warning': 'Public warning withdrawn',
    'warning.title': 'Public warning (CAP)',
    'warning.active': 'in force',
    'warning.cancelled': 'withdrawn',
    'warning.none': 'No public warning.',
    'warning.version': 'version {n}',
    'warning.cap': 'CAP document',
    'warning.headline.ro': 'Headline (Romanian)',
    'warning.headline.en': 'Headline (English)',
    'warning.instruction.ro': 'What people should do (Romanian)',
    'warning.instruction.en': 'What people should do (English)',
    'warning.radius': 'Radius around the incident, meters',
    'warning.radius.placeholder': "default: the incident's area or 500 m",
    'warning.publish_warning': 'Publish warning',
    'warning.update_warning': 'Update',
    'warning.cancel_warning': 'Withdraw warning',
    'warning.needed': 'Fill in the headline and the instruction in both languages.',
    'warning.done.Alert': 'The warning is published.',
    'warning.done.Update': 'The warning is updated.',
    'warning.done.Cancel': 'The warning is withdrawn.',

    'sensor.open': 'Open the chart of sensor {name}',
    'sensor.panel.close': 'Close the chart',
    'sensor.range': 'Range',
    'sensor.range.6h': '6 hours',
    'sensor.range.24h': '24 hours',
    'sensor.range.7d': '7 days',
    'sensor.metric': 'Measure',
    'sensor.metric.speed': 'Speed (km/h)',
    'sensor.metric.count': 'Vehicles (per interval)',
    'sensor.metric.occupancy': 'Occupancy (%)',
    'sensor.series.time': 'Time',
    'sensor.series.value': 'Measured',
    'sensor.series.baseline': 'Baseline',
    'sensor.baseline.history': 'Baseline: the mean of the same time of day over the last {days} days.',
    'sensor.baseline.freeflow': 'No history: the baseline is the free-flow speed from the city data ({speed} km/h).',
    'sensor.baseline.none': 'No history for a baseline yet.',
    'sensor.step': 'step {step}',
    'sensor.loading': 'Loading readings…',
    'sensor.empty': 'No readings in this range.',
    'sensor.failed': 'The readings could not be loaded (HTTP {status}).',
  },
};

/** Whether `lang` has strings here. */
export function isSupported(lang) {
  return Object.prototype.hasOwnProperty.call(STRINGS, lang);
}

/**
 * The string `key` in `lang` with {placeholders} filled from `params`, as plain text.
 * Falls back to English, then to the key itself, so a missing string shows up instead of breaking.
 */
export function translate(lang, key, params = {}) {
  const table = STRINGS[lang] ?? STRINGS.en;
  const template = table[key] ?? STRINGS.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
  );
}

/** "3 reports" / "3 sesizări" / "20 de sesizări", using the language's plural rules. */
export function plural(lang, base, n) {
  let form = 'other';
  try {
    form = new Intl.PluralRules(LOCALES[lang] ?? lang).select(n);
  } catch {
    form = n === 1 ? 'one' : 'other';
  }
  const table = STRINGS[lang] ?? STRINGS.en;
  const key = `${base}.${form}` in table ? `${base}.${form}` : `${base}.${n === 1 ? 'one' : 'other'}`;
  return translate(lang, key, { n: formatNumber(lang, n) });
}

/** A number written the language's way. */
export function formatNumber(lang, n) {
  try {
    return new Intl.NumberFormat(LOCALES[lang] ?? lang).format(n);
  } catch {
    return String(n);
  }
}

/**
 * A city-provided name ({"ro": "...", "en": "..."} or a plain string) in `lang`,
 * falling back to Romanian, English, then any language; null if there is none.
 */
export function localName(name, lang) {
  if (name == null) return null;
  if (typeof name === 'string') return name;
  if (typeof name !== 'object') return String(name);
  for (const l of [lang, 'ro', 'en']) {
    if (typeof name[l] === 'string' && name[l] !== '') return name[l];
  }
  const any = Object.values(name).find((v) => typeof v === 'string' && v !== '');
  return any ?? null;
}
