//! Content negotiation for GraphQL over HTTP.

/// The media type a GraphQL response is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// `application/graphql-response+json`: status codes follow the outcome.
    GraphqlResponse,
    /// `application/json`: well-formed requests always get 200.
    Json,
}

impl ResponseType {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// One entry of an `Accept` header: the media range, its quality, and whether its charset is
/// one we can write.
fn entries(accept: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    accept.split(',').filter_map(|part| {
        let mut params = part.split(';').map(str::trim);
        let range = params.next()?.to_ascii_lowercase();
        let mut q = 1.0_f32;
        // A parameter without a value (`application/json;`) says nothing; it is skipped.
        for (key, value) in params.filter_map(|p| p.split_once('=')) {
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = value.trim().parse().ok()?,
                "charset" if !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8") => {
                    return None;
                }
                _ => {}
            }
        }
        (!range.is_empty() && q > 0.0).then_some((range, q))
    })
}

/// Picks the response type for an `Accept` header; `None` means 406 Not Acceptable.
pub fn response_type(accept: Option<&str>) -> Option<ResponseType> {
    let accept = match accept.map(str::trim) {
        None | Some("") => return Some(ResponseType::Json),
        Some(a) => a,
    };
    let mut best: Option<(ResponseType, f32)> = None;
    for (range, q) in entries(accept) {
        let candidate = match range.as_str() {
            "application/graphql-response+json" => ResponseType::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => ResponseType::Json,
            _ => continue,
        };
        let better = match best {
            None => true,
            Some((current, best_q)) => {
                q > best_q
                    || (q == best_q
                        && candidate == ResponseType::GraphqlResponse
                        && current != candidate)
            }
        };
        if better {
            best = Some((candidate, q));
        }
    }
    best.map(|(t, _)| t)
}

/// Whether a browser asked for a page rather than data.
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| entries(a).any(|(range, _)| range == "text/html"))
}

/// Whether a request body's `Content-Type` is JSON in UTF-8.
pub fn is_json_body(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    media.eq_ignore_ascii_case("application/json")
        && parts.all(|p| match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_media_type_the_client_prefers() {
        use ResponseType::*;
        assert_eq!(response_type(None), Some(Json));
        assert_eq!(response_type(Some("*/*")), Some(Json));
        assert_eq!(
            response_type(Some("application/graphql-response+json")),
            Some(GraphqlResponse)
        );
        assert_eq!(
            response_type(Some(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(GraphqlResponse)
        );
        assert_eq!(
            response_type(Some(
                "application/json, application/graphql-response+json;q=0.5"
            )),
            Some(Json)
        );
        assert_eq!(
            response_type(Some("application/json; charset=utf-8")),
            Some(Json)
        );
        assert_eq!(
            response_type(Some("application/json; charset=iso-8859-1")),
            None
        );
        assert_eq!(response_type(Some("text/plain")), None);
        assert_eq!(response_type(Some("application/json;q=0")), None);
    }

    #[test]
    fn json_bodies_must_be_utf8() {
        assert!(is_json_body(Some("application/json")));
        assert!(is_json_body(Some("application/json; charset=UTF-8")));
        assert!(!is_json_body(Some("application/json; charset=latin1")));
        assert!(!is_json_body(Some("text/plain")));
        assert!(!is_json_body(None));
    }
}
