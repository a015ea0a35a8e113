//! The live explorer: one HTML page, its script and its style sheet, embedded in the binary
//! (no CDN, works offline) and served at `/` and under `/explorer/`; and `/metrics`, the node's
//! Prometheus text.
//!
//! Rules it keeps: the page talks to the node only through `/api/v1` and its event stream, as
//! any client would; block and address pages are hash routes (`#/block/<id>`,
//! `#/address/<address>`) of the one page, so every link works from the embedded assets.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::errors::ApiError;
use super::AppState;

/// The page.
pub const INDEX_HTML: &str = include_str!("explorer/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("explorer/app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("explorer/app.css");

/// The content type of Prometheus text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The explorer's and the metrics' routes, all read-only.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/explorer", get(index))
        .route("/explorer/", get(index))
        .route("/explorer/app.js", get(script))
        .route("/explorer/app.css", get(style))
        .route("/metrics", get(metrics))
}

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_CSS,
    )
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state.handle.metrics().await?;
    Ok(([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::access::Policy;
    use crate::http::tests::stopped_node_router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    async fn fetch(path: &str) -> (StatusCode, String, String) {
        let app = stopped_node_router(
            "192.168.1.20:5000",
            Policy::new([127, 0, 0, 1].into(), None),
        );
        let request = axum::http::Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("a request");
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, kind, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_from_the_binary_even_to_remote_clients() {
        for (path, kind, needle) in [
            ("/", "text/html", "/explorer/app.js"),
            ("/explorer/", "text/html", "gossipchain explorer"),
            ("/explorer/app.js", "text/javascript", "EventSource"),
            ("/explorer/app.css", "text/css", "#tree"),
        ] {
            let (status, got_kind, body) = fetch(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(got_kind.starts_with(kind), "{path}: {got_kind}");
            assert!(body.contains(needle), "{path}");
        }
    }

    #[test]
    fn the_page_loads_nothing_from_another_host() {
        for asset in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!asset.contains("http://") && !asset.contains("https://"));
        }
    }

    #[tokio::test]
    async fn metrics_from_a_stopped_node_are_a_json_503() {
        let (status, _, body) = fetch("/metrics").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("node has stopped"));
    }
}
