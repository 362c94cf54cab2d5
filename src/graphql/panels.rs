//! The Salesforce panels beside desk records: a contact's or account's Salesforce twin, as
//! the sync last agreed it. Every Salesforce-derived field names the permission item that
//! guards it once, in its attribute: the guard enforces it and the SDL shows it as
//! `@requiresPermission(item: …)`. A denied field is `null` with a `FORBIDDEN` error at its
//! path; the rest of the answer stands, which is why every guarded field is nullable.

use async_graphql::{ComplexObject, Context, Enum, Guard, ID, Json, SimpleObject, TypeDirective};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::loaders::LinkOf;
use super::{ApiError, ApiResult, Code, ContextExt};
use crate::domain::{self, AccountId, ContactId, Module};
use crate::store::{account_input, contact_input};
use crate::sync::Mapping;
use crate::sync::records::{AccountLinks, desk_values, to_salesforce};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::PermissionItem")]
pub enum PermissionItem {
    /// Contact and account information.
    Information,
    Opportunities,
    Notes,
    Events,
    Tasks,
}

/// The profile permission a field needs; fields without it answer `null` and `FORBIDDEN`.
#[TypeDirective(location = "FieldDefinition")]
#[allow(non_snake_case)]
fn requiresPermission(item: PermissionItem) {}

/// Enforces a `@requiresPermission` item for the viewer's profile.
struct Requires(domain::PermissionItem);

impl Guard for Requires {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let viewer = ctx.viewer()?;
        if viewer.permissions().grants(self.0) {
            Ok(())
        } else {
            let item = match self.0 {
                domain::PermissionItem::Information => "contact and account information",
                domain::PermissionItem::Opportunities => "opportunities",
                domain::PermissionItem::Notes => "notes",
                domain::PermissionItem::Events => "events",
                domain::PermissionItem::Tasks => "tasks",
            };
            Err(ApiError::forbidden(format!(
                "the profile '{}' may not see Salesforce {item}; an administrator can grant it with updateProfilePermissions",
                viewer.profile.name
            ))
            .into())
        }
    }
}

/// The connected org as one request sees it, read once.
pub struct Org {
    instance_url: String,
    contacts: Vec<Mapping>,
    accounts: Vec<Mapping>,
}

/// Holds the request's [`Org`], read on first use.
#[derive(Default)]
pub struct OrgCell(OnceCell<Option<Org>>);

async fn org<'c>(ctx: &'c Context<'_>) -> ApiResult<&'c Org> {
    let cell = ctx.data_unchecked::<OrgCell>();
    let org = cell
        .0
        .get_or_try_init(|| async {
            let integrations = ctx.integrations();
            let Some(current) = integrations.current().await? else {
                return Ok::<_, ApiError>(None);
            };
            Ok(Some(Org {
                instance_url: current.instance_url.unwrap_or(current.login_url),
                contacts: integrations.mappings(Module::Contacts).await?,
                accounts: integrations.mappings(Module::Accounts).await?,
            }))
        })
        .await?;
    org.as_ref().ok_or_else(|| {
        ApiError::new(
            Code::IntegrationUnavailable,
            "Salesforce is not connected; an administrator can connect it with connectSalesforce",
        )
    })
}

/// Checks that the viewer's profile shows this module's panel at all.
fn panel_shown(ctx: &Context<'_>, module: Module) -> ApiResult<()> {
    let viewer = ctx.viewer()?;
    let permissions = viewer.permissions();
    let shown = permissions.visible
        && match module {
            Module::Contacts => permissions.panel.shows_contacts(),
            Module::Accounts => permissions.panel.shows_accounts(),
        };
    if shown {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "the profile '{}' does not show the Salesforce {} panel",
            viewer.profile.name,
            module.salesforce_object().to_lowercase()
        )))
    }
}

async fn link(
    ctx: &Context<'_>,
    module: Module,
    desk_id: i64,
) -> ApiResult<Option<entity::record_link::Model>> {
    ctx.loader()
        .load_one(LinkOf(module, desk_id))
        .await
        .map_err(|e| ApiError::internal(&e))
}

/// One linked record: its Salesforce id and the values both sides last agreed on.
struct Twin {
    salesforce_id: String,
    fields: Map<String, Value>,
    url: String,
    fetched_at: DateTime<Utc>,
}

async fn twin(
    ctx: &Context<'_>,
    module: Module,
    desk_id: i64,
    values: Map<String, Value>,
    account: Option<AccountId>,
) -> ApiResult<Option<Twin>> {
    panel_shown(ctx, module)?;
    let org = org(ctx).await?;
    let Some(link) = link(ctx, module, desk_id).await? else {
        return Ok(None);
    };
    let mut accounts = AccountLinks::default();
    if let Some(account) = account
        && let Some(account_link) = self::link(ctx, Module::Accounts, account.0).await?
    {
        accounts
            .to_salesforce
            .insert(account.0, account_link.salesforce_id);
    }
    let mappings = match module {
        Module::Contacts => &org.contacts,
        Module::Accounts => &org.accounts,
    };
    let fields = to_salesforce(mappings, module, &values, &accounts)
        .into_iter()
        .collect();
    Ok(Some(Twin {
        url: format!(
            "{}/{}",
            org.instance_url.trim_end_matches('/'),
            link.salesforce_id
        ),
        salesforce_id: link.salesforce_id,
        fields,
        fetched_at: link.updated_at,
    }))
}

/// The Salesforce contact linked to a desk contact.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SalesforceContact {
    /// The Salesforce record id.
    id: ID,
    /// The mapped fields by their Salesforce names, as the sync last agreed them.
    #[graphql(
        guard = "Requires(domain::PermissionItem::Information)",
        directive = requiresPermission::apply(PermissionItem::Information)
    )]
    fields: Option<Json<Map<String, Value>>>,
    /// The record in Salesforce's own UI.
    view_in_salesforce_url: String,
    /// When the sync last brought this record in step.
    fetched_at: DateTime<Utc>,
    /// Whether the values may be out of date because Salesforce could not be reached.
    stale: bool,
    #[graphql(skip)]
    account: Option<AccountId>,
}

#[ComplexObject]
impl SalesforceContact {
    /// The contact's Salesforce account, when its desk account is linked.
    #[graphql(
        guard = "Requires(domain::PermissionItem::Information)",
        directive = requiresPermission::apply(PermissionItem::Information)
    )]
    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<SalesforceAccount>> {
        match self.account {
            Some(id) => account_panel(ctx, id).await,
            None => Ok(None),
        }
    }
}

/// The Salesforce account linked to a desk account.
#[derive(SimpleObject)]
pub struct SalesforceAccount {
    /// The Salesforce record id.
    id: ID,
    /// The mapped fields by their Salesforce names, as the sync last agreed them.
    #[graphql(
        guard = "Requires(domain::PermissionItem::Information)",
        directive = requiresPermission::apply(PermissionItem::Information)
    )]
    fields: Option<Json<Map<String, Value>>>,
    /// The record in Salesforce's own UI.
    view_in_salesforce_url: String,
    /// When the sync last brought this record in step.
    fetched_at: DateTime<Utc>,
    /// Whether the values may be out of date because Salesforce could not be reached.
    stale: bool,
}

pub async fn contact_panel(
    ctx: &Context<'_>,
    id: ContactId,
) -> ApiResult<Option<SalesforceContact>> {
    let model = ctx
        .loader()
        .load_one(id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let Some(model) = model else { return Ok(None) };
    let account = model.account_id;
    let values = desk_values(&contact_input(&model));
    Ok(twin(ctx, Module::Contacts, id.0, values, account)
        .await?
        .map(|twin| SalesforceContact {
            id: ID(twin.salesforce_id),
            fields: Some(Json(twin.fields)),
            view_in_salesforce_url: twin.url,
            fetched_at: twin.fetched_at,
            stale: false,
            account,
        }))
}

pub async fn account_panel(
    ctx: &Context<'_>,
    id: AccountId,
) -> ApiResult<Option<SalesforceAccount>> {
    let model = ctx
        .loader()
        .load_one(id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let Some(model) = model else { return Ok(None) };
    let values = desk_values(&account_input(&model));
    Ok(twin(ctx, Module::Accounts, id.0, values, None)
        .await?
        .map(|twin| SalesforceAccount {
            id: ID(twin.salesforce_id),
            fields: Some(Json(twin.fields)),
            view_in_salesforce_url: twin.url,
            fetched_at: twin.fetched_at,
            stale: false,
        }))
}
