use sea_orm::entity::prelude::*;

/// A desk record and its Salesforce counterpart, with the hash of the values last agreed on
/// and every field of the Salesforce record as the last pull read it (a JSON object).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "record_link")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub module: String,
    pub desk_id: i64,
    pub salesforce_id: String,
    pub synced_hash: String,
    /// The hash of the values an update is sending, until its answer comes.
    pub sent_hash: Option<String>,
    pub salesforce_modstamp: Option<DateTimeUtc>,
    pub salesforce_fields: Option<String>,
    /// For a contact whose desk account was purged: the Salesforce account it stays in.
    pub kept_account_id: Option<String>,
    /// When the desk record, since purged, had been deleted: a Salesforce update saved
    /// before then does not bring it back.
    pub desk_deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
