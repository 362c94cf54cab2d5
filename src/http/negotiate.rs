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

/// The entries of an `Accept` header: each media range with its quality, `q=0` (refused)
/// included; a range asking for a charset other than UTF-8 is left out.
fn entries(accept: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    accept.split(',').filter_map(|part| {
        let mut params = part.split(';').map(str::trim);
        let range = params.next()?.to_ascii_lowercase();
        let mut q = 1.0_f32;
        // A parameter without a value (`application/json;`) says nothing; it is skipped.
        for (key, value) in params.filter_map(|p| p.split_once('=')) {
            match key.trim().to_ascii_lowercase().as_str() {
                // A quality is 0 to 1 (RFC 9110 §12.4.2): `NaN`, `inf` or `-1` name none, and
                // the range is left out as one that does not parse.
                "q" => {
                    q = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))?
                }
                "charset" if !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8") => {
                    return None;
                }
                _ => {}
            }
        }
        (!range.is_empty()).then_some((range, q))
    })
}

/// Picks the response type for an `Accept` header; `None` means 406 Not Acceptable. Each type
/// takes the quality of the most specific range that names it (RFC 9110 §12.5.1: the type
/// itself, then `application/*`, then `*/*`), a refusal (`q=0`) included. The higher wins;
/// on a tie `application/json` does, unless the client named the GraphQL type itself.
pub fn response_type(accept: Option<&str>) -> Option<ResponseType> {
    let accept = match accept.map(str::trim) {
        None | Some("") => return Some(ResponseType::Json),
        Some(a) => a,
    };
    let ranges: Vec<(String, f32)> = entries(accept).collect();
    let quality = |media: &str| -> (f32, bool) {
        let named = |range: &str| ranges.iter().find(|(r, _)| r == range).map(|(_, q)| *q);
        match named(media) {
            Some(q) => (q, true),
            None => (
                named("application/*").or(named("*/*")).unwrap_or(0.0),
                false,
            ),
        }
    };
    let (graphql, named) = quality("application/graphql-response+json");
    let (json, _) = quality("application/json");
    if graphql <= 0.0 && json <= 0.0 {
        None
    } else if graphql > json || (graphql == json && named) {
        Some(ResponseType::GraphqlResponse)
    } else {
        Some(ResponseType::Json)
    }
}

/// Whether `application/json` is acceptable at all: what a batch, a JSON array that the
/// GraphQL response type does not describe, is answered in.
pub fn accepts_json(accept: Option<&str>) -> bool {
    let accept = match accept.map(str::trim) {
        None | Some("") => return true,
        Some(a) => a,
    };
    let ranges: Vec<(String, f32)> = entries(accept).collect();
    let named = |range: &str| ranges.iter().find(|(r, _)| r == range).map(|(_, q)| *q);
    named("application/json")
        .or(named("application/*"))
        .or(named("*/*"))
        .is_some_and(|q| q > 0.0)
}

/// Whether a browser asked for a page rather than data.
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| entries(a).any(|(range, q)| range == "text/html" && q > 0.0))
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
        // A refusal holds against a wildcard, and the most specific range decides.
        assert_eq!(
            response_type(Some("application/json;q=0, */*")),
            Some(GraphqlResponse)
        );
        assert_eq!(
            response_type(Some("application/json;q=0.1, */*;q=0.5")),
            Some(GraphqlResponse)
        );
        assert_eq!(
            response_type(Some("application/graphql-response+json;q=0, */*")),
            Some(Json)
        );
        assert_eq!(
            response_type(Some("application/*;q=0.2, */*;q=0.9")),
            Some(Json)
        );
        assert!(!wants_html(Some("text/html;q=0, */*")));
        // A quality out of range is no quality: a single request and a batch agree on it.
        for odd in ["NaN", "inf", "-1", "2"] {
            let accept = format!("application/json;q={odd}");
            assert_eq!(response_type(Some(&accept)), None, "{accept}");
            assert!(!accepts_json(Some(&accept)), "{accept}");
        }
        assert!(wants_html(Some("text/html, */*;q=0.8")));
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
