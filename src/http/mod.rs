//! HTTP transport: GraphQL over HTTP and WebSocket, health, readiness and metrics.

mod graphiql;
mod graphql;
mod health;
pub mod metrics;
mod negotiate;
mod observe;
mod ws;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::web;

use crate::auth::{AuthError, Authenticator, Viewer};
use crate::config::{GraphqlSettings, WebSocketSettings};
use crate::graphql::Gateway;
use crate::store::Store;

/// What every handler shares; built once and cloned into each worker.
#[derive(Clone)]
pub struct AppState {
    pub schema: Gateway,
    pub store: Store,
    pub auth: Arc<Authenticator>,
    pub metrics: Arc<metrics::Metrics>,
    pub graphql: GraphqlSettings,
    pub websocket: WebSocketSettings,
    /// The largest request body read, in bytes (`http.body_limit`).
    pub body_limit: usize,
    /// How long a body may take to arrive (`http.body_timeout_secs`).
    pub body_timeout: std::time::Duration,
    /// WebSocket connections open now.
    pub sockets: Arc<std::sync::atomic::AtomicUsize>,
}

impl AppState {
    pub async fn viewer(&self, token: &str) -> Result<Viewer, AuthError> {
        self.auth.viewer(&self.store, token).await
    }
}

/// One resource a path, so that a method it does not take is answered 405 with `Allow`.
/// The probes and metrics answer HEAD too (actix sends the headers without the body), as
/// monitors may ask that way.
/// Pages of `allowed_origins` (`http.allowed_origins`) may call `/graphql` from a browser.
pub fn routes(cfg: &mut web::ServiceConfig, allowed_origins: &[String]) {
    // Answers are the viewer's own, in the media type asked for, and kept (for a moment) by
    // the gateway alone: no cache between may keep or share them.
    let answers = actix_web::middleware::DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "private, no-store"))
        .add((header::VARY, "Accept, Authorization"));
    cfg.service(
        web::resource("/graphql")
            .wrap(answers)
            // Outside the headers above, so that its `Vary: Origin` joins theirs.
            .wrap(actix_web::middleware::Condition::new(
                !allowed_origins.is_empty(),
                cors(allowed_origins),
            ))
            .route(web::post().to(graphql::post))
            .route(web::get().to(graphql::get)),
    )
    .service(web::resource("/").route(web::get().to(graphiql::redirect)))
    .service(probe("/healthz", health::healthz))
    .service(probe("/readyz", health::readyz))
    .service(probe("/metrics", metrics::render));
}

/// Cross-origin calls from the pages of these origins (`*`: any), preflights answered: GET
/// and POST, with the headers a GraphQL client sends and those the gateway reads (a request
/// id to trace, how fresh an answer must be), and the pages may read the request id and a
/// kept answer's age. Credentials are a bearer token, never a cookie, so none are allowed to
/// ride along.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::CACHE_CONTROL,
            header::PRAGMA,
            observe::REQUEST_ID,
        ])
        .expose_headers([header::AGE, observe::REQUEST_ID])
        .max_age(3600);
    if origins.iter().any(|origin| origin == "*") {
        cors.allow_any_origin().send_wildcard()
    } else {
        origins
            .iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin))
    }
}

fn probe<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
}

pub use observe::observe;
