use sea_orm::entity::prelude::*;

/// The one Salesforce connection (id 1). Secrets are AES-256-GCM ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub status: String,
    pub status_reason: Option<String>,
    pub sync_type: String,
    pub login_url: String,
    pub auth_kind: String,
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub secrets: Option<Vec<u8>>,
    pub instance_url: Option<String>,
    /// The org signed in to (`00D…`), from the token's identity URL.
    pub org_id: Option<String>,
    pub first_sync: String,
    pub last_sync_at: Option<DateTimeUtc>,
    pub api_used: Option<i64>,
    pub api_max: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Changes whenever the connection is replaced, removed or remapped: a round started
    /// under another stops at its next batch.
    pub epoch: i64,
    /// The user signed in as (`005…`), from the token's identity URL.
    pub user_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
