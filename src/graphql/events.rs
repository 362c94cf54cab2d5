//! Live desk events for dashboards.

use async_graphql::{Context, Enum, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::{ApiError, Code, ContextExt};
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
    /// Desk records as they are created, changed, deleted and restored, from now on. A
    /// subscriber that falls too far behind (over a thousand changes, say a first sync while
    /// it was not reading), or whose replica may have missed what other replicas announced
    /// (its listening connection dropped; on SQLite, where processes cannot announce, another
    /// process logged a sync round), gets one `FELL_BEHIND` error and the end of the
    /// stream: it subscribes anew and reads the records changed since a minute before the
    /// last event it had (`updatedSince`: a change is stamped as it is made, and a sync
    /// batch commits its changes seconds later), rather than missing some unawares.
    async fn desk_changes(
        &self,
        ctx: &Context<'_>,
        entities: Option<Vec<DeskEntity>>,
    ) -> Result<impl Stream<Item = Result<DeskChange, ApiError>> + use<>, ApiError> {
        ctx.viewer()?;
        let wanted: Option<Vec<domain::DeskEntity>> =
            entities.map(|e| e.into_iter().map(Into::into).collect());
        let store = ctx.store();
        Ok(changes(store.subscribe(), store.desk_gaps(), wanted))
    }
}

/// The changes a receiver hears of, of the entities wanted; an error, then the end, once it
/// has missed some.
fn changes(
    receiver: broadcast::Receiver<DeskEvent>,
    gaps: watch::Receiver<u64>,
    wanted: Option<Vec<domain::DeskEntity>>,
) -> impl Stream<Item = Result<DeskChange, ApiError>> {
    futures_util::stream::unfold(Some((receiver, gaps, wanted)), |state| async move {
        let (mut rx, mut gaps, wanted) = state?;
        loop {
            let received = tokio::select! {
                received = rx.recv() => received,
                Ok(()) = gaps.changed() => {
                    let error = ApiError::new(
                        Code::FellBehind,
                        "changes made through other replicas while this one was not listening may have been missed; subscribe again and read the records changed since a minute before the last event received (filter updatedSince: a change is stamped as it is made, before it commits)",
                    );
                    return Some((Err(error), None));
                }
            };
            match received {
                Ok(event) if wanted.as_ref().is_none_or(|w| w.contains(&event.entity)) => {
                    return Some((Ok(DeskChange::from(event)), Some((rx, gaps, wanted))));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a desk-change subscriber fell behind");
                    let error = ApiError::new(
                        Code::FellBehind,
                        format!(
                            "this subscription fell behind and missed {missed} desk changes; subscribe again and read the records changed since a minute before its last event (filter updatedSince: a change is stamped as it is made, before it commits)"
                        ),
                    );
                    return Some((Err(error), None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use futures_util::StreamExt;
    use tokio::sync::{broadcast, watch};

    use super::changes;
    use crate::domain::{DeskAction, DeskEntity, DeskEvent};

    fn event(record_id: i64) -> DeskEvent {
        DeskEvent {
            entity: DeskEntity::Contact,
            action: DeskAction::Updated,
            record_id,
            at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_missed_changes_is_told_and_its_stream_ends() {
        let (tx, rx) = broadcast::channel(2);
        let (_gaps, gaps) = watch::channel(0);
        let stream = changes(rx, gaps, None);
        for id in 1..=5 {
            tx.send(event(id)).unwrap();
        }
        let items: Vec<_> = stream.take(4).collect().await;
        assert_eq!(items.len(), 1, "the error, then the end");
        let error = items[0].as_ref().err().expect("an error");
        assert_eq!(error.code.as_str(), "FELL_BEHIND");
        assert!(error.message.contains("missed 3"), "{}", error.message);
    }

    #[tokio::test]
    async fn a_subscriber_keeping_up_hears_the_entities_it_wants() {
        let (tx, rx) = broadcast::channel(8);
        let (_gaps, gaps) = watch::channel(0);
        let stream = changes(rx, gaps, Some(vec![DeskEntity::Contact]));
        tx.send(DeskEvent {
            entity: DeskEntity::Ticket,
            ..event(1)
        })
        .unwrap();
        tx.send(event(2)).unwrap();
        drop(tx);
        let items: Vec<_> = stream.collect().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap().record_id.0, "2");
    }
}
