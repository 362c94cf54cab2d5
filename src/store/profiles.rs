use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use entity::profile::{self, Column, Entity as Profiles};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{Store, StoreError, StoreResult};
use crate::domain::{Invalid, Name, Permissions, ProfileId, SalesforcePanel};

/// How long a profile read for a request is trusted when no change to any profile has been
/// seen: a change made through this process, or announced by another replica, ends it at
/// once; this bounds what a missed announcement (or another process on one SQLite file)
/// can leave stale.
const PROFILE_TTL: Duration = Duration::from_secs(1);

/// Profiles by name, each with the profile-change version and the moment it was read.
pub(super) type ProfileCache = Arc<Mutex<HashMap<String, (u64, Instant, profile::Model)>>>;

/// Reads the profiles once a second and moves the permissions' version on when they differ
/// from the last read: a change whose announcement was lost (its replica stopped between
/// commit and notice, or could not reach the database to send it) or that another process
/// made on one SQLite file still reaches open subscriptions within a second or so.
pub(super) fn watch_profiles(
    db: sea_orm::DatabaseConnection,
    profiles: &Arc<tokio::sync::watch::Sender<u64>>,
) {
    let weak = Arc::downgrade(profiles);
    tokio::spawn(async move {
        // The first read is what later ones are compared with: taken as soon as the table
        // can be read (it comes with the migrations, which run after the store opens),
        // before the first request is served.
        let mut seen: Option<Vec<profile::Model>> = None;
        let mut wait = Duration::from_millis(20);
        loop {
            tokio::time::sleep(wait).await;
            let Some(profiles) = weak.upgrade() else {
                return;
            };
            // Unread (the database is away, or not migrated yet): the next look tries again.
            let Ok(now) = Profiles::find().order_by_asc(Column::Id).all(&db).await else {
                wait = (wait * 2).min(Duration::from_secs(1));
                continue;
            };
            if seen.as_ref().is_some_and(|seen| *seen != now) {
                profiles.send_modify(|version| *version += 1);
            }
            seen = Some(now);
            wait = Duration::from_secs(1);
        }
    });
}

#[derive(Debug, Clone)]
pub struct NewProfile {
    pub name: String,
    pub is_admin: bool,
    pub permissions: Permissions,
}

/// The profiles every install starts with; Light Agent cannot see opportunities.
pub fn default_profiles() -> [NewProfile; 3] {
    [
        NewProfile {
            name: "Administrator".into(),
            is_admin: true,
            permissions: Permissions::FULL,
        },
        NewProfile {
            name: "Agent".into(),
            is_admin: false,
            permissions: Permissions::FULL,
        },
        NewProfile {
            name: "Light Agent".into(),
            is_admin: false,
            permissions: Permissions {
                opportunities: false,
                ..Permissions::FULL
            },
        },
    ]
}

pub fn permissions_of(model: &profile::Model) -> Permissions {
    // A row showing neither panel (written past the API, which cannot say so) shows nothing,
    // rather than both.
    let panel = SalesforcePanel::from_flags(model.show_contacts, model.show_accounts);
    Permissions {
        visible: model.salesforce_visible && panel.is_some(),
        panel: panel.unwrap_or(SalesforcePanel::Both),
        information: model.grant_information,
        opportunities: model.grant_opportunities,
        notes: model.grant_notes,
        events: model.grant_events,
        tasks: model.grant_tasks,
    }
}

fn set_permissions(active: &mut profile::ActiveModel, p: Permissions) {
    active.salesforce_visible = Set(p.visible);
    active.show_contacts = Set(p.panel.shows_contacts());
    active.show_accounts = Set(p.panel.shows_accounts());
    active.grant_information = Set(p.information);
    active.grant_opportunities = Set(p.opportunities);
    active.grant_notes = Set(p.notes);
    active.grant_events = Set(p.events);
    active.grant_tasks = Set(p.tasks);
}

impl Store {
    pub async fn profiles(&self) -> StoreResult<Vec<profile::Model>> {
        Ok(Profiles::find()
            .order_by_asc(Column::Id)
            .all(self.connection())
            .await?)
    }

    pub async fn profile(&self, id: ProfileId) -> StoreResult<Option<profile::Model>> {
        Ok(Profiles::find_by_id(id).one(self.connection()).await?)
    }

    pub async fn profile_by_name(&self, name: &str) -> StoreResult<Option<profile::Model>> {
        Ok(Profiles::find()
            .filter(Column::Name.eq(name))
            .one(self.connection())
            .await?)
    }

    /// The profile a request runs under. Every request asks for its viewer's, so a profile
    /// read is kept while no profile's permissions change, for at most [`PROFILE_TTL`].
    pub async fn viewer_profile(&self, name: &str) -> StoreResult<Option<profile::Model>> {
        // Read before the row is: a change committed meanwhile makes this entry old at once.
        let version = *self.profiles.borrow();
        let cached = self
            .profile_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .filter(|(seen, read_at, _)| *seen == version && read_at.elapsed() < PROFILE_TTL)
            .map(|(_, _, profile)| profile.clone());
        if cached.is_some() {
            return Ok(cached);
        }
        let read = self.profile_by_name(name).await?;
        if let Some(profile) = &read {
            self.profile_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_owned(), (version, Instant::now(), profile.clone()));
        }
        Ok(read)
    }

    /// Creates the default profiles on a fresh install; leaves an install with profiles alone.
    /// Replicas starting together on a fresh database may each find none: a name another
    /// made meanwhile is left as it made it.
    pub async fn ensure_default_profiles(&self) -> StoreResult<()> {
        let txn = self.write().await?;
        if Profiles::find().count(&*txn).await? > 0 {
            return Ok(());
        }
        let profiles = default_profiles()
            .into_iter()
            .map(active)
            .collect::<StoreResult<Vec<_>>>()?;
        Profiles::insert_many(profiles)
            .on_conflict_do_nothing_on([Column::Name])
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn create_profile(&self, new: NewProfile) -> StoreResult<profile::Model> {
        let name = Name::parse("name", &new.name, 80)?.into_inner();
        let txn = self.write().await?;
        super::locks::judge_profile_names_alone(&*txn).await?;
        // Names told apart only by case, spacing, invisible characters or a letter composed
        // otherwise would pass for one another.
        let key = |name: &str| {
            let shown: String = name
                .chars()
                .filter(|&c| c.is_whitespace() || !migration::keys::invisible(c))
                .collect();
            crate::domain::fold(&shown.split_whitespace().collect::<Vec<_>>().join(" "))
        };
        let taken = Profiles::find()
            .all(&*txn)
            .await?
            .into_iter()
            .find(|p| key(&p.name) == key(&name));
        if let Some(taken) = taken {
            return Err(StoreError::Conflict(format!(
                "a profile named '{}' already exists",
                taken.name
            )));
        }
        let model = match insert(&txn, NewProfile { name, ..new }).await {
            // Another replica made it since the look above.
            Err(StoreError::Db(e))
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                return Err(StoreError::Conflict(
                    "a profile of that name was just created".into(),
                ));
            }
            other => other?,
        };
        txn.commit().await?;
        Ok(model)
    }

    pub async fn update_profile_permissions(
        &self,
        id: ProfileId,
        change: impl FnOnce(Permissions) -> Permissions,
    ) -> StoreResult<profile::Model> {
        let mut txn = self.write().await?;
        txn.changes_profiles(self);
        let current = Profiles::find_by_id(id)
            .lock_exclusive()
            .one(&*txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("profile {id}")))?;
        let permissions = change(permissions_of(&current));
        let mut active: profile::ActiveModel = current.into();
        set_permissions(&mut active, permissions);
        active.updated_at = Set(Utc::now());
        let model = active.update(&*txn).await?;
        txn.commit().await?;
        Ok(model)
    }
}

async fn insert(txn: &super::WriteTxn<'_>, new: NewProfile) -> StoreResult<profile::Model> {
    Ok(active(new)?.insert(&**txn).await?)
}

fn active(new: NewProfile) -> StoreResult<profile::ActiveModel> {
    if new.name.trim().is_empty() {
        return Err(Invalid::new("name", "is required").into());
    }
    let now = Utc::now();
    let mut active = profile::ActiveModel {
        name: Set(new.name),
        is_admin: Set(new.is_admin),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    set_permissions(&mut active, new.permissions);
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_row_showing_neither_panel_shows_no_salesforce_data() {
        let now = chrono::Utc::now();
        let mut row = profile::Model {
            id: entity::ProfileId(1),
            name: "Provisioned".into(),
            is_admin: false,
            salesforce_visible: true,
            show_contacts: false,
            show_accounts: false,
            grant_information: true,
            grant_opportunities: true,
            grant_notes: true,
            grant_events: true,
            grant_tasks: true,
            created_at: now,
            updated_at: now,
        };
        assert!(!permissions_of(&row).visible);
        row.show_accounts = true;
        let shown = permissions_of(&row);
        assert!(shown.visible);
        assert_eq!(shown.panel, SalesforcePanel::Accounts);
    }
}
