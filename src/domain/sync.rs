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
    AccountNotSynced => "ACCOUNT_NOT_SYNCED",
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

/// When a record that failed for a transient reason is tried again: after `backoff`, doubling
/// with each attempt (at most an hour); after `max_attempts` it waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub backoff: std::time::Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            backoff: std::time::Duration::from_secs(30),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// The longest wait before an automatic retry.
    pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

    /// The time of the next automatic attempt after `attempts` failed ones, or `None` when the
    /// record waits for a manual retry (a permanent reason, or attempts used up).
    pub fn next_attempt(
        &self,
        reason: FailureReason,
        attempts: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        if !reason.is_transient() || attempts >= self.max_attempts {
            return None;
        }
        let wait = self
            .backoff
            .saturating_mul(1 << attempts.saturating_sub(1).min(16))
            .min(Self::MAX_WAIT);
        Some(now + chrono::Duration::from_std(wait).unwrap_or_default())
    }
}

impl FailureReason {
    /// Reasons that clear up on their own; the engine retries them with backoff.
    pub const PASSING: [Self; 3] = [
        FailureReason::UpstreamUnavailable,
        FailureReason::RateLimited,
        FailureReason::AccountNotSynced,
    ];

    /// Whether the reason clears up on its own ([`FailureReason::PASSING`]).
    pub fn is_transient(self) -> bool {
        Self::PASSING.contains(&self)
    }

    /// Maps a Salesforce error (its code, and its message) to the failure log's reason.
    pub fn from_salesforce(code: &str, message: &str) -> Self {
        match code {
            // A trigger or flow that could not lock a row it writes: a busy moment, as a
            // locked row of the record's own is.
            "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" if message.contains(": UNABLE_TO_LOCK_ROW") => {
                FailureReason::UpstreamUnavailable
            }
            "REQUEST_RUNNING_TOO_LONG" => FailureReason::UpstreamUnavailable,
            "REQUIRED_FIELD_MISSING" => FailureReason::MandatoryFieldMissing,
            "MISSING_ARGUMENT" => FailureReason::MissingParameter,
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
            | "NUMBER_OUTSIDE_VALID_RANGE"
            | "FIELD_INTEGRITY_EXCEPTION" => FailureReason::InvalidParameter,
            "REQUEST_LIMIT_EXCEEDED" | "HTTP_420" | "HTTP_429" => FailureReason::RateLimited,
            "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" | "UNKNOWN_EXCEPTION" => {
                FailureReason::UpstreamUnavailable
            }
            "HTTP_408" => FailureReason::UpstreamUnavailable,
            code if code.starts_with("HTTP_5") => FailureReason::UpstreamUnavailable,
            _ => FailureReason::Rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_trigger_that_met_a_locked_row_is_a_busy_moment_and_its_other_refusals_are_not() {
        let locked = "Contact_After: execution of AfterUpdate caused by: System.DmlException: Update failed. First exception on row 0; first error: UNABLE_TO_LOCK_ROW, unable to obtain exclusive access to this record";
        assert_eq!(
            FailureReason::from_salesforce("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", locked),
            FailureReason::UpstreamUnavailable
        );
        let flow = "We can't save this record because the “Update Account” process failed. This error occurred when the flow tried to update records: UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record or 1 records.";
        assert_eq!(
            FailureReason::from_salesforce("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", flow),
            FailureReason::UpstreamUnavailable
        );
        assert_eq!(
            FailureReason::from_salesforce(
                "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                "Contact_After: execution of AfterUpdate caused by: System.NullPointerException"
            ),
            FailureReason::Rejected
        );
        assert_eq!(
            FailureReason::from_salesforce(
                "REQUEST_RUNNING_TOO_LONG",
                "Your request was running for too long"
            ),
            FailureReason::UpstreamUnavailable
        );
    }

    #[test]
    fn transient_failures_back_off_exponentially_up_to_a_bound() {
        let policy = RetryPolicy {
            backoff: Duration::from_secs(30),
            max_attempts: 4,
        };
        let now = chrono::Utc::now();
        let wait = |attempts| {
            policy
                .next_attempt(FailureReason::UpstreamUnavailable, attempts, now)
                .map(|at| (at - now).num_seconds())
        };
        assert_eq!(wait(1), Some(30));
        assert_eq!(wait(2), Some(60));
        assert_eq!(wait(3), Some(120));
        assert_eq!(wait(4), None, "attempts used up: a person retries");
        assert_eq!(
            policy.next_attempt(FailureReason::StringTooLong, 1, now),
            None,
            "permanent reasons wait for a person"
        );
        let long = RetryPolicy {
            backoff: Duration::from_secs(600),
            max_attempts: 100,
        };
        assert_eq!(
            long.next_attempt(FailureReason::RateLimited, 40, now)
                .map(|at| (at - now).num_seconds()),
            Some(3600)
        );
    }
}
