//! Starts a simulator and talks to it like a REST client would.
#![allow(dead_code)]

use reqwest::{Method, Response};
use salesforce_sim::{SimConfig, SimHandle, start};
use serde_json::Value;

pub const V: &str = "/services/data/v62.0";

pub struct Org {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn org() -> Org {
    org_with(SimConfig::default()).await
}

pub async fn org_with(config: SimConfig) -> Org {
    let sim = start(config).await;
    let token = sim.access_token();
    Org {
        sim,
        http: reqwest::Client::new(),
        token,
    }
}

impl Org {
    /// Inserts a record straight into the org: its id.
    pub fn put(&self, object: &str, fields: Value) -> String {
        self.sim
            .insert(object, fields)
            .expect("the simulator takes the record")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{V}/{path}", self.sim.base_url())
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("simulator answers")
    }

    pub async fn json(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = self.call(method, path, body).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn query(&self, soql: &str) -> (u16, Value) {
        self.query_at("query", soql).await
    }

    /// A query that also reads the recycle bin.
    pub async fn query_all(&self, soql: &str) -> (u16, Value) {
        self.query_at("queryAll", soql).await
    }

    async fn query_at(&self, resource: &str, soql: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(resource))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("simulator answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(self.sim.token_url())
            .form(form)
            .send()
            .await
            .expect("token endpoint answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("token bodies are JSON"))
    }
}
