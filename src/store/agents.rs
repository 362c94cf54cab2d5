use chrono::Utc;
use entity::agent::{self, Column, Entity as Agents};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::{Store, StoreError, StoreResult};
use crate::domain::{AgentId, Email, Name, ProfileId};

impl Store {
    pub async fn agent(&self, id: AgentId) -> StoreResult<Option<agent::Model>> {
        Ok(Agents::find_by_id(id).one(self.connection()).await?)
    }

    pub async fn agents_by_ids(&self, ids: &[AgentId]) -> StoreResult<Vec<agent::Model>> {
        Ok(Agents::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .all(self.connection())
            .await?)
    }

    /// Adds an agent, or returns the existing one with the same email.
    pub async fn ensure_agent(
        &self,
        name: &str,
        email: &str,
        profile: ProfileId,
    ) -> StoreResult<agent::Model> {
        let name = Name::parse("name", name, 120)?.into_inner();
        let email = Email::parse("email", email)?.into_inner();
        let txn = self.write().await?;
        if let Some(existing) = Agents::find()
            .filter(Column::Email.eq(email.as_str()))
            .one(&*txn)
            .await?
        {
            return Ok(existing);
        }
        entity::profile::Entity::find_by_id(profile)
            .one(&*txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("profile {profile}")))?;
        let model = agent::ActiveModel {
            name: Set(name),
            email: Set(email),
            profile_id: Set(profile),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&*txn)
        .await?;
        txn.commit().await?;
        Ok(model)
    }
}
