use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

/// Keyset pagination over ascending ids: a walk through the records neither skips nor
/// repeats one that was there when it began, whatever is inserted or deleted meanwhile. It is
/// no feed of new records: on PostgreSQL ids are drawn as rows are inserted, not as they
/// commit, so a record committed late can take an id below a cursor already handed out
/// (`updatedSince` and `deskChanges` are how new records are followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub after: Option<i64>,
    pub first: usize,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
    pub has_previous: bool,
}

pub(crate) fn paginate<E, C>(select: Select<E>, id: C, page: PageRequest) -> Select<E>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let select = match page.after {
        Some(after) => select.filter(id.gt(after)),
        None => select,
    };
    select.order_by_asc(id).limit(page.first as u64 + 1)
}

pub(crate) fn into_page<T>(mut items: Vec<T>, page: PageRequest) -> Page<T> {
    let has_next = items.len() > page.first;
    items.truncate(page.first);
    Page {
        items,
        has_next,
        has_previous: page.after.is_some(),
    }
}
