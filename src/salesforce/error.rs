use serde::Deserialize;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SalesforceError {
    /// The request never got an HTTP answer: refused, reset, timed out.
    #[error("cannot reach Salesforce: {0}")]
    Transport(String),
    /// Salesforce answered with an error.
    #[error("Salesforce {status} {error_code}: {message}")]
    Api {
        status: u16,
        error_code: String,
        message: String,
        fields: Vec<String>,
    },
    /// The org's API allocation is used up (403 `REQUEST_LIMIT_EXCEEDED`).
    #[error("Salesforce API limit reached: {0}")]
    RateLimited(String),
    /// The token endpoint refused the credentials.
    #[error("Salesforce refused the credentials: {error}: {description}")]
    AuthFailed { error: String, description: String },
    /// An answer that does not have the shape Salesforce documents.
    #[error("unexpected answer from Salesforce: {0}")]
    Decode(String),
}

impl SalesforceError {
    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            SalesforceError::Transport(_) | SalesforceError::RateLimited(_) => true,
            SalesforceError::Api {
                status, error_code, ..
            } => {
                busy(*status)
                    || error_code == "UNABLE_TO_LOCK_ROW"
                    || error_code == "SERVER_UNAVAILABLE"
                    || error_code == SIGN_IN_BUSY
            }
            SalesforceError::AuthFailed { .. } | SalesforceError::Decode(_) => false,
        }
    }

    /// Whether the error proves Salesforce ran nothing of the request: it was refused whole
    /// before it ran (out of budget, signed out, malformed), or never sent (the sign-in was
    /// refused). A timeout, a dropped connection or a failure of the server's own proves
    /// nothing.
    pub fn ran_nothing(&self) -> bool {
        match self {
            SalesforceError::RateLimited(_) | SalesforceError::AuthFailed { .. } => true,
            SalesforceError::Api { status, .. } => (400..500).contains(status) && !busy(*status),
            SalesforceError::Transport(_) | SalesforceError::Decode(_) => false,
        }
    }

    /// The Salesforce error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SalesforceError::Api { error_code, .. } => Some(error_code),
            SalesforceError::RateLimited(_) => Some("REQUEST_LIMIT_EXCEEDED"),
            _ => None,
        }
    }
}

/// The code of a sign-in the token endpoint turned away for a reason that passes (see
/// `TokenError::passing`), not for the credentials.
pub const SIGN_IN_BUSY: &str = "SIGN_IN_BUSY";

/// Whether an HTTP status says the server, or an edge before it, could not take the request
/// now (a timeout, throttling, a failure of its own) rather than refusing it: asked again
/// later, it may be answered.
pub(super) fn busy(status: u16) -> bool {
    status >= 500 || matches!(status, 408 | 420 | 429)
}

#[derive(Deserialize)]
struct ApiErrorItem {
    message: String,
    #[serde(rename = "errorCode")]
    error_code: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// Decodes a REST error body: a JSON array of `{message, errorCode, fields}`.
pub(super) fn from_response(status: u16, body: &[u8]) -> SalesforceError {
    let first = serde_json::from_slice::<Vec<ApiErrorItem>>(body)
        .ok()
        .and_then(|items| items.into_iter().next());
    match first {
        Some(item) if status == 403 && item.error_code == "REQUEST_LIMIT_EXCEEDED" => {
            SalesforceError::RateLimited(item.message)
        }
        Some(item) => SalesforceError::Api {
            status,
            error_code: item.error_code,
            message: item.message,
            fields: item.fields,
        },
        None => SalesforceError::Api {
            status,
            error_code: format!("HTTP_{status}"),
            message: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            fields: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_arrays_decode_into_codes() {
        let body = br#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]"#;
        let err = from_response(400, body);
        assert_eq!(err.code(), Some("REQUIRED_FIELD_MISSING"));
        assert!(!err.is_transient());
        let limited = from_response(403, br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#);
        assert!(matches!(limited, SalesforceError::RateLimited(_)));
        assert!(limited.is_transient());
        assert_eq!(
            from_response(502, b"<html>bad gateway</html>").code(),
            Some("HTTP_502")
        );
    }
}
