//! Live desk events for dashboards.

use async_graphql::{Context, Enum, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ContextExt};
use crate::domain::{self, DeskEvent};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::DeskEntity")]
pub enum DeskEntity {
    Contact,
    Account,
    Ticket,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::DeskAction")]
pub enum DeskAction {
    Created,
    Updated,
    Deleted,
    Restored,
    Purged,
}

/// A committed change to a desk record.
#[derive(SimpleObject)]
pub struct DeskChange {
    pub entity: DeskEntity,
    pub action: DeskAction,
    pub record_id: ID,
    pub at: DateTime<Utc>,
}

impl From<DeskEvent> for DeskChange {
    fn from(e: DeskEvent) -> Self {
        Self {
            entity: e.entity.into(),
            action: e.action.into(),
            record_id: ID(e.record_id.to_string()),
            at: e.at,
        }
    }
}

#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// Desk records as they are created, changed, deleted and restored, from now on.
    async fn desk_changes(
        &self,
        ctx: &Context<'_>,
        entities: Option<Vec<DeskEntity>>,
    ) -> Result<impl Stream<Item = DeskChange> + use<>, ApiError> {
        ctx.viewer()?;
        let wanted: Option<Vec<domain::DeskEntity>> =
            entities.map(|e| e.into_iter().map(Into::into).collect());
        let receiver = ctx.store().subscribe();
        Ok(futures_util::stream::unfold(
            (receiver, wanted),
            |(mut rx, wanted)| async move {
                loop {
                    match rx.recv().await {
                        Ok(event) if wanted.as_ref().is_none_or(|w| w.contains(&event.entity)) => {
                            return Some((DeskChange::from(event), (rx, wanted)));
                        }
                        Ok(_) => continue,
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "a desk-change subscriber fell behind");
                            continue;
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}
