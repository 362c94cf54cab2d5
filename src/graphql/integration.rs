//! The Salesforce connection, its field mappings and sync controls. Administrators only.

use std::future::Future;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::integration;
use secrecy::SecretString;

use super::{ApiError, ApiResult, ContextExt};
use crate::domain::Invalid;
use crate::sync::{Connect, ConnectAuth, Mapping, SyncError};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::IntegrationStatus")]
pub enum IntegrationStatus {
    NotConnected,
    Active,
    Paused,
    Error,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::SyncType")]
pub enum SyncType {
    /// Changes on either side reach the other; the most recent change wins.
    TwoWay,
    /// Salesforce is the master; desk edits stay in the desk.
    SalesforceToDesk,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::Module")]
pub enum SyncModule {
    Contacts,
    Accounts,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::FirstSync")]
pub enum FirstSyncState {
    NotStarted,
    Running,
    Done,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SalesforceAuth {
    /// OAuth username-password flow, as the connected app allows it.
    Password,
    /// OAuth JWT bearer flow with the connected app's certificate key.
    JwtBearer,
    /// An OAuth refresh token issued to the connected app.
    RefreshToken,
}

#[derive(SimpleObject)]
pub struct ApiUsage {
    pub used: i64,
    pub max: i64,
}

/// The Salesforce integration. Credentials and tokens are never returned.
#[derive(SimpleObject)]
pub struct Integration {
    pub status: IntegrationStatus,
    /// Why the integration is in `ERROR`, or, while it stays `ACTIVE`, why its last sync
    /// round stopped (cleared once a round gets through).
    pub status_reason: Option<String>,
    pub sync_type: Option<SyncType>,
    pub login_url: Option<String>,
    pub instance_url: Option<String>,
    /// The Salesforce user Tandem signs in as; null when Salesforce did not say who that is
    /// (a refresh-token connection whose identity could not be read).
    pub connected_user: Option<String>,
    pub first_sync: Option<FirstSyncState>,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Daily API usage as Salesforce last reported it.
    pub api_usage: Option<ApiUsage>,
    /// The id of the newest sync event logged before this answer was read ("0" when none):
    /// `syncEvents(afterId:)` given it follows on from this answer with no gap. An event
    /// after it may repeat what the answer already shows; none it does not show is before.
    pub last_event_id: ID,
}

impl Integration {
    /// The integration as `state` leaves it, with the id of the newest event logged before.
    async fn read<F>(ctx: &Context<'_>, state: F) -> ApiResult<Option<Integration>>
    where
        F: Future<Output = Result<Option<integration::Model>, SyncError>>,
    {
        let last_event = ctx.store().logged_sync_event_id().await?;
        let mut integration = match state.await? {
            Some(model) => Integration::try_from(model)?,
            None => Integration::disconnected(),
        };
        integration.last_event_id = ID(last_event.to_string());
        Ok(Some(integration))
    }

    fn disconnected() -> Self {
        Self {
            status: IntegrationStatus::NotConnected,
            status_reason: None,
            sync_type: None,
            login_url: None,
            instance_url: None,
            connected_user: None,
            first_sync: None,
            last_sync_at: None,
            api_usage: None,
            last_event_id: ID("0".into()),
        }
    }
}

impl TryFrom<integration::Model> for Integration {
    type Error = ApiError;

    fn try_from(m: integration::Model) -> ApiResult<Self> {
        let parse = |what: &str, e: String| ApiError::internal(&format!("stored {what}: {e}"));
        let status: crate::domain::IntegrationStatus =
            m.status.parse().map_err(|e| parse("status", e))?;
        let sync_type: crate::domain::SyncType =
            m.sync_type.parse().map_err(|e| parse("sync type", e))?;
        let first_sync: crate::domain::FirstSync =
            m.first_sync.parse().map_err(|e| parse("first sync", e))?;
        Ok(Self {
            status: status.into(),
            status_reason: m.status_reason,
            sync_type: Some(sync_type.into()),
            login_url: Some(m.login_url),
            instance_url: m.instance_url,
            connected_user: m.username,
            first_sync: Some(first_sync.into()),
            last_sync_at: m.last_sync_at,
            api_usage: m
                .api_used
                .zip(m.api_max)
                .map(|(used, max)| ApiUsage { used, max }),
            last_event_id: ID("0".into()),
        })
    }
}

#[derive(InputObject)]
pub struct ConnectSalesforceInput {
    /// `https://login.salesforce.com`, `https://test.salesforce.com`, or a My Domain URL.
    pub login_url: String,
    #[graphql(default_with = "SalesforceAuth::Password")]
    pub auth: SalesforceAuth,
    pub username: Option<String>,
    /// The password, followed by the security token when the org requires one.
    pub password: Option<String>,
    pub client_id: String,
    /// The connected app's consumer secret, sent with the password and refresh-token flows
    /// when given (an app may not require it there; one that does refuses the sign-in).
    pub client_secret: Option<String>,
    /// PEM private key for the JWT bearer flow.
    pub private_key: Option<String>,
    pub refresh_token: Option<String>,
    /// TWO_WAY when omitted for the first connection; signing in again, to the same org or
    /// another, keeps the sync type it had.
    pub sync_type: Option<SyncType>,
}

fn secret(field: &str, value: Option<String>) -> ApiResult<SecretString> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(SecretString::from)
        .ok_or_else(|| Invalid::new(field, "is required for this kind of login").into())
}

impl ConnectSalesforceInput {
    fn into_request(self) -> ApiResult<Connect> {
        let username = || self.username.clone().unwrap_or_default();
        let auth = match self.auth {
            SalesforceAuth::Password => ConnectAuth::Password {
                username: username(),
                password: secret("password", self.password)?,
                client_id: self.client_id,
                // Sent only when given: a connected app may not require it.
                client_secret: SecretString::from(self.client_secret.unwrap_or_default()),
            },
            SalesforceAuth::JwtBearer => ConnectAuth::JwtBearer {
                username: username(),
                client_id: self.client_id,
                private_key_pem: secret("privateKey", self.private_key)?,
            },
            SalesforceAuth::RefreshToken => ConnectAuth::RefreshToken {
                refresh_token: secret("refreshToken", self.refresh_token)?,
                client_id: self.client_id,
                // Sent only when given: a connected app may not require it for refreshing.
                client_secret: SecretString::from(self.client_secret.unwrap_or_default()),
            },
        };
        Ok(Connect {
            login_url: self.login_url,
            auth,
            sync_type: self.sync_type.map(Into::into),
        })
    }
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "FieldMappingInput")]
pub struct FieldMapping {
    /// A desk field, such as `lastName`.
    pub desk_field: String,
    /// A Salesforce field API name, such as `LastName`.
    pub salesforce_field: String,
}

/// What a desk field holds.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum DeskFieldKind {
    Text,
    Email,
    Integer,
    Decimal,
    /// A link to a desk account (a Salesforce reference to Account).
    Account,
}

/// A desk field and the Salesforce fields it may be mapped to: what a mapping screen offers.
#[derive(SimpleObject)]
pub struct MappableField {
    /// The desk field, as `FieldMappingInput.deskField` names it.
    pub desk_field: String,
    pub kind: DeskFieldKind,
    /// The most characters it holds, for text.
    pub max_length: Option<i32>,
    /// Whether it must be mapped: the desk requires it, or the sync finds a record's
    /// Salesforce twin by it.
    pub required: bool,
    /// The Salesforce field it is mapped to now.
    pub salesforce_field: Option<String>,
    /// The org's fields `updateFieldMappings` accepts for it under the current sync type
    /// (a two-way sync needs them writable and long enough), in the org's order.
    pub choices: Vec<SalesforceFieldChoice>,
}

/// A field of the org's Contact or Account object.
#[derive(SimpleObject)]
pub struct SalesforceFieldChoice {
    /// Its API name, as `FieldMappingInput.salesforceField` takes it.
    pub name: String,
    /// Its name in Salesforce's UI.
    pub label: String,
    /// Salesforce's type for it, such as `string`, `email`, `picklist` or `currency`.
    pub kind: String,
    /// The most characters it holds (text types; 0 otherwise).
    pub length: i32,
    /// Whether Salesforce requires it on every record made, so that a two-way sync must map
    /// it.
    pub required: bool,
    /// A field an admin of the org added.
    pub custom: bool,
}

impl From<Mapping> for FieldMapping {
    fn from(m: Mapping) -> Self {
        Self {
            desk_field: m.desk_field,
            salesforce_field: m.salesforce_field,
        }
    }
}

#[derive(Default)]
pub struct IntegrationQuery;

#[Object]
impl IntegrationQuery {
    /// The Salesforce integration's state. Administrators only.
    async fn integration(&self, ctx: &Context<'_>) -> ApiResult<Option<Integration>> {
        ctx.admin()?;
        Integration::read(ctx, ctx.integrations().current()).await
    }

    /// Which desk field syncs with which Salesforce field. Administrators only.
    async fn field_mappings(
        &self,
        ctx: &Context<'_>,
        module: SyncModule,
    ) -> ApiResult<Option<Vec<FieldMapping>>> {
        ctx.admin()?;
        let mappings = ctx.integrations().mappings(module.into()).await?;
        Ok(Some(mappings.into_iter().map(FieldMapping::from).collect()))
    }

    /// Every desk field of the module, what it is mapped to, and the org's fields it may be
    /// mapped to instead, read from Salesforce as it is now. Administrators only.
    async fn mappable_fields(
        &self,
        ctx: &Context<'_>,
        module: SyncModule,
    ) -> ApiResult<Option<Vec<MappableField>>> {
        use crate::sync::mapping::{DeskKind, must_map};
        ctx.admin()?;
        let module = module.into();
        let integrations = ctx.integrations();
        let choices = integrations.mapping_choices(module).await?;
        let mapped = integrations.mappings(module).await?;
        let fields = choices
            .into_iter()
            .map(|(desk, fitting)| {
                let (kind, max_length) = match desk.kind {
                    DeskKind::Text { max } => (DeskFieldKind::Text, i32::try_from(max).ok()),
                    DeskKind::Email => (DeskFieldKind::Email, None),
                    DeskKind::Integer { .. } => (DeskFieldKind::Integer, None),
                    DeskKind::Decimal { .. } => (DeskFieldKind::Decimal, None),
                    DeskKind::AccountRef => (DeskFieldKind::Account, None),
                };
                MappableField {
                    desk_field: desk.name.to_owned(),
                    kind,
                    max_length,
                    required: must_map(module, desk),
                    salesforce_field: mapped
                        .iter()
                        .find(|m| m.desk_field == desk.name)
                        .map(|m| m.salesforce_field.clone()),
                    choices: fitting
                        .into_iter()
                        .map(|sf| SalesforceFieldChoice {
                            required: sf.required_on_create(),
                            length: i32::try_from(sf.length).unwrap_or(i32::MAX),
                            name: sf.name,
                            label: sf.label,
                            kind: sf.kind,
                            custom: sf.custom,
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(Some(fields))
    }
}

#[derive(Default)]
pub struct IntegrationMutation;

#[Object]
impl IntegrationMutation {
    /// Signs in to Salesforce with these credentials and, if the org accepts them, saves them
    /// encrypted. Replaces an earlier connection. Administrators only.
    async fn connect_salesforce(
        &self,
        ctx: &Context<'_>,
        input: ConnectSalesforceInput,
    ) -> ApiResult<Option<Integration>> {
        ctx.admin()?;
        let changed = ctx.integrations().connect(input.into_request()?);
        Integration::read(ctx, async { changed.await.map(Some) }).await
    }

    /// Sets the direction of the sync. Syncing both ways writes every mapped field, so a
    /// switch to TWO_WAY first checks that each can be written and that every field
    /// Salesforce requires is mapped (BAD_USER_INPUT naming the mapping otherwise).
    /// Administrators only.
    async fn set_sync_type(
        &self,
        ctx: &Context<'_>,
        sync_type: SyncType,
    ) -> ApiResult<Option<Integration>> {
        ctx.admin()?;
        let changed = ctx.integrations().set_sync_type(sync_type.into());
        Integration::read(ctx, async { changed.await.map(Some) }).await
    }

    /// Replaces a module's field mappings after checking them against the org: known
    /// fields, types that fit, each field once, the desk's mandatory fields and match key
    /// mapped; while the sync is two-way, also Salesforce fields that can be written, at
    /// least as long as the desk's, and every field Salesforce requires mapped (one-way, a
    /// read-only field such as a formula may be mapped into the desk). Administrators only.
    async fn update_field_mappings(
        &self,
        ctx: &Context<'_>,
        module: SyncModule,
        mappings: Vec<FieldMapping>,
    ) -> ApiResult<Option<Vec<FieldMapping>>> {
        ctx.admin()?;
        let mappings = mappings
            .into_iter()
            .map(|m| Mapping::new(&m.desk_field, &m.salesforce_field))
            .collect();
        let saved = ctx
            .integrations()
            .update_mappings(module.into(), mappings)
            .await?;
        Ok(Some(saved.into_iter().map(FieldMapping::from).collect()))
    }

    /// Starts the first sync. Administrators only.
    async fn start_sync(&self, ctx: &Context<'_>) -> ApiResult<Option<Integration>> {
        ctx.admin()?;
        Integration::read(ctx, async {
            ctx.integrations().start_sync().await.map(Some)
        })
        .await
    }

    /// Stops all data exchange until `resumeSync`; changes wait and nothing is lost.
    /// Administrators only.
    async fn pause_sync(&self, ctx: &Context<'_>) -> ApiResult<Option<Integration>> {
        ctx.admin()?;
        Integration::read(ctx, async { ctx.integrations().pause().await.map(Some) }).await
    }

    /// Administrators only.
    async fn resume_sync(&self, ctx: &Context<'_>) -> ApiResult<Option<Integration>> {
        ctx.admin()?;
        Integration::read(ctx, async { ctx.integrations().resume().await.map(Some) }).await
    }

    /// Disconnects Salesforce: no further sync, credentials erased, desk data kept.
    /// Administrators only.
    async fn delete_integration(&self, ctx: &Context<'_>) -> ApiResult<Option<Integration>> {
        ctx.admin()?;
        Integration::read(ctx, async {
            ctx.integrations().delete().await.map(|()| None)
        })
        .await
    }
}
