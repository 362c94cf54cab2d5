use chrono::{DateTime, Utc};
use entity::ticket::{self, Column, Entity as Tickets};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::contacts::{check_account, check_account_change};
use super::create_keys::{self, CreateKey};
use super::page::{into_page, paginate};
use super::{Page, PageRequest, Store, StoreError, StoreResult};
use crate::domain::{
    AccountId, AgentId, ContactId, DeskAction, DeskEntity, Invalid, TicketFields, TicketId,
    TicketInput, TicketPatch, TicketStatus,
};

#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    pub contact_id: Option<ContactId>,
    pub account_id: Option<AccountId>,
    pub assignee_id: Option<AgentId>,
    pub updated_since: Option<DateTime<Utc>>,
}

fn input_of(model: &ticket::Model) -> StoreResult<TicketInput> {
    // Written only through the enums, so a value they cannot read is the database's fault
    // (edited by hand, or by a newer version), not the request's.
    let corrupt = |what: &str| {
        StoreError::Db(sea_orm::DbErr::Custom(format!(
            "ticket {} has an unknown {what} in storage",
            model.id
        )))
    };
    Ok(TicketInput {
        subject: Some(model.subject.clone()),
        description: model.description.clone(),
        status: Some(model.status.parse().map_err(|_| corrupt("status"))?),
        priority: Some(model.priority.parse().map_err(|_| corrupt("priority"))?),
        contact_id: model.contact_id,
        account_id: model.account_id,
        assignee_id: model.assignee_id,
    })
}

/// Checks the references a write gives a ticket and, when it sets the contact without
/// naming the account, makes the ticket's account the contact's (none when the contact has
/// none or its account is in the recycle bin, unless the ticket has it): a ticket follows its requester's company
/// unless told otherwise, and an account given, or cleared with `null`, stands. References
/// the write leaves as they were are not checked again: a ticket keeps a contact or account
/// moved to the recycle bin, and can still be edited.
async fn resolve_links(
    db: &impl ConnectionTrait,
    mut fields: TicketFields,
    before: Option<&ticket::Model>,
    account_named: bool,
) -> StoreResult<TicketFields> {
    let contact_changed = before.is_none_or(|t| t.contact_id != fields.contact_id);
    if let Some(contact_id) = fields.contact_id
        && contact_changed
    {
        let contact = super::contacts::live_contact(db, contact_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => {
                    Invalid::new("contactId", format!("no contact with id {contact_id}")).into()
                }
                StoreError::Conflict(_) => Invalid::new(
                    "contactId",
                    format!("contact {contact_id} is in the recycle bin"),
                )
                .into(),
                other => other,
            })?;
        if !account_named {
            fields.account_id = contact.account_id;
            // A contact's account in the recycle bin or gone is not taken, unless the ticket
            // has it already (another requester of the same company); a failure to read it
            // is an error (on PostgreSQL the transaction is aborted by then).
            let kept = before.is_some_and(|t| t.account_id == fields.account_id);
            if !kept {
                match check_account(db, fields.account_id).await {
                    Err(StoreError::Invalid(_)) => fields.account_id = None,
                    checked => checked?,
                }
            }
        }
    }
    check_account_change(db, before.and_then(|t| t.account_id), fields.account_id).await?;
    if let Some(agent_id) = fields.assignee_id
        && entity::agent::Entity::find_by_id(agent_id)
            .one(db)
            .await?
            .is_none()
    {
        return Err(Invalid::new("assigneeId", format!("no agent with id {agent_id}")).into());
    }
    Ok(fields)
}

fn set_fields(active: &mut ticket::ActiveModel, f: TicketFields) {
    active.subject = Set(f.subject);
    active.description = Set(f.description);
    active.status = Set(f.status.as_str().to_owned());
    active.priority = Set(f.priority.as_str().to_owned());
    active.contact_id = Set(f.contact_id);
    active.account_id = Set(f.account_id);
    active.assignee_id = Set(f.assignee_id);
}

impl Store {
    pub async fn ticket(&self, id: TicketId) -> StoreResult<Option<ticket::Model>> {
        Ok(Tickets::find_by_id(id).one(self.connection()).await?)
    }

    /// A ticket and its requester, in one statement; the requester is `None` when the
    /// ticket has none (purging a contact clears its tickets' `contact_id`) or when its row
    /// could not be read.
    pub async fn ticket_with_contact(
        &self,
        id: TicketId,
    ) -> StoreResult<Option<(ticket::Model, Option<entity::contact::Model>)>> {
        Ok(Tickets::find_by_id(id)
            .find_also_related(entity::contact::Entity)
            .one(self.connection())
            .await?)
    }

    pub async fn tickets(
        &self,
        filter: &TicketFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ticket::Model>> {
        let select = tickets_matching(filter);
        let items = paginate(select, Column::Id, page)
            .all(self.connection())
            .await?;
        Ok(into_page(items, page))
    }

    /// How many tickets `filter` lists, on every page.
    pub async fn count_tickets(&self, filter: &TicketFilter) -> StoreResult<u64> {
        Ok(sea_orm::PaginatorTrait::count(tickets_matching(filter), self.connection()).await?)
    }

    /// Opens a ticket. Unless `account_named` (an account given, or none asked for), it is
    /// the contact's account's.
    pub async fn create_ticket(
        &self,
        input: &TicketInput,
        account_named: bool,
        key: Option<&CreateKey>,
    ) -> StoreResult<ticket::Model> {
        let fields = input.validate()?;
        let mut txn = self.write().await?;
        if let Some(made) =
            create_keys::made_before::<Tickets>(&*txn, key, "ticket", TicketId).await?
        {
            return Ok(made);
        }
        let fields = resolve_links(&*txn, fields, None, account_named).await?;
        let now = Utc::now();
        let mut active = ticket::ActiveModel {
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        set_fields(&mut active, fields);
        let model = active.insert(&*txn).await?;
        if let Some(key) = key {
            create_keys::remember(&*txn, key, "ticket", model.id.0).await?;
        }
        txn.tells(DeskEntity::Ticket, DeskAction::Created, model.id.0);
        txn.commit().await?;
        Ok(model)
    }

    /// Applies a patch to a ticket; with `expected` (the `updatedAt` the caller read), only
    /// if no one changed it since.
    pub async fn update_ticket(
        &self,
        id: TicketId,
        patch: &TicketPatch,
        expected: Option<DateTime<Utc>>,
    ) -> StoreResult<ticket::Model> {
        let mut txn = self.write().await?;
        // A contact and an account the patch names are locked before the ticket, in the
        // order a purge takes them (an account's contacts, the account, then its tickets):
        // the other order would deadlock against one (PostgreSQL). Checked after. So is the
        // contact's account, which the ticket follows when the patch names none: checked
        // after the ticket is locked, it would wait there for a write holding it that waits
        // for the ticket.
        if let Some(Some(contact)) = patch.contact_id {
            let contact = entity::contact::Entity::find_by_id(contact)
                .lock_exclusive()
                .one(&*txn)
                .await?;
            if patch.account_id.is_none()
                && let Some(account) = contact.and_then(|c| c.account_id)
            {
                entity::account::Entity::find_by_id(account)
                    .lock_shared()
                    .one(&*txn)
                    .await?;
            }
        }
        if let Some(Some(account)) = patch.account_id {
            entity::account::Entity::find_by_id(account)
                .lock_exclusive()
                .one(&*txn)
                .await?;
        }
        // Locked: the write sets every column, so a concurrent one must wait to read after it.
        let current = Tickets::find_by_id(id)
            .lock_exclusive()
            .one(&*txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("ticket {id}")))?;
        super::unchanged_since(format_args!("ticket {id}"), current.updated_at, expected)?;
        let before = input_of(&current)?;
        let fields = patch.apply(before.clone()).validate()?;
        let fields =
            resolve_links(&*txn, fields, Some(&current), patch.account_id.is_some()).await?;
        // A save that changes nothing writes nothing, and announces nothing.
        if before.validate().as_ref() == Ok(&fields) {
            return Ok(current);
        }
        let mut active: ticket::ActiveModel = current.into();
        set_fields(&mut active, fields);
        active.updated_at = Set(Utc::now());
        let model = active.update(&*txn).await?;
        txn.tells(DeskEntity::Ticket, DeskAction::Updated, model.id.0);
        txn.commit().await?;
        Ok(model)
    }
}

/// Clears a link to a record about to be purged from every ticket that holds it (`column`
/// is the ticket's contact or account), stamping them changed; returns the tickets changed.
/// The database would clear the links itself, but leave `updated_at` as it was, and a
/// client following `updatedSince` would never hear that the tickets lost their contact.
pub(crate) async fn unlink_tickets(
    db: &impl ConnectionTrait,
    column: Column,
    record_id: i64,
) -> StoreResult<Vec<i64>> {
    use sea_orm::sea_query::Expr;
    // Locked in id order before they are changed.
    let ids: Vec<i64> = Tickets::find()
        .select_only()
        .column(Column::Id)
        .filter(column.eq(record_id))
        .order_by_asc(Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(db)
        .await?;
    if !ids.is_empty() {
        Tickets::update_many()
            .col_expr(column, Expr::value(Option::<i64>::None))
            .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(column.eq(record_id))
            .exec(db)
            .await?;
    }
    Ok(ids)
}

/// The rows `filter` lists, in no order.
fn tickets_matching(filter: &TicketFilter) -> sea_orm::Select<Tickets> {
    let mut select = Tickets::find();
    if let Some(status) = filter.status {
        select = select.filter(Column::Status.eq(status.as_str()));
    }
    if let Some(contact) = filter.contact_id {
        select = select.filter(Column::ContactId.eq(contact));
    }
    if let Some(account) = filter.account_id {
        select = select.filter(Column::AccountId.eq(account));
    }
    if let Some(agent) = filter.assignee_id {
        select = select.filter(Column::AssigneeId.eq(agent));
    }
    if let Some(since) = filter.updated_since {
        select = select.filter(Column::UpdatedAt.gte(since));
    }
    select
}
