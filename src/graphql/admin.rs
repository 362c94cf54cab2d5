//! The viewer (`me`) and desk profiles with their Salesforce permissions.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use entity::profile;

use super::desk::Agent;
use super::paging::parse_id;
use super::{ApiResult, ContextExt};
use crate::domain::{Permissions, ProfileId};
use crate::store::{NewProfile, permissions_of};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::SalesforcePanel")]
pub enum SalesforcePanel {
    Contacts,
    Accounts,
    Both,
}

/// `FULL` when every item is granted, otherwise `RESTRICTED`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum AccessLevel {
    Full,
    Restricted,
}

/// What a profile may see of Salesforce.
#[derive(SimpleObject)]
pub struct ProfilePermissions {
    /// Whether the Salesforce integration shows at all.
    pub visible: bool,
    pub panel: SalesforcePanel,
    /// Contact and account information.
    pub information: bool,
    pub opportunities: bool,
    pub notes: bool,
    pub events: bool,
    pub tasks: bool,
    pub access_level: AccessLevel,
}

impl From<Permissions> for ProfilePermissions {
    fn from(p: Permissions) -> Self {
        Self {
            visible: p.visible,
            panel: p.panel.into(),
            information: p.information,
            opportunities: p.opportunities,
            notes: p.notes,
            events: p.events,
            tasks: p.tasks,
            access_level: if p.is_full_access() {
                AccessLevel::Full
            } else {
                AccessLevel::Restricted
            },
        }
    }
}

#[derive(SimpleObject)]
pub struct Profile {
    pub id: ID,
    pub name: String,
    pub is_admin: bool,
    pub permissions: ProfilePermissions,
}

impl From<profile::Model> for Profile {
    fn from(m: profile::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            permissions: permissions_of(&m).into(),
            name: m.name,
            is_admin: m.is_admin,
        }
    }
}

/// The signed-in agent, with what its profile lets it see.
pub struct Me;

#[Object]
impl Me {
    async fn agent_id(&self, ctx: &Context<'_>) -> ApiResult<ID> {
        Ok(ID(ctx.viewer()?.agent_id.to_string()))
    }

    /// The agent's record, when the desk knows it.
    async fn agent(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        let viewer = ctx.viewer()?;
        let agent = ctx.loader().load_one(viewer.agent_id).await?;
        Ok(agent.map(Agent::from))
    }

    /// The display name carried by the token.
    async fn name(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        Ok(ctx.viewer()?.name.clone())
    }

    async fn profile(&self, ctx: &Context<'_>) -> ApiResult<Profile> {
        Ok(ctx.viewer()?.profile.clone().into())
    }

    /// The Salesforce items this agent may see; a UI draws its panels from this.
    async fn permissions(&self, ctx: &Context<'_>) -> ApiResult<ProfilePermissions> {
        Ok(ctx.viewer()?.permissions().into())
    }
}

#[derive(InputObject)]
pub struct PermissionsInput {
    #[graphql(default = true)]
    pub visible: bool,
    #[graphql(default_with = "SalesforcePanel::Both")]
    pub panel: SalesforcePanel,
    #[graphql(default = true)]
    pub information: bool,
    #[graphql(default = true)]
    pub opportunities: bool,
    #[graphql(default = true)]
    pub notes: bool,
    #[graphql(default = true)]
    pub events: bool,
    #[graphql(default = true)]
    pub tasks: bool,
}

impl From<PermissionsInput> for Permissions {
    fn from(p: PermissionsInput) -> Self {
        Permissions {
            visible: p.visible,
            panel: p.panel.into(),
            information: p.information,
            opportunities: p.opportunities,
            notes: p.notes,
            events: p.events,
            tasks: p.tasks,
        }
    }
}

/// The permissions to change; one left out keeps its value.
#[derive(InputObject)]
pub struct PermissionsPatchInput {
    pub visible: Option<bool>,
    pub panel: Option<SalesforcePanel>,
    pub information: Option<bool>,
    pub opportunities: Option<bool>,
    pub notes: Option<bool>,
    pub events: Option<bool>,
    pub tasks: Option<bool>,
}

impl PermissionsPatchInput {
    fn apply(self, p: Permissions) -> Permissions {
        Permissions {
            visible: self.visible.unwrap_or(p.visible),
            panel: self.panel.map_or(p.panel, Into::into),
            information: self.information.unwrap_or(p.information),
            opportunities: self.opportunities.unwrap_or(p.opportunities),
            notes: self.notes.unwrap_or(p.notes),
            events: self.events.unwrap_or(p.events),
            tasks: self.tasks.unwrap_or(p.tasks),
        }
    }
}

#[derive(InputObject)]
pub struct CreateProfileInput {
    pub name: String,
    #[graphql(default)]
    pub is_admin: bool,
    pub permissions: PermissionsInput,
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Me> {
        ctx.viewer()?;
        Ok(Me)
    }

    /// Every desk profile. Administrators only.
    async fn profiles(&self, ctx: &Context<'_>) -> ApiResult<Option<Vec<Profile>>> {
        ctx.admin()?;
        Ok(Some(
            ctx.store()
                .profiles()
                .await?
                .into_iter()
                .map(Profile::from)
                .collect(),
        ))
    }
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Adds a custom profile. Administrators only.
    async fn create_profile(
        &self,
        ctx: &Context<'_>,
        input: CreateProfileInput,
    ) -> ApiResult<Option<Profile>> {
        ctx.admin()?;
        let new = NewProfile {
            name: input.name,
            is_admin: input.is_admin,
            permissions: input.permissions.into(),
        };
        Ok(Some(ctx.store().create_profile(new).await?.into()))
    }

    /// Changes the Salesforce permissions given; the others keep their values.
    /// Administrators only.
    async fn update_profile_permissions(
        &self,
        ctx: &Context<'_>,
        id: ID,
        permissions: PermissionsPatchInput,
    ) -> ApiResult<Option<Profile>> {
        ctx.admin()?;
        let id = parse_id("id", &id, ProfileId)?;
        Ok(Some(
            ctx.store()
                .update_profile_permissions(id, |current| permissions.apply(current))
                .await?
                .into(),
        ))
    }
}
