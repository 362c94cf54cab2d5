//! In-memory org state: one table per object, each record holding only the fields it has set.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

use crate::error::ApiError;
use crate::ids;
use crate::schema::{Field, ObjIdx, Schema};
use crate::soql::Cursor;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Date(NaiveDate),
    DateTime(i64),
    Ref(u8, u32),
    Str(Box<str>),
}

impl Value {
    pub fn str(s: impl Into<Box<str>>) -> Value {
        Value::Str(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn id(&self) -> Option<String> {
        match *self {
            Value::Ref(obj, counter) => Some(ids::make(
                Schema::get().object(obj.into()).prefix,
                counter.into(),
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub created: i64,
    pub modified: i64,
    pub modstamp: i64,
    pub deleted: Option<i64>,
    /// The User row of whoever saved it last, when not the integration user (a person
    /// editing it in Salesforce's own UI).
    pub modified_by: Option<u32>,
    /// The User row of whoever made it, when not the integration user.
    pub created_by: Option<u32>,
    values: Vec<(u16, Value)>,
}

impl Record {
    pub fn new(at: i64, values: Vec<(u16, Value)>) -> Self {
        Record {
            created: at,
            modified: at,
            modstamp: at,
            deleted: None,
            modified_by: None,
            created_by: None,
            values,
        }
    }

    /// The values the record holds, by field.
    pub fn values(&self) -> impl Iterator<Item = (usize, &Value)> {
        self.values.iter().map(|(i, v)| (usize::from(*i), v))
    }

    pub fn stored(&self, field: usize) -> Option<&Value> {
        self.values
            .iter()
            .find(|(i, _)| usize::from(*i) == field)
            .map(|(_, v)| v)
    }

    fn set(&mut self, field: usize, value: Value) {
        let key = u16::try_from(field).expect("objects have fewer than 65536 fields");
        match self.values.iter_mut().find(|(i, _)| *i == key) {
            Some(slot) => slot.1 = value,
            None => self.values.push((key, value)),
        }
    }
}

/// The org clock in epoch seconds; tests may move it forward.
#[derive(Debug, Default, Clone)]
pub struct Clock {
    offset: i64,
    last: i64,
}

impl Clock {
    pub fn now(&self) -> i64 {
        (chrono::Utc::now().timestamp() + self.offset).max(self.last)
    }

    pub fn advance(&mut self, secs: i64) {
        self.offset += secs;
    }

    fn stamp_after(&mut self, previous: i64) -> i64 {
        let at = self.now().max(previous + 1);
        self.last = at;
        at
    }
}

pub type Change = (usize, Value);

#[derive(Default)]
pub struct Store {
    tables: Vec<Vec<Record>>,
    pub clock: Clock,
    pub cursors: HashMap<u64, Cursor>,
    pub next_cursor: u64,
    /// Fields the schema makes external ids that this org has as plain fields: an admin who
    /// created `Helpdesk_Id__c` without ticking "External ID".
    plain: Vec<(ObjIdx, usize)>,
    /// External-id fields this org lets several records share: an admin who did not tick
    /// "Unique".
    shared: Vec<(ObjIdx, usize)>,
    /// Text fields this org made shorter (or longer) than the schema's.
    resized: Vec<((ObjIdx, usize), u32)>,
    /// Custom fields of the schema this org does not have.
    absent: Vec<(ObjIdx, usize)>,
    /// Fields this org's admin made required.
    required: Vec<(ObjIdx, usize)>,
    /// Fields the integration user may read but not write (field-level security).
    read_only: Vec<(ObjIdx, usize)>,
    /// Picklists this org's admin restricted to their values.
    restricted: Vec<(ObjIdx, usize)>,
    /// The User row of the person who edits records in Salesforce's own UI, once one has.
    person: Option<usize>,
}

/// The records and the clock at one moment, to put back when a request that is all or
/// nothing fails partway.
pub struct Snapshot(Vec<Vec<Record>>, Clock);

impl Store {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.tables.clone(), self.clock.clone())
    }

    pub fn restore(&mut self, Snapshot(tables, clock): Snapshot) {
        self.tables = tables;
        self.clock = clock;
    }

    pub fn new() -> Self {
        let tables = Schema::get().objects.iter().map(|_| Vec::new()).collect();
        Store {
            tables,
            ..Store::default()
        }
    }

    pub fn table(&self, obj: ObjIdx) -> &[Record] {
        &self.tables[obj]
    }

    pub fn record(&self, obj: ObjIdx, row: usize) -> &Record {
        &self.tables[obj][row]
    }

    pub fn id_of(obj: ObjIdx, row: usize) -> String {
        ids::make(Schema::get().object(obj).prefix, row as u64 + 1)
    }

    /// Finds the row of a simulator id of object `obj`, ignoring the recycle bin state.
    pub fn locate(&self, obj: ObjIdx, id: &str) -> Option<usize> {
        let (prefix, counter) = ids::decode(id)?;
        let row = usize::try_from(counter).ok()?.checked_sub(1)?;
        (prefix == Schema::get().object(obj).prefix && row < self.tables[obj].len()).then_some(row)
    }

    /// Resolves any simulator id to its object and row.
    pub fn locate_any(&self, id: &str) -> Option<(ObjIdx, usize)> {
        let (prefix, _) = ids::decode(id)?;
        let obj = Schema::get().by_prefix(&prefix)?;
        Some((obj, self.locate(obj, id)?))
    }

    pub fn value(&self, obj: ObjIdx, row: usize, field: usize) -> Cow<'_, Value> {
        let object = Schema::get().object(obj);
        let rec = &self.tables[obj][row];
        let stamp = |t: i64| Cow::Owned(Value::DateTime(t));
        let text =
            |name: &str| self.value(obj, row, object.field_index(name).unwrap_or(usize::MAX));
        if field >= object.fields.len() {
            return Cow::Owned(Value::Null);
        }
        match (object.name, object.fields[field].name) {
            (_, "Id") => Cow::Owned(Value::Ref(obj as u8, row as u32 + 1)),
            (_, "IsDeleted") => Cow::Owned(Value::Bool(rec.deleted.is_some())),
            (_, "CreatedDate") => stamp(rec.created),
            (_, "LastModifiedDate") => stamp(rec.modified),
            (_, "SystemModstamp") => stamp(rec.modstamp),
            (_, "LastModifiedById") => match rec.modified_by {
                Some(row) => Cow::Owned(Value::Ref(self.user_object(), row + 1)),
                None => Cow::Owned(self.integration_user()),
            },
            (_, "CreatedById") => match rec.created_by {
                Some(row) => Cow::Owned(Value::Ref(self.user_object(), row + 1)),
                None => Cow::Owned(self.integration_user()),
            },
            (_, "OwnerId") => rec
                .stored(field)
                .map_or_else(|| Cow::Owned(self.integration_user()), Cow::Borrowed),
            ("Contact" | "User", "Name") => {
                let parts: Vec<String> = ["FirstName", "LastName"]
                    .iter()
                    .filter_map(|n| text(n).as_str().map(str::to_string))
                    .collect();
                Cow::Owned(Value::str(parts.join(" ")))
            }
            ("Opportunity", "IsClosed") => {
                let stage = text("StageName");
                Cow::Owned(Value::Bool(
                    stage.as_str().is_some_and(|s| s.starts_with("Closed")),
                ))
            }
            ("Opportunity", "Probability") if rec.stored(field).is_none() => {
                let stage = text("StageName");
                Cow::Owned(
                    stage
                        .as_str()
                        .map_or(Value::Null, |s| Value::Num(stage_probability(s))),
                )
            }
            ("Opportunity", "IsWon") => Cow::Owned(Value::Bool(
                text("StageName").as_str() == Some("Closed Won"),
            )),
            ("ContentNote", "TextPreview") => {
                let content = object.field_index("Content").and_then(|i| rec.stored(i));
                Cow::Owned(
                    content
                        .and_then(Value::as_str)
                        .map_or(Value::Null, |body| Value::str(text_preview(body))),
                )
            }
            ("ContentNote", "FileType") => Cow::Owned(Value::str("SNOTE")),
            ("ContentNote", "SharingPrivacy") if rec.stored(field).is_none() => {
                Cow::Owned(Value::str("N"))
            }
            ("ContentNote", "FileExtension") => Cow::Owned(Value::str("snote")),
            // A file's body is read as the URL of its blob.
            (name, field_name)
                if object.fields[field].kind == crate::schema::Kind::Base64
                    && rec.stored(field).is_some() =>
            {
                Cow::Owned(Value::str(format!(
                    "/services/data/v{BLOB_VERSION}/sobjects/{name}/{}/{field_name}",
                    Store::id_of(obj, row)
                )))
            }
            ("Task" | "Event", "AccountId") => {
                Cow::Owned(self.activity_account(&text("WhatId"), &text("WhoId")))
            }
            ("Task", "IsClosed") => {
                Cow::Owned(Value::Bool(text("Status").as_str() == Some("Completed")))
            }
            // Salesforce archives events due more than a year ago, and tasks closed that
            // were due (or, undated, made) more than a year ago; only `queryAll` reads them.
            ("Task" | "Event", "IsArchived") => {
                let year_ago = self.clock.now() - 365 * 86_400;
                let due =
                    ["EndDateTime", "ActivityDate"]
                        .iter()
                        .find_map(|name| match &*text(name) {
                            Value::DateTime(at) => Some(*at),
                            Value::Date(day) => {
                                Some(day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp())
                            }
                            _ => None,
                        });
                let closed =
                    object.name == "Event" || matches!(&*text("IsClosed"), Value::Bool(true));
                Cow::Owned(Value::Bool(closed && due.unwrap_or(rec.created) < year_ago))
            }
            _ => match rec.stored(field) {
                Some(v) => Cow::Borrowed(v),
                None if object.fields[field].kind == crate::schema::Kind::Boolean => {
                    Cow::Owned(Value::Bool(false))
                }
                None => Cow::Owned(Value::Null),
            },
        }
    }

    /// The account an activity comes under, as Salesforce derives it: the account it is
    /// related to, or that opportunity's; else, its contact's; else none.
    fn activity_account(&self, what: &Value, who: &Value) -> Value {
        let account_of = |named: &Value, objects: &[&str]| {
            let Value::Ref(obj, counter) = named else {
                return None;
            };
            let object = Schema::get().object(usize::from(*obj));
            if !objects.contains(&object.name) {
                return None;
            }
            if object.name == "Account" {
                return Some(named.clone());
            }
            let field = object.field_index("AccountId")?;
            Some(
                self.value(usize::from(*obj), *counter as usize - 1, field)
                    .into_owned(),
            )
        };
        account_of(what, &["Account", "Opportunity"])
            .or_else(|| account_of(who, &["Contact"]))
            .unwrap_or(Value::Null)
    }

    fn integration_user(&self) -> Value {
        Value::Ref(self.user_object(), 1)
    }

    fn user_object(&self) -> u8 {
        Schema::get()
            .index("User")
            .expect("User is part of the schema") as u8
    }

    /// Marks a record as made, and saved last, by a person in Salesforce's own UI.
    pub fn made_by_a_person(&mut self, obj: ObjIdx, row: usize) {
        let person = self.person();
        let record = &mut self.tables[obj][row];
        record.created_by = Some(person);
        record.modified_by = Some(person);
    }

    /// Marks a record as saved last by a person in Salesforce's own UI, not the integration
    /// user.
    pub fn saved_by_a_person(&mut self, obj: ObjIdx, row: usize) {
        let person = self.person();
        self.tables[obj][row].modified_by = Some(person);
    }

    /// The User row of a person using the org (made for the purpose the first time).
    fn person(&mut self) -> u32 {
        let person = match self.person {
            Some(person) => person,
            None => {
                let user = usize::from(self.user_object());
                let object = Schema::get().object(user);
                let changes = [
                    ("Username", "sales.rep@example.com"),
                    ("FirstName", "Sales"),
                    ("LastName", "Rep"),
                    ("Email", "sales.rep@example.com"),
                    ("Alias", "srep"),
                ]
                .into_iter()
                .filter_map(|(n, v)| Some((object.field_index(n)?, Value::str(v))))
                .collect();
                let person = self.insert(user, changes);
                self.person = Some(person);
                person
            }
        };
        person as u32
    }

    pub fn insert(&mut self, obj: ObjIdx, changes: Vec<Change>) -> usize {
        let at = self.clock.stamp_after(0);
        self.insert_at(obj, at, changes)
    }

    /// Inserts with a given timestamp; used by the sample-data generator.
    pub fn insert_at(&mut self, obj: ObjIdx, at: i64, changes: Vec<Change>) -> usize {
        let object = Schema::get().object(obj);
        let mut values: Vec<(u16, Value)> = Vec::with_capacity(changes.len() + 2);
        for (i, field) in object.fields.iter().enumerate() {
            if let Some(d) = field.default {
                values.push((i as u16, Value::str(d)));
            }
        }
        let mut rec = Record::new(at, values);
        for (field, value) in changes {
            rec.set(field, value);
        }
        rec.values.shrink_to_fit();
        self.tables[obj].push(rec);
        self.tables[obj].len() - 1
    }

    /// Creates a record through the checks a write to the org passes (the field checks are
    /// `parse_body`'s).
    pub fn create(&mut self, obj: ObjIdx, changes: Vec<Change>) -> Result<usize, ApiError> {
        self.check_unique(obj, None, &changes)?;
        Ok(self.insert(obj, changes))
    }

    /// Field `field` of `obj` as this org has it.
    pub fn field(&self, obj: ObjIdx, field: usize) -> Field {
        let mut f = Schema::get().object(obj).fields[field].clone();
        if let Some((_, length)) = self.resized.iter().find(|(at, _)| *at == (obj, field)) {
            f.length = *length;
        }
        if self.required.contains(&(obj, field)) {
            f.nillable = false;
        }
        if self.read_only.contains(&(obj, field)) {
            f.createable = false;
            f.updateable = false;
        }
        f.restricted = self.restricted.contains(&(obj, field));
        f
    }

    /// Restricts a picklist to its values: describe says `restrictedPicklist`, and a write
    /// of any other value is refused with `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`.
    pub fn restrict(&mut self, obj: ObjIdx, field: usize) {
        self.restricted.push((obj, field));
    }

    /// Makes a field read-only for the integration user: describe says it is neither
    /// createable nor updateable, and a write naming it is refused with
    /// `INVALID_FIELD_FOR_INSERT_UPDATE`.
    pub fn make_read_only(&mut self, obj: ObjIdx, field: usize) {
        self.read_only.push((obj, field));
    }

    /// Makes a field required in this org: describe says it is not nillable, and a create
    /// without it is refused with `REQUIRED_FIELD_MISSING`.
    pub fn require(&mut self, obj: ObjIdx, field: usize) {
        self.required.push((obj, field));
    }

    /// Gives a text field another length in this org.
    pub fn resize(&mut self, obj: ObjIdx, field: usize, length: u32) {
        self.resized.retain(|(at, _)| *at != (obj, field));
        self.resized.push(((obj, field), length));
    }

    /// Whether field `field` of `obj` is a unique external id in this org.
    pub fn unique(&self, obj: ObjIdx, field: usize) -> bool {
        self.external_id(obj, field) && !self.shared.contains(&(obj, field))
    }

    /// Lets several records share an external-id field's value: describe says
    /// `unique: false`, and an upsert by a shared value answers 300.
    pub fn share(&mut self, obj: ObjIdx, field: usize) {
        self.shared.push((obj, field));
    }

    /// Refuses a write that would give a unique field a value another record of the object
    /// holds, as Salesforce does; case does not count, and a record in the recycle bin still
    /// holds its values until it is purged.
    fn check_unique(
        &self,
        obj: ObjIdx,
        row: Option<usize>,
        changes: &[Change],
    ) -> Result<(), ApiError> {
        for (field, value) in changes {
            if !self.unique(obj, *field) {
                continue;
            }
            let Some(text) = value.as_str().filter(|s| !s.is_empty()) else {
                continue;
            };
            let holder = self.tables[obj].iter().enumerate().find(|(r, rec)| {
                Some(*r) != row
                    && rec.deleted.is_none_or(|at| !self.purged(at))
                    && rec
                        .stored(*field)
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case(text))
            });
            if let Some((other, _)) = holder {
                let name = Schema::get().object(obj).fields[*field].name;
                let msg = format!(
                    "duplicate value found: {name} duplicates value on record with id: {}",
                    Self::id_of(obj, other)
                );
                return Err(ApiError::bad_request("DUPLICATE_VALUE", msg).on(name));
            }
        }
        Ok(())
    }

    pub fn update(
        &mut self,
        obj: ObjIdx,
        row: usize,
        changes: Vec<Change>,
    ) -> Result<(), ApiError> {
        let previous = self.live(obj, row)?.modstamp;
        let at = self.clock.stamp_after(previous);
        self.update_at(obj, row, changes, at)
    }

    /// Updates a record stamping it `at`.
    pub fn update_at(
        &mut self,
        obj: ObjIdx,
        row: usize,
        changes: Vec<Change>,
        at: i64,
    ) -> Result<(), ApiError> {
        self.live(obj, row)?;
        self.check_unique(obj, Some(row), &changes)?;
        let rec = &mut self.tables[obj][row];
        for (field, value) in changes {
            rec.set(field, value);
        }
        rec.modified = at;
        rec.modstamp = at;
        rec.modified_by = None;
        Ok(())
    }

    /// Moves a record's `SystemModstamp` on, and nothing else: what a roll-up summary or
    /// other automation does to it, no person or API client having saved it.
    pub fn touch_by_the_system(&mut self, obj: ObjIdx, row: usize) -> Result<(), ApiError> {
        let previous = self.live(obj, row)?.modstamp;
        let at = self.clock.stamp_after(previous);
        self.tables[obj][row].modstamp = at;
        Ok(())
    }

    /// Moves a record to the recycle bin with the records Salesforce deletes along with it
    /// ([`CASCADES`]), and theirs in turn.
    pub fn delete(&mut self, obj: ObjIdx, row: usize) -> Result<(), ApiError> {
        let previous = self.live(obj, row)?.modstamp;
        let at = self.clock.stamp_after(previous);
        let mut bin = HashSet::from([(obj, row)]);
        let mut fresh = bin.clone();
        while !fresh.is_empty() {
            fresh = self.dependents(&fresh, &bin);
            bin.extend(fresh.iter().copied());
        }
        for (obj, row) in bin {
            let rec = &mut self.tables[obj][row];
            rec.deleted = Some(at);
            rec.modstamp = at;
        }
        Ok(())
    }

    /// The live records outside `bin` that go with a record of `fresh`, part of `bin`.
    fn dependents(
        &self,
        fresh: &HashSet<(ObjIdx, usize)>,
        bin: &HashSet<(ObjIdx, usize)>,
    ) -> HashSet<(ObjIdx, usize)> {
        let schema = Schema::get();
        let gone = |&(o, r): &(ObjIdx, usize)| {
            bin.contains(&(o, r)) || self.tables[o][r].deleted.is_some()
        };
        let mut found = HashSet::new();
        for &(name, cascade, fields) in CASCADES {
            let Some(child) = schema.index(name) else {
                continue;
            };
            let object = schema.object(child);
            let fields: Vec<usize> = fields
                .iter()
                .filter_map(|f| object.field_index(f))
                .collect();
            for r in 0..self.tables[child].len() {
                if gone(&(child, r)) {
                    continue;
                }
                let parents: Vec<(ObjIdx, usize)> = fields
                    .iter()
                    .filter_map(|&f| match *self.value(child, r, f) {
                        Value::Ref(o, c) => Some((usize::from(o), c as usize - 1)),
                        _ => None,
                    })
                    .collect();
                let goes = match cascade {
                    Cascade::AnyParent => true,
                    Cascade::EveryParent => parents.iter().all(gone),
                };
                if goes && parents.iter().any(|p| fresh.contains(p)) {
                    found.insert((child, r));
                }
            }
        }
        found
    }

    /// The record reference field `field` of a record points at, unless that record is in
    /// the recycle bin: a relationship into a deleted record reads as empty.
    pub fn follow(&self, obj: ObjIdx, row: usize, field: usize) -> Option<(ObjIdx, usize)> {
        let Value::Ref(o, c) = *self.value(obj, row, field) else {
            return None;
        };
        let (o, r) = (usize::from(o), c as usize - 1);
        self.tables[o]
            .get(r)
            .is_some_and(|rec| rec.deleted.is_none())
            .then_some((o, r))
    }

    pub fn live(&self, obj: ObjIdx, row: usize) -> Result<&Record, ApiError> {
        let rec = &self.tables[obj][row];
        match rec.deleted {
            Some(at) if self.purged(at) => Err(ApiError::not_found()),
            Some(_) => Err(ApiError::new(404, "ENTITY_IS_DELETED", "entity is deleted")),
            None => Ok(rec),
        }
    }

    /// Whether a record deleted at `at` has left the recycle bin for good: Salesforce empties
    /// it of what has been there fifteen days. `queryAll` no longer finds such a record, and
    /// asked for by id it is not found.
    pub fn purged(&self, at: i64) -> bool {
        at < self.clock.now() - RECYCLE_SECS
    }

    /// Whether field `field` of `obj` is an external id in this org.
    pub fn external_id(&self, obj: ObjIdx, field: usize) -> bool {
        Schema::get().object(obj).fields[field].external_id && !self.plain.contains(&(obj, field))
    }

    /// Makes an external-id field a plain one: describe stops calling it an external id, and
    /// upserts by it are refused as Salesforce refuses them.
    pub fn make_plain(&mut self, obj: ObjIdx, field: usize) {
        self.plain.push((obj, field));
    }

    /// Removes a field from the org: describe leaves it out, and writes and queries that name
    /// it are refused with `INVALID_FIELD`.
    pub fn remove_field(&mut self, obj: ObjIdx, field: usize) {
        self.absent.push((obj, field));
    }

    /// Adds back a field removed from the org.
    pub fn add_field(&mut self, obj: ObjIdx, field: usize) {
        self.absent.retain(|f| *f != (obj, field));
    }

    /// Whether this org has field `field` of `obj`.
    pub fn has_field(&self, obj: ObjIdx, field: usize) -> bool {
        !self.absent.contains(&(obj, field))
    }

    /// Live rows whose external-id `field` equals `value` (case-insensitive).
    pub fn find_by(&self, obj: ObjIdx, field: usize, value: &str) -> Vec<usize> {
        self.tables[obj]
            .iter()
            .enumerate()
            .filter(|(_, r)| r.deleted.is_none())
            .filter(|(_, r)| {
                r.stored(field)
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case(value))
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// When a record follows the records it names into the recycle bin: with any one of them,
/// or (activities) once every one is deleted.
#[derive(Clone, Copy)]
enum Cascade {
    AnyParent,
    EveryParent,
}

/// The records Salesforce deletes with a record they name, by object and reference fields.
const CASCADES: &[(&str, Cascade, &[&str])] = &[
    ("Contact", Cascade::AnyParent, &["AccountId"]),
    ("Opportunity", Cascade::AnyParent, &["AccountId"]),
    (
        "OpportunityContactRole",
        Cascade::AnyParent,
        &["OpportunityId", "ContactId"],
    ),
    ("Note", Cascade::AnyParent, &["ParentId"]),
    (
        "ContentDocumentLink",
        Cascade::AnyParent,
        &["LinkedEntityId", "ContentDocumentId"],
    ),
    ("Task", Cascade::EveryParent, &["WhoId", "WhatId"]),
    ("Event", Cascade::EveryParent, &["WhoId", "WhatId"]),
];

/// How long a deleted record stays in the recycle bin.
pub const RECYCLE_SECS: i64 = 15 * 86_400;

/// The API version in the blob URLs of base64 fields.
const BLOB_VERSION: &str = "62.0";

/// What Salesforce shows of a note: its text without markup (character references
/// decoded), at most 255 characters.
fn text_preview(base64_body: &str) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(base64_body)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let mut text = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(255).collect()
}

fn stage_probability(stage: &str) -> f64 {
    match stage {
        "Prospecting" | "Qualification" => 10.0,
        "Needs Analysis" => 20.0,
        "Value Proposition" => 50.0,
        "Id. Decision Makers" => 60.0,
        "Perception Analysis" => 70.0,
        "Proposal/Price Quote" => 75.0,
        "Negotiation/Review" => 90.0,
        "Closed Won" => 100.0,
        _ => 0.0,
    }
}
