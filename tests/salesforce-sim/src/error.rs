//! Salesforce's error bodies: arrays with `errorCode` for REST, `statusCode` inside collections.

use serde_json::{Value as Json, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn on(mut self, field: &str) -> Self {
        self.fields.push(field.to_string());
        self
    }

    pub fn not_found() -> Self {
        Self::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    pub fn session() -> Self {
        Self::new(401, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    pub fn malformed_id(label: &str, value: &str) -> Self {
        Self::bad_request(
            "MALFORMED_ID",
            format!("{label}: id value of incorrect type: {value}"),
        )
    }

    /// The REST body: a one-element array.
    pub fn body(&self) -> Json {
        let mut entry = json!({ "message": self.message, "errorCode": self.code });
        if !self.fields.is_empty() {
            entry["fields"] = json!(self.fields);
        }
        json!([entry])
    }

    /// The per-record form used inside sObject Collections results.
    pub fn record_error(&self) -> Json {
        json!({ "statusCode": self.code, "message": self.message, "fields": self.fields })
    }
}
