//! Per-request batch loading of desk records by id.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::{account, agent, contact};

use crate::domain::{AccountId, AgentId, ContactId};
use crate::store::{Store, StoreError};

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
