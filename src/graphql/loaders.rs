//! Per-request batch loading of desk records by id.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use async_graphql::dataloader::Loader;
use entity::{account, agent, contact};
use tokio::sync::oneshot;

use super::{ApiError, ApiResult};
use crate::domain::{AccountId, AgentId, ContactId};
use crate::store::{Page, PageRequest, Store, StoreError};

/// Gathers the keys one request's resolvers ask for and loads each kind with one call of
/// its [`Loader`]. A batch opens with the first key asked for and closes at the first turn
/// of the executor that adds no key to it: on the worker's single-threaded runtime, after
/// the passes that polled every sibling resolver, so they all share it.
///
/// async-graphql's `DataLoader` closes a batch with a timer instead, and a timer fires on
/// the next millisecond tick at the earliest. A ticket's panel loads on three levels (its
/// contact's link, then the account's link and row), and those ticks made up most of its
/// latency. Timers still suit the Salesforce lists (`live`), which gather panels arriving
/// at different moments.
pub struct Batcher<L> {
    loader: Arc<L>,
    open: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>>,
}

/// The most passes of the executor a batch stays open for while keys keep arriving.
const MAX_PASSES: usize = 8;

/// The keys of one kind waiting for the next load, and who waits for them.
type Waiting<K, V, E> = (
    HashSet<K>,
    Vec<oneshot::Sender<Result<Arc<HashMap<K, V>>, E>>>,
);

/// Runs `f` on the open batch of keys of type `K`, making it when there is none.
fn with_batch<K, V, E, R>(
    open: &Mutex<HashMap<TypeId, Box<dyn Any + Send>>>,
    f: impl FnOnce(&mut Waiting<K, V, E>) -> R,
) -> R
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    E: Send + 'static,
{
    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
    let batch = open
        .entry(TypeId::of::<K>())
        .or_insert_with(|| Box::new(Waiting::<K, V, E>::default()))
        .downcast_mut::<Waiting<K, V, E>>()
        .expect("batches are keyed by their key type");
    f(batch)
}

impl<L: Send + Sync + 'static> Batcher<L> {
    pub fn new(loader: L) -> Self {
        Self {
            loader: Arc::new(loader),
            open: Arc::default(),
        }
    }

    /// The value for `key`, read in one batch with the other keys of its kind asked for in
    /// the same pass; `None` when there is none.
    pub async fn load_one<K>(&self, key: K) -> ApiResult<Option<L::Value>>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        L: Loader<K>,
        L::Error: std::fmt::Display,
    {
        let (tx, rx) = oneshot::channel();
        let opens_batch = with_batch::<K, L::Value, L::Error, _>(&self.open, |(keys, waiters)| {
            keys.insert(key.clone());
            waiters.push(tx);
            waiters.len() == 1
        });
        if opens_batch {
            let (loader, open) = (self.loader.clone(), self.open.clone());
            tokio::spawn(async move {
                let waiting =
                    || with_batch::<K, L::Value, L::Error, _>(&open, |(keys, _)| keys.len());
                // Resolvers the executor put off to its next pass (it polls at most as many
                // futures a pass as it holds) join while keys keep arriving.
                for _ in 0..MAX_PASSES {
                    let before = waiting();
                    tokio::task::yield_now().await;
                    if waiting() == before {
                        break;
                    }
                }
                let (keys, waiters) = with_batch::<K, L::Value, L::Error, _>(&open, std::mem::take);
                let keys: Vec<K> = keys.into_iter().collect();
                let loaded = loader.load(&keys).await.map(Arc::new);
                for waiter in waiters {
                    // A waiter that is gone belonged to a request that ended early.
                    let _ = waiter.send(loaded.clone());
                }
            });
        }
        let loaded = rx
            .await
            .map_err(|_| ApiError::internal(&"a batch load stopped before it answered"))?
            .map_err(|e| ApiError::internal(&e))?;
        Ok(loaded.get(&key).cloned())
    }
}

pub struct DeskLoader {
    store: Store,
}

impl DeskLoader {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Loader<ContactId> for DeskLoader {
    type Value = contact::Model;
    type Error = Arc<StoreError>;

    async fn load(
        &self,
        keys: &[ContactId],
    ) -> Result<HashMap<ContactId, Self::Value>, Self::Error> {
        let rows = self.store.contacts_by_ids(keys).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|m| (m.id, m)).collect())
    }
}

impl Loader<AccountId> for DeskLoader {
    type Value = account::Model;
    type Error = Arc<StoreError>;

    async fn load(
        &self,
        keys: &[AccountId],
    ) -> Result<HashMap<AccountId, Self::Value>, Self::Error> {
        let rows = self.store.accounts_by_ids(keys).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|m| (m.id, m)).collect())
    }
}

impl Loader<AgentId> for DeskLoader {
    type Value = agent::Model;
    type Error = Arc<StoreError>;

    async fn load(&self, keys: &[AgentId]) -> Result<HashMap<AgentId, Self::Value>, Self::Error> {
        let rows = self.store.agents_by_ids(keys).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|m| (m.id, m)).collect())
    }
}

/// A page of an account's live contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContactsOf(pub AccountId, pub PageRequest);

impl Loader<ContactsOf> for DeskLoader {
    type Value = Page<contact::Model>;
    type Error = Arc<StoreError>;

    /// One query for each page asked for, however many accounts ask for it.
    async fn load(
        &self,
        keys: &[ContactsOf],
    ) -> Result<HashMap<ContactsOf, Self::Value>, Self::Error> {
        let mut by_page: HashMap<PageRequest, Vec<AccountId>> = HashMap::new();
        for &ContactsOf(account, page) in keys {
            by_page.entry(page).or_default().push(account);
        }
        let mut loaded = HashMap::with_capacity(keys.len());
        for (page, accounts) in by_page {
            let pages = self
                .store
                .contacts_of_accounts(&accounts, page)
                .await
                .map_err(Arc::new)?;
            loaded.extend(
                pages
                    .into_iter()
                    .map(|(account, contacts)| (ContactsOf(account, page), contacts)),
            );
        }
        Ok(loaded)
    }
}

/// How many live contacts an account has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContactCountOf(pub AccountId);

impl Loader<ContactCountOf> for DeskLoader {
    type Value = u64;
    type Error = Arc<StoreError>;

    /// One grouped count however many accounts ask.
    async fn load(
        &self,
        keys: &[ContactCountOf],
    ) -> Result<HashMap<ContactCountOf, Self::Value>, Self::Error> {
        let accounts: Vec<AccountId> = keys.iter().map(|k| k.0).collect();
        let counts = self
            .store
            .contact_counts_of_accounts(&accounts)
            .await
            .map_err(Arc::new)?;
        Ok(keys
            .iter()
            .map(|&key| (key, counts.get(&key.0).copied().unwrap_or(0)))
            .collect())
    }
}

/// The Salesforce link of one desk record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkOf(pub crate::domain::Module, pub i64);

impl Loader<LinkOf> for DeskLoader {
    type Value = entity::record_link::Model;
    type Error = Arc<StoreError>;

    async fn load(&self, keys: &[LinkOf]) -> Result<HashMap<LinkOf, Self::Value>, Self::Error> {
        let links = self
            .store
            .links_of(keys.iter().map(|&LinkOf(module, id)| (module, id)))
            .await
            .map_err(Arc::new)?;
        Ok(links
            .into_iter()
            .map(|((module, id), link)| (LinkOf(module, id), link))
            .collect())
    }
}

/// The desk account, recycle bin included, linked to one Salesforce account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountLinkedTo(pub String);

impl Loader<AccountLinkedTo> for DeskLoader {
    type Value = AccountId;
    type Error = Arc<StoreError>;

    async fn load(
        &self,
        keys: &[AccountLinkedTo],
    ) -> Result<HashMap<AccountLinkedTo, Self::Value>, Self::Error> {
        let ids: Vec<String> = keys.iter().map(|key| key.0.clone()).collect();
        let found = self
            .store
            .desk_accounts_by_salesforce(&ids)
            .await
            .map_err(Arc::new)?;
        Ok(found
            .into_iter()
            .map(|(salesforce, desk)| (AccountLinkedTo(salesforce), AccountId(desk)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the key lists it is asked for; a key over 100 has no value.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Vec<u32>>>);

    impl Loader<u32> for Recorder {
        type Value = String;
        type Error = Arc<str>;

        async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, String>, Self::Error> {
            let mut sorted = keys.to_vec();
            sorted.sort_unstable();
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(sorted);
            Ok(keys
                .iter()
                .filter(|&&k| k <= 100)
                .map(|&k| (k, format!("value {k}")))
                .collect())
        }
    }

    fn calls(batcher: &Batcher<Recorder>) -> Vec<Vec<u32>> {
        batcher
            .loader
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    #[tokio::test]
    async fn keys_asked_for_in_one_pass_share_one_load_and_later_ones_start_another() {
        let batcher = Batcher::new(Recorder::default());
        let answers =
            futures_util::future::join_all([3, 1, 3, 200].map(|k| batcher.load_one(k))).await;
        let answers: Vec<Option<String>> = answers.into_iter().map(|a| a.ok().flatten()).collect();
        assert_eq!(
            answers,
            [
                Some("value 3".into()),
                Some("value 1".into()),
                Some("value 3".into()),
                None
            ]
        );
        assert_eq!(calls(&batcher), [vec![1, 3, 200]]);

        let again = batcher.load_one(7).await.ok().flatten();
        assert_eq!(again.as_deref(), Some("value 7"));
        assert_eq!(calls(&batcher), [vec![1, 3, 200], vec![7]]);
    }

    #[tokio::test]
    async fn a_key_asked_for_a_turn_later_still_joins_the_open_batch() {
        let batcher = Batcher::new(Recorder::default());
        let late = async {
            tokio::task::yield_now().await;
            batcher.load_one(2).await
        };
        let (early, late) = tokio::join!(batcher.load_one(1), late);
        assert_eq!(early.ok().flatten().as_deref(), Some("value 1"));
        assert_eq!(late.ok().flatten().as_deref(), Some("value 2"));
        assert_eq!(calls(&batcher), [vec![1, 2]]);
    }
}
