//! Relay cursor connections over the store's keyset pages.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_graphql::connection::{Connection, CursorType, Edge};
use async_graphql::{ID, Object, OutputType};
use futures_util::stream::{BoxStream, Stream, StreamExt};

use super::{ApiError, ApiResult, ContextExt, PageSizes};
use crate::domain::AccountId;
use crate::store::{
    AccountFilter, ContactFilter, FailureFilter, HistoryFilter, Page, PageRequest, TicketFilter,
};

/// Which list a cursor was read from: a cursor given to another list is refused rather than
/// taken for a place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Contacts,
    /// An account's contacts.
    ContactsOf,
    Accounts,
    Tickets,
    History,
    Failures,
}

impl List {
    const ALL: [List; 6] = [
        List::Contacts,
        List::ContactsOf,
        List::Accounts,
        List::Tickets,
        List::History,
        List::Failures,
    ];

    /// The cursor's prefix.
    fn tag(self) -> &'static str {
        match self {
            List::Contacts => "ct",
            List::ContactsOf => "co",
            List::Accounts => "ac",
            List::Tickets => "tk",
            List::History => "sh",
            List::Failures => "sf",
        }
    }

    /// How the list is asked for, in a refusal.
    fn name(self) -> &'static str {
        match self {
            List::Contacts => "contacts",
            List::ContactsOf => "an account's contacts",
            List::Accounts => "accounts",
            List::Tickets => "tickets",
            List::History => "syncHistory",
            List::Failures => "syncFailures",
        }
    }
}

/// An opaque cursor: the list it was read from and the record id, so clients do not treat it
/// as an id, nor give it to another list.
pub struct IdCursor(pub List, pub i64);

impl CursorType for IdCursor {
    type Error = String;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        let (tag, hex) = s.split_once('_').unwrap_or_default();
        List::ALL
            .into_iter()
            .find(|list| list.tag() == tag)
            .zip(i64::from_str_radix(hex, 16).ok())
            .map(|(list, id)| IdCursor(list, id))
            .ok_or_else(|| format!("'{s}' is not a cursor from this API"))
    }

    fn encode_cursor(&self) -> String {
        format!("{}_{:x}", self.0.tag(), self.1)
    }
}

/// How many a list's `first` asks for: `default` without it, refused outside 0 to `max`.
pub fn first_within(first: Option<i32>, default: usize, max: usize) -> ApiResult<usize> {
    match first {
        None => Ok(default),
        Some(n) if n >= 0 && (n as usize) <= max => Ok(n as usize),
        Some(n) => Err(ApiError::bad_input(
            "first",
            format!("must be between 0 and {max} (got {n})"),
        )),
    }
}

/// How many a list's `first` counts for in the complexity: as `first_within` reads it, or
/// the nearest in range when out of it, whose refusal names `first`, not the complexity.
pub fn first_counted(first: Option<i32>, default: usize, max: usize) -> usize {
    first.map_or(default, |n| (n.max(0) as usize).min(max))
}

/// The page of `list` asked for: `first` of them, after the cursor `after` read from it.
pub fn page_request(
    sizes: PageSizes,
    list: List,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<PageRequest> {
    let first = first_within(first, sizes.default, sizes.max)?;
    let after = match after.map(|c| IdCursor::decode_cursor(&c).map(|read| (c, read))) {
        None => None,
        Some(Err(e)) => return Err(ApiError::bad_input("after", e)),
        Some(Ok((_, IdCursor(from, id)))) if from == list => Some(id),
        Some(Ok((cursor, IdCursor(from, _)))) => {
            return Err(ApiError::bad_input(
                "after",
                format!(
                    "'{cursor}' is a cursor of {}, not of {}: give this list one of its own endCursors, or none for its first page",
                    from.name(),
                    list.name()
                ),
            ));
        }
    };
    Ok(PageRequest { after, first })
}

/// A list of desk records or sync log entries, a page at a time, with what it holds in all.
pub type Listed<N> = Connection<IdCursor, N, Total>;

/// What a list holds in all, past the page it returns: the filter it was asked with, counted
/// only when `totalCount` is asked for.
pub enum Total {
    Contacts(ContactFilter),
    /// An account's live contacts.
    ContactsOf(AccountId),
    Accounts(AccountFilter),
    Tickets(TicketFilter),
    History(HistoryFilter),
    Failures(FailureFilter),
}

impl Total {
    /// The list it counts.
    pub fn list(&self) -> List {
        match self {
            Self::Contacts(_) => List::Contacts,
            Self::ContactsOf(_) => List::ContactsOf,
            Self::Accounts(_) => List::Accounts,
            Self::Tickets(_) => List::Tickets,
            Self::History(_) => List::History,
            Self::Failures(_) => List::Failures,
        }
    }
}

#[Object]
impl Total {
    /// How many the list holds in all, on every page: what "1–20 of 523" shows. Counted
    /// when asked for, so a list paged through as records change may hold more or fewer.
    async fn total_count(&self, ctx: &async_graphql::Context<'_>) -> ApiResult<i64> {
        self.count(ctx).await
    }
}

impl Total {
    /// [`Total::total_count`], for the lists that say more of themselves.
    pub(crate) async fn count(&self, ctx: &async_graphql::Context<'_>) -> ApiResult<i64> {
        let store = ctx.store();
        let counted = match self {
            Self::Contacts(filter) => store.count_contacts(filter).await?,
            Self::ContactsOf(account) => ctx
                .loader()
                .load_one(super::loaders::ContactCountOf(*account))
                .await?
                .unwrap_or(0),
            Self::Accounts(filter) => store.count_accounts(filter).await?,
            Self::Tickets(filter) => store.count_tickets(filter).await?,
            Self::History(filter) => store.count_sync_history(filter).await?,
            Self::Failures(filter) => store.count_sync_failures(filter).await?,
        };
        Ok(i64::try_from(counted).unwrap_or(i64::MAX))
    }
}

pub fn connection<M, N: OutputType>(
    page: Page<M>,
    total: Total,
    id: fn(&M) -> i64,
    node: fn(M) -> N,
) -> Listed<N> {
    let list = total.list();
    let mut conn = Connection::with_additional_fields(page.has_previous, page.has_next, total);
    conn.edges.extend(
        page.items
            .into_iter()
            .map(|m| Edge::new(IdCursor(list, id(&m)), node(m))),
    );
    conn
}

/// Parses a GraphQL `ID` into a typed id, naming the argument on failure.
pub fn parse_id<T>(field: &str, id: &ID, make: fn(i64) -> T) -> ApiResult<T> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(make)
        .ok_or_else(|| ApiError::bad_input(field, format!("'{}' is not a valid id", id.as_str())))
}

tokio::task_local! {
    /// The page sizes of the gateway validating a request. A connection's complexity is the
    /// page it returns, and async-graphql's complexity functions see only their arguments.
    static PAGE_SIZES: PageSizes;
}

/// Runs an execution (its validation included) with these page sizes for complexity.
pub async fn with_page_sizes<F: Future>(sizes: PageSizes, execution: F) -> F::Output {
    PAGE_SIZES.scope(sizes, execution).await
}

/// A subscription's answers, each polled with these page sizes for complexity (its
/// validation runs at the first poll).
pub fn stream_with_page_sizes<T: Send + 'static>(
    sizes: PageSizes,
    stream: BoxStream<'static, T>,
) -> BoxStream<'static, T> {
    struct Scoped<T> {
        sizes: PageSizes,
        inner: BoxStream<'static, T>,
    }
    impl<T> Stream for Scoped<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            let sizes = self.sizes;
            PAGE_SIZES.sync_scope(sizes, || self.inner.poll_next_unpin(cx))
        }
    }
    Scoped {
        sizes,
        inner: stream,
    }
    .boxed()
}

/// Complexity of a connection field: the page it returns (the default page without `first`,
/// at most the largest page) times the cost of one node.
pub fn connection_complexity(first: Option<i32>, child: usize) -> usize {
    let sizes = PAGE_SIZES.try_with(|s| *s).unwrap_or_default();
    list_complexity(first_counted(first, sizes.default, sizes.max), child)
}

/// Complexity of a list of `len` items, each costing `child`. Nested lists multiply, so it
/// saturates, well short of overflowing the sum async-graphql adds it to.
pub fn list_complexity(len: usize, child: usize) -> usize {
    len.saturating_mul(child)
        .saturating_add(1)
        .min(COMPLEXITY_CEILING)
}

/// Beyond any limit one would set, and far enough from `usize::MAX` that async-graphql can
/// add many of them.
const COMPLEXITY_CEILING: usize = usize::MAX >> 16;
