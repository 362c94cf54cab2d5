//! Seeded sample data: accounts, contacts, opportunities with contact roles, notes, tasks, events.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::SimConfig;
use crate::schema::{ObjIdx, Schema};
use crate::store::{Store, Value};

const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dmitri", "Elena", "Farah", "Gustav", "Hana", "Ivan", "Jade", "Kofi",
    "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wei", "Yara", "Zoe",
];
const LAST: &[&str] = &[
    "Smith", "Garcia", "Nguyen", "O'Brien", "Müller", "Kowalski", "Tanaka", "Okafor", "Rossi",
    "Dubois", "Silva", "Jensen", "Novak", "Haddad", "Kim", "Patel", "Cohen", "Ivanova", "Larsen",
    "Moreau",
];
const COMPANY: &[&str] = &[
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Wonka",
    "Tyrell",
];
const CITIES: &[&str] = &[
    "Berlin", "Lisbon", "Austin", "Osaka", "Lagos", "Toronto", "Lyon", "Perth",
];
const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Closed Won",
    "Closed Lost",
];

struct Gen<'s> {
    store: &'s mut Store,
    rng: StdRng,
    now: i64,
}

impl Gen<'_> {
    fn obj(name: &str) -> ObjIdx {
        Schema::get()
            .index(name)
            .expect("seeded objects are in the schema")
    }

    fn field(obj: ObjIdx, name: &str) -> usize {
        Schema::get()
            .object(obj)
            .field_index(name)
            .expect("seeded fields are in the schema")
    }

    fn add(&mut self, obj: ObjIdx, values: Vec<(&str, Value)>) -> u32 {
        let at = self.now - self.rng.gen_range(3_600..20 * 86_400);
        let changes = values
            .into_iter()
            .map(|(n, v)| (Self::field(obj, n), v))
            .collect();
        self.store.insert_at(obj, at, changes) as u32 + 1
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.rng.gen_range(0..list.len())]
    }

    fn date(&mut self) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default()
            + Duration::days(self.rng.gen_range(0..365))
    }
}

/// The integration user every token acts as; always row 0 of User.
pub fn integration_user(store: &mut Store, config: &SimConfig) {
    let user = Gen::obj("User");
    let values = [
        ("Username", Value::str(config.username.as_str())),
        ("FirstName", Value::str("Integration")),
        ("LastName", Value::str("User")),
        ("Email", Value::str(config.username.as_str())),
        ("Alias", Value::str("integ")),
        ("IsActive", Value::Bool(true)),
    ];
    let changes = values
        .into_iter()
        .map(|(n, v)| (Gen::field(user, n), v))
        .collect();
    store.insert(user, changes);
}

/// Adds `contacts` contacts and proportionate related records, deterministically for `seed`.
pub fn generate(store: &mut Store, seed: u64, contacts: usize) {
    if contacts == 0 {
        return;
    }
    let now = store.clock.now();
    let mut g = Gen {
        store,
        rng: StdRng::seed_from_u64(seed),
        now,
    };
    let (account, contact, opp, role, note, task, event) = (
        Gen::obj("Account"),
        Gen::obj("Contact"),
        Gen::obj("Opportunity"),
        Gen::obj("OpportunityContactRole"),
        Gen::obj("Note"),
        Gen::obj("Task"),
        Gen::obj("Event"),
    );
    let (content_note, content_link) = (Gen::obj("ContentNote"), Gen::obj("ContentDocumentLink"));
    let accounts: Vec<u32> = (0..(contacts / 10).max(1))
        .map(|i| {
            let name = format!(
                "{} {} {i}",
                g.pick(COMPANY),
                g.pick(&["Corp", "Labs", "GmbH", "Ltd"])
            );
            let plan = g.pick(&["Free", "Standard", "Premium"]);
            let city = g.pick(CITIES);
            let industry = g.pick(&["Technology", "Retail", "Banking", "Healthcare"]);
            g.add(
                account,
                vec![
                    ("Name", Value::str(name)),
                    ("Industry", Value::str(industry)),
                    ("BillingCity", Value::str(city)),
                    ("Subscription_Type__c", Value::str(plan)),
                ],
            )
        })
        .collect();
    let mut people = Vec::with_capacity(contacts);
    for i in 0..contacts {
        let (first, last) = (g.pick(FIRST), g.pick(LAST));
        let mut values = vec![
            ("FirstName", Value::str(first)),
            ("LastName", Value::str(last)),
        ];
        if g.rng.gen_ratio(9, 10) {
            let email = format!(
                "{}.{}{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase().replace(['\'', 'ü'], "")
            );
            values.push(("Email", Value::str(email)));
        }
        if g.rng.gen_ratio(4, 5) {
            values.push((
                "AccountId",
                Value::Ref(account as u8, accounts[g.rng.gen_range(0..accounts.len())]),
            ));
        }
        let city = g.pick(CITIES);
        values.push(("MailingCity", Value::str(city)));
        values.push(("Phone", Value::str(format!("+1 555 {:04}", i % 10_000))));
        let owner = g.add(contact, values);
        people.push(owner);
    }
    let related = |i: usize| (people[i % people.len()], accounts[i % accounts.len()]);
    for i in 0..contacts / 5 {
        let (who, what) = related(i);
        let stage = g.pick(STAGES);
        let close = g.date();
        let amount = f64::from(g.rng.gen_range(1..500u32)) * 1000.0;
        let o = g.add(
            opp,
            vec![
                ("Name", Value::str(format!("Deal {i}"))),
                ("StageName", Value::str(stage)),
                ("CloseDate", Value::Date(close)),
                ("Amount", Value::Num(amount)),
                ("AccountId", Value::Ref(account as u8, what)),
            ],
        );
        g.add(
            role,
            vec![
                ("OpportunityId", Value::Ref(opp as u8, o)),
                ("ContactId", Value::Ref(contact as u8, who)),
                ("Role", Value::str("Decision Maker")),
                ("IsPrimary", Value::Bool(true)),
            ],
        );
        let status = g.pick(&["Not Started", "In Progress", "Completed"]);
        let due = g.date();
        let subject = g.pick(&["Call", "Send Quote", "Other"]);
        g.add(
            task,
            vec![
                ("Subject", Value::str(subject)),
                ("Status", Value::str(status)),
                ("ActivityDate", Value::Date(due)),
                ("WhoId", Value::Ref(contact as u8, who)),
                ("WhatId", Value::Ref(account as u8, what)),
            ],
        );
    }
    for i in 0..contacts / 10 {
        let (who, what) = related(i * 7 + 3);
        g.add(
            note,
            vec![
                ("Title", Value::str(format!("Call notes {i}"))),
                ("Body", Value::str("Discussed renewal and support tickets.")),
                ("ParentId", Value::Ref(contact as u8, who)),
            ],
        );
        let start = g.now + g.rng.gen_range(-30i64..30) * 86_400;
        let location = g.pick(CITIES);
        g.add(
            event,
            vec![
                ("Subject", Value::str("Meeting")),
                ("StartDateTime", Value::DateTime(start)),
                ("EndDateTime", Value::DateTime(start + 3_600)),
                ("DurationInMinutes", Value::Int(60)),
                ("WhoId", Value::Ref(contact as u8, who)),
                ("WhatId", Value::Ref(account as u8, what)),
                ("Location", Value::str(location)),
            ],
        );
    }
    // Enhanced notes, as Lightning takes them: on a tenth of the contacts, every other one
    // on the contact's account too.
    for i in 0..contacts / 10 {
        let (who, what) = related(i * 7 + 5);
        let topic = g.pick(&["renewal", "onboarding", "an outage", "pricing"]);
        let body = format!("<p>Spoke about {topic}.</p><p>Follow up next week.</p>");
        let n = g.add(
            content_note,
            vec![
                ("Title", Value::str(format!("Meeting summary {i}"))),
                ("Content", Value::str(STANDARD.encode(body))),
            ],
        );
        let mut linked = vec![Value::Ref(contact as u8, who)];
        if i % 2 == 0 {
            linked.push(Value::Ref(account as u8, what));
        }
        for entity in linked {
            g.add(
                content_link,
                vec![
                    ("ContentDocumentId", Value::Ref(content_note as u8, n)),
                    ("LinkedEntityId", entity),
                ],
            );
        }
    }
}
