//! Desk creates sent with a key (`idempotencyKey`): a client that lost a create's answer
//! (a dropped connection, a gateway restarted) sends it again under the same key, and gets
//! the record the first made rather than a second one.

use chrono::{Duration, Utc};
use entity::create_key::{self, Column, Entity as CreateKeys};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PrimaryKeyTrait, QueryFilter, Set,
};

use super::{StoreError, StoreResult};
use crate::domain::AgentId;

/// How long a key answers for what it made.
pub const KEPT_FOR: Duration = Duration::hours(24);

/// The key one agent sent a create with, and the create's input as JSON.
#[derive(Debug, Clone)]
pub struct CreateKey {
    pub agent: AgentId,
    pub key: String,
    pub request: String,
}

/// The record a create of `entity` made already under this key, if one did within
/// [`KEPT_FOR`]; a key sent with another create is refused. This key, older, is forgotten
/// (the rest go with the sync history's pruning, [`prune`]).
async fn made_under(
    db: &impl ConnectionTrait,
    key: &CreateKey,
    entity: &str,
) -> StoreResult<Option<i64>> {
    CreateKeys::delete_many()
        .filter(Column::AgentId.eq(key.agent.0))
        .filter(Column::Key.eq(key.key.as_str()))
        .filter(Column::CreatedAt.lt(Utc::now() - KEPT_FOR))
        .exec(db)
        .await?;
    let Some(made) = CreateKeys::find()
        .filter(Column::AgentId.eq(key.agent.0))
        .filter(Column::Key.eq(key.key.as_str()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if made.entity != entity || made.request != key.request {
        return Err(StoreError::Conflict(format!(
            "idempotencyKey '{}' was sent within the last day with another create ({} {}); send a new key with each new create",
            key.key, made.entity, made.record_id
        )));
    }
    Ok(Some(made.record_id))
}

/// The `entity` record (of `E`, keyed by `id`) a create made already under `key`, if one did
/// within [`KEPT_FOR`]: a create sent again is answered with it rather than made twice.
pub(super) async fn made_before<E: EntityTrait>(
    db: &impl ConnectionTrait,
    key: Option<&CreateKey>,
    entity: &str,
    id: impl FnOnce(i64) -> <E::PrimaryKey as PrimaryKeyTrait>::ValueType,
) -> StoreResult<Option<E::Model>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let Some(made) = made_under(db, key, entity).await? else {
        return Ok(None);
    };
    E::find_by_id(id(made))
        .one(db)
        .await?
        .map(Some)
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "{entity} {made}, made under this idempotencyKey and deleted for good since,"
            ))
        })
}

/// Notes that the create sent under `key` made `record_id`, in the create's transaction.
pub(super) async fn remember(
    db: &impl ConnectionTrait,
    key: &CreateKey,
    entity: &str,
    record_id: i64,
) -> StoreResult<()> {
    let noted = create_key::ActiveModel {
        agent_id: Set(key.agent.0),
        key: Set(key.key.clone()),
        entity: Set(entity.to_owned()),
        record_id: Set(record_id),
        request: Set(key.request.clone()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await;
    match noted {
        Ok(_) => Ok(()),
        // The same create, sent again while the first was being made (PostgreSQL): this one
        // is undone, and sent once more it is answered with the first's record.
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Err(StoreError::Conflict(format!(
                "a create with idempotencyKey '{}' was being made at the same moment; send it again to get its record",
                key.key
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Forgets every key past [`KEPT_FOR`].
pub(super) async fn prune(db: &impl ConnectionTrait) -> StoreResult<()> {
    CreateKeys::delete_many()
        .filter(Column::CreatedAt.lt(Utc::now() - KEPT_FOR))
        .exec(db)
        .await?;
    Ok(())
}
