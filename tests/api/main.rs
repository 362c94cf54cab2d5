//! Tandem's integration tests: each starts the real application on port 0 with its own database
//! (SQLite by default; PostgreSQL when `TANDEM_TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used)]

mod helpers;

mod accounts;
mod admin_surface;
mod auth;
mod contacts;
mod demo;
mod failures;
mod health;
mod http;
mod integration;
mod limits;
mod panels;
mod profiles;
mod reliability;
mod replicas;
mod responses;
mod salesforce;
mod schema;
mod sync;
mod sync_events;
mod tickets;
mod ws;
