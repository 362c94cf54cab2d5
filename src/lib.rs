//! Tandem: a GraphQL gateway that keeps a help desk and Salesforce CRM in step.

pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod graphql;
pub mod http;
pub mod salesforce;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
