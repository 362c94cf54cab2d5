//! Prometheus metrics in the text exposition format: requests, latency, GraphQL errors.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{HttpResponse, web};

use super::AppState;

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    graphql_errors: BTreeMap<String, u64>,
    /// Shareable queries answered from the response cache, and computed.
    response_cache: [u64; 2],
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        self.with(|m| {
            *m.requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
            let h = m.latency.entry(route.to_owned()).or_default();
            for (i, le) in BUCKETS.iter().enumerate() {
                if seconds <= *le {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        });
    }

    pub fn graphql_error(&self, code: &str) {
        self.with(|m| *m.graphql_errors.entry(code.to_owned()).or_default() += 1);
    }

    /// A query whose answer may be kept was answered from the cache (`hit`) or computed.
    pub fn response_cache(&self, hit: bool) {
        self.with(|m| m.response_cache[usize::from(hit)] += 1);
    }

    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            out.push_str("# HELP tandem_http_requests_total HTTP requests by method, route and status.\n");
            out.push_str("# TYPE tandem_http_requests_total counter\n");
            for ((method, route, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "tandem_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
            out.push_str("# HELP tandem_http_request_duration_seconds Time to answer an HTTP request.\n");
            out.push_str("# TYPE tandem_http_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                for (le, n) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(
                        out,
                        "tandem_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "tandem_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "tandem_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
                let _ = writeln!(out, "tandem_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
            }
            out.push_str("# HELP tandem_graphql_errors_total GraphQL errors by extensions.code.\n");
            out.push_str("# TYPE tandem_graphql_errors_total counter\n");
            for (code, n) in &m.graphql_errors {
                let _ = writeln!(out, "tandem_graphql_errors_total{{code=\"{code}\"}} {n}");
            }
            out.push_str("# HELP tandem_graphql_response_cache_total Queries of desk records and panels answered from the response cache (hit) or computed (miss).\n");
            out.push_str("# TYPE tandem_graphql_response_cache_total counter\n");
            for (result, n) in ["miss", "hit"].iter().zip(m.response_cache) {
                let _ = writeln!(out, "tandem_graphql_response_cache_total{{result=\"{result}\"}} {n}");
            }
            out
        })
    }
}

pub async fn render(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
