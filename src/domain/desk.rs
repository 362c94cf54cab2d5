//! Desk records as a person submits them (`*Input`, unchecked) and as the store writes them
//! (`*Fields`, validated). Lengths follow Salesforce's, so a valid desk value also fits there.
//! An update applies a patch to the stored record's input and validates the result whole.

use super::{
    AccountId, AgentId, ContactId, Email, Invalid, Name, OptionalText, TicketPriority, TicketStatus,
};

/// One field of a patch: `None` keeps the stored value, `Some(None)` clears it.
pub type Change<T> = Option<Option<T>>;

fn apply<T: Clone>(change: &Change<T>, current: &mut Option<T>) {
    if let Some(value) = change {
        *current = value.clone();
    }
}

macro_rules! patchable {
    ($input:ident, $patch:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $input { $(pub $field: Option<$ty>),* }

        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $patch { $(pub $field: Change<$ty>),* }

        impl $patch {
            pub fn apply(&self, mut input: $input) -> $input {
                $(apply(&self.$field, &mut input.$field);)*
                input
            }

            pub fn is_empty(&self) -> bool {
                true $(&& self.$field.is_none())*
            }
        }
    };
}

patchable!(
    ContactInput,
    ContactPatch {
        first_name: String,
        last_name: String,
        email: String,
        phone: String,
        mobile: String,
        title: String,
        account_id: AccountId,
        mailing_street: String,
        mailing_city: String,
        mailing_state: String,
        mailing_postal_code: String,
        mailing_country: String,
        description: String,
    }
);

patchable!(
    AccountInput,
    AccountPatch {
        name: String,
        website: String,
        phone: String,
        industry: String,
        account_type: String,
        // Wider than the column: a count read from Salesforce beyond an i32 is refused by
        // `validate` for what it is, naming the field.
        employees: i64,
        annual_revenue: f64,
        billing_street: String,
        billing_city: String,
        billing_state: String,
        billing_postal_code: String,
        billing_country: String,
        description: String,
    }
);

patchable!(
    TicketInput,
    TicketPatch {
        subject: String,
        description: String,
        status: TicketStatus,
        priority: TicketPriority,
        contact_id: ContactId,
        account_id: AccountId,
        assignee_id: AgentId,
    }
);

const LONG_TEXT: usize = 32_000;

fn text(field: &str, value: &Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    OptionalText::parse(field, value.as_deref(), max)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContactFields {
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: Option<Email>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub title: Option<String>,
    pub account_id: Option<AccountId>,
    pub mailing_street: Option<String>,
    pub mailing_city: Option<String>,
    pub mailing_state: Option<String>,
    pub mailing_postal_code: Option<String>,
    pub mailing_country: Option<String>,
    pub description: Option<String>,
}

/// The longest contact email: Salesforce's Contact.Email holds 80 characters.
pub const CONTACT_EMAIL_LEN: usize = 80;
/// The digits of an account's head count: Salesforce's Account.NumberOfEmployees holds 8.
pub const EMPLOYEES_DIGITS: u32 = 8;
const MAX_EMPLOYEES: i64 = 10_i64.pow(EMPLOYEES_DIGITS) - 1;
/// Salesforce's Account.AnnualRevenue holds 18 digits.
const MAX_REVENUE: f64 = 1e18;

impl ContactInput {
    pub fn validate(&self) -> Result<ContactFields, Invalid> {
        Ok(ContactFields {
            first_name: text("firstName", &self.first_name, 40)?,
            last_name: Name::parse(
                "lastName",
                self.last_name.as_deref().unwrap_or_default(),
                80,
            )?
            .into_inner(),
            email: match OptionalText::parse("email", self.email.as_deref(), CONTACT_EMAIL_LEN)? {
                Some(raw) => Some(Email::parse("email", &raw)?),
                None => None,
            },
            phone: text("phone", &self.phone, 40)?,
            mobile: text("mobile", &self.mobile, 40)?,
            title: text("title", &self.title, 128)?,
            account_id: self.account_id,
            mailing_street: text("mailingStreet", &self.mailing_street, 255)?,
            mailing_city: text("mailingCity", &self.mailing_city, 40)?,
            mailing_state: text("mailingState", &self.mailing_state, 80)?,
            mailing_postal_code: text("mailingPostalCode", &self.mailing_postal_code, 20)?,
            mailing_country: text("mailingCountry", &self.mailing_country, 80)?,
            description: text("description", &self.description, LONG_TEXT)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountFields {
    pub name: String,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub industry: Option<String>,
    pub account_type: Option<String>,
    pub employees: Option<i32>,
    pub annual_revenue: Option<f64>,
    pub billing_street: Option<String>,
    pub billing_city: Option<String>,
    pub billing_state: Option<String>,
    pub billing_postal_code: Option<String>,
    pub billing_country: Option<String>,
    pub description: Option<String>,
}

impl AccountInput {
    pub fn validate(&self) -> Result<AccountFields, Invalid> {
        // Salesforce's NumberOfEmployees holds 8 digits, AnnualRevenue 18.
        if let Some(n) = self.employees.filter(|n| !(0..=MAX_EMPLOYEES).contains(n)) {
            return Err(Invalid::new(
                "employees",
                format!("must be between 0 and {MAX_EMPLOYEES} (got {n})"),
            ));
        }
        if let Some(r) = self
            .annual_revenue
            .filter(|r| !r.is_finite() || *r < 0.0 || *r >= MAX_REVENUE)
        {
            return Err(Invalid::new(
                "annualRevenue",
                format!("must be a non-negative amount under 10^18 (got {r})"),
            ));
        }
        Ok(AccountFields {
            name: Name::parse("name", self.name.as_deref().unwrap_or_default(), 255)?.into_inner(),
            website: text("website", &self.website, 255)?,
            phone: text("phone", &self.phone, 40)?,
            industry: text("industry", &self.industry, 255)?,
            account_type: text("accountType", &self.account_type, 255)?,
            // Within 0..=MAX_EMPLOYEES (above), so it fits.
            employees: self.employees.and_then(|n| i32::try_from(n).ok()),
            annual_revenue: self.annual_revenue,
            billing_street: text("billingStreet", &self.billing_street, 255)?,
            billing_city: text("billingCity", &self.billing_city, 40)?,
            billing_state: text("billingState", &self.billing_state, 80)?,
            billing_postal_code: text("billingPostalCode", &self.billing_postal_code, 20)?,
            billing_country: text("billingCountry", &self.billing_country, 80)?,
            description: text("description", &self.description, LONG_TEXT)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TicketFields {
    pub subject: String,
    pub description: Option<String>,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub contact_id: Option<ContactId>,
    pub account_id: Option<AccountId>,
    pub assignee_id: Option<AgentId>,
}

impl TicketInput {
    pub fn validate(&self) -> Result<TicketFields, Invalid> {
        Ok(TicketFields {
            subject: Name::parse("subject", self.subject.as_deref().unwrap_or_default(), 255)?
                .into_inner(),
            description: text("description", &self.description, LONG_TEXT)?,
            status: self.status.unwrap_or(TicketStatus::Open),
            priority: self.priority.unwrap_or(TicketPriority::Medium),
            contact_id: self.contact_id,
            account_id: self.account_id,
            assignee_id: self.assignee_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_only_what_it_names_and_can_clear() {
        let stored = ContactInput {
            last_name: Some("Lovelace".into()),
            email: Some("ada@example.com".into()),
            title: Some("Countess".into()),
            ..Default::default()
        };
        let patch = ContactPatch {
            title: Some(None),
            phone: Some(Some("+44 20".into())),
            ..Default::default()
        };
        let next = patch.apply(stored).validate().unwrap();
        assert_eq!(next.last_name, "Lovelace");
        assert_eq!(next.title, None);
        assert_eq!(next.phone.as_deref(), Some("+44 20"));
        assert_eq!(next.email.unwrap().as_str(), "ada@example.com");
    }

    #[test]
    fn clearing_a_required_field_is_refused_by_name() {
        let stored = ContactInput {
            last_name: Some("Lovelace".into()),
            ..Default::default()
        };
        let patch = ContactPatch {
            last_name: Some(None),
            ..Default::default()
        };
        assert_eq!(
            patch.apply(stored).validate().unwrap_err().field,
            "lastName"
        );
    }

    #[test]
    fn account_numbers_must_be_sensible() {
        let input = AccountInput {
            name: Some("Acme".into()),
            employees: Some(-3),
            ..Default::default()
        };
        assert_eq!(input.validate().unwrap_err().field, "employees");
    }
}
