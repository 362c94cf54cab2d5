//! Every failure a resolver can return, mapped once to a GraphQL error with `extensions.code`.
//! `ApiError` deliberately has no `Display`, so `?` cannot turn an internal error into a
//! client message by accident.

use async_graphql::ErrorExtensions;

use crate::domain::Invalid;
use crate::salesforce::SalesforceError;
use crate::store::StoreError;
use crate::sync::SyncError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    BadUserInput,
    NotFound,
    Conflict,
    UpstreamUnavailable,
    /// Salesforce is not connected, so there is nothing to show beside desk records.
    IntegrationUnavailable,
    /// A subscriber that fell behind the events it follows and missed some.
    FellBehind,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::NotFound => "NOT_FOUND",
            Code::Conflict => "CONFLICT",
            Code::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Code::IntegrationUnavailable => "INTEGRATION_UNAVAILABLE",
            Code::FellBehind => "FELL_BEHIND",
            Code::Internal => "INTERNAL",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        Invalid::new(field, message).into()
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    /// Logs the detail and returns an opaque error.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(Code::Internal, "internal error; the server log has details")
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self {
            code: Code::BadUserInput,
            message: format!("{}: {}", invalid.field, invalid.message),
            field: Some(invalid.field),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::new(Code::NotFound, format!("{what} not found")),
            StoreError::Conflict(message) => Self::new(Code::Conflict, message),
            StoreError::Invalid(invalid) => invalid.into(),
            contention if contention.is_contention() => Self::new(
                Code::Conflict,
                "another change was being made at the same moment, and this one was not made: send it again",
            ),
            StoreError::Db(db) => Self::internal(&db),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(err: SyncError) -> Self {
        match err {
            SyncError::Invalid(invalid) => invalid.into(),
            SyncError::Refused(message) => Self::new(Code::BadUserInput, message),
            SyncError::NotConnected
            | SyncError::WrongState(_)
            | SyncError::FieldGone(_)
            | SyncError::Stopped
            | SyncError::LockLost => Self::new(Code::Conflict, err.to_string()),
            // Refused credentials are not an outage: asking again cannot help, reconnecting can.
            SyncError::Upstream(SalesforceError::AuthFailed { error, description }) => Self::new(
                Code::Conflict,
                format!(
                    "Salesforce refused the credentials ({error}: {description}); connect Salesforce again with connectSalesforce"
                ),
            ),
            SyncError::Upstream(e) => Self::new(
                Code::UpstreamUnavailable,
                format!("Salesforce could not answer: {e}"),
            ),
            SyncError::Store(e) => e.into(),
            // Saved under another key (a replica without the shared one, a data dir moved):
            // the message says where this process's key came from, and what to do.
            SyncError::Vault(e @ crate::sync::VaultError::Undecryptable(_)) => {
                Self::new(Code::Conflict, e.to_string())
            }
            SyncError::Vault(e) => Self::internal(&e),
            SyncError::Noted { error, note } => {
                let mut api = Self::from(*error);
                api.message = format!("{}. {note}", api.message);
                api
            }
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        async_graphql::Error::new(err.message).extend_with(|_, ext| {
            ext.set("code", err.code.as_str());
            if let Some(field) = &err.field {
                ext.set("field", field.as_str());
            }
        })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
