//! The Salesforce panels beside desk records: a contact's or account's Salesforce twin, as
//! the sync last agreed it. Every Salesforce-derived field names the permission item that
//! guards it once, in its attribute: the guard enforces it and the SDL shows it as
//! `@requiresPermission(item: …)`. A denied field is `null` with a `FORBIDDEN` error at its
//! path; the rest of the answer stands, which is why every guarded field is nullable.
//! Contact and account information comes from the synced mirror; opportunities, notes,
//! events and tasks are read live (see `live`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_graphql::dataloader::{DataLoader, HashMapCache};
use async_graphql::parser::types::{Field, FragmentDefinition, Selection, SelectionSet};
use async_graphql::{
    ComplexObject, Context, Enum, Guard, ID, Json, Name, Positioned, QueryPathSegment,
    SimpleObject, TypeDirective,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::live::{
    Fetched, Live, LiveCache, LiveKey, LiveLoader, PER_PARENT, Patience, Reader, Unread,
};
use super::loaders::LinkOf;
use super::{ApiError, ApiResult, Code, ContextExt, Freshness};
use crate::domain::{self, AccountId, Module};
use crate::salesforce::Record;
use crate::store::{account_input, contact_input};
use crate::sync::records::{AccountLinks, desk_values, to_salesforce};
use crate::sync::{Integrations, OrgView};

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

/// What one request (or one event of a subscription) keeps for its panels: the org, read on
/// first use, the links it has read (a contact's panel reads its account's link, and the
/// account's panel needs it again), and the loader that batches its live lists.
#[derive(Default)]
pub struct PanelRequest {
    org: OnceCell<Option<Arc<OrgView>>>,
    links: std::sync::Mutex<HashMap<LinkOf, Option<entity::record_link::Model>>>,
    /// Keeps what it read for the rest of the request, failures included: a list asked for
    /// twice (by `notes` and by `stale`, say) is read once and answers the same.
    live: OnceLock<DataLoader<LiveLoader, HashMapCache>>,
    /// Enhanced notes whose content this request has asked Salesforce for: each once, however
    /// many times the request shows it (under two tickets, by two aliases).
    contents_read: std::sync::Mutex<std::collections::HashSet<String>>,
}

async fn org(ctx: &Context<'_>) -> ApiResult<Arc<OrgView>> {
    let request = ctx.panels();
    let org = request
        .org
        .get_or_try_init(|| async { Ok::<_, ApiError>(ctx.integrations().org_view().await?) })
        .await?;
    org.clone().ok_or_else(|| {
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
    let key = LinkOf(module, desk_id);
    let request = ctx.panels();
    let links = &request.links;
    let known = links
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
        .cloned();
    if let Some(known) = known {
        return Ok(known);
    }
    let link = ctx.loader().load_one(key).await?;
    links
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(key, link.clone());
    Ok(link)
}

/// One linked record: its Salesforce id and its fields, mapped and unmapped.
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
    // Both links in one query: the record's, and its account's for the AccountId field.
    let (link, account_link) = futures_util::future::join(link(ctx, module, desk_id), async {
        match account {
            Some(account) => self::link(ctx, Module::Accounts, account.0).await,
            None => Ok(None),
        }
    })
    .await;
    let Some(link) = link? else {
        return Ok(None);
    };
    let mut accounts = AccountLinks::default();
    if let (Some(account), Some(account_link)) = (account, account_link?) {
        accounts
            .to_salesforce
            .insert(account.0, account_link.salesforce_id);
    }
    let mappings = match module {
        Module::Contacts => &org.contacts,
        Module::Accounts => &org.accounts,
    };
    // The record as the last sync read it, with what the pushes since wrote over it: what
    // Salesforce holds. A desk edit not sent yet (on its way, paused, refused, or kept local
    // by a one-way sync) is not Salesforce's. Never read, the desk's mapped values stand in.
    let read: Option<Map<String, Value>> = link
        .salesforce_fields
        .as_deref()
        .and_then(|read| serde_json::from_str::<Map<String, Value>>(read).ok())
        .filter(|read| read.contains_key("Id"));
    let fields = read.unwrap_or_else(|| {
        to_salesforce(
            mappings,
            module,
            &values,
            &accounts,
            link.kept_account_id.as_deref(),
        )
        .into_iter()
        .collect()
    });
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
    /// The Salesforce record id. It comes with the panel, as `viewInSalesforceUrl` does:
    /// the profile's panel setting guards them, not one of its items.
    id: ID,
    /// Every field of the Salesforce record by its Salesforce name, custom fields included:
    /// as Salesforce holds them when the sync last read or wrote the record (the desk's
    /// mapped values until it has been read).
    #[graphql(
        guard = "Requires(domain::PermissionItem::Information)",
        directive = requiresPermission::apply(PermissionItem::Information)
    )]
    fields: Option<Json<Map<String, Value>>>,
    /// The record in Salesforce's own UI, a link every panel carries.
    view_in_salesforce_url: String,
    #[graphql(skip)]
    account: Option<AccountId>,
    #[graphql(skip)]
    synced_at: DateTime<Utc>,
    /// The live lists the query reads of it (see `selected`).
    #[graphql(skip)]
    lists: Vec<Live>,
}

/// The Salesforce account linked to a desk account.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SalesforceAccount {
    /// The Salesforce record id. It comes with the panel, as `viewInSalesforceUrl` does:
    /// the profile's panel setting guards them, not one of its items.
    id: ID,
    /// Every field of the Salesforce record by its Salesforce name, custom fields included:
    /// as Salesforce holds them when the sync last read or wrote the record (the desk's
    /// mapped values until it has been read).
    #[graphql(
        guard = "Requires(domain::PermissionItem::Information)",
        directive = requiresPermission::apply(PermissionItem::Information)
    )]
    fields: Option<Json<Map<String, Value>>>,
    /// The record in Salesforce's own UI, a link every panel carries.
    view_in_salesforce_url: String,
    #[graphql(skip)]
    synced_at: DateTime<Utc>,
    /// The live lists the query reads of it (see `selected`).
    #[graphql(skip)]
    lists: Vec<Live>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum OpportunityStatus {
    Open,
    Closed,
    All,
}

/// A Salesforce opportunity.
#[derive(SimpleObject)]
pub struct Opportunity {
    id: ID,
    name: Option<String>,
    stage: Option<String>,
    amount: Option<f64>,
    close_date: Option<String>,
    closed: bool,
    won: bool,
    /// The contact's role in it, for a contact's opportunities; several roles are listed in one
    /// entry, comma-separated (`Decision Maker, Influencer`).
    role: Option<String>,
    view_in_salesforce_url: String,
}

/// A note on a Salesforce record: a classic note, or an enhanced (Lightning) one.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SalesforceNote {
    id: ID,
    title: Option<String>,
    /// The note's text: a classic note's whole body, an enhanced note's preview (its first
    /// 255 characters, without markup or line breaks). `content` has all of it.
    body: Option<String>,
    /// Whether `body` may be only the start of the note: an enhanced note whose preview is
    /// as long as a preview gets.
    truncated: bool,
    created_at: Option<String>,
    /// Who wrote it: the name of the Salesforce user who created a classic note (null for an
    /// enhanced note).
    author: Option<String>,
    view_in_salesforce_url: String,
    /// An enhanced note, whose content is read apart from the list.
    #[graphql(skip)]
    enhanced: bool,
}

/// The longest preview Salesforce keeps of an enhanced note, in characters.
const PREVIEW_CHARS: usize = 255;

/// Enhanced notes whose content one request may read from Salesforce: each is an API call.
const CONTENTS_PER_REQUEST: usize = 25;

#[ComplexObject]
impl SalesforceNote {
    /// The whole note as text, a paragraph a line. An enhanced note's content is one
    /// Salesforce call a note (cached like the lists), so ask for it for the notes a reader
    /// opens: `notes(ids: [...]) { content }`.
    async fn content(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        if !self.enhanced {
            return Ok(self.body.clone());
        }
        let key = LiveKey(Live::NoteContent, self.id.0.clone());
        let cached = ctx
            .data_unchecked::<Arc<LiveCache>>()
            .fresh_entry(reader(ctx).await?.0, &key)
            .is_some();
        let over = !cached && {
            let request = ctx.panels();
            let mut read = request
                .contents_read
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if read.contains(&self.id.0) {
                false
            } else if read.len() >= CONTENTS_PER_REQUEST {
                true
            } else {
                read.insert(self.id.0.clone());
                false
            }
        };
        if over {
            return Err(ApiError::new(
                Code::BadUserInput,
                format!(
                    "a request reads the content of at most {CONTENTS_PER_REQUEST} enhanced notes from Salesforce (each is an API call); ask for the notes a reader opens with notes(ids: [...])"
                ),
            ));
        }
        let fetched = live(ctx, Live::NoteContent, &self.id).await?;
        Ok(fetched.records.first().and_then(|r| text(r, "Content")))
    }
}

/// A Salesforce event (a meeting or call on the calendar).
#[derive(SimpleObject)]
pub struct SalesforceEvent {
    id: ID,
    subject: Option<String>,
    start: Option<String>,
    end: Option<String>,
    location: Option<String>,
    /// What it is about, as written in Salesforce.
    description: Option<String>,
    /// The name of the user (or queue) it belongs to.
    owner: Option<String>,
    view_in_salesforce_url: String,
}

/// A Salesforce task.
#[derive(SimpleObject)]
pub struct SalesforceTask {
    id: ID,
    subject: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    due_date: Option<String>,
    /// What it is about, as written in Salesforce.
    description: Option<String>,
    /// The name of the user (or queue) it is assigned to.
    owner: Option<String>,
    view_in_salesforce_url: String,
}

fn text(record: &Record, field: &str) -> Option<String> {
    record.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// A field of a record's parent (`Owner`, `CreatedBy`), as a query of `Owner.Name` nests it;
/// null when the record has no such parent.
fn parent_text(record: &Record, parent: &str, field: &str) -> Option<String> {
    record
        .get(parent)
        .and_then(|p| p.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn record_url(ctx: &Context<'_>, id: &str) -> String {
    let request = ctx.panels();
    let base = request
        .org
        .get()
        .and_then(Option::as_ref)
        .map_or("", |org| org.instance_url.trim_end_matches('/'));
    format!("{base}/{id}")
}

/// One live list of a panel, or `UPSTREAM_UNAVAILABLE` when Salesforce cannot answer and
/// nothing read within a day is cached, or refuses the query.
async fn live(ctx: &Context<'_>, kind: Live, parent: &str) -> ApiResult<Fetched> {
    let fetched = read_live(ctx, kind, parent).await;
    if let Some(freshness) = ctx.data_opt::<Arc<Freshness>>() {
        match &fetched {
            Ok(fetched) => freshness.saw(fetched),
            Err(_) => freshness.failed(),
        }
    }
    fetched
}

/// Whose live lists this request reads: its profile's, from the connected org; and the
/// connection it names.
async fn reader(ctx: &Context<'_>) -> ApiResult<(Reader, Arc<str>)> {
    let profile = ctx.viewer()?.profile.id.0;
    let org = org(ctx).await?;
    let connection = &org.connection;
    Ok((
        Reader::new(profile, connection),
        Arc::from(connection.as_str()),
    ))
}

async fn read_live(ctx: &Context<'_>, kind: Live, parent: &str) -> ApiResult<Fetched> {
    let (reader, connection) = reader(ctx).await?;
    let cache = ctx.data_unchecked::<Arc<LiveCache>>();
    let key = LiveKey(kind, parent.to_owned());
    if let Some(fetched) = cache.fresh_entry(reader, &key) {
        return Ok(fetched);
    }
    let request = ctx.panels();
    let loader = request.live.get_or_init(|| {
        // Panels reach their lists at slightly different moments; waiting a little gathers
        // them into one query per kind. Cached lists never wait (above).
        DataLoader::with_cache(
            LiveLoader {
                integrations: ctx.data_unchecked::<Arc<Integrations>>().clone(),
                cache: cache.clone(),
                reader,
                connection,
                patience: *ctx.data_unchecked::<Patience>(),
            },
            tokio::spawn,
            HashMapCache::default(),
        )
        .delay(std::time::Duration::from_millis(20))
        // However many lists a request wants (the query limits bound them), one read: it
        // splits their ids into queries itself.
        .max_batch_size(usize::MAX)
    });
    match loader.load_one(key).await {
        Ok(Some(Ok(fetched))) => Ok(fetched),
        Ok(Some(Err(
            Unread::Upstream(message) | Unread::Refused(message) | Unread::Reconnected(message),
        ))) => Err(ApiError::new(Code::UpstreamUnavailable, &*message)),
        Ok(Some(Err(Unread::Internal))) => Err(ApiError::new(
            Code::Internal,
            "internal error; the server log has details",
        )),
        Ok(None) | Err(_) => Err(ApiError::new(
            Code::UpstreamUnavailable,
            "Salesforce could not answer",
        )),
    }
}

/// When the panel's data was read and whether any of it is stale: the oldest of the live
/// lists the query reads of it, or the last sync when it reads none.
async fn freshness(
    ctx: &Context<'_>,
    parent: &str,
    lists: &[Live],
    synced_at: DateTime<Utc>,
) -> (DateTime<Utc>, bool) {
    // All at once, so that lists not yet read go to Salesforce in one batch.
    let read =
        futures_util::future::join_all(lists.iter().map(|kind| live(ctx, *kind, parent))).await;
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut stale = false;
    for fetched in read {
        match fetched {
            Ok(fetched) => {
                stale |= fetched.stale;
                oldest = Some(oldest.map_or(fetched.fetched_at, |o| o.min(fetched.fetched_at)));
            }
            Err(_) => stale = true,
        }
    }
    (oldest.unwrap_or(synced_at), stale)
}

fn opportunities(
    ctx: &Context<'_>,
    fetched: &Fetched,
    nested: bool,
    status: OpportunityStatus,
    shown: usize,
) -> Vec<Opportunity> {
    fetched
        .records
        .iter()
        .filter_map(|record| {
            let (opp, id, role) = if nested {
                (
                    record.get("Opportunity")?.as_object()?,
                    text(record, "OpportunityId")?,
                    text(record, "Role"),
                )
            } else {
                (record, text(record, "Id")?, None)
            };
            let closed = opp
                .get("IsClosed")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let wanted = match status {
                OpportunityStatus::Open => !closed,
                OpportunityStatus::Closed => closed,
                OpportunityStatus::All => true,
            };
            wanted.then(|| Opportunity {
                view_in_salesforce_url: record_url(ctx, &id),
                id: ID(id),
                name: text(opp, "Name"),
                stage: text(opp, "StageName"),
                amount: opp.get("Amount").and_then(Value::as_f64),
                close_date: text(opp, "CloseDate"),
                closed,
                won: opp.get("IsWon").and_then(Value::as_bool).unwrap_or(false),
                role,
            })
        })
        .take(shown)
        .collect()
}

/// The most note ids one `notes(ids:)` names.
const MAX_NOTE_IDS: usize = 100;

/// What a panel list shows without `first`: its newest ten.
const PANEL_PAGE: usize = 10;

/// The records a panel list shows: `first` of them, from none to the hundred newest
/// Salesforce is read for (`PANEL_PAGE` unless told).
fn panel_page(first: Option<i32>) -> ApiResult<usize> {
    super::paging::first_within(first, PANEL_PAGE, PER_PARENT)
}

/// What a panel list costs: the records it shows.
fn panel_list_complexity(first: Option<i32>, child: usize) -> usize {
    let shown = super::paging::first_counted(first, PANEL_PAGE, PER_PARENT);
    super::paging::list_complexity(shown, child)
}

/// What `notes` costs: the notes it shows, which with `ids` are at most those it names.
fn note_complexity(ids: Option<&[ID]>, first: Option<i32>, child: usize) -> usize {
    match (ids, first) {
        (Some(ids), None) => super::paging::list_complexity(ids.len().min(PER_PARENT), child),
        (Some(ids), Some(first)) => {
            panel_list_complexity(Some(first.min(ids.len().min(PER_PARENT) as i32)), child)
        }
        (None, first) => panel_list_complexity(first, child),
    }
}

/// A record's notes, classic and enhanced, newest first (only those of `ids`, when given).
/// Both lists are asked for together, so they are read in the same batch. An enhanced
/// note's body is its preview (its first 255 characters, without markup).
async fn notes(
    ctx: &Context<'_>,
    parent: &str,
    ids: Option<Vec<ID>>,
    first: Option<i32>,
) -> ApiResult<Vec<SalesforceNote>> {
    let shown = match (&ids, first) {
        (Some(ids), None) => ids.len(),
        _ => panel_page(first)?,
    };
    if let Some(ids) = &ids
        && ids.len() > MAX_NOTE_IDS
    {
        return Err(crate::domain::Invalid::new(
            "ids",
            format!(
                "at most {MAX_NOTE_IDS} note ids at a time (got {})",
                ids.len()
            ),
        )
        .into());
    }
    // Each id in its 18-character form, as Salesforce answers with: one copied from a
    // Classic URL (15 characters) finds its note too.
    let ids: Option<std::collections::HashSet<String>> = ids
        .map(|ids| {
            ids.iter()
                .enumerate()
                .map(|(i, id)| {
                    crate::domain::SalesforceId::parse(&id.0)
                        .map(|id| id.as_str().to_owned())
                        .map_err(|mut e| {
                            e.field = format!("ids[{i}]");
                            e
                        })
                })
                .collect::<Result<_, _>>()
        })
        .transpose()?;
    let (classic, enhanced) = tokio::join!(
        live(ctx, Live::Notes, parent),
        live(ctx, Live::ContentNotes, parent)
    );
    // Notes of one kind Salesforce does not give leave the other kind standing, with an
    // error at this field's path saying what is missing; with neither, the list is null.
    let (classic, enhanced) = match (classic, enhanced) {
        (Err(error), Err(_)) => return Err(error),
        (classic, enhanced) => (
            shown_or_said(ctx, classic, "classic notes"),
            shown_or_said(ctx, enhanced, "enhanced notes"),
        ),
    };
    let classic = classic
        .iter()
        .flat_map(|classic| classic.records.iter())
        .map(|r| (r, false));
    let enhanced = enhanced
        .iter()
        .flat_map(|enhanced| enhanced.records.iter())
        .map(|r| (r, true));
    let mut notes: Vec<SalesforceNote> = classic
        .chain(enhanced)
        .filter_map(|(r, enhanced)| {
            let id = text(r, "Id")?;
            if ids.as_ref().is_some_and(|ids| !ids.contains(&id)) {
                return None;
            }
            let (body, truncated) = if enhanced {
                let preview = text(r, "TextPreview");
                let full = preview
                    .as_ref()
                    .is_some_and(|p| p.chars().count() >= PREVIEW_CHARS);
                (preview, full)
            } else {
                (text(r, "Body"), false)
            };
            Some(SalesforceNote {
                view_in_salesforce_url: record_url(ctx, &id),
                id: ID(id),
                title: text(r, "Title"),
                body,
                truncated,
                created_at: text(r, "CreatedDate"),
                author: parent_text(r, "CreatedBy", "Name"),
                enhanced,
            })
        })
        .collect();
    notes.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    notes.truncate(shown);
    Ok(notes)
}

/// A list of one kind of notes, or `None` with an error at the field's path saying that
/// `what` is not shown and why.
fn shown_or_said(ctx: &Context<'_>, read: ApiResult<Fetched>, what: &str) -> Option<Fetched> {
    read.map_err(|mut error| {
        if error.code != Code::Internal {
            error.message = format!("{what} are not shown: {}", error.message);
        }
        let error = async_graphql::Error::from(error).into_server_error(ctx.item.pos);
        ctx.add_error(ctx.set_error_path(error));
    })
    .ok()
}

fn events(ctx: &Context<'_>, fetched: &Fetched, shown: usize) -> Vec<SalesforceEvent> {
    let mut events: Vec<SalesforceEvent> = fetched
        .records
        .iter()
        .filter_map(|r| {
            let id = text(r, "Id")?;
            Some(SalesforceEvent {
                view_in_salesforce_url: record_url(ctx, &id),
                id: ID(id),
                subject: text(r, "Subject"),
                start: text(r, "StartDateTime"),
                end: text(r, "EndDateTime"),
                location: text(r, "Location"),
                description: text(r, "Description"),
                owner: parent_text(r, "Owner", "Name"),
            })
        })
        .collect();
    events.sort_by(|a, b| b.start.cmp(&a.start));
    events.truncate(shown);
    events
}

fn tasks(ctx: &Context<'_>, fetched: &Fetched, shown: usize) -> Vec<SalesforceTask> {
    let mut tasks: Vec<SalesforceTask> = fetched
        .records
        .iter()
        .filter_map(|r| {
            let id = text(r, "Id")?;
            Some(SalesforceTask {
                view_in_salesforce_url: record_url(ctx, &id),
                id: ID(id),
                subject: text(r, "Subject"),
                status: text(r, "Status"),
                priority: text(r, "Priority"),
                due_date: text(r, "ActivityDate"),
                description: text(r, "Description"),
                owner: parent_text(r, "Owner", "Name"),
            })
        })
        .collect();
    tasks.sort_by(|a, b| b.due_date.cmp(&a.due_date));
    tasks.truncate(shown);
    tasks
}

/// A panel's live lists: each with the field that shows it and the item that guards it.
type Lists = [(Live, &'static str, domain::PermissionItem)];

const CONTACT_LISTS: &Lists = &[
    (
        Live::ContactOpportunities,
        "opportunities",
        domain::PermissionItem::Opportunities,
    ),
    (Live::Notes, "notes", domain::PermissionItem::Notes),
    (Live::ContentNotes, "notes", domain::PermissionItem::Notes),
    (Live::Events, "events", domain::PermissionItem::Events),
    (Live::Tasks, "tasks", domain::PermissionItem::Tasks),
];

const ACCOUNT_LISTS: &Lists = &[
    (
        Live::AccountOpportunities,
        "opportunities",
        domain::PermissionItem::Opportunities,
    ),
    (Live::Notes, "notes", domain::PermissionItem::Notes),
    (Live::ContentNotes, "notes", domain::PermissionItem::Notes),
    (Live::Events, "events", domain::PermissionItem::Events),
    (Live::Tasks, "tasks", domain::PermissionItem::Tasks),
];

/// The lists of a panel selected beside its `fetchedAt` and `stale` (those `@skip` or
/// `@include` leaves out are gone from the document as it runs), which the profile may see:
/// what those speak of. async-graphql resolves each selection of a response key on its own
/// and merges their answers (`...Header ...Notes`, both selecting `salesforce`), so the lists
/// are looked for in every selection of the panel's field at its path, not in this one's
/// alone. A panel shown for its fields alone costs Salesforce nothing.
fn selected(ctx: &Context<'_>, lists: &Lists) -> Result<Vec<Live>, ApiError> {
    let permissions = ctx.viewer()?.permissions();
    let document = Selections(&ctx.query_env.fragments);
    let panels = match &ctx.path_node {
        Some(node) => {
            let mut keys: Vec<&str> = std::iter::once(node)
                .chain(node.parents())
                .filter_map(|node| match node.segment {
                    QueryPathSegment::Name(key) => Some(key),
                    QueryPathSegment::Index(_) => None,
                })
                .collect();
            keys.reverse();
            let mut sets = vec![&ctx.query_env.operation.node.selection_set.node];
            for key in keys {
                let mut fields = Vec::new();
                for set in sets {
                    document.each_field(set, 0, &mut |field| {
                        if field.response_key().node == key {
                            fields.push(field);
                        }
                    });
                }
                sets = fields.iter().map(|f| &f.selection_set.node).collect();
            }
            sets
        }
        None => Vec::new(),
    };
    // The names the panel's selections ask for, read once for every list.
    let mut asked = std::collections::HashSet::new();
    for set in &panels {
        document.each_field(set, 0, &mut |field| {
            asked.insert(field.name.node.as_str());
        });
    }
    Ok(lists
        .iter()
        .filter(|(_, name, item)| {
            permissions.grants(*item)
                && if panels.is_empty() {
                    ctx.look_ahead().field(name).exists()
                } else {
                    asked.contains(name)
                }
        })
        .map(|(kind, _, _)| *kind)
        .collect())
}

/// A request's fragments, by name.
struct Selections<'a>(&'a HashMap<Name, Positioned<FragmentDefinition>>);

impl<'a> Selections<'a> {
    /// The fields of `set`, those of its fragments included. Fragments nest at most 32 deep
    /// (`limits`); the bound only keeps a cycle from recursing.
    fn each_field(&self, set: &'a SelectionSet, depth: usize, each: &mut impl FnMut(&'a Field)) {
        if depth > 64 {
            return;
        }
        for item in &set.items {
            let inner = match &item.node {
                Selection::Field(field) => {
                    each(&field.node);
                    continue;
                }
                Selection::InlineFragment(inline) => &inline.node.selection_set.node,
                Selection::FragmentSpread(spread) => {
                    match self.0.get(&spread.node.fragment_name.node) {
                        Some(fragment) => &fragment.node.selection_set.node,
                        None => continue,
                    }
                }
            };
            self.each_field(inner, depth + 1, each);
        }
    }
}

#[ComplexObject]
impl SalesforceContact {
    /// The contact's Salesforce account, as its `AccountId` names it, when that account is
    /// linked to a desk account.
    #[graphql(
        guard = "Requires(domain::PermissionItem::Information)",
        directive = requiresPermission::apply(PermissionItem::Information)
    )]
    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<SalesforceAccount>> {
        // The account Salesforce holds the contact in: a desk move not sent (kept local by a
        // one-way sync, paused, refused) is not Salesforce's.
        let Some(named) = self
            .fields
            .as_ref()
            .and_then(|fields| fields.0.get("AccountId"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        // Mostly the desk account's, whose link the panel read already.
        let desk = match self.account {
            Some(desk)
                if link(ctx, Module::Accounts, desk.0)
                    .await?
                    .is_some_and(|link| link.salesforce_id == named) =>
            {
                Some(desk)
            }
            _ => {
                ctx.loader()
                    .load_one(super::loaders::AccountLinkedTo(named.to_owned()))
                    .await?
            }
        };
        match super::desk::load_account(ctx, desk).await? {
            Some(account) => account_panel(ctx, &account.model).await,
            None => Ok(None),
        }
    }

    /// Opportunities the contact has a role in (open ones unless asked otherwise), latest
    /// close date first: `first` (ten unless told) of the hundred latest of that status.
    #[graphql(
        guard = "Requires(domain::PermissionItem::Opportunities)",
        directive = requiresPermission::apply(PermissionItem::Opportunities),
        complexity = "panel_list_complexity(first, child_complexity)"
    )]
    async fn opportunities(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "OpportunityStatus::Open")] status: OpportunityStatus,
        #[graphql(desc = "How many to show, newest first: 10 unless told, at most 100.")]
        first: Option<i32>,
    ) -> ApiResult<Option<Vec<Opportunity>>> {
        let shown = panel_page(first)?;
        let fetched = live(ctx, Live::ContactOpportunities, &self.id).await?;
        Ok(Some(opportunities(ctx, &fetched, true, status, shown)))
    }

    /// Notes on the contact, classic and enhanced (Lightning), newest first: `first` of them
    /// (ten unless told), or those of `ids` when given, however old.
    #[graphql(
        guard = "Requires(domain::PermissionItem::Notes)",
        directive = requiresPermission::apply(PermissionItem::Notes),
        complexity = "note_complexity(ids.as_deref(), first, child_complexity)"
    )]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<ID>>,
        #[graphql(
            desc = "How many to show, newest first: 10 unless told (all those of `ids` when given), at most 100."
        )]
        first: Option<i32>,
    ) -> ApiResult<Option<Vec<SalesforceNote>>> {
        Ok(Some(notes(ctx, &self.id, ids, first).await?))
    }

    /// Events with the contact, latest first: `first` of them (ten unless told).
    #[graphql(
        guard = "Requires(domain::PermissionItem::Events)",
        directive = requiresPermission::apply(PermissionItem::Events),
        complexity = "panel_list_complexity(first, child_complexity)"
    )]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to show, newest first: 10 unless told, at most 100.")]
        first: Option<i32>,
    ) -> ApiResult<Option<Vec<SalesforceEvent>>> {
        let shown = panel_page(first)?;
        Ok(Some(events(
            ctx,
            &live(ctx, Live::Events, &self.id).await?,
            shown,
        )))
    }

    /// Tasks about the contact, latest due date first (those with none
    /// last): `first` of them (ten unless told).
    #[graphql(
        guard = "Requires(domain::PermissionItem::Tasks)",
        directive = requiresPermission::apply(PermissionItem::Tasks),
        complexity = "panel_list_complexity(first, child_complexity)"
    )]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to show, newest first: 10 unless told, at most 100.")]
        first: Option<i32>,
    ) -> ApiResult<Option<Vec<SalesforceTask>>> {
        let shown = panel_page(first)?;
        Ok(Some(tasks(
            ctx,
            &live(ctx, Live::Tasks, &self.id).await?,
            shown,
        )))
    }

    /// When the panel's data was read from Salesforce: the oldest of the lists selected beside
    /// it that the profile may see, or the contact's last sync when none is.
    async fn fetched_at(&self, ctx: &Context<'_>) -> DateTime<Utc> {
        freshness(ctx, &self.id, &self.lists, self.synced_at)
            .await
            .0
    }

    /// Whether some of the panel is not read live: a list selected beside it that Salesforce
    /// could not answer is served from the cache, or is null with its error.
    async fn stale(&self, ctx: &Context<'_>) -> bool {
        freshness(ctx, &self.id, &self.lists, self.synced_at)
            .await
            .1
    }
}

#[ComplexObject]
impl SalesforceAccount {
    /// The account's opportunities (open ones unless asked otherwise), latest close date
    /// first: `first` (ten unless told) of the hundred latest of that status.
    #[graphql(
        guard = "Requires(domain::PermissionItem::Opportunities)",
        directive = requiresPermission::apply(PermissionItem::Opportunities),
        complexity = "panel_list_complexity(first, child_complexity)"
    )]
    async fn opportunities(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "OpportunityStatus::Open")] status: OpportunityStatus,
        #[graphql(desc = "How many to show, newest first: 10 unless told, at most 100.")]
        first: Option<i32>,
    ) -> ApiResult<Option<Vec<Opportunity>>> {
        let shown = panel_page(first)?;
        let fetched = live(ctx, Live::AccountOpportunities, &self.id).await?;
        Ok(Some(opportunities(ctx, &fetched, false, status, shown)))
    }

    /// Notes on the account, classic and enhanced (Lightning), newest first: `first` of them
    /// (ten unless told), or those of `ids` when given, however old.
    #[graphql(
        guard = "Requires(domain::PermissionItem::Notes)",
        directive = requiresPermission::apply(PermissionItem::Notes),
        complexity = "note_complexity(ids.as_deref(), first, child_complexity)"
    )]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<ID>>,
        #[graphql(
            desc = "How many to show, newest first: 10 unless told (all those of `ids` when given), at most 100."
        )]
        first: Option<i32>,
    ) -> ApiResult<Option<Vec<SalesforceNote>>> {
        Ok(Some(notes(ctx, &self.id, ids, first).await?))
    }

    /// Events about the account, latest first: `first` of them (ten unless told).
    #[graphql(
        guard = "Requires(domain::PermissionItem::Events)",
        directive = requiresPermission::apply(PermissionItem::Events),
        complexity = "panel_list_complexity(first, child_complexity)"
    )]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to show, newest first: 10 unless told, at most 100.")]
        first: Option<i32>,
    ) -> ApiResult<Option<Vec<SalesforceEvent>>> {
        let shown = panel_page(first)?;
        Ok(Some(events(
            ctx,
            &live(ctx, Live::Events, &self.id).await?,
            shown,
        )))
    }

    /// Tasks about the account, latest due date first (those with none
    /// last): `first` of them (ten unless told).
    #[graphql(
        guard = "Requires(domain::PermissionItem::Tasks)",
        directive = requiresPermission::apply(PermissionItem::Tasks),
        complexity = "panel_list_complexity(first, child_complexity)"
    )]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to show, newest first: 10 unless told, at most 100.")]
        first: Option<i32>,
    ) -> ApiResult<Option<Vec<SalesforceTask>>> {
        let shown = panel_page(first)?;
        Ok(Some(tasks(
            ctx,
            &live(ctx, Live::Tasks, &self.id).await?,
            shown,
        )))
    }

    /// When the panel's data was read from Salesforce: the oldest of the lists selected beside
    /// it that the profile may see, or the account's last sync when none is.
    async fn fetched_at(&self, ctx: &Context<'_>) -> DateTime<Utc> {
        freshness(ctx, &self.id, &self.lists, self.synced_at)
            .await
            .0
    }

    /// Whether some of the panel is not read live: a list selected beside it that Salesforce
    /// could not answer is served from the cache, or is null with its error.
    async fn stale(&self, ctx: &Context<'_>) -> bool {
        freshness(ctx, &self.id, &self.lists, self.synced_at)
            .await
            .1
    }
}

pub async fn contact_panel(
    ctx: &Context<'_>,
    model: &entity::contact::Model,
) -> ApiResult<Option<SalesforceContact>> {
    let account = model.account_id;
    let values = desk_values(&contact_input(model));
    let lists = selected(ctx, CONTACT_LISTS)?;
    Ok(twin(ctx, Module::Contacts, model.id.0, values, account)
        .await?
        .map(|twin| SalesforceContact {
            id: ID(twin.salesforce_id),
            fields: Some(Json(twin.fields)),
            view_in_salesforce_url: twin.url,
            account,
            synced_at: twin.fetched_at,
            lists,
        }))
}

pub async fn account_panel(
    ctx: &Context<'_>,
    model: &entity::account::Model,
) -> ApiResult<Option<SalesforceAccount>> {
    let values = desk_values(&account_input(model));
    let lists = selected(ctx, ACCOUNT_LISTS)?;
    Ok(twin(ctx, Module::Accounts, model.id.0, values, None)
        .await?
        .map(|twin| SalesforceAccount {
            id: ID(twin.salesforce_id),
            fields: Some(Json(twin.fields)),
            view_in_salesforce_url: twin.url,
            synced_at: twin.fetched_at,
            lists,
        }))
}
