//! The dashboards, embedded in the binary at build time (works offline, one file to install).

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;

use crate::Problem;

#[derive(RustEmbed)]
#[folder = "../../dashboards/console/"]
struct Console;

#[derive(RustEmbed)]
#[folder = "../../dashboards/citizen/"]
struct Citizen;

/// `/report`: the citizens' pages (to file a report, follow it, see the public map).
pub async fn citizen(uri: Uri) -> Response {
    let path = uri.path();
    if path == "/report" {
        return Redirect::permanent("/report/").into_response();
    }
    let file = path.trim_start_matches("/report/");
    let file = if file.is_empty() { "index.html" } else { file };
    match Citizen::get(file) {
        Some(f) => asset(file, f.data.into_owned()),
        None => Problem::not_found(format!("nothing at {path}")).into_response(),
    }
}

fn asset(path: &str, data: Vec<u8>) -> Response {
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
        data,
    )
        .into_response()
}

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
