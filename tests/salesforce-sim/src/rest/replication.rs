//! getUpdated / getDeleted windows and the `limits` resource.

use serde_json::{Value as Json, json};

use super::{Ctx, Reply};
use crate::error::ApiError;
use crate::record::{format_datetime, parse_datetime};
use crate::schema::ObjIdx;
use crate::state::{Sim, lock};
use crate::store::Store;

const ID_LIMIT: usize = 600_000;

fn invalid(message: &str) -> ApiError {
    ApiError::bad_request("INVALID_REPLICATION_DATE", message)
}

/// `(start, end, latestDateCovered)` in epoch seconds, truncated to the minute.
fn window(ctx: &Ctx, now: i64, max_days: i64) -> Result<(i64, i64, i64), ApiError> {
    let parse = |name: &str| {
        let text = ctx.param(name).ok_or_else(|| {
            ApiError::bad_request(
                "MISSING_ARGUMENT",
                format!("{name} parameter not specified"),
            )
        })?;
        parse_datetime(text.trim())
            .map(|t| t - t.rem_euclid(60))
            .ok_or_else(|| invalid(&format!("{name} is not a valid date: {text}")))
    };
    let (start, end) = (parse("start")?, parse("end")?);
    if start >= end {
        return Err(invalid(
            "startDate must chronologically precede endDate by more than one minute",
        ));
    }
    if start < now - max_days * 86_400 {
        return Err(invalid(&format!(
            "startDate cannot be more than {max_days} days ago"
        )));
    }
    if start > now {
        return Err(invalid("startDate cannot be in the future"));
    }
    Ok((start, end, end.min(now - now.rem_euclid(60))))
}

pub fn updated(sim: &Sim, ctx: &Ctx, obj: ObjIdx) -> Result<Reply, ApiError> {
    let store = lock(&sim.store);
    let (start, end, latest) = window(ctx, store.clock.now(), 30)?;
    let ids: Vec<String> = store
        .table(obj)
        .iter()
        .enumerate()
        .filter(|(_, r)| r.deleted.is_none() && r.modstamp >= start && r.modstamp < end)
        .map(|(i, _)| Store::id_of(obj, i))
        .collect();
    if ids.len() > ID_LIMIT {
        return Err(ApiError::bad_request("EXCEEDED_ID_LIMIT", "too many ids"));
    }
    Ok(Reply::ok(
        json!({ "ids": ids, "latestDateCovered": format_datetime(latest) }),
    ))
}

pub fn deleted(sim: &Sim, ctx: &Ctx, obj: ObjIdx) -> Result<Reply, ApiError> {
    let store = lock(&sim.store);
    let now = store.clock.now();
    let (start, end, latest) = window(ctx, now, 15)?;
    let records: Vec<Json> = store
        .table(obj)
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.deleted
                .filter(|d| *d >= start && *d < end)
                .map(|d| (i, d))
        })
        .map(|(i, d)| json!({ "id": Store::id_of(obj, i), "deletedDate": format_datetime(d) }))
        .collect();
    if records.len() > ID_LIMIT {
        return Err(ApiError::bad_request("EXCEEDED_ID_LIMIT", "too many ids"));
    }
    let earliest = now - crate::store::RECYCLE_SECS;
    Ok(Reply::ok(json!({
        "deletedRecords": records,
        "earliestDateAvailable": format_datetime(earliest - earliest.rem_euclid(60)),
        "latestDateCovered": format_datetime(latest),
    })))
}

pub fn limits(sim: &Sim) -> Json {
    let faults = lock(&sim.faults);
    let entry = |max: u64, remaining: u64| json!({ "Max": max, "Remaining": remaining });
    json!({
        "DailyApiRequests": entry(faults.daily_limit, faults.daily_limit.saturating_sub(faults.api_used)),
        "DailyBulkApiBatches": entry(15_000, 15_000),
        "DailyBulkV2QueryJobs": entry(10_000, 10_000),
        "DailyAsyncApexExecutions": entry(250_000, 250_000),
        "DailyStreamingApiEvents": entry(1_000_000, 1_000_000),
        "DataStorageMB": entry(1024, 1000),
        "FileStorageMB": entry(1024, 1024),
        "SingleEmail": entry(5_000, 5_000),
        "MassEmail": entry(5_000, 5_000),
    })
}
