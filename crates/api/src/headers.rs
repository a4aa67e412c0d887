//! Security headers on every answer (tower-http's `SetResponseHeaderLayer`): a Content Security
//! Policy without inline script, no sniffing, no framing, no referrer beyond what a base map's
//! tile server needs, an isolated browsing context and only the permissions the citizens' page
//! uses (its position, its camera for a photo). `Strict-Transport-Security` is added per request
//! by [`crate::limits::hsts`], only over HTTPS: Dispecer's own, or a trusted proxy's.

use axum::http::{header, HeaderName, HeaderValue};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// The Content Security Policy: everything from the server itself; images also from `data:`
/// and `blob:` (a photo's preview) and from the base map's tile server when one is configured.
/// Styles come from files only; scripts may still set `element.style` (Leaflet, its
/// markercluster and uPlot place their elements so), which a policy does not govern. WebSockets are same-origin (`'self'`).
pub(crate) fn content_security_policy(tile_url: Option<&str>) -> String {
    let tiles = tile_url.and_then(tile_source);
    let img = match &tiles {
        Some(t) => format!("img-src 'self' data: blob: {t}"),
        None => "img-src 'self' data: blob:".to_owned(),
    };
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        &img,
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    .join("; ")
}

/// The CSP source of a tile URL template (`https://{s}.tile.example.org/{z}/{x}/{y}.png` →
/// `https://*.tile.example.org`): its scheme and host, a templated first label made a
/// wildcard. `None` for what is not an http(s) URL with a plain host.
fn tile_source(template: &str) -> Option<String> {
    let (scheme, rest) = template.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let mut labels: Vec<String> = authority.split('.').map(str::to_owned).collect();
    if let Some(first) = labels.first_mut() {
        if first.contains('{') {
            *first = "*".to_owned();
        }
    }
    let host = labels.join(".");
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*');
    if host.is_empty() || !host.chars().all(allowed) || host.contains("{") {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

/// Adds the security headers to every answer of `router`. With a tile server, the referrer is
/// the origin only (tile servers ask for one; never a page's path, which may carry a tracking
/// code); without, none at all.
pub(crate) fn layer<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    tile_url: Option<&str>,
) -> Router<S> {
    let csp = content_security_policy(tile_url);
    let csp = HeaderValue::from_str(&csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"));
    let referrer = if tile_url.is_some() {
        "strict-origin"
    } else {
        "no-referrer"
    };
    let fixed: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_SECURITY_POLICY, csp),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static(referrer)),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "geolocation=(self), camera=(self), microphone=(), payment=(), usb=(), \
                 interest-cohort=()",
            ),
        ),
    ];
    fixed.into_iter().fold(router, |r, (name, value)| {
        r.layer(SetResponseHeaderLayer::overriding(name, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_sources() {
        let t = |s| tile_source(s);
        assert_eq!(
            t("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tile.openstreetmap.org")
        );
        assert_eq!(
            t("http://127.0.0.1:8081/tiles/{z}/{x}/{y}.png").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(t("https://a.b/{z}").as_deref(), Some("https://a.b"));
        // Nothing that could smuggle another directive in.
        assert_eq!(t("https://evil.org;script-src */x"), None);
        assert_eq!(t("https://tiles.{x}.org/{z}"), None);
        assert_eq!(t("javascript:alert(1)"), None);
        assert_eq!(t("data://x"), None);
    }

    #[test]
    fn the_policy_has_no_inline_script() {
        let p = content_security_policy(None);
        assert!(p.contains("script-src 'self';"), "{p}");
        assert!(!p.contains("unsafe"), "{p}");
        assert!(p.contains("frame-ancestors 'none'"), "{p}");
        let p = content_security_policy(Some("https://{s}.tiles.example/{z}/{x}/{y}.png"));
        assert!(
            p.contains("img-src 'self' data: blob: https://*.tiles.example;"),
            "{p}"
        );
    }
}
