//! HTTP transport: GraphQL over HTTP and WebSocket, health, readiness and metrics.

mod graphiql;
mod graphql;
mod health;
pub mod metrics;
mod negotiate;
mod observe;
mod ws;

use std::sync::Arc;

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
}

impl AppState {
    pub async fn viewer(&self, token: &str) -> Result<Viewer, AuthError> {
        self.auth.viewer(&self.store, token).await
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/graphql", web::post().to(graphql::post))
        .route("/graphql", web::get().to(graphql::get))
        .route("/", web::get().to(graphiql::redirect))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::render));
}

pub use observe::observe;
