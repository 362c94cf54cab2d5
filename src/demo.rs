//! `tandem demo`: the gateway on its embedded default, with sample desk data and tokens.

use std::time::Duration;

use anyhow::anyhow;

use crate::config::Settings;
use crate::domain::{AccountInput, ContactInput, TicketInput, TicketPriority, TicketStatus};
use crate::startup::{Application, authenticator};
use crate::store::{ContactFilter, PageRequest, Store};

const ACCOUNTS: &[(&str, &str, &str, i64)] = &[
    ("Zylker Corp", "https://zylker.example", "Technology", 1200),
    (
        "Acme Logistics",
        "https://acme-logistics.example",
        "Transportation",
        430,
    ),
    (
        "Northwind Traders",
        "https://northwind.example",
        "Retail",
        85,
    ),
    (
        "Globex Health",
        "https://globex-health.example",
        "Healthcare",
        2600,
    ),
];

/// First name, last name, email (some customers have none), account index.
const CONTACTS: &[(&str, &str, Option<&str>, usize)] = &[
    ("Ada", "Lovelace", Some("ada@zylker.example"), 0),
    ("Charles", "Babbage", Some("charles@zylker.example"), 0),
    ("Grace", "Hopper", Some("grace@acme-logistics.example"), 1),
    ("Alan", "Turing", Some("alan@acme-logistics.example"), 1),
    (
        "Katherine",
        "Johnson",
        Some("katherine@northwind.example"),
        2,
    ),
    ("Edsger", "Dijkstra", None, 2),
    (
        "Barbara",
        "Liskov",
        Some("barbara@globex-health.example"),
        3,
    ),
    ("Donald", "Knuth", Some("don@globex-health.example"), 3),
];

const TICKETS: &[(&str, usize, TicketStatus, TicketPriority)] = &[
    (
        "Invoice shows the wrong billing address",
        0,
        TicketStatus::Open,
        TicketPriority::High,
    ),
    (
        "Cannot export shipment report",
        2,
        TicketStatus::Open,
        TicketPriority::Medium,
    ),
    (
        "Request to upgrade subscription",
        4,
        TicketStatus::OnHold,
        TicketPriority::Low,
    ),
    (
        "Login fails after password reset",
        6,
        TicketStatus::Escalated,
        TicketPriority::Urgent,
    ),
    (
        "Question about API rate limits",
        3,
        TicketStatus::Closed,
        TicketPriority::Medium,
    ),
    (
        "Data import stuck at 80%",
        7,
        TicketStatus::Open,
        TicketPriority::High,
    ),
];

/// The demo's agents: name, email, profile.
const AGENTS: &[(&str, &str, &str)] = &[
    ("Ada Admin", "admin@tandem.test", "Administrator"),
    ("Alex Agent", "agent@tandem.test", "Agent"),
    ("Lee Light", "light@tandem.test", "Light Agent"),
];

/// Takes `<data_dir>/demo.lock` for as long as the returned file is open (the process's
/// life): refused while another demo holds it.
pub fn hold_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    crate::startup::make_data_dir(data_dir)?;
    let path = data_dir.join("demo.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow!(
            "another `tandem demo` is running on data dir {}: stop it first, or give this one a data dir of its own (TANDEM_DATA_DIR)",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(anyhow!("cannot lock {}: {e}", path.display())),
    }
}

/// Removes an earlier start's demo database. The simulated org lives in memory and starts
/// anew each time; a desk kept from before would stay linked to records of an org that is
/// gone, and a record with no email to match by would be made twice on each side.
pub fn forget_database(path: &std::path::Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(anyhow!(
                    "cannot remove the last demo's database {}: {e}",
                    std::path::Path::new(&file).display()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    let store = app.store().clone();
    seed(&store).await?;
    let auth = authenticator(&settings)?;
    let base = settings.base_url(app.port());
    println!(
        "\nTandem demo is running on {}",
        settings.database_url().redacted()
    );
    println!("GraphiQL: {base}/graphql\n");
    #[cfg(feature = "simulator")]
    let _org = {
        let org = start_simulator().await?;
        connect(&app, &org).await?;
        org
    };
    let ttl = Duration::from_secs(settings.auth.token_ttl_secs);
    for (name, email, profile) in AGENTS {
        let agent = store
            .ensure_agent(name, email, profile_id(&store, profile).await?)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let token = auth
            .mint(agent.id, profile, Some(name), ttl)
            .map_err(|e| anyhow!("{e}"))?;
        println!("{profile} ({name}):");
        println!("  open   {base}/graphql#token={token}");
        println!("  header Authorization: Bearer {token}\n");
    }
    app.run_until_signalled().await?;
    Ok(())
}

/// Starts the built-in Salesforce simulator with sample data and signs in to it once.
#[cfg(feature = "simulator")]
async fn start_simulator() -> anyhow::Result<salesforce_sim::SimHandle> {
    use crate::salesforce::{ClientConfig, Credentials, SalesforceClient};
    let config = salesforce_sim::SimConfig {
        records: 200,
        ..Default::default()
    };
    let org = salesforce_sim::start(config.clone()).await;
    let client = SalesforceClient::new(ClientConfig::new(
        org.base_url(),
        Credentials::Password {
            username: config.username.clone(),
            password: config.password.clone().into(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone().into(),
        },
    ))
    .map_err(|e| anyhow!("{e}"))?;
    client
        .verify()
        .await
        .map_err(|e| anyhow!("the simulator refused the demo credentials: {e}"))?;
    println!(
        "Salesforce simulator: {} (a sample org of {} contacts with accounts, opportunities, notes and activities)",
        org.base_url(),
        config.records
    );
    println!(
        "  login URL {}  user {} / {}  client {} / {}\n",
        org.base_url(),
        config.username,
        config.password,
        config.client_id,
        config.client_secret
    );
    Ok(org)
}

/// Connects the desk to the simulator and runs the first sync in the background; the worker
/// keeps the two in step from then on.
#[cfg(feature = "simulator")]
async fn connect(app: &Application, org: &salesforce_sim::SimHandle) -> anyhow::Result<()> {
    use crate::domain::SyncType;
    use crate::sync::{Connect, ConnectAuth};
    let config = org.config();
    let integrations = app.integrations();
    integrations
        .connect(Connect {
            login_url: org.base_url().to_owned(),
            auth: ConnectAuth::Password {
                username: config.username.clone(),
                password: config.password.clone().into(),
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone().into(),
            },
            sync_type: Some(SyncType::TwoWay),
        })
        .await
        .map_err(|e| anyhow!("cannot connect the demo to the simulator: {e}"))?;
    integrations
        .start_sync()
        .await
        .map_err(|e| anyhow!("cannot start the demo's first sync: {e}"))?;
    let customers = customers_with_open_deals(org);
    let engine = app.engine();
    let store = app.store().clone();
    tokio::spawn(async move {
        // The worker, woken by the start, may run the first sync before this round: this
        // one waits for it, and the counts come from the history either round wrote.
        match engine.run_once().await {
            Err(e) => {
                eprintln!("The demo's first sync stopped: {e}");
                return;
            }
            // Stopped early (the gateway shutting down, say): the next start finishes it.
            Ok(report) if report.idle.is_some() => return,
            Ok(_) => {}
        }
        if let Err(e) = open_customer_tickets(&store, &customers).await {
            eprintln!("The demo's tickets from Salesforce customers were not opened: {e}");
        }
        match synced(&store).await {
            Ok((pulled, pushed)) => println!(
                "First sync done: {pulled} records in from Salesforce, {pushed} out to it."
            ),
            Err(e) => eprintln!("The demo's sync history could not be read: {e}"),
        }
    });
    println!("Connected to the simulator (two-way sync); the first sync is running.\n");
    Ok(())
}

/// Records added or updated in the desk from Salesforce, and in Salesforce from the desk,
/// by every round so far (the demo's database is new at each start).
#[cfg(feature = "simulator")]
async fn synced(store: &Store) -> anyhow::Result<(i64, i64)> {
    use crate::domain::Direction;
    use crate::store::{HistoryFilter, PageRequest};
    let (mut pulled, mut pushed) = (0, 0);
    let mut after = None;
    loop {
        let page = store
            .sync_history(&HistoryFilter::default(), PageRequest { after, first: 100 })
            .await?;
        for entry in &page.items {
            let records = i64::from(entry.added) + i64::from(entry.updated);
            if entry.direction == Direction::SalesforceToDesk.as_str() {
                pulled += records;
            } else {
                pushed += records;
            }
        }
        after = page.items.last().map(|entry| entry.id);
        if !page.has_next {
            return Ok((pulled, pushed));
        }
    }
}

/// Tickets from customers the first sync brought in from the org, whose panels show
/// opportunities, notes, events and tasks (the seeded desk contacts went out to the org without any).
#[cfg(feature = "simulator")]
const CUSTOMER_TICKETS: &[(&str, TicketPriority)] = &[
    ("Renewal quote is wrong", TicketPriority::High),
    (
        "Cannot sign in to the customer portal",
        TicketPriority::Medium,
    ),
];

/// Salesforce contacts of the sample org in a role on an open opportunity, those whose
/// panels show most first (notes, events and tasks of their own), else in the org's order.
#[cfg(feature = "simulator")]
fn customers_with_open_deals(org: &salesforce_sim::SimHandle) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let ids = |sobject: &str, field: &str| -> HashSet<String> {
        org.records(sobject)
            .iter()
            .filter_map(|r| r[field].as_str().map(str::to_owned))
            .collect()
    };
    let open: HashSet<String> = org
        .records("Opportunity")
        .iter()
        .filter(|o| o["IsClosed"] == false)
        .filter_map(|o| o["Id"].as_str().map(str::to_owned))
        .collect();
    let mut noted = ids("Note", "ParentId");
    noted.extend(ids("ContentDocumentLink", "LinkedEntityId"));
    let shown = [noted, ids("Event", "WhoId"), ids("Task", "WhoId")];
    let mut customers: Vec<String> = Vec::new();
    for role in org.records("OpportunityContactRole") {
        if let (Some(contact), Some(deal)) =
            (role["ContactId"].as_str(), role["OpportunityId"].as_str())
            && open.contains(deal)
            && !customers.iter().any(|c| c == contact)
        {
            customers.push(contact.to_owned());
        }
    }
    let shows: HashMap<String, usize> = customers
        .iter()
        .map(|c| (c.clone(), shown.iter().filter(|s| s.contains(c)).count()))
        .collect();
    customers.sort_by_key(|c| std::cmp::Reverse(shows[c]));
    customers
}

/// Opens [`CUSTOMER_TICKETS`] for the first of `customers` (Salesforce ids) that the first
/// sync brought into the desk, once: a desk holding more than the seeded tickets is left
/// alone.
#[cfg(feature = "simulator")]
async fn open_customer_tickets(store: &Store, customers: &[String]) -> anyhow::Result<()> {
    let tickets = store
        .tickets(
            &crate::store::TicketFilter::default(),
            PageRequest {
                after: None,
                first: TICKETS.len() + 1,
            },
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if tickets.items.len() != TICKETS.len() {
        return Ok(());
    }
    let linked = store
        .desk_ids_by_salesforce(crate::domain::Module::Contacts, customers)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let imported = customers.iter().filter_map(|id| linked.get(id));
    for ((subject, priority), &contact) in CUSTOMER_TICKETS.iter().zip(imported) {
        let input = TicketInput {
            subject: Some((*subject).into()),
            status: Some(TicketStatus::Open),
            priority: Some(*priority),
            contact_id: Some(crate::domain::ContactId(contact)),
            ..Default::default()
        };
        store
            .create_ticket(&input, false, None)
            .await
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

async fn profile_id(store: &Store, name: &str) -> anyhow::Result<crate::domain::ProfileId> {
    Ok(store
        .profile_by_name(name)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("profile '{name}' is missing"))?
        .id)
}

/// Adds the sample records to an empty desk; leaves a desk with contacts alone.
pub async fn seed(store: &Store) -> anyhow::Result<()> {
    let existing = store
        .contacts(
            &ContactFilter::default(),
            PageRequest {
                after: None,
                first: 1,
            },
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if !existing.items.is_empty() {
        return Ok(());
    }
    let mut accounts = Vec::new();
    for (name, website, industry, employees) in ACCOUNTS {
        let input = AccountInput {
            name: Some((*name).into()),
            website: Some((*website).into()),
            industry: Some((*industry).into()),
            employees: Some(*employees),
            ..Default::default()
        };
        accounts.push(
            store
                .create_account(&input, None)
                .await
                .map_err(|e| anyhow!("{e}"))?
                .id,
        );
    }
    let mut contacts = Vec::new();
    for (first, last, email, account) in CONTACTS {
        let input = ContactInput {
            first_name: Some((*first).into()),
            last_name: Some((*last).into()),
            email: email.map(Into::into),
            account_id: Some(accounts[*account]),
            ..Default::default()
        };
        contacts.push(
            store
                .create_contact(&input, None)
                .await
                .map_err(|e| anyhow!("{e}"))?
                .id,
        );
    }
    for (subject, contact, status, priority) in TICKETS {
        let input = TicketInput {
            subject: Some((*subject).into()),
            status: Some(*status),
            priority: Some(*priority),
            contact_id: Some(contacts[*contact]),
            ..Default::default()
        };
        store
            .create_ticket(&input, false, None)
            .await
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}
