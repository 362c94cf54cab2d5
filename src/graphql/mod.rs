//! The GraphQL schema: desk records, profiles, the Salesforce integration, and live desk
//! and sync events. No transport here.

mod admin;
mod codes;
mod desk;
mod documents;
mod error;
mod events;
mod integration;
mod limits;
mod live;
mod loaders;
mod order;
mod paging;
mod panels;
mod responses;
mod sync_events;
mod sync_log;

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Context, MergedObject, MergedSubscription, Request, Response, Schema, SchemaBuilder,
};
use futures_util::stream::{BoxStream, StreamExt};

pub use codes::code_of;
pub use error::{ApiError, ApiResult, Code};
pub use limits::{Limits, limit_error};
pub use responses::{Freshness, Kept as KeptResponse, Key as ResponseKey};

use crate::auth::Viewer;
use crate::config::GraphqlSettings;
use crate::store::Store;
use crate::sync::{Integrations, SyncEngine};

#[derive(MergedObject, Default)]
pub struct Query(
    desk::DeskQuery,
    admin::AdminQuery,
    integration::IntegrationQuery,
    sync_log::SyncLogQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    desk::DeskMutation,
    admin::AdminMutation,
    integration::IntegrationMutation,
    sync_log::SyncLogMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    events::EventSubscription,
    sync_events::SyncEventSubscription,
);

pub type TandemSchema = Schema<Query, Mutation, Subscription>;

/// Page sizes the connections accept.
#[derive(Debug, Clone, Copy)]
pub struct PageSizes {
    pub default: usize,
    pub max: usize,
}

impl From<&GraphqlSettings> for PageSizes {
    fn from(settings: &GraphqlSettings) -> Self {
        Self {
            default: settings.default_page_size,
            max: settings.max_page_size,
        }
    }
}

impl Default for PageSizes {
    fn default() -> Self {
        Self::from(&GraphqlSettings::default())
    }
}

fn builder(settings: &GraphqlSettings) -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .data(PageSizes::from(settings))
}

/// The schema as the transports use it. No async-graphql extension is installed: with one,
/// every field of every answer resolves through its hook (a boxed future per extension per
/// field), which cost a ticket with its panels 15 % of its throughput. The limits are checked
/// and the error codes given around execution instead. The schema is built twice, with the
/// depth and complexity limits and without them, for operations that only introspect
/// (GraphiQL's introspection query is deeper than any sensible limit).
#[derive(Clone)]
pub struct Gateway {
    limited: TandemSchema,
    introspection: TandemSchema,
    limits: Limits,
    page_sizes: PageSizes,
    documents: Arc<documents::Documents>,
    responses: Arc<responses::Responses>,
    field_types: Arc<codes::FieldTypes>,
}

impl Gateway {
    pub fn new(
        store: Store,
        integrations: Arc<Integrations>,
        engine: Arc<SyncEngine>,
        settings: &GraphqlSettings,
    ) -> Self {
        let live_ttl = std::time::Duration::from_secs(settings.panel_cache_secs);
        let cache = Arc::new(live::LiveCache::new(live_ttl));
        let build = |builder: SchemaBuilder<Query, Mutation, Subscription>| {
            builder
                .data(store.clone())
                .data(integrations.clone())
                .data(engine.clone())
                .data(cache.clone())
                .data(live::Patience(std::time::Duration::from_millis(
                    settings.panel_timeout_ms,
                )))
                .finish()
        };
        let limited = build(
            builder(settings)
                .limit_depth(settings.max_depth)
                .limit_complexity(settings.max_complexity),
        );
        Self {
            field_types: Arc::new(codes::FieldTypes::of(&limited.sdl())),
            limited,
            introspection: build(builder(settings)),
            limits: Limits::from(settings),
            page_sizes: PageSizes::from(settings),
            documents: Arc::default(),
            responses: Arc::new(responses::Responses::new(
                std::time::Duration::from_millis(settings.response_cache_ms),
                live_ttl,
            )),
        }
    }

    /// Whether the response cache is on.
    pub fn keeps_answers(&self) -> bool {
        self.responses.enabled()
    }

    /// The answer kept for this operation while the store's change count is `changes`, with
    /// its age, when it is no older than `max_age`.
    pub fn kept(
        &self,
        key: &ResponseKey,
        changes: u64,
        max_age: Option<std::time::Duration>,
    ) -> Option<(KeptResponse, std::time::Duration)> {
        if !self.responses.enabled() {
            return None;
        }
        self.responses.get(key, changes, max_age)
    }

    /// Keeps an answer computed from what the store held at change count `changes`.
    pub fn keep(
        &self,
        key: ResponseKey,
        read: (u64, std::time::Instant),
        freshness: &Freshness,
        kept: KeptResponse,
    ) {
        self.responses.put(key, read, freshness, kept);
    }

    /// The request's parsed document, its text parsed only the first time it is seen (see
    /// `documents`); `None` when it does not parse or is over the size limit (execution
    /// refuses it then, saying why).
    pub fn parsed<'r>(&'r self, request: &'r mut Request) -> Option<&'r ExecutableDocument> {
        if !self.limits.fits(request) {
            return None;
        }
        Some(self.documents.fill(request)?.doc)
    }

    /// The schema the request runs on, or why it is refused.
    fn admit(&self, request: &mut Request) -> Result<&TandemSchema, async_graphql::ServerError> {
        Ok(match self.limits.admit(request, &self.documents)? {
            limits::Admitted::Limited => &self.limited,
            limits::Admitted::Introspection => &self.introspection,
        })
    }

    pub async fn execute(&self, request: Request) -> Response {
        self.execute_shareable(request).await.0
    }

    /// Executes, saying too whether the answer may be kept and shared (see `responses`): the
    /// operation is a query of desk records and their panels only. (A request with
    /// `extensions` gets no key to be kept under: `http::graphql::share_key`.)
    pub async fn execute_shareable(&self, mut request: Request) -> (Response, bool) {
        match self.admit(&mut request) {
            Ok(schema) => {
                let operation = request.operation_name.clone();
                // Admitted, the request holds its parse: this reads it, parsing nothing.
                let shareable = request
                    .parsed_query()
                    .is_ok_and(|doc| responses::shareable(doc, operation.as_deref()));
                let doc = self.documents.kept(&request.query);
                let variables = request.variables.clone();
                let executed = paging::with_page_sizes(self.page_sizes, schema.execute(request));
                let mut response = codes::tag(
                    self.limits.explain(executed.await),
                    &self.field_types,
                    doc.as_deref(),
                    operation.as_deref(),
                );
                if let Some(doc) = doc {
                    order::in_selection_order(
                        &mut response.data,
                        &doc,
                        operation.as_deref(),
                        &variables,
                    );
                }
                (response, shareable)
            }
            Err(refused) => (refusal(refused), false),
        }
    }

    /// A subscription's answers, each with its error codes.
    pub fn execute_stream(&self, mut request: Request) -> BoxStream<'static, Response> {
        match self.admit(&mut request) {
            Ok(schema) => {
                let limits = self.limits;
                let types = self.field_types.clone();
                let doc = self.documents.kept(&request.query);
                let operation = request.operation_name.clone();
                let variables = request.variables.clone();
                paging::stream_with_page_sizes(self.page_sizes, schema.execute_stream(request))
                    .map(move |response| {
                        let mut response = codes::tag(
                            limits.explain(response),
                            &types,
                            doc.as_deref(),
                            operation.as_deref(),
                        );
                        if let Some(doc) = &doc {
                            order::in_selection_order(
                                &mut response.data,
                                doc,
                                operation.as_deref(),
                                &variables,
                            );
                        }
                        response
                    })
                    .boxed()
            }
            Err(refused) => {
                let response = refusal(refused);
                futures_util::stream::once(async { response }).boxed()
            }
        }
    }
}

/// The schema as SDL, as `tandem export-schema` writes it.
pub fn sdl() -> String {
    builder(&GraphqlSettings::default()).finish().sdl()
}

/// Attaches what one request needs: who is asking, and loaders that live as long as it does.
pub fn prepare(request: Request, viewer: Viewer, store: &Store) -> Request {
    request
        .data(Arc::new(Scope::new(viewer)))
        .data(loaders::Batcher::new(loaders::DeskLoader::new(
            store.clone(),
        )))
}

/// Who asks, and what the request has read for its panels, as its resolvers see them. A
/// query or mutation keeps one for its whole life. Every event of a subscription is resolved
/// in the one environment the operation was given, so its stream renews the scope before it
/// yields each event (`renew`): the event is resolved with the permissions as they are by
/// then, and reads afresh what the events before it read.
pub struct Scope {
    viewer: std::sync::Mutex<Arc<Viewer>>,
    panels: std::sync::Mutex<Arc<panels::PanelRequest>>,
}

impl Scope {
    fn new(viewer: Viewer) -> Self {
        Self {
            viewer: std::sync::Mutex::new(Arc::new(viewer)),
            panels: std::sync::Mutex::default(),
        }
    }

    pub fn viewer(&self) -> Arc<Viewer> {
        self.viewer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn panels(&self) -> Arc<panels::PanelRequest> {
        self.panels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Begins what the next event reads: nothing the events before it read is kept, and
    /// `viewer`, when given, is who asks from now on (the profile as read again).
    pub fn renew(&self, viewer: Option<Viewer>) {
        if let Some(viewer) = viewer {
            *self.viewer.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(viewer);
        }
        *self.panels.lock().unwrap_or_else(|p| p.into_inner()) = Arc::default();
    }
}

/// A request refused before it ran, with its error's code.
fn refusal(refused: async_graphql::ServerError) -> Response {
    codes::tag(
        Response::from_errors(vec![refused]),
        &codes::FieldTypes::default(),
        None,
        None,
    )
}

/// A request error stopped the operation before execution: no data, and no error at a path.
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// Proof that the viewer is an administrator.
pub struct Admin(#[allow(dead_code)] Arc<Viewer>);

pub(crate) trait ContextExt {
    fn store(&self) -> &Store;
    fn integrations(&self) -> &Integrations;
    fn engine(&self) -> &SyncEngine;
    fn viewer(&self) -> ApiResult<Arc<Viewer>>;
    fn admin(&self) -> ApiResult<Admin>;
    /// What this request (or this event of a subscription) has read for its panels.
    fn panels(&self) -> Arc<panels::PanelRequest>;
    fn loader(&self) -> &loaders::Batcher<loaders::DeskLoader>;
    fn page_sizes(&self) -> PageSizes;
}

impl ContextExt for Context<'_> {
    fn store(&self) -> &Store {
        self.data_unchecked::<Store>()
    }

    fn integrations(&self) -> &Integrations {
        self.data_unchecked::<Arc<Integrations>>()
    }

    fn engine(&self) -> &SyncEngine {
        self.data_unchecked::<Arc<SyncEngine>>()
    }

    fn viewer(&self) -> ApiResult<Arc<Viewer>> {
        self.data_opt::<Arc<Scope>>()
            .map(|scope| scope.viewer())
            .ok_or_else(|| ApiError::new(Code::Unauthenticated, "sign in with a bearer token"))
    }

    fn panels(&self) -> Arc<panels::PanelRequest> {
        self.data_unchecked::<Arc<Scope>>().panels()
    }

    fn admin(&self) -> ApiResult<Admin> {
        let viewer = self.viewer()?;
        if viewer.is_admin() {
            Ok(Admin(viewer))
        } else {
            Err(ApiError::forbidden(format!(
                "only administrators may do this; your profile is '{}'",
                viewer.profile.name
            )))
        }
    }

    fn loader(&self) -> &loaders::Batcher<loaders::DeskLoader> {
        self.data_unchecked::<loaders::Batcher<loaders::DeskLoader>>()
    }

    fn page_sizes(&self) -> PageSizes {
        *self.data_unchecked::<PageSizes>()
    }
}
