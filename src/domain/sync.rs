use super::text_enum;

text_enum!(Module {
    Contacts => "CONTACTS",
    Accounts => "ACCOUNTS",
});

text_enum!(Direction {
    DeskToSalesforce => "DESK_TO_SALESFORCE",
    SalesforceToDesk => "SALESFORCE_TO_DESK",
});

text_enum!(SyncType {
    TwoWay => "TWO_WAY",
    SalesforceToDesk => "SALESFORCE_TO_DESK",
});

text_enum!(IntegrationStatus {
    NotConnected => "NOT_CONNECTED",
    Active => "ACTIVE",
    Paused => "PAUSED",
    Error => "ERROR",
});

text_enum!(FirstSync {
    NotStarted => "NOT_STARTED",
    Running => "RUNNING",
    Done => "DONE",
});

text_enum!(FailureReason {
    CrmIdAlreadyMapped => "CRM_ID_ALREADY_MAPPED",
    TypeMismatch => "TYPE_MISMATCH",
    MandatoryFieldMissing => "MANDATORY_FIELD_MISSING",
    MissingParameter => "MISSING_PARAMETER",
    InvalidParameter => "INVALID_PARAMETER",
    DuplicateValue => "DUPLICATE_VALUE",
    StringTooLong => "STRING_TOO_LONG",
    MultipleMatches => "MULTIPLE_MATCHES",
    UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
    RateLimited => "RATE_LIMITED",
    Rejected => "REJECTED",
});

impl Module {
    /// The Salesforce object this module syncs with.
    pub fn salesforce_object(self) -> &'static str {
        match self {
            Module::Contacts => "Contact",
            Module::Accounts => "Account",
        }
    }
}

impl FailureReason {
    /// Reasons that clear up on their own; the engine retries them with backoff.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureReason::UpstreamUnavailable | FailureReason::RateLimited
        )
    }

    /// Maps a Salesforce error code to the failure log's reason.
    pub fn from_salesforce(code: &str) -> Self {
        match code {
            "REQUIRED_FIELD_MISSING" => FailureReason::MandatoryFieldMissing,
            "STRING_TOO_LONG" => FailureReason::StringTooLong,
            "DUPLICATE_VALUE" | "DUPLICATES_DETECTED" => FailureReason::DuplicateValue,
            "JSON_PARSER_ERROR" | "INVALID_TYPE" | "INVALID_TYPE_ON_FIELD_IN_RECORD" => {
                FailureReason::TypeMismatch
            }
            "INVALID_FIELD"
            | "INVALID_FIELD_FOR_INSERT_UPDATE"
            | "MALFORMED_ID"
            | "INVALID_EMAIL_ADDRESS"
            | "INVALID_CROSS_REFERENCE_KEY"
            | "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
            | "FIELD_INTEGRITY_EXCEPTION" => FailureReason::InvalidParameter,
            "REQUEST_LIMIT_EXCEEDED" => FailureReason::RateLimited,
            "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" | "UNKNOWN_EXCEPTION" => {
                FailureReason::UpstreamUnavailable
            }
            code if code.starts_with("HTTP_5") => FailureReason::UpstreamUnavailable,
            _ => FailureReason::Rejected,
        }
    }
}
