//! Desk records: contacts, accounts and tickets, their queries and mutations.

use async_graphql::connection::Connection;
use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use entity::{account, agent, contact, ticket};

use super::paging::{
    IdCursor, List, Listed, Total, connection, connection_complexity, list_complexity,
    page_request, parse_id,
};
use super::{ApiError, ApiResult, ContextExt};
use crate::domain::{
    AccountId, AccountInput, AccountPatch, AgentId, CONTACT_EMAIL_LEN, Change, ContactId,
    ContactInput, ContactPatch, TicketId, TicketInput, TicketPatch, search_term, since,
};
use crate::store::{AccountFilter, ContactFilter, CreateKey, TicketFilter};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::TicketStatus")]
pub enum TicketStatus {
    Open,
    OnHold,
    Escalated,
    Closed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::TicketPriority")]
pub enum TicketPriority {
    Low,
    Medium,
    High,
    Urgent,
}

/// A customer of the help desk.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Contact {
    pub id: ID,
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub title: Option<String>,
    pub mailing_street: Option<String>,
    pub mailing_city: Option<String>,
    pub mailing_state: Option<String>,
    pub mailing_postal_code: Option<String>,
    pub mailing_country: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while the contact is in the recycle bin.
    pub deleted_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub account_id: Option<AccountId>,
    /// The row, for the Salesforce panel.
    #[graphql(skip)]
    pub model: contact::Model,
}

#[ComplexObject]
impl Contact {
    /// The contact's full name, first name first.
    async fn name(&self) -> String {
        match &self.first_name {
            Some(first) => format!("{first} {}", self.last_name),
            None => self.last_name.clone(),
        }
    }

    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<Account>> {
        load_account(ctx, self.account_id).await
    }

    /// The linked Salesforce contact; `null` when the contact is not linked.
    async fn salesforce(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<super::panels::SalesforceContact>> {
        super::panels::contact_panel(ctx, &self.model).await
    }
}

impl From<contact::Model> for Contact {
    fn from(m: contact::Model) -> Self {
        Self {
            model: m.clone(),
            id: ID(m.id.to_string()),
            first_name: m.first_name,
            last_name: m.last_name,
            email: m.email,
            phone: m.phone,
            mobile: m.mobile,
            title: m.title,
            mailing_street: m.mailing_street,
            mailing_city: m.mailing_city,
            mailing_state: m.mailing_state,
            mailing_postal_code: m.mailing_postal_code,
            mailing_country: m.mailing_country,
            description: m.description,
            created_at: m.created_at,
            updated_at: m.updated_at,
            deleted_at: m.deleted_at,
            account_id: m.account_id,
        }
    }
}

/// A company the help desk serves.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Account {
    pub id: ID,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while the account is in the recycle bin.
    pub deleted_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub raw_id: AccountId,
    /// The row, for the Salesforce panel.
    #[graphql(skip)]
    pub model: account::Model,
}

#[ComplexObject]
impl Account {
    /// The account's live contacts.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Listed<Contact>> {
        let page = page_request(ctx.page_sizes(), List::ContactsOf, first, after)?;
        let page = ctx
            .loader()
            .load_one(super::loaders::ContactsOf(self.raw_id, page))
            .await?
            .unwrap_or_else(|| crate::store::Page {
                items: Vec::new(),
                has_next: false,
                has_previous: page.after.is_some(),
            });
        let total = Total::ContactsOf(self.raw_id);
        Ok(connection(page, total, |m| m.id.0, Contact::from))
    }

    /// The linked Salesforce account; `null` when the account is not linked.
    async fn salesforce(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<super::panels::SalesforceAccount>> {
        super::panels::account_panel(ctx, &self.model).await
    }
}

impl From<account::Model> for Account {
    fn from(m: account::Model) -> Self {
        Self {
            model: m.clone(),
            id: ID(m.id.to_string()),
            raw_id: m.id,
            name: m.name,
            website: m.website,
            phone: m.phone,
            industry: m.industry,
            account_type: m.account_type,
            employees: m.employees,
            annual_revenue: m.annual_revenue,
            billing_street: m.billing_street,
            billing_city: m.billing_city,
            billing_state: m.billing_state,
            billing_postal_code: m.billing_postal_code,
            billing_country: m.billing_country,
            description: m.description,
            created_at: m.created_at,
            updated_at: m.updated_at,
            deleted_at: m.deleted_at,
        }
    }
}

/// A support agent.
#[derive(SimpleObject)]
pub struct Agent {
    pub id: ID,
    pub name: String,
    pub email: String,
}

impl From<agent::Model> for Agent {
    fn from(m: agent::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            name: m.name,
            email: m.email,
        }
    }
}

/// A customer's support request.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Ticket {
    pub id: ID,
    pub subject: String,
    pub description: Option<String>,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    pub contact_id: Option<ContactId>,
    #[graphql(skip)]
    pub account_id: Option<AccountId>,
    #[graphql(skip)]
    pub assignee_id: Option<AgentId>,
    /// The requester, when it was read with the ticket.
    #[graphql(skip)]
    pub requester: Option<Option<contact::Model>>,
}

#[ComplexObject]
impl Ticket {
    /// The requester; `null` once the contact is purged.
    async fn contact(&self, ctx: &Context<'_>) -> ApiResult<Option<Contact>> {
        if let Some(requester) = &self.requester {
            return Ok(requester.clone().map(Contact::from));
        }
        let Some(id) = self.contact_id else {
            return Ok(None);
        };
        let model = ctx.loader().load_one(id).await?;
        Ok(model.map(Contact::from))
    }

    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<Account>> {
        load_account(ctx, self.account_id).await
    }

    async fn assignee(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        let Some(id) = self.assignee_id else {
            return Ok(None);
        };
        let model = ctx.loader().load_one(id).await?;
        Ok(model.map(Agent::from))
    }
}

impl TryFrom<ticket::Model> for Ticket {
    type Error = ApiError;

    fn try_from(m: ticket::Model) -> ApiResult<Self> {
        let status: crate::domain::TicketStatus = m
            .status
            .parse()
            .map_err(|e: String| ApiError::internal(&e))?;
        let priority: crate::domain::TicketPriority = m
            .priority
            .parse()
            .map_err(|e: String| ApiError::internal(&e))?;
        Ok(Self {
            id: ID(m.id.to_string()),
            subject: m.subject,
            description: m.description,
            status: status.into(),
            priority: priority.into(),
            created_at: m.created_at,
            updated_at: m.updated_at,
            contact_id: m.contact_id,
            account_id: m.account_id,
            assignee_id: m.assignee_id,
            requester: None,
        })
    }
}

pub(super) async fn load_account(
    ctx: &Context<'_>,
    id: Option<AccountId>,
) -> ApiResult<Option<Account>> {
    let Some(id) = id else { return Ok(None) };
    let model = ctx.loader().load_one(id).await?;
    Ok(model.map(Account::from))
}

/// The longest name search: no stored name (an account's, or a contact's first and last
/// names together) is longer.
const NAME_TERM_CHARS: usize = 255;

#[derive(InputObject, Default)]
pub struct ContactsFilter {
    /// Exact email, ignoring case.
    pub email: Option<String>,
    /// Part of the name ("Ada", "love", "ada lovelace"), ignoring case in any script.
    pub name: Option<String>,
    pub account_id: Option<ID>,
    /// Changed, or moved to the recycle bin, at or after this time (those moved there are
    /// listed with `deleted: true`; purged ones with neither: `deskChanges` tells of a
    /// purge). A change is stamped as it is made, a moment before it commits: poll with a
    /// few seconds' overlap, or follow `deskChanges`.
    pub updated_since: Option<DateTime<Utc>>,
    /// List the recycle bin instead of live contacts.
    #[graphql(default)]
    pub deleted: bool,
}

#[derive(InputObject, Default)]
pub struct AccountsFilter {
    /// Part of the account name, ignoring case in any script.
    pub name: Option<String>,
    /// Changed, or moved to the recycle bin, at or after this time (those moved there are
    /// listed with `deleted: true`; purged ones with neither: `deskChanges` tells of a
    /// purge). A change is stamped as it is made, a moment before it commits: poll with a
    /// few seconds' overlap, or follow `deskChanges`.
    pub updated_since: Option<DateTime<Utc>>,
    /// List the recycle bin instead of live accounts.
    #[graphql(default)]
    pub deleted: bool,
}

#[derive(InputObject, Default)]
pub struct TicketsFilter {
    pub status: Option<TicketStatus>,
    pub contact_id: Option<ID>,
    pub account_id: Option<ID>,
    pub assignee_id: Option<ID>,
    /// Changed at or after this time. A change is stamped as it is made, a moment before it
    /// commits: poll with a few seconds' overlap, or follow `deskChanges`.
    pub updated_since: Option<DateTime<Utc>>,
}

fn account_id(field: &str, id: &ID) -> ApiResult<AccountId> {
    parse_id(field, id, AccountId)
}

fn contact_id(field: &str, id: &ID) -> ApiResult<ContactId> {
    parse_id(field, id, ContactId)
}

fn optional<T>(field: &str, id: Option<&ID>, make: fn(i64) -> T) -> ApiResult<Option<T>> {
    id.map(|id| parse_id(field, id, make)).transpose()
}

fn change<T>(value: MaybeUndefined<T>) -> Change<T> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

/// A change to a field that always holds a value: `null` is refused rather than read as the
/// field's default, which would quietly reopen a closed ticket.
fn change_kept<T>(field: &str, value: MaybeUndefined<T>) -> ApiResult<Change<T>> {
    match value {
        MaybeUndefined::Null => Err(ApiError::bad_input(
            field,
            "cannot be cleared; leave it out to keep its value, or give another",
        )),
        value => Ok(change(value)),
    }
}

fn change_id<T>(
    field: &str,
    value: MaybeUndefined<ID>,
    make: fn(i64) -> T,
) -> ApiResult<Change<T>> {
    Ok(match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(id) => Some(Some(parse_id(field, &id, make)?)),
    })
}

/// The key a create was sent with, checked, and the create it names (`request`).
fn create_key(
    ctx: &Context<'_>,
    key: Option<String>,
    request: &impl serde::Serialize,
) -> ApiResult<Option<CreateKey>> {
    let Some(key) = key else {
        return Ok(None);
    };
    if key.is_empty() || key.chars().count() > 255 || key.chars().any(char::is_control) {
        return Err(ApiError::bad_input(
            "idempotencyKey",
            "must be 1 to 255 characters, none of them control characters",
        ));
    }
    Ok(Some(CreateKey {
        agent: ctx.viewer()?.agent_id,
        key,
        // Inputs are plain data: they always serialize.
        request: serde_json::to_string(request).unwrap_or_default(),
    }))
}

#[derive(InputObject)]
pub struct CreateContactInput {
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub title: Option<String>,
    pub account_id: Option<ID>,
    pub mailing_street: Option<String>,
    pub mailing_city: Option<String>,
    pub mailing_state: Option<String>,
    pub mailing_postal_code: Option<String>,
    pub mailing_country: Option<String>,
    pub description: Option<String>,
}

impl CreateContactInput {
    fn into_domain(self) -> ApiResult<ContactInput> {
        Ok(ContactInput {
            account_id: optional("accountId", self.account_id.as_ref(), AccountId)?,
            first_name: self.first_name,
            last_name: Some(self.last_name),
            email: self.email,
            phone: self.phone,
            mobile: self.mobile,
            title: self.title,
            mailing_street: self.mailing_street,
            mailing_city: self.mailing_city,
            mailing_state: self.mailing_state,
            mailing_postal_code: self.mailing_postal_code,
            mailing_country: self.mailing_country,
            description: self.description,
        })
    }
}

/// Fields to change; a field left out keeps its value, `null` clears it.
#[derive(InputObject)]
pub struct ContactPatchInput {
    pub first_name: MaybeUndefined<String>,
    pub last_name: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub mobile: MaybeUndefined<String>,
    pub title: MaybeUndefined<String>,
    /// `null` also takes the contact out of the Salesforce account it stayed in when its
    /// desk account was purged.
    pub account_id: MaybeUndefined<ID>,
    pub mailing_street: MaybeUndefined<String>,
    pub mailing_city: MaybeUndefined<String>,
    pub mailing_state: MaybeUndefined<String>,
    pub mailing_postal_code: MaybeUndefined<String>,
    pub mailing_country: MaybeUndefined<String>,
    pub description: MaybeUndefined<String>,
}

impl ContactPatchInput {
    fn into_domain(self) -> ApiResult<ContactPatch> {
        Ok(ContactPatch {
            account_id: change_id("accountId", self.account_id, AccountId)?,
            first_name: change(self.first_name),
            last_name: change(self.last_name),
            email: change(self.email),
            phone: change(self.phone),
            mobile: change(self.mobile),
            title: change(self.title),
            mailing_street: change(self.mailing_street),
            mailing_city: change(self.mailing_city),
            mailing_state: change(self.mailing_state),
            mailing_postal_code: change(self.mailing_postal_code),
            mailing_country: change(self.mailing_country),
            description: change(self.description),
        })
    }
}

#[derive(InputObject)]
pub struct CreateAccountInput {
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

impl From<CreateAccountInput> for AccountInput {
    fn from(i: CreateAccountInput) -> Self {
        AccountInput {
            name: Some(i.name),
            website: i.website,
            phone: i.phone,
            industry: i.industry,
            account_type: i.account_type,
            employees: i.employees.map(i64::from),
            annual_revenue: i.annual_revenue,
            billing_street: i.billing_street,
            billing_city: i.billing_city,
            billing_state: i.billing_state,
            billing_postal_code: i.billing_postal_code,
            billing_country: i.billing_country,
            description: i.description,
        }
    }
}

/// Fields to change; a field left out keeps its value, `null` clears it.
#[derive(InputObject)]
pub struct AccountPatchInput {
    pub name: MaybeUndefined<String>,
    pub website: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub industry: MaybeUndefined<String>,
    pub account_type: MaybeUndefined<String>,
    pub employees: MaybeUndefined<i32>,
    pub annual_revenue: MaybeUndefined<f64>,
    pub billing_street: MaybeUndefined<String>,
    pub billing_city: MaybeUndefined<String>,
    pub billing_state: MaybeUndefined<String>,
    pub billing_postal_code: MaybeUndefined<String>,
    pub billing_country: MaybeUndefined<String>,
    pub description: MaybeUndefined<String>,
}

impl From<AccountPatchInput> for AccountPatch {
    fn from(i: AccountPatchInput) -> Self {
        AccountPatch {
            name: change(i.name),
            website: change(i.website),
            phone: change(i.phone),
            industry: change(i.industry),
            account_type: change(i.account_type),
            employees: change(i.employees.map_value(i64::from)),
            annual_revenue: change(i.annual_revenue),
            billing_street: change(i.billing_street),
            billing_city: change(i.billing_city),
            billing_state: change(i.billing_state),
            billing_postal_code: change(i.billing_postal_code),
            billing_country: change(i.billing_country),
            description: change(i.description),
        }
    }
}

#[derive(InputObject)]
pub struct CreateTicketInput {
    pub subject: String,
    pub description: Option<String>,
    /// Defaults to `OPEN`.
    pub status: Option<TicketStatus>,
    /// Defaults to `MEDIUM`.
    pub priority: Option<TicketPriority>,
    pub contact_id: Option<ID>,
    /// Left out, the contact's account; `null`, none.
    pub account_id: MaybeUndefined<ID>,
    pub assignee_id: Option<ID>,
}

impl CreateTicketInput {
    /// The ticket's fields, and whether its account was given (`null` included).
    fn into_domain(self) -> ApiResult<(TicketInput, bool)> {
        let account_named = !self.account_id.is_undefined();
        let input = TicketInput {
            subject: Some(self.subject),
            description: self.description,
            status: self.status.map(Into::into),
            priority: self.priority.map(Into::into),
            contact_id: optional("contactId", self.contact_id.as_ref(), ContactId)?,
            account_id: optional("accountId", self.account_id.value(), AccountId)?,
            assignee_id: optional("assigneeId", self.assignee_id.as_ref(), AgentId)?,
        };
        Ok((input, account_named))
    }
}

/// Fields to change; a field left out keeps its value, `null` clears it (the subject,
/// status and priority always hold one).
#[derive(InputObject)]
pub struct TicketPatchInput {
    pub subject: MaybeUndefined<String>,
    pub description: MaybeUndefined<String>,
    pub status: MaybeUndefined<TicketStatus>,
    pub priority: MaybeUndefined<TicketPriority>,
    pub contact_id: MaybeUndefined<ID>,
    pub account_id: MaybeUndefined<ID>,
    pub assignee_id: MaybeUndefined<ID>,
}

impl TicketPatchInput {
    fn into_domain(self) -> ApiResult<TicketPatch> {
        Ok(TicketPatch {
            subject: change(self.subject),
            description: change(self.description),
            status: change_kept("status", self.status.map_value(Into::into))?,
            priority: change_kept("priority", self.priority.map_value(Into::into))?,
            contact_id: change_id("contactId", self.contact_id, ContactId)?,
            account_id: change_id("accountId", self.account_id, AccountId)?,
            assignee_id: change_id("assigneeId", self.assignee_id, AgentId)?,
        })
    }
}

#[derive(Default)]
pub struct DeskQuery;

#[Object]
impl DeskQuery {
    /// A contact by id, including one in the recycle bin.
    async fn contact(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Contact>> {
        ctx.viewer()?;
        Ok(ctx
            .store()
            .contact(contact_id("id", &id)?)
            .await?
            .map(Contact::from))
    }

    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<ContactsFilter>,
    ) -> ApiResult<Listed<Contact>> {
        ctx.viewer()?;
        let f = filter.unwrap_or_default();
        let filter = ContactFilter {
            account_id: optional("filter.accountId", f.account_id.as_ref(), AccountId)?,
            email: search_term("filter.email", f.email, CONTACT_EMAIL_LEN)?,
            name: search_term("filter.name", f.name, NAME_TERM_CHARS)?,
            updated_since: since("filter.updatedSince", f.updated_since)?,
            deleted: f.deleted,
        };
        let page = ctx
            .store()
            .contacts(
                &filter,
                page_request(ctx.page_sizes(), List::Contacts, first, after)?,
            )
            .await?;
        Ok(connection(
            page,
            Total::Contacts(filter),
            |m| m.id.0,
            Contact::from,
        ))
    }

    /// An account by id, including one in the recycle bin.
    async fn account(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Account>> {
        ctx.viewer()?;
        Ok(ctx
            .store()
            .account(account_id("id", &id)?)
            .await?
            .map(Account::from))
    }

    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AccountsFilter>,
    ) -> ApiResult<Listed<Account>> {
        ctx.viewer()?;
        let f = filter.unwrap_or_default();
        let filter = AccountFilter {
            name: search_term("filter.name", f.name, NAME_TERM_CHARS)?,
            updated_since: since("filter.updatedSince", f.updated_since)?,
            deleted: f.deleted,
        };
        let page = ctx
            .store()
            .accounts(
                &filter,
                page_request(ctx.page_sizes(), List::Accounts, first, after)?,
            )
            .await?;
        Ok(connection(
            page,
            Total::Accounts(filter),
            |m| m.id.0,
            Account::from,
        ))
    }

    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Ticket>> {
        ctx.viewer()?;
        let id = parse_id("id", &id, TicketId)?;
        // An agent opening a ticket nearly always asks for its requester: read both at once.
        if !ctx.look_ahead().field("contact").exists() {
            return ctx
                .store()
                .ticket(id)
                .await?
                .map(Ticket::try_from)
                .transpose();
        }
        let Some((model, requester)) = ctx.store().ticket_with_contact(id).await? else {
            return Ok(None);
        };
        // A contact id with no contact read is left to `Ticket.contact`, which says why.
        let requester = match (model.contact_id, requester) {
            (Some(_), None) => None,
            (_, requester) => Some(requester),
        };
        Ok(Some(Ticket {
            requester,
            ..Ticket::try_from(model)?
        }))
    }

    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<TicketsFilter>,
    ) -> ApiResult<Listed<Ticket>> {
        ctx.viewer()?;
        let f = filter.unwrap_or_default();
        let filter = TicketFilter {
            status: f.status.map(Into::into),
            contact_id: optional("filter.contactId", f.contact_id.as_ref(), ContactId)?,
            account_id: optional("filter.accountId", f.account_id.as_ref(), AccountId)?,
            assignee_id: optional("filter.assigneeId", f.assignee_id.as_ref(), AgentId)?,
            updated_since: since("filter.updatedSince", f.updated_since)?,
        };
        let page = ctx
            .store()
            .tickets(
                &filter,
                page_request(ctx.page_sizes(), List::Tickets, first, after)?,
            )
            .await?;
        let mut conn = Connection::with_additional_fields(
            page.has_previous,
            page.has_next,
            Total::Tickets(filter),
        );
        for model in page.items {
            let id = model.id.0;
            conn.edges.push(async_graphql::connection::Edge::new(
                IdCursor(List::Tickets, id),
                Ticket::try_from(model)?,
            ));
        }
        Ok(conn)
    }
}

fn ids<T>(ids: &[ID], make: fn(i64) -> T) -> ApiResult<Vec<T>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| parse_id(&format!("ids[{i}]"), id, make))
        .collect()
}

#[derive(Default)]
pub struct DeskMutation;

#[Object]
impl DeskMutation {
    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInput,
        #[graphql(
            desc = "A key the client makes up for this create (1 to 255 characters; a UUID, say): sent again with the same key and input within a day, by the same agent, the create is not made twice, and the record the first made is returned. For trying a create again whose answer was lost."
        )]
        idempotency_key: Option<String>,
    ) -> ApiResult<Contact> {
        ctx.viewer()?;
        let input = input.into_domain()?;
        let key = create_key(ctx, idempotency_key, &input)?;
        Ok(ctx
            .store()
            .create_contact(&input, key.as_ref())
            .await?
            .into())
    }

    /// Applies a patch to a contact: the fields it names change, the rest stay.
    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        patch: ContactPatchInput,
        #[graphql(
            desc = "The `updatedAt` read before the change was made (to the millisecond at least): given, the update is made only if no one (an agent, the sync) changed the record since, and is refused with CONFLICT otherwise."
        )]
        expected_updated_at: Option<DateTime<Utc>>,
    ) -> ApiResult<Contact> {
        ctx.viewer()?;
        let id = contact_id("id", &id)?;
        Ok(ctx
            .store()
            .update_contact(id, &patch.into_domain()?, expected_updated_at)
            .await?
            .into())
    }

    /// Applies the same change to many contacts (1 to 500 ids); all of them change or none
    /// does.
    // A list past the limit is weighed at the limit: refused for its length, it says so.
    #[graphql(
        complexity = "list_complexity(ids.len().min(crate::store::MASS_UPDATE_LIMIT), child_complexity)"
    )]
    async fn mass_update_contacts(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        patch: ContactPatchInput,
    ) -> ApiResult<Vec<Contact>> {
        ctx.viewer()?;
        let ids = self::ids(&ids, ContactId)?;
        let updated = ctx
            .store()
            .mass_update_contacts(&ids, &patch.into_domain()?)
            .await?;
        Ok(updated.into_iter().map(Contact::from).collect())
    }

    /// Moves a contact to the recycle bin.
    async fn delete_contact(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Contact> {
        ctx.viewer()?;
        Ok(ctx
            .store()
            .delete_contact(contact_id("id", &id)?)
            .await?
            .into())
    }

    /// Brings a contact back from the recycle bin.
    async fn restore_contact(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Contact> {
        ctx.viewer()?;
        Ok(ctx
            .store()
            .restore_contact(contact_id("id", &id)?)
            .await?
            .into())
    }

    /// Deletes a contact from the recycle bin for good. Returns its id.
    async fn purge_contact(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        ctx.viewer()?;
        let id = contact_id("id", &id)?;
        ctx.store().purge_contact(id).await?;
        // As every other field gives it, however it was written (`007`, `+7`).
        Ok(ID(id.0.to_string()))
    }

    async fn create_account(
        &self,
        ctx: &Context<'_>,
        input: CreateAccountInput,
        #[graphql(
            desc = "A key the client makes up for this create (1 to 255 characters; a UUID, say): sent again with the same key and input within a day, by the same agent, the create is not made twice, and the record the first made is returned. For trying a create again whose answer was lost."
        )]
        idempotency_key: Option<String>,
    ) -> ApiResult<Account> {
        ctx.viewer()?;
        let input = input.into();
        let key = create_key(ctx, idempotency_key, &input)?;
        Ok(ctx
            .store()
            .create_account(&input, key.as_ref())
            .await?
            .into())
    }

    /// Applies a patch to an account: the fields it names change, the rest stay.
    async fn update_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
        patch: AccountPatchInput,
        #[graphql(
            desc = "The `updatedAt` read before the change was made (to the millisecond at least): given, the update is made only if no one (an agent, the sync) changed the record since, and is refused with CONFLICT otherwise."
        )]
        expected_updated_at: Option<DateTime<Utc>>,
    ) -> ApiResult<Account> {
        ctx.viewer()?;
        let id = account_id("id", &id)?;
        Ok(ctx
            .store()
            .update_account(id, &patch.into(), expected_updated_at)
            .await?
            .into())
    }

    /// Applies the same change to many accounts (1 to 500 ids); all of them change or none
    /// does.
    // A list past the limit is weighed at the limit: refused for its length, it says so.
    #[graphql(
        complexity = "list_complexity(ids.len().min(crate::store::MASS_UPDATE_LIMIT), child_complexity)"
    )]
    async fn mass_update_accounts(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        patch: AccountPatchInput,
    ) -> ApiResult<Vec<Account>> {
        ctx.viewer()?;
        let ids = self::ids(&ids, AccountId)?;
        let updated = ctx
            .store()
            .mass_update_accounts(&ids, &patch.into())
            .await?;
        Ok(updated.into_iter().map(Account::from).collect())
    }

    /// Moves an account to the recycle bin.
    async fn delete_account(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Account> {
        ctx.viewer()?;
        Ok(ctx
            .store()
            .delete_account(account_id("id", &id)?)
            .await?
            .into())
    }

    /// Brings an account back from the recycle bin.
    async fn restore_account(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Account> {
        ctx.viewer()?;
        Ok(ctx
            .store()
            .restore_account(account_id("id", &id)?)
            .await?
            .into())
    }

    /// Deletes an account from the recycle bin for good. Returns its id.
    async fn purge_account(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        ctx.viewer()?;
        let id = account_id("id", &id)?;
        ctx.store().purge_account(id).await?;
        // As every other field gives it, however it was written (`007`, `+7`).
        Ok(ID(id.0.to_string()))
    }

    async fn create_ticket(
        &self,
        ctx: &Context<'_>,
        input: CreateTicketInput,
        #[graphql(
            desc = "A key the client makes up for this create (1 to 255 characters; a UUID, say): sent again with the same key and input within a day, by the same agent, the create is not made twice, and the record the first made is returned. For trying a create again whose answer was lost."
        )]
        idempotency_key: Option<String>,
    ) -> ApiResult<Ticket> {
        ctx.viewer()?;
        let (input, account_named) = input.into_domain()?;
        let key = create_key(ctx, idempotency_key, &(&input, account_named))?;
        ctx.store()
            .create_ticket(&input, account_named, key.as_ref())
            .await?
            .try_into()
    }

    /// Applies a patch to a ticket: the fields it names change, the rest stay.
    async fn update_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        patch: TicketPatchInput,
        #[graphql(
            desc = "The `updatedAt` read before the change was made (to the millisecond at least): given, the update is made only if no one (an agent, the sync) changed the record since, and is refused with CONFLICT otherwise."
        )]
        expected_updated_at: Option<DateTime<Utc>>,
    ) -> ApiResult<Ticket> {
        ctx.viewer()?;
        let id = parse_id("id", &id, TicketId)?;
        ctx.store()
            .update_ticket(id, &patch.into_domain()?, expected_updated_at)
            .await?
            .try_into()
    }
}
