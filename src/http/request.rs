//! Turning what a client sent into typed values: JSON bodies, paging queries, block ids and
//! addresses. Everything here is pure and answers a 400 (or 413) with a message, never panics.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::errors::ApiError;
use crate::ledger::{Address, BlockHash};
use crate::node::command::MAX_CHAIN_PAGE;
use crate::node::BlockQuery;

/// Longest piece of client input quoted back in an error.
const MAX_QUOTE_CHARS: usize = 64;

/// A JSON body of type `T`, read within the body cap, with errors as [`ApiError`]. The
/// `Content-Type` header is not required: curl users often leave it out.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Like [`JsonBody`], but an empty body means `T::default()`.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

/// The whole body, within the cap.
async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge
            } else {
                ApiError::BadRequest(format!("cannot read the body: {}", rejection.body_text()))
            }
        })
}

/// Parses a JSON body, naming what is wrong with it.
///
/// # Errors
/// [`ApiError::BadRequest`] for an empty body, bad JSON, a missing field or a wrong type.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("expected a JSON body".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))
}

/// Shortens client input quoted in an error.
pub fn clip(s: &str) -> String {
    if s.chars().count() > MAX_QUOTE_CHARS {
        format!("{}...", s.chars().take(MAX_QUOTE_CHARS).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Parses an address given in field `field`.
///
/// # Errors
/// [`ApiError::BadRequest`] naming the field.
pub fn parse_address(s: &str, field: &str) -> Result<Address, ApiError> {
    s.parse::<Address>().map_err(|e| {
        ApiError::BadRequest(format!(
            "{field} must be an address (40 hex digits), got '{}': {e}",
            clip(s)
        ))
    })
}

/// Parses a block id: a height (digits) or a 64-digit hash.
///
/// # Errors
/// [`ApiError::BadRequest`] for anything else.
pub fn parse_block_id(s: &str) -> Result<BlockQuery, ApiError> {
    if s.len() == 64 {
        return s
            .parse::<BlockHash>()
            .map(BlockQuery::Hash)
            .map_err(|e| ApiError::BadRequest(format!("bad block hash: {e}")));
    }
    s.parse::<u64>().map(BlockQuery::Height).map_err(|_| {
        ApiError::BadRequest(format!(
            "expected a height or a 64-digit block hash, got '{}'",
            clip(s)
        ))
    })
}

/// A page of the chain as asked for in the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    /// First height (default 0).
    pub from: u64,
    /// Most blocks (default and maximum [`MAX_CHAIN_PAGE`]).
    pub limit: u64,
}

/// Parses `from=H&limit=N` (both optional, nothing else allowed).
///
/// # Errors
/// [`ApiError::BadRequest`] for an unknown parameter, a value that is not a whole number, or a
/// limit outside 1 to [`MAX_CHAIN_PAGE`].
pub fn parse_page(query: Option<&str>) -> Result<PageQuery, ApiError> {
    let mut page = PageQuery {
        from: 0,
        limit: MAX_CHAIN_PAGE,
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "{key} must be a whole number, got '{}'",
                    clip(value)
                ))
            })
        };
        match key {
            "from" => page.from = number()?,
            "limit" => page.limit = number()?,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter '{}' (expected from and limit)",
                    clip(key)
                )))
            }
        }
    }
    if !(1..=MAX_CHAIN_PAGE).contains(&page.limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_CHAIN_PAGE}"
        )));
    }
    Ok(page)
}

/// The height the page after `page` starts at, if the chain of `length` blocks goes on: right
/// after the `shown` blocks the page holds, which may be fewer than its limit when the node's
/// byte cap cut it short.
pub fn next_page(page: PageQuery, shown: usize, length: u64) -> Option<u64> {
    let next = page.from.saturating_add(shown as u64);
    (shown > 0 && next < length).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn a_page_defaults_to_the_first_blocks_up_to_the_bound() {
        assert_eq!(
            parse_page(None).unwrap(),
            PageQuery {
                from: 0,
                limit: MAX_CHAIN_PAGE
            }
        );
        assert_eq!(
            parse_page(Some("from=5&limit=2")).unwrap(),
            PageQuery { from: 5, limit: 2 }
        );
        assert_eq!(parse_page(Some("limit=3&")).unwrap().limit, 3);
    }

    #[test]
    fn a_page_refuses_unknown_parameters_bad_numbers_and_limits_out_of_bounds() {
        assert!(bad(parse_page(Some("form=1"))).contains("unknown query parameter 'form'"));
        assert!(bad(parse_page(Some("from=-1"))).contains("from must be a whole number"));
        assert!(bad(parse_page(Some("limit="))).contains("limit must be a whole number"));
        assert!(bad(parse_page(Some("limit=0"))).contains("limit must be 1 to 100"));
        assert!(bad(parse_page(Some("limit=101"))).contains("limit must be 1 to 100"));
        assert!(bad(parse_page(Some(&"x".repeat(10_000)))).len() < 200);
    }

    #[test]
    fn the_next_page_is_named_only_while_the_chain_goes_on() {
        let page = PageQuery { from: 0, limit: 2 };
        assert_eq!(next_page(page, 2, 5), Some(2));
        // A page cut short by the byte cap goes on right after its last block.
        assert_eq!(
            next_page(
                PageQuery {
                    from: 0,
                    limit: 100
                },
                7,
                50
            ),
            Some(7)
        );
        assert_eq!(next_page(PageQuery { from: 4, limit: 2 }, 1, 5), None);
        let past = PageQuery {
            from: u64::MAX,
            limit: 2,
        };
        assert_eq!(next_page(past, 0, 5), None);
    }

    #[test]
    fn block_ids_are_heights_or_hashes() {
        assert_eq!(parse_block_id("7").unwrap(), BlockQuery::Height(7));
        let hash = BlockHash([0x11; 32]);
        assert_eq!(
            parse_block_id(&hash.to_string()).unwrap(),
            BlockQuery::Hash(hash)
        );
        assert!(bad(parse_block_id("tip")).contains("height or a 64-digit"));
        assert!(bad(parse_block_id(&"z".repeat(64))).contains("bad block hash"));
    }

    #[test]
    fn json_bodies_name_what_is_wrong() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            amount: u64,
        }
        assert!(bad(parse_json::<Body>(b"")).contains("expected a JSON body"));
        assert!(bad(parse_json::<Body>(b"{")).contains("bad JSON body"));
        assert!(bad(parse_json::<Body>(b"{}")).contains("missing field `amount`"));
        assert!(bad(parse_json::<Body>(br#"{"amount":"5"}"#)).contains("invalid type"));
        assert!(bad(parse_json::<Body>(br#"{"amount":-5}"#)).contains("invalid value"));
        assert_eq!(parse_json::<Body>(br#"{"amount":5}"#).unwrap().amount, 5);
    }

    #[test]
    fn addresses_name_their_field() {
        assert!(bad(parse_address("someone-other-address", "recipient"))
            .starts_with("recipient must be an address"));
        let a = Address([0xab; 20]);
        assert_eq!(parse_address(&a.to_string(), "to").unwrap(), a);
    }
}
