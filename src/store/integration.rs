use chrono::{DateTime, Utc};
use entity::{
    field_mapping, former_link, integration, outbox, pending_create, record_link, sync_cursor,
    sync_event, sync_failure,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::events::SyncEventKind;
use super::{Store, StoreError, StoreResult};
use crate::domain::{Direction, FirstSync, IntegrationStatus, Module, SyncType};

pub(super) const ROW: i64 = 1;

/// Queues every live desk record of the module that has no Salesforce link, nor a former
/// one still to meet (`Store::former_links`), in one statement.
async fn queue_unlinked(db: &impl ConnectionTrait, module: Module) -> StoreResult<()> {
    use entity::{account, contact};
    use sea_orm::sea_query::{Expr, ExprTrait, IntoTableRef, Query, SelectStatement, TableRef};

    fn live_unlinked(
        module: Module,
        table: TableRef,
        (id, deleted_at): (impl ColumnTrait, impl ColumnTrait),
    ) -> SelectStatement {
        Query::select()
            .expr(Expr::val(module.as_str()))
            .column(id)
            .expr(Expr::val(Utc::now()))
            .from(table)
            .and_where(Expr::col(deleted_at).is_null())
            .and_where(super::sync::unlinked(module, id))
            .and_where(super::sync::not_formerly_linked(module, id))
            .to_owned()
    }
    let unlinked = match module {
        Module::Contacts => live_unlinked(
            module,
            contact::Entity.into_table_ref(),
            (contact::Column::Id, contact::Column::DeletedAt),
        ),
        Module::Accounts => live_unlinked(
            module,
            account::Entity.into_table_ref(),
            (account::Column::Id, account::Column::DeletedAt),
        ),
    };
    let insert = Query::insert()
        .into_table(outbox::Entity)
        .columns([
            outbox::Column::Module,
            outbox::Column::DeskId,
            outbox::Column::EnqueuedAt,
        ])
        .select_from(unlinked)
        .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

/// The event telling of the integration's (new) status.
fn status_event(model: &integration::Model) -> StoreResult<SyncEventKind> {
    let status = model
        .status
        .parse()
        .map_err(|e: String| StoreError::Db(sea_orm::DbErr::Custom(e)))?;
    Ok(SyncEventKind::Status {
        status,
        reason: model.status_reason.clone(),
    })
}

/// What `connectSalesforce` saves; secrets arrive sealed.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    pub login_url: String,
    pub auth_kind: String,
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub sealed_secrets: Vec<u8>,
    pub instance_url: String,
    pub org_id: Option<String>,
    /// The user signed in as (`005…`), when the sign-in's identity URL says.
    pub user_id: Option<String>,
    /// `None` keeps the sync type of the connection before (two-way for the first).
    pub sync_type: Option<SyncType>,
    /// The org's daily API calls used and allowed, as connecting's calls were told them.
    pub api_usage: Option<(i64, i64)>,
    /// The saved mappings as they were checked for writing ([`Store::mapping_rows`]), when
    /// the same org, synced one way, is connected again two-way: changed since, or the sync
    /// found one-way without a check, the connection is not saved.
    pub checked_mappings: Option<Vec<MappingRow>>,
}

impl Store {
    pub async fn integration(&self) -> StoreResult<Option<integration::Model>> {
        Ok(integration::Entity::find_by_id(ROW)
            .one(self.connection())
            .await?)
    }

    /// Saves a verified connection, replacing any earlier one; sync starts over.
    pub async fn save_integration(&self, new: NewIntegration) -> StoreResult<integration::Model> {
        let mut txn = self.write().await?;
        txn.changes_integration(self);
        let now = Utc::now();
        // Locked as read: a pause or an error committed meanwhile is judged, not overwritten.
        let previous = integration::Entity::find_by_id(ROW)
            .lock_exclusive()
            .one(&*txn)
            .await?;
        let before = previous.as_ref().and_then(|p| p.org_id.clone());
        let other_org = previous
            .as_ref()
            .is_some_and(|p| !same_org(p, new.org_id.as_deref(), &new.instance_url));
        let same_user = previous
            .as_ref()
            .is_some_and(|p| same_user(p, new.user_id.as_deref(), new.username.as_deref()));
        let org_id = new.org_id.or(before);
        // The same org signed in again (after an error, or with new credentials): the sync
        // goes on from where it was. Another org, or none before, starts from the beginning.
        let same = previous.as_ref().filter(|_| !other_org);
        let first_sync = match same {
            Some(previous) => previous.first_sync.clone(),
            None => FirstSync::NotStarted.as_str().into(),
        };
        // New credentials do not undo an administrator's choices: a paused sync stays paused
        // and keeps its direction unless one is given. An error is what signing in clears.
        let status = match same {
            Some(previous) if previous.status == IntegrationStatus::Paused.as_str() => {
                IntegrationStatus::Paused
            }
            _ => IntegrationStatus::Active,
        };
        // Another org keeps a one-way choice too: a sandbox followed one way, then production
        // connected, must not have the desk's records written into production unasked.
        let sync_type = new
            .sync_type
            .map(|t| t.as_str().to_owned())
            .or_else(|| previous.as_ref().map(|p| p.sync_type.clone()))
            .unwrap_or_else(|| SyncType::TwoWay.as_str().into());
        // Turned two-way by connecting again: the mappings kept must be those checked for it.
        let turns_two_way = new.sync_type == Some(SyncType::TwoWay)
            && same.is_some_and(|p| p.sync_type != SyncType::TwoWay.as_str());
        if turns_two_way {
            let unchanged = match &new.checked_mappings {
                Some(checked) => mapping_rows(&*txn).await? == *checked,
                None => false,
            };
            if !unchanged {
                return Err(StoreError::Conflict(
                    "the sync type or the field mappings changed while connecting; connect again to have the mappings checked for a two-way sync".into(),
                ));
            }
        }
        // Pairs a deleted integration linked meet again only in the org they were made in.
        let mut elsewhere = former_link::Entity::delete_many();
        if let Some(org) = &org_id {
            elsewhere = elsewhere.filter(former_link::Column::OrgId.ne(org.clone()));
        }
        elsewhere.exec(&*txn).await?;
        keep_creates_in_doubt_of(&*txn, org_id.as_deref(), same.is_some()).await?;
        if other_org {
            // Links, cursors, queued changes, failures and mappings all speak of the other
            // org's records and fields; the new org's first sync matches afresh.
            forget_sync_state(&*txn).await?;
        } else if same.is_some() && !same_user {
            // Another user of the same org may see records the first could not, changed
            // before the cursors: everything is read again, as after a mapping change.
            sync_cursor::Entity::delete_many()
                .filter(sync_cursor::Column::Name.starts_with(PULL_CURSORS))
                .exec(&*txn)
                .await?;
        }
        if same.is_some_and(|previous| opens_two_way(previous, &sync_type)) {
            queue_made_while_one_way(&*txn).await?;
        }
        let model = integration::ActiveModel {
            id: Set(ROW),
            status: Set(status.as_str().into()),
            status_reason: Set(None),
            sync_type: Set(sync_type),
            login_url: Set(new.login_url),
            auth_kind: Set(new.auth_kind),
            // A username that could not be read (a refresh-token sign-in's identity lookup
            // failing for a moment) is the same user's as before.
            username: Set(new.username.or_else(|| {
                same.filter(|_| same_user)
                    .and_then(|previous| previous.username.clone())
            })),
            user_id: Set(new.user_id),
            client_id: Set(new.client_id),
            secrets: Set(Some(new.sealed_secrets)),
            instance_url: Set(Some(new.instance_url)),
            org_id: Set(org_id),
            first_sync: Set(first_sync),
            last_sync_at: Set(previous
                .as_ref()
                .filter(|_| !other_org)
                .and_then(|p| p.last_sync_at)),
            api_used: Set(new.api_usage.map(|(used, _)| used)),
            api_max: Set(new.api_usage.map(|(_, max)| max)),
            created_at: Set(now),
            updated_at: Set(now),
            // Never one a connection before had, deleted ones included: a round or a
            // session of an earlier connection is never taken for this one's.
            epoch: Set(previous
                .as_ref()
                .map_or(0, |p| p.epoch + 1)
                .max(now.timestamp_micros())),
        };
        // Replaced in place: a pause or a change of sync type waiting on the row's lock then
        // finds the new connection, where a row deleted and made again would be gone to it.
        let model = if previous.is_some() {
            model.update(&*txn).await?
        } else {
            model.insert(&*txn).await?
        };
        let mut events = Vec::new();
        if other_org {
            // The former connection ended, as a deleted one does: a dashboard keeping the
            // open failures from the stream lets them go on it, live or replaying.
            events.push(SyncEventKind::Status {
                status: IntegrationStatus::NotConnected,
                reason: Some(
                    "connected to another Salesforce org; the former org's failures are forgotten"
                        .into(),
                ),
            });
        }
        events.push(status_event(&model)?);
        txn.commit_publishing(self, events).await?;
        Ok(model)
    }

    /// Changes the connected integration; `NotFound` when there is none.
    pub async fn update_integration(
        &self,
        change: impl FnOnce(&mut integration::ActiveModel),
    ) -> StoreResult<integration::Model> {
        self.update_integration_with(|_, active| {
            change(active);
            Ok(())
        })
        .await
    }

    /// Changes the integration as `change` decides from the row as it is, read under its
    /// lock: a status another transaction changed meanwhile is the one judged. An error
    /// changes nothing.
    pub async fn update_integration_with(
        &self,
        change: impl FnOnce(&integration::Model, &mut integration::ActiveModel) -> StoreResult<()>,
    ) -> StoreResult<integration::Model> {
        let txn = self.write().await?;
        // Locked as read: a status another transaction is changing is read once it has, so
        // one change is announced once.
        let current = locked_row(&*txn).await?;
        let before = current.status.clone();
        let mut active: integration::ActiveModel = current.clone().into();
        change(&current, &mut active)?;
        active.updated_at = Set(Utc::now());
        let model = active.update(&*txn).await?;
        let mut events = Vec::new();
        // A new reason with the same status (rounds failing, or getting through again) is
        // news to a dashboard too.
        if model.status != before || model.status_reason != current.status_reason {
            events.push(status_event(&model)?);
        }
        txn.commit_publishing(self, events).await?;
        Ok(model)
    }

    /// Replaces the saved (sealed) credentials `old` by `new`; `false`, changing nothing, when
    /// they are no longer `old` (the connection was replaced or removed meanwhile).
    pub async fn replace_secrets(&self, old: &[u8], new: Vec<u8>) -> StoreResult<bool> {
        use sea_orm::sea_query::Expr;
        let txn = self.write().await?;
        let replaced = integration::Entity::update_many()
            .col_expr(integration::Column::Secrets, Expr::value(new))
            .col_expr(integration::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(integration::Column::Id.eq(ROW))
            .filter(integration::Column::Secrets.eq(old.to_vec()))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(replaced.rows_affected == 1)
    }

    /// Sets which side is master (as reconnecting with a sync type does). Turning two-way
    /// after a one-way first sync queues every
    /// live desk record that has no Salesforce twin: they were made while desk changes stayed
    /// local, and now go out as the first sync would have sent them (matched by email or
    /// name first).
    ///
    /// `checked`, when given, is the saved mappings ([`Store::mapping_rows`]) as they were
    /// checked for the new sync type: changed since, the type is not set.
    pub async fn set_sync_type(
        &self,
        sync_type: SyncType,
        checked: Option<(Checked, &[MappingRow])>,
    ) -> StoreResult<integration::Model> {
        let mut txn = self.write().await?;
        txn.changes_integration(self);
        // Locked as read: a first sync that a round marks done meanwhile is seen done here,
        // and what stayed local while it ran one-way is queued.
        let current = locked_row(&*txn).await?;
        if let Some((checked, _)) = &checked {
            checked.still(&current, "set the sync type again")?;
        }
        if let Some((_, rows)) = checked
            && mapping_rows(&*txn).await? != rows
        {
            return Err(StoreError::Conflict(format!(
                "the field mappings changed while they were checked for {}; read them again and set the sync type again",
                sync_type.as_str()
            )));
        }
        let opens = opens_two_way(&current, sync_type.as_str());
        let mut active: integration::ActiveModel = current.into();
        active.sync_type = Set(sync_type.as_str().into());
        active.updated_at = Set(Utc::now());
        let model = active.update(&*txn).await?;
        if opens {
            queue_made_while_one_way(&*txn).await?;
        }
        txn.commit_publishing(self, Vec::new()).await?;
        Ok(model)
    }

    /// Tells rounds running under the saved connection, in any process, that it is about to
    /// change: each stops at its next batch.
    pub async fn announce_integration_change(&self) -> StoreResult<()> {
        let txn = self.write().await?;
        integration::Entity::update_many()
            .col_expr(
                integration::Column::Epoch,
                sea_orm::sea_query::ExprTrait::add(
                    sea_orm::sea_query::Expr::col(integration::Column::Epoch),
                    1,
                ),
            )
            .filter(integration::Column::Id.eq(ROW))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Forgets the connection and everything kept for syncing; desk records stay. `false`,
    /// changing and announcing nothing, when there was no connection (another delete won).
    pub async fn delete_integration(&self) -> StoreResult<bool> {
        let mut txn = self.write().await?;
        txn.changes_integration(self);
        let Some(gone) = integration::Entity::find_by_id(ROW)
            .lock_exclusive()
            .one(&*txn)
            .await?
        else {
            return Ok(false);
        };
        integration::Entity::delete_by_id(ROW).exec(&*txn).await?;
        if let Some(org) = gone.org_id {
            keep_former_links(&*txn, &org).await?;
        }
        forget_sync_state(&*txn).await?;
        let event = SyncEventKind::Status {
            status: IntegrationStatus::NotConnected,
            reason: None,
        };
        txn.commit_publishing(self, vec![event]).await?;
        Ok(true)
    }

    /// Every saved field mapping, to check for a change at [`Store::set_sync_type`].
    pub async fn mapping_rows(&self) -> StoreResult<Vec<MappingRow>> {
        mapping_rows(self.connection()).await
    }

    /// The saved mappings of a module; empty when the defaults apply.
    pub async fn field_mappings(&self, module: Module) -> StoreResult<Vec<field_mapping::Model>> {
        Ok(field_mapping::Entity::find()
            .filter(field_mapping::Column::Module.eq(module.as_str()))
            .order_by_asc(field_mapping::Column::Id)
            .all(self.connection())
            .await?)
    }

    /// Each saved mapping made after the integration was (`updateFieldMappings` naming a
    /// pair not mapped before): module, desk field, and when.
    pub async fn remapped_fields(&self) -> StoreResult<Vec<(String, String, DateTime<Utc>)>> {
        Ok(field_mapping::Entity::find()
            .select_only()
            .column(field_mapping::Column::Module)
            .column(field_mapping::Column::DeskField)
            .column(field_mapping::Column::MappedAt)
            .filter(field_mapping::Column::MappedAt.is_not_null())
            .into_tuple()
            .all(self.connection())
            .await?)
    }

    /// Saves a module's mappings in place of the old ones, and in the same transaction drops
    /// the cursor named (the module's pull), makes the module's open pull failures due now,
    /// and queues again the desk records whose push failed: a record either side refused
    /// under the old mappings may pass the new.
    ///
    /// Checked only for a one-way sync (`writes` false), they are not saved once the sync has
    /// turned two-way meanwhile: a field only read then may not be one Salesforce lets the
    /// sync write.
    ///
    /// A pair mapped before keeps when it was mapped; before any were saved, the module's
    /// `standard` pairs were mapped from the start.
    pub async fn replace_field_mappings(
        &self,
        module: Module,
        pairs: &[(String, String)],
        standard: &[(String, String)],
        cursor: &str,
        checked: Checked,
    ) -> StoreResult<()> {
        let mut txn = self.write().await?;
        txn.changes_integration(self);
        // Locked, as `set_sync_type` locks it: of the two, the later sees what the other did.
        let current = locked_row(&*txn).await?;
        checked.still(&current, "send them again")?;
        let writes = checked.writes;
        if !writes && current.sync_type == SyncType::TwoWay.as_str() {
            return Err(StoreError::Conflict(
                "the sync turned TWO_WAY while these mappings were checked for a one-way sync; send them again to have them checked for writing".into(),
            ));
        }
        // The desk records whose push failed go out again under the new mappings: one
        // refused for good had left the outbox, one waiting out a backoff goes now. Before
        // the pull failures: a desk delete locks a record's push failures, then pull ones.
        let failed: Vec<i64> = sync_failure::Entity::find()
            .select_only()
            .column(sync_failure::Column::DeskId)
            .filter(sync_failure::Column::Module.eq(module.as_str()))
            .filter(sync_failure::Column::Direction.eq(Direction::DeskToSalesforce.as_str()))
            .filter(sync_failure::Column::ResolvedAt.is_null())
            .filter(sync_failure::Column::DeskId.is_not_null())
            .into_tuple::<Option<i64>>()
            .all(&*txn)
            .await?
            .into_iter()
            .flatten()
            .collect();
        for part in failed.chunks(super::BIND_PART) {
            super::sync::enqueue_all(&*txn, module, part).await?;
            super::sync::wake_pushes(&*txn, module, part.iter().copied()).await?;
        }
        sync_cursor::Entity::delete_by_id(cursor.to_owned())
            .exec(&*txn)
            .await?;
        sync_failure::Entity::update_many()
            .col_expr(
                sync_failure::Column::NextAttemptAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(sync_failure::Column::Module.eq(module.as_str()))
            .filter(sync_failure::Column::Direction.eq(Direction::SalesforceToDesk.as_str()))
            .filter(sync_failure::Column::ResolvedAt.is_null())
            .exec(&*txn)
            .await?;
        let before = field_mapping::Entity::find()
            .filter(field_mapping::Column::Module.eq(module.as_str()))
            .all(&*txn)
            .await?;
        let now = Utc::now();
        let mapped_at = |desk: &str, salesforce: &str| {
            if before.is_empty() {
                let from_start = standard.iter().any(|(d, s)| d == desk && s == salesforce);
                return (!from_start).then_some(now);
            }
            before
                .iter()
                .find(|m| m.desk_field == desk && m.salesforce_field == salesforce)
                .map_or(Some(now), |m| m.mapped_at)
        };
        let rows: Vec<field_mapping::ActiveModel> = pairs
            .iter()
            .map(|(desk, salesforce)| field_mapping::ActiveModel {
                module: Set(module.as_str().into()),
                desk_field: Set(desk.clone()),
                salesforce_field: Set(salesforce.clone()),
                mapped_at: Set(mapped_at(desk, salesforce)),
                ..Default::default()
            })
            .collect();
        field_mapping::Entity::delete_many()
            .filter(field_mapping::Column::Module.eq(module.as_str()))
            .exec(&*txn)
            .await?;
        for row in rows {
            row.insert(&*txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Saves the instance URL the org's sign-ins name now (its My Domain renamed, the org
    /// moved), so that links into Salesforce follow it; only while the connection saved is
    /// still the one signed in with (`sealed`, its secrets, and its `epoch`, when the round
    /// began): a reconnect meanwhile keeps its own.
    pub async fn note_instance_url(&self, sealed: &[u8], epoch: i64, url: &str) -> StoreResult<()> {
        let mut txn = self.write().await?;
        let Some(current) = integration::Entity::find_by_id(ROW)
            .lock_exclusive()
            .one(&*txn)
            .await?
        else {
            return Ok(());
        };
        // The connection the session was signed in on: its secrets as they were (a remap
        // since changed the epoch), or its epoch (a rotated refresh token since changed the
        // secrets). A reconnect changes both.
        let same = current.secrets.as_deref() == Some(sealed) || current.epoch == epoch;
        if !same || current.instance_url.as_deref() == Some(url) {
            return Ok(());
        }
        txn.changes_integration(self);
        let mut active: integration::ActiveModel = current.into();
        active.instance_url = Set(Some(url.to_owned()));
        active.updated_at = Set(Utc::now());
        active.update(&*txn).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// What a change to the integration finds missing when there is none.
pub const INTEGRATION: &str = "Salesforce integration";

/// The integration's row, locked for the rest of the transaction; `NOT_FOUND` when there is
/// none.
async fn locked_row(txn: &impl ConnectionTrait) -> StoreResult<integration::Model> {
    integration::Entity::find_by_id(ROW)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::NotFound(INTEGRATION.into()))
}

/// Whether a sign-in (as `user_id`, `username`, where known) is as the user the connection
/// before signed in as: by the user ids the sign-ins' identity URLs name, else by username
/// (a sign-in whose username could not be read is taken for the one before).
fn same_user(previous: &integration::Model, user_id: Option<&str>, username: Option<&str>) -> bool {
    match (previous.user_id.as_deref(), user_id, username) {
        (Some(was), Some(now), _) => was == now,
        // No id to go by (a connection saved before ids were kept), nor a name: the one before.
        (_, _, None) => true,
        (_, _, Some(now)) => previous
            .username
            .as_deref()
            .is_some_and(|was| was.eq_ignore_ascii_case(now)),
    }
}

/// A saved field mapping: module, desk field, Salesforce field.
pub type MappingRow = (String, String, String);

/// Every saved field mapping, in the order they were saved.
async fn mapping_rows(db: &impl ConnectionTrait) -> StoreResult<Vec<MappingRow>> {
    Ok(field_mapping::Entity::find()
        .select_only()
        .column(field_mapping::Column::Module)
        .column(field_mapping::Column::DeskField)
        .column(field_mapping::Column::SalesforceField)
        .order_by_asc(field_mapping::Column::Id)
        .into_tuple()
        .all(db)
        .await?)
}

/// Whether a sign-in to the org `org_id` (when its identity says) at `instance_url` is to
/// the org of the `saved` connection, whose links, cursors and mappings then hold.
pub fn same_org(saved: &integration::Model, org_id: Option<&str>, instance_url: &str) -> bool {
    match (saved.org_id.as_deref(), org_id) {
        (Some(before), Some(now)) => before == now,
        // A connection saved before orgs were recorded: its instance tells.
        (None, Some(_)) => saved
            .instance_url
            .as_deref()
            .is_none_or(|url| url == instance_url),
        // No identity in this sign-in: nothing says the org changed.
        (_, None) => true,
    }
}

/// What mappings were checked against: the connection made at `connected_at`, for a sync
/// that `writes` or only reads. Saved onto another connection (Salesforce connected again
/// meanwhile, to another org perhaps), the check would stand for an org it never read.
#[derive(Clone, Copy)]
pub struct Checked {
    pub connected_at: DateTime<Utc>,
    pub writes: bool,
}

impl Checked {
    fn still(&self, now: &integration::Model, then: &str) -> StoreResult<()> {
        if now.created_at != self.connected_at {
            return Err(StoreError::Conflict(format!(
                "Salesforce was connected again while the field mappings were checked against the connection before; {then}"
            )));
        }
        Ok(())
    }
}

/// Keeps the creates in doubt sent to `org`, the org connected now, and drops the others:
/// what another org may have made is no business of this one. A note that does not say its
/// org (sent while the connection's identity was unknown) is this one's when the connection
/// replaced is of the same org (`same`), and is stamped with it; after a deleted integration
/// nothing says where it went. Nor, the org unknown now, does anything say a note is not
/// this org's, but for a connection replaced by one of another.
async fn keep_creates_in_doubt_of(
    txn: &impl ConnectionTrait,
    org: Option<&str>,
    same: bool,
) -> StoreResult<()> {
    use sea_orm::{Condition, sea_query::Expr};
    let notes = pending_create::Entity::delete_many();
    match (org, same) {
        (Some(org), true) => {
            notes
                .filter(pending_create::Column::OrgId.ne(org))
                .exec(txn)
                .await?;
            pending_create::Entity::update_many()
                .col_expr(pending_create::Column::OrgId, Expr::value(org))
                .filter(pending_create::Column::OrgId.is_null())
                .exec(txn)
                .await?;
        }
        (Some(org), false) => {
            notes
                .filter(
                    Condition::any()
                        .add(pending_create::Column::OrgId.ne(org))
                        .add(pending_create::Column::OrgId.is_null()),
                )
                .exec(txn)
                .await?;
        }
        (None, true) => {}
        (None, false) => {
            notes.exec(txn).await?;
        }
    }
    Ok(())
}

/// Keeps the pairs linked in `org` as former links, beside those kept from an earlier
/// deletion that were not linked again (a first sync cut short).
async fn keep_former_links(txn: &impl ConnectionTrait, org: &str) -> StoreResult<()> {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    former_link::Entity::delete_many()
        .filter(former_link::Column::OrgId.ne(org))
        .exec(txn)
        .await?;
    for module in [Module::Accounts, Module::Contacts] {
        let linked = Query::select()
            .column(record_link::Column::SalesforceId)
            .from(record_link::Entity)
            .and_where(Expr::col(record_link::Column::Module).eq(module.as_str()))
            .to_owned();
        former_link::Entity::delete_many()
            .filter(former_link::Column::Module.eq(module.as_str()))
            .filter(former_link::Column::SalesforceId.in_subquery(linked))
            .exec(txn)
            .await?;
    }
    let links = Query::select()
        .column(record_link::Column::Module)
        .column(record_link::Column::SalesforceId)
        .column(record_link::Column::DeskId)
        .expr(Expr::val(org))
        .from(record_link::Entity)
        .to_owned();
    let insert = Query::insert()
        .into_table(former_link::Entity)
        .columns([
            former_link::Column::Module,
            former_link::Column::SalesforceId,
            former_link::Column::DeskId,
            former_link::Column::OrgId,
        ])
        .select_from(links)
        .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?
        .to_owned();
    txn.execute(&insert).await?;
    Ok(())
}

impl Store {
    /// Whether a deleted integration left pairs for the first sync to meet again.
    pub async fn has_former_links(&self) -> StoreResult<bool> {
        Ok(former_link::Entity::find()
            .one(self.connection())
            .await?
            .is_some())
    }

    /// The desk records these Salesforce records were linked to before the integration was
    /// deleted (in the org connected now: links of another are dropped when it connects).
    pub async fn former_links(
        &self,
        module: Module,
        salesforce_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, i64>> {
        let mut found = std::collections::HashMap::new();
        for part in salesforce_ids.chunks(super::BIND_PART) {
            let rows: Vec<(String, i64)> = former_link::Entity::find()
                .select_only()
                .column(former_link::Column::SalesforceId)
                .column(former_link::Column::DeskId)
                .filter(former_link::Column::Module.eq(module.as_str()))
                .filter(former_link::Column::SalesforceId.is_in(part.iter().cloned()))
                .into_tuple()
                .all(self.connection())
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Drops the former links whose pair is linked again, or whose desk record is linked to
    /// another: met, they have nothing left to say. Those whose Salesforce record has not
    /// come (its pull failed, or it was deleted there) stay, for a later read of it.
    pub async fn forget_met_former_links(&self) -> StoreResult<()> {
        use sea_orm::sea_query::{Expr, ExprTrait, Query};
        for module in [Module::Accounts, Module::Contacts] {
            let linked = |column: record_link::Column| {
                Query::select()
                    .column(column)
                    .from(record_link::Entity)
                    .and_where(Expr::col(record_link::Column::Module).eq(module.as_str()))
                    .to_owned()
            };
            former_link::Entity::delete_many()
                .filter(former_link::Column::Module.eq(module.as_str()))
                .filter(
                    sea_orm::Condition::any()
                        .add(
                            former_link::Column::SalesforceId
                                .in_subquery(linked(record_link::Column::SalesforceId)),
                        )
                        .add(
                            former_link::Column::DeskId
                                .in_subquery(linked(record_link::Column::DeskId)),
                        ),
                )
                .exec(self.connection())
                .await?;
        }
        Ok(())
    }

    /// Drops the former links whose Salesforce record a whole first sync did not bring (it
    /// was deleted there, or is out of the connected user's sight) and which wait for no
    /// failed read of it: their desk records are unlinked ones like any other from then on,
    /// sent as new records with their next edit.
    pub async fn forget_unreached_former_links(&self) -> StoreResult<()> {
        use sea_orm::sea_query::{Expr, ExprTrait, Query};
        for module in [Module::Accounts, Module::Contacts] {
            let failed = Query::select()
                .column(sync_failure::Column::SalesforceId)
                .from(sync_failure::Entity)
                .and_where(Expr::col(sync_failure::Column::Module).eq(module.as_str()))
                .and_where(
                    Expr::col(sync_failure::Column::Direction)
                        .eq(crate::domain::Direction::SalesforceToDesk.as_str()),
                )
                .and_where(Expr::col(sync_failure::Column::ResolvedAt).is_null())
                .and_where(Expr::col(sync_failure::Column::SalesforceId).is_not_null())
                .to_owned();
            former_link::Entity::delete_many()
                .filter(former_link::Column::Module.eq(module.as_str()))
                .filter(former_link::Column::SalesforceId.not_in_subquery(failed))
                .exec(self.connection())
                .await?;
        }
        Ok(())
    }
}

/// The prefix of the cursors the pull keeps its place in Salesforce's changes by.
pub const PULL_CURSORS: &str = "pull:";

/// Drops what the sync keeps about one org: links, queued changes, cursors, failures (their
/// events in the log too: they name the org's records and quote its values) and mappings.
/// Desk records, history and the log's other events stay; so do creates in doubt, whose
/// records the org may hold whatever becomes of the connection: noted with the org they went
/// to, they go once another org connects.
async fn forget_sync_state(txn: &impl ConnectionTrait) -> StoreResult<()> {
    record_link::Entity::delete_many().exec(txn).await?;
    outbox::Entity::delete_many().exec(txn).await?;
    sync_cursor::Entity::delete_many().exec(txn).await?;
    sync_failure::Entity::delete_many().exec(txn).await?;
    sync_event::Entity::delete_many()
        .filter(sync_event::Column::Kind.eq(SyncEventKind::FAILURE))
        .exec(txn)
        .await?;
    field_mapping::Entity::delete_many().exec(txn).await?;
    Ok(())
}

/// Whether `to` turns two-way an integration whose one-way first sync is done: what the desk
/// made meanwhile stayed local, and has to go out.
fn opens_two_way(current: &integration::Model, to: &str) -> bool {
    to == SyncType::TwoWay.as_str()
        && current.sync_type == SyncType::SalesforceToDesk.as_str()
        && current.first_sync == FirstSync::Done.as_str()
}

/// Queues every live desk record with no Salesforce twin, to go out as the first sync would
/// have sent it (matched by email or name first).
async fn queue_made_while_one_way(db: &impl ConnectionTrait) -> StoreResult<()> {
    for module in [Module::Accounts, Module::Contacts] {
        queue_unlinked(db, module).await?;
    }
    Ok(())
}
