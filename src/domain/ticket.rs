use super::text_enum;

text_enum!(TicketStatus {
    Open => "OPEN",
    OnHold => "ON_HOLD",
    Escalated => "ESCALATED",
    Closed => "CLOSED",
});

text_enum!(TicketPriority {
    Low => "LOW",
    Medium => "MEDIUM",
    High => "HIGH",
    Urgent => "URGENT",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_stored_text() {
        for status in TicketStatus::ALL {
            assert_eq!(status.as_str().parse::<TicketStatus>().unwrap(), *status);
        }
        assert!("open".parse::<TicketStatus>().is_err());
    }
}
