//! Reading request bodies: like axum's `Json`, but every failure names the field and
//! answers in the API's error shape, so the helpdesk's developer sees
//! `{"code": "missing_field", "field": "contact_name"}` rather than a sentence to parse.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body. An empty body reads as `{}`, so endpoints whose members are all
/// optional need none, and the others report the first missing member.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
        if bytes.is_empty() {
            return parse(b"{}").map(Body);
        }
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        parse(&bytes).map(Body)
    }
}

/// Reads a JSON body into `T`; every failure is a 400 that names the offending member.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("the body is not valid JSON: {inner}"));
        }
        let message = inner.to_string();
        // The path ends at an unknown member or a bad value; a missing member is named only
        // in serde's message (`missing field `x``), below the path of the object lacking it.
        let missing = message.strip_prefix("missing field").and_then(|rest| rest.split('`').nth(1));
        let (code, field) = match missing {
            Some(name) if path == "." => ("missing_field", name.to_string()),
            Some(name) => ("missing_field", format!("{path}.{name}")),
            None if message.starts_with("unknown field") => ("unknown_field", path),
            None => ("invalid_value", path),
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, format!("{field}: {message}")).with_field(field)
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Filing {
        name: String,
        phone: Option<String>,
        count: Option<u8>,
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (r#"{"name": "x", "#, "bad_json", None),
            (r#"{"name": }"#, "bad_json", None),
            (r#"{"phone": "1"}"#, "missing_field", Some("name")),
            (r#"{"name": "x", "phon": "1"}"#, "unknown_field", Some("phon")),
            (r#"{"name": 5}"#, "invalid_value", Some("name")),
            (r#"{"name": "x", "count": 300}"#, "invalid_value", Some("count")),
            (r#"[]"#, "invalid_value", Some(".")),
        ];
        for (body, code, field) in cases {
            let e = parse::<Filing>(body.as_bytes()).unwrap_err();
            assert_eq!((e.code, e.field.as_deref()), (*code, *field), "{body}: {}", e.message);
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
        assert!(parse::<Filing>(br#"{"name": "x"}"#).is_ok());
    }
}
