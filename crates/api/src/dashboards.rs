//! The dashboards, embedded in the binary at build time (works offline, one file to install).

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::Problem;

#[derive(RustEmbed)]
#[folder = "../../dashboards/console/"]
struct Console;

pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return Problem::not_found(format!("no API resource at {}", uri.path())).into_response();
    }
    let path = if path.is_empty() { "index.html" } else { path };
    match Console::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let cache = if path.ends_with(".html") {
                "no-cache"
            } else {
                "public, max-age=300"
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_owned()),
                    (header::CACHE_CONTROL, cache.to_owned()),
                ],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => Problem::not_found(format!("nothing at {}", uri.path())).into_response(),
    }
}
