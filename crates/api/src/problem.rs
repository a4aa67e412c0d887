//! `application/problem+json` (RFC 9457) errors.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl Problem {
    /// 400: the request is wrong; `detail` says how.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::BAD_REQUEST,
            title: "Bad request",
            detail: detail.into(),
        }
    }

    /// 401: no or a bad credential.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::UNAUTHORIZED,
            title: "Unauthorized",
            detail: detail.into(),
        }
    }

    /// 403: the credential does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::FORBIDDEN,
            title: "Forbidden",
            detail: detail.into(),
        }
    }

    /// 409: the request conflicts with the resource's state; `detail` says how.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::CONFLICT,
            title: "Conflict",
            detail: detail.into(),
        }
    }

    /// 413: the body is too large.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            title: "Payload too large",
            detail: detail.into(),
        }
    }

    /// 415: the body is not of a type this endpoint reads.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            title: "Unsupported media type",
            detail: detail.into(),
        }
    }

    /// 429: too many attempts; the caller adds `Retry-After`.
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::TOO_MANY_REQUESTS,
            title: "Too many requests",
            detail: detail.into(),
        }
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            detail: detail.into(),
        }
    }

    /// 503: a dependency is down; retry later. The detail is logged, not shown.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        tracing::warn!(%detail, "service unavailable");
        Problem {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Service unavailable",
            detail: "a dependency of Dispecer is unavailable; try again shortly".into(),
        }
    }

    /// 503: Dispecer itself is at one of its limits (too many clients or requests in progress,
    /// a request that took too long); the detail says which, and the answer says when to retry.
    pub fn busy(detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Service unavailable",
            detail: detail.into(),
        }
    }

    /// 500: logged once here, answered generically.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Problem {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Internal error",
            detail: "the server failed to answer; the error was logged".into(),
        }
    }
}

impl From<store::StoreError> for Problem {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Unavailable(_) => Problem::unavailable(e.to_string()),
            other => Problem::internal(other),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let challenge = self.status == StatusCode::UNAUTHORIZED;
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if challenge {
            // RFC 9110: a 401 names the scheme the client should use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
