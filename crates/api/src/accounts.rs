//! People's accounts: passwords, sessions in cookies, CSRF, and the login rate limit.
//!
//! - `POST /api/v1/session` `{"username", "password"}` (JSON only) logs in: 200 with who the
//!   user is and the session's CSRF token, and a `dispecer_session` cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Path=/`, 12 hours at most, and ended after 30 minutes without a request
//!   (an open console polls, so it stays logged in; a closed one's cookie dies); `Secure` unless the server listens on plain HTTP on a
//!   loopback address and the request did not come through a proxy saying
//!   `X-Forwarded-Proto: https`). 401 for a wrong name or password (the same answer for both);
//!   429 with `Retry-After` once a name or a client address has failed too often.
//! - `GET /api/v1/session`: who the cookie's session is (401 without one).
//! - `DELETE /api/v1/session`: logs out (needs the CSRF token); the cookie is cleared.
//!
//! Passwords are hashed with argon2id (the `argon2` crate's defaults, OWASP's minimum) on the
//! blocking pool. A session id is 32 random bytes; only its SHA-256 is stored. Requests that
//! change something with a session cookie must send the session's token in `X-CSRF-Token`;
//! requests with a Bearer API token need none (a browser never adds one by itself).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use model::AgencyId;
use protocol::incident::timestamp;
use store::{Role, Session};

use crate::ingest::{scope, Scope};
use crate::{AppState, Problem};

/// The session cookie's name.
pub const COOKIE: &str = "dispecer_session";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts at most (an operator's shift and some).
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);
/// How long a session lasts without a request: each request moves its end this far ahead (never
/// past [`SESSION_TTL`] from the login).
pub const SESSION_IDLE: chrono::Duration = chrono::Duration::minutes(30);
/// How often at most a session's end is moved (one write a minute per session in use, not one
/// per request).
const SESSION_EXTEND_STEP: chrono::Duration = chrono::Duration::minutes(1);
/// Largest login body, in bytes.
pub const MAX_LOGIN_BODY: usize = 4096;

/// Password hashes computed at once. Each takes 19 MiB and tens of milliseconds of CPU by
/// design; without a bound a flood of logins would queue hundreds on the blocking pool. Waiters
/// wait their turn (the login limiter keeps one source from filling the queue).
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Hashes a password with argon2id and a random salt, on the blocking pool (it takes tens of
/// milliseconds of CPU by design). Returns the PHC string to store.
pub async fn hash_password(password: String) -> Result<String, PasswordError> {
    let _turn = HASHING
        .acquire()
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Whether `password` matches the PHC string `hash`, checked on the blocking pool.
pub async fn verify_password(password: String, hash: String) -> Result<bool, PasswordError> {
    let _turn = HASHING
        .acquire()
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(&hash).map_err(|e| PasswordError::Stored(e.to_string()))?;
        Ok(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// A password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Hashing failed (or its task was lost).
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The stored hash is not a PHC string argon2 understands.
    #[error("the stored password hash is not valid: {0}")]
    Stored(String),
}

/// A hash to check against when the user does not exist, so that a wrong name takes as long
/// as a wrong password and the answer does not tell which it was.
async fn dummy_hash() -> Option<String> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Some(h.clone());
    }
    let h = hash_password("not a password anyone has".into())
        .await
        .ok()?;
    Some(DUMMY.get_or_init(|| h).clone())
}

/// How many failed logins are allowed in a window, per user name and per client address.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures of one user name allowed in `window`.
    pub per_username: u32,
    /// Failures from one client address allowed in `window`.
    pub per_address: u32,
    /// The window, counted from the first failure in it.
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_username: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Most keys remembered; past it, expired windows are dropped first and then the oldest.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LimitKey {
    Username(u64),
    Address(IpAddr),
}

/// Failed logins per key in a fixed window from the key's first failure. A std mutex: the
/// sections are short and never cross an `.await`.
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    limits: LoginLimits,
    failures: Mutex<HashMap<LimitKey, (Instant, u32)>>,
}

fn username_key(username: &str) -> LimitKey {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    username.to_lowercase().hash(&mut h);
    LimitKey::Username(h.finish())
}

impl LoginLimiter {
    pub(crate) fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            limits,
            failures: Mutex::default(),
        }
    }

    fn limit(&self, key: &LimitKey) -> u32 {
        match key {
            LimitKey::Username(_) => self.limits.per_username,
            LimitKey::Address(_) => self.limits.per_address,
        }
    }

    /// `Some(wait)` when one of `keys` has used up its failures for the current window.
    fn blocked(&self, keys: &[LimitKey], now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| {
                let (since, n) = map.get(k)?;
                let end = *since + self.limits.window;
                (*n >= self.limit(k) && end > now).then(|| end - now)
            })
            .max()
    }

    fn failed(&self, keys: &[LimitKey], now: Instant) {
        let window = self.limits.window;
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, (since, _)| *since + window > now);
            if map.len() >= MAX_KEYS {
                if let Some(oldest) = map.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        for k in keys {
            let entry = map.entry(*k).or_insert((now, 0));
            if entry.0 + window <= now {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    fn succeeded(&self, username: &LimitKey) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(username);
    }
}

/// Who is asking: a machine with an API token, or a person with a session.
pub(crate) enum Caller {
    /// A Bearer API token, its scope and its prefix.
    Token(Scope, String),
    /// A person's session.
    Session(Session),
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The session of the request's cookie, if it is live.
pub(crate) async fn session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, Problem> {
    let Some(id) = session_id(headers) else {
        return Ok(None);
    };
    let hash = store::hash_token(&id);
    let now = Utc::now();
    let Some(mut session) = state.store.session(&hash, now).await? else {
        return Ok(None);
    };
    if let Some(end) = extended_end(&session, now) {
        state.store.extend_session(&hash, now, end).await?;
        session.expires_at = end;
    }
    Ok(Some(session))
}

/// The session's new end after a request at `now`, if it is worth a write: [`SESSION_IDLE`]
/// ahead, never past [`SESSION_TTL`] from its start, in whole seconds.
fn extended_end(session: &Session, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let end = (now + SESSION_IDLE).min(session.created_at + SESSION_TTL);
    let end = DateTime::from_timestamp(end.timestamp(), 0)?;
    (end - session.expires_at >= SESSION_EXTEND_STEP).then_some(end)
}

/// Constant-time comparison, so that a CSRF token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 403 unless the request carries the session's CSRF token.
fn check_csrf(session: &Session, headers: &HeaderMap) -> Result<(), Problem> {
    let sent = headers
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if same(sent, session.csrf.as_bytes()) {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "a request made with a session must carry its CSRF token in X-CSRF-Token \
             (GET /api/v1/session gives it)",
        ))
    }
}

/// The caller of a read that needs one: a Bearer token when there is an `Authorization` header,
/// otherwise the cookie's session (no CSRF token: nothing changes, and the cookie is
/// `SameSite=Strict`). 401 with neither.
pub(crate) async fn reader(state: &AppState, headers: &HeaderMap) -> Result<Caller, Problem> {
    if headers.contains_key(header::AUTHORIZATION) {
        let (scope, prefix) = scope(state, headers).await?;
        return Ok(Caller::Token(scope, prefix));
    }
    let session = session(state, headers).await?.ok_or_else(|| {
        Problem::unauthorized(
            "an API token is required (Authorization: Bearer <token>), or a session \
             (POST /api/v1/session)",
        )
    })?;
    Ok(Caller::Session(session))
}

/// The caller of a state-changing request: as [`reader`], and a session must also carry its
/// CSRF token.
pub(crate) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Problem> {
    let caller = reader(state, headers).await?;
    if let Caller::Session(session) = &caller {
        check_csrf(session, headers)?;
    }
    Ok(caller)
}

/// Who may read the dispatch center's private data (incidents, their timelines, the stream,
/// feeds, readings), and how much of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Viewer {
    /// Operators, supervisors and admins (sessions), or an `operator` token: everything.
    Staff {
        /// Who, for logs: `user:{name}` or `operator:{token prefix}`.
        who: String,
        /// An admin's session (the only one that reads the dead letters).
        admin: bool,
    },
    /// An agency's user or its `agency:{id}` token: the incidents that agency is responsible
    /// for or informed of.
    Agency {
        /// The agency.
        agency: AgencyId,
        /// Who, for logs.
        who: String,
    },
}

impl Viewer {
    /// The agency whose incidents alone this viewer may read; `None` for staff.
    pub(crate) fn agency(&self) -> Option<&AgencyId> {
        match self {
            Viewer::Staff { .. } => None,
            Viewer::Agency { agency, .. } => Some(agency),
        }
    }

    /// 403 unless this viewer may read `incident` (staff: any; an agency: one it is responsible
    /// for or informed of). 403 rather than 404, as for contacts, photos and actions: that an
    /// incident exists is no secret (the public map shows every open one), its details are.
    pub(crate) fn may_read(&self, incident: &model::Incident) -> Result<(), Problem> {
        match self.agency() {
            Some(agency) if !incident.concerns(agency) => Err(Problem::forbidden(format!(
                "incident {} is neither assigned to {agency} nor is {agency} informed of it",
                incident.id.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// 403 unless this viewer is staff (operators, supervisors, admins, an `operator` token).
    pub(crate) fn staff_only(&self, what: &str) -> Result<(), Problem> {
        match self {
            Viewer::Staff { .. } => Ok(()),
            Viewer::Agency { .. } => Err(Problem::forbidden(format!(
                "{what} is for the dispatch center's operators, supervisors and admins, not agencies"
            ))),
        }
    }
}

/// The caller of a private read: 401 without a session or token (the problem says how to get
/// one); 403 for a token made for something else (a utility's, a sensor gateway's, a citizens'
/// app's), which may send but not read.
pub(crate) async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<Viewer, Problem> {
    match reader(state, headers).await? {
        Caller::Token(Scope::Operator, prefix) => Ok(Viewer::Staff {
            who: format!("operator:{prefix}"),
            admin: false,
        }),
        Caller::Token(Scope::Agency(agency), _) => Ok(Viewer::Agency {
            who: format!("agency:{agency}"),
            agency: AgencyId::from(agency.as_str()),
        }),
        Caller::Token(other, _) => Err(Problem::forbidden(format!(
            "this token may {}, not read the dispatch center's data",
            other.allows()
        ))),
        Caller::Session(s) => match (s.role, s.agency) {
            (Role::Operator | Role::Supervisor | Role::Admin, _) => Ok(Viewer::Staff {
                who: format!("user:{}", s.username),
                admin: s.role == Role::Admin,
            }),
            (Role::Agency, Some(agency)) => Ok(Viewer::Agency {
                agency: AgencyId::from(agency.as_str()),
                who: format!("user:{}", s.username),
            }),
            (Role::Agency, None) => Err(Problem::forbidden("this agency user has no agency")),
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

fn describe(session: &Session) -> serde_json::Value {
    serde_json::json!({
        "username": session.username,
        "role": session.role.as_str(),
        "agency": session.agency,
        "csrf": session.csrf,
        "expires_at": timestamp(session.expires_at),
    })
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the cookie must be `Secure`: always, except for plain HTTP on a loopback address
/// that no TLS-terminating proxy speaks for (over Dispecer's own HTTPS, always).
fn secure_cookie(state: &AppState, headers: &HeaderMap) -> bool {
    if state.tls {
        return true;
    }
    let via_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    !state.plain_http_on_loopback || via_https
}

fn set_cookie(value: &str, max_age: chrono::Duration, secure: bool) -> Option<HeaderValue> {
    let cookie = cookie::Cookie::build((COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.num_seconds()))
        .build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut response = Problem::too_many_requests(format!(
        "too many failed logins; try again in {secs} seconds"
    ))
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Logs in: sets the `dispecer_session` cookie (HttpOnly, SameSite=Strict) and answers who is
/// logged in, with the CSRF token.
#[utoipa::path(post, path = "/api/v1/session", tag = "accounts", operation_id = "login",
    request_body(content = crate::openapi::LoginDoc, content_type = "application/json"),
    responses(
    (status = 200, description = "Logged in; the cookie is set", body = crate::openapi::SessionDoc),
    (status = 400, description = "Not a login body", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 401, description = "Wrong user name or password", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 413, description = "Body too large", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 415, description = "Not JSON", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 429, description = "Too many failed logins for this name or address; see Retry-After", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        // Also what keeps a cross-site form from logging a browser in (login CSRF).
        return Problem::unsupported_media_type("send the login as application/json")
            .into_response();
    }
    let raw = match raw {
        Ok(r) if r.len() <= MAX_LOGIN_BODY => r,
        Ok(_) => return Problem::too_large("the login body is too large").into_response(),
        Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            return Problem::too_large("the login body is too large").into_response()
        }
        Err(e) => return Problem::bad_request(e.body_text()).into_response(),
    };
    let login: Login = match serde_json::from_slice(&raw) {
        Ok(l) => l,
        Err(e) => {
            return Problem::bad_request(format!(
                "the body must be {{\"username\": …, \"password\": …}}: {e}"
            ))
            .into_response()
        }
    };
    let mut keys = vec![username_key(&login.username)];
    if let Some(ip) = state
        .limiter
        .client(crate::limits::peer(&extensions), &headers)
    {
        keys.push(LimitKey::Address(ip));
    }
    let now = Instant::now();
    if let Some(wait) = state.login_limiter.blocked(&keys, now) {
        tracing::warn!(username = %login.username, "login refused: rate limited");
        return too_many(wait);
    }
    match check_login(&state, &login).await {
        Ok(Some((session, id))) => {
            state.login_limiter.succeeded(&keys[0]);
            tracing::info!(username = %session.username, role = %session.role, "logged in");
            let mut response = Json(describe(&session)).into_response();
            if let Some(c) = set_cookie(&id, SESSION_TTL, secure_cookie(&state, &headers)) {
                response.headers_mut().insert(header::SET_COOKIE, c);
            }
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(None) => {
            state.login_limiter.failed(&keys, now);
            tracing::warn!(username = %login.username, "login refused: wrong name or password");
            Problem::unauthorized("wrong user name or password").into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// The new session and its id when the name and password are right.
async fn check_login(
    state: &AppState,
    login: &Login,
) -> Result<Option<(Session, String)>, Problem> {
    let user = state.store.user(&login.username).await?;
    let Some(user) = user else {
        // As long as a wrong password takes, so the answer's time does not tell either.
        if let Some(h) = dummy_hash().await {
            let _ = verify_password(login.password.clone(), h).await;
        }
        return Ok(None);
    };
    let ok = verify_password(login.password.clone(), user.password_hash.clone())
        .await
        .map_err(Problem::internal)?;
    if !ok {
        return Ok(None);
    }
    let id = random_token();
    let now = Utc::now();
    let expires_at: DateTime<Utc> = now + SESSION_IDLE.min(SESSION_TTL);
    let session = Session {
        username: user.username.clone(),
        role: user.role,
        agency: user.agency.clone(),
        csrf: random_token(),
        expires_at: DateTime::from_timestamp(expires_at.timestamp(), 0).unwrap_or(expires_at),
        created_at: now,
    };
    state
        .store
        .add_session(
            &store::hash_token(&id),
            &session.username,
            &session.csrf,
            now,
            session.expires_at,
        )
        .await?;
    Ok(Some((session, id)))
}

/// Who is logged in with the session cookie, with the CSRF token.
#[utoipa::path(get, path = "/api/v1/session", tag = "accounts", operation_id = "whoami",
    security(("session" = [])), responses(
    (status = 200, description = "The session's user", body = crate::openapi::SessionDoc),
    (status = 401, description = "Not logged in", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Ok(Some(s)) => {
            let mut r = Json(describe(&s)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(None) => Problem::unauthorized("not logged in").into_response(),
        Err(p) => p.into_response(),
    }
}

/// Logs out (the request carries the session's `X-CSRF-Token`).
#[utoipa::path(delete, path = "/api/v1/session", tag = "accounts", operation_id = "logout",
    security(("session" = [])), responses(
    (status = 204, description = "Logged out; the cookie is cleared"),
    (status = 401, description = "Not logged in", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "No or a wrong CSRF token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let Some(id) = session_id(&headers) else {
            return Err(Problem::unauthorized("not logged in"));
        };
        let hash = store::hash_token(&id);
        let session = state
            .store
            .session(&hash, Utc::now())
            .await?
            .ok_or_else(|| Problem::unauthorized("not logged in"))?;
        check_csrf(&session, &headers)?;
        state.store.delete_session(&hash).await?;
        tracing::info!(username = %session.username, "logged out");
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut r = axum::http::StatusCode::NO_CONTENT.into_response();
            if let Some(c) = set_cookie(
                "",
                chrono::Duration::zero(),
                secure_cookie(&state, &headers),
            ) {
                r.headers_mut().insert(header::SET_COOKIE, c);
            }
            r
        }
        Err(p) => p.into_response(),
    }
}

/// Shared login limiter of a router.
pub(crate) fn limiter(limits: LoginLimits) -> Arc<LoginLimiter> {
    Arc::new(LoginLimiter::new(limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_in_use_lives_on_an_idle_one_ends_and_none_outlives_its_lifetime() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let session = |expires_at| Session {
            username: "ana".into(),
            role: store::Role::Operator,
            agency: None,
            csrf: "c".into(),
            expires_at,
            created_at: start,
        };
        // Just logged in: nothing to write yet.
        let fresh = session(start + SESSION_IDLE);
        assert_eq!(extended_end(&fresh, start), None);
        assert_eq!(
            extended_end(&fresh, start + chrono::Duration::seconds(30)),
            None
        );
        // Used ten minutes later: its end moves thirty minutes past the request.
        let later = start + chrono::Duration::minutes(10);
        assert_eq!(extended_end(&fresh, later), Some(later + SESSION_IDLE));
        // Near the end of its lifetime: never past twelve hours from the login.
        let late = start + SESSION_TTL - chrono::Duration::minutes(5);
        let used = session(late - chrono::Duration::minutes(20));
        assert_eq!(extended_end(&used, late), Some(start + SESSION_TTL));
        assert_eq!(extended_end(&session(start + SESSION_TTL), late), None);
    }

    #[test]
    fn a_name_is_blocked_after_its_failures_until_the_window_ends() {
        let limits = LoginLimits {
            per_username: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        };
        let l = LoginLimiter::new(limits);
        let t0 = Instant::now();
        let ana = [username_key("ana"), LimitKey::Address([10, 0, 0, 1].into())];
        for _ in 0..3 {
            assert_eq!(l.blocked(&ana, t0), None);
            l.failed(&ana, t0);
        }
        assert_eq!(l.blocked(&ana, t0), Some(Duration::from_secs(60)));
        assert_eq!(
            l.blocked(&[username_key("ANA")], t0 + Duration::from_secs(50)),
            Some(Duration::from_secs(10)),
            "names are counted without case"
        );
        assert_eq!(l.blocked(&ana, t0 + Duration::from_secs(60)), None);
        // Another name from the same address is counted against the address.
        let bob = [username_key("bob"), LimitKey::Address([10, 0, 0, 1].into())];
        assert_eq!(l.blocked(&bob, t0), None);
        l.failed(&bob, t0);
        l.failed(&bob, t0);
        assert!(l.blocked(&bob, t0).is_some(), "the address had 5 failures");
        // A success clears the name, not the address.
        l.succeeded(&username_key("ana"));
        assert_eq!(l.blocked(&[username_key("ana")], t0), None);
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), h.clone())
            .await
            .expect("verify"));
        assert!(!verify_password("wrong".into(), h).await.expect("verify"));
        assert!(verify_password("x".into(), "not a hash".into())
            .await
            .is_err());
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_when_asked() {
        let c = set_cookie("abc", SESSION_TTL, true)
            .expect("a header")
            .to_str()
            .expect("text")
            .to_owned();
        for part in [
            "dispecer_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=43200",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        let plain = set_cookie("abc", SESSION_TTL, false).expect("a header");
        assert!(!plain.to_str().expect("text").contains("Secure"));
    }
}
