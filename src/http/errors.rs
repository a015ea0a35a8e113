//! The API's errors: one enum, each variant with its status code, answered as JSON
//! `{"error": message}`.
//!
//! Rules it keeps: every failure a client can cause is a 4xx with a message saying what was
//! wrong; a stopped node is a 503; nothing a client sends makes a handler panic.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::access::Refusal;
use super::MAX_BODY_BYTES;
use crate::node::CommandError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request was malformed: bad JSON, a missing or mistyped field, a bad address.
    #[error("{0}")]
    BadRequest(String),
    /// No such route, block or thing.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The body is over [`MAX_BODY_BYTES`].
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    /// The access rule refused the request.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The node answered with an error.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The node did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Another node's API could not be used.
    #[error("{0}")]
    Upstream(String),
    /// Too many event streams are open.
    #[error("too many event streams are open (at most {0})")]
    TooManyStreams(usize),
}

impl ApiError {
    /// The status code the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Refused(refusal) => refusal.status(),
            ApiError::Command(error) => command_status(error),
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::TooManyStreams(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The status code of a node's refusal.
fn command_status(error: &CommandError) -> StatusCode {
    match error {
        CommandError::NodeStopped | CommandError::MinerBusy | CommandError::ResolveBusy => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CommandError::NoBlockAtHeight(_) | CommandError::UnknownBlock(_) => StatusCode::NOT_FOUND,
        CommandError::Mempool(_)
        | CommandError::Dial(_)
        | CommandError::MineCountOutOfRange(_)
        | CommandError::ChainLimitOutOfRange(_)
        | CommandError::MemoTooLong { .. }
        | CommandError::EmptyPostField(_)
        | CommandError::TreeDepthOutOfRange(_) => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::BlockHash;

    #[test]
    fn node_errors_map_to_the_status_a_client_can_act_on() {
        let cases = [
            (CommandError::NodeStopped, 503),
            (CommandError::MinerBusy, 503),
            (CommandError::ResolveBusy, 503),
            (CommandError::NoBlockAtHeight(9), 404),
            (CommandError::UnknownBlock(BlockHash::ZERO), 404),
            (CommandError::Dial("no".into()), 400),
            (CommandError::MineCountOutOfRange(0), 400),
            (CommandError::ChainLimitOutOfRange(0), 400),
            (CommandError::MemoTooLong { len: 300, max: 256 }, 400),
            (CommandError::EmptyPostField("author"), 400),
        ];
        for (error, code) in cases {
            assert_eq!(ApiError::from(error).status().as_u16(), code);
        }
    }

    #[test]
    fn a_stopped_node_says_so_in_the_message() {
        let e = ApiError::from(CommandError::NodeStopped);
        assert_eq!(e.to_string(), "node has stopped");
    }
}
