use sea_orm::entity::prelude::*;

/// A desk record sent to Salesforce as a create whose answer is not recorded yet: the values
/// sent (a JSON object keyed by Salesforce field) and when, so that a lost answer can be
/// found again by what the create made.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_create")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub module: String,
    pub desk_id: i64,
    pub sent: String,
    pub sent_at: DateTimeUtc,
    /// Sent as an upsert by desk id: it may be sent again, and its record names the desk
    /// record it was made from.
    pub upsert: bool,
    /// The org it was sent to (`00D…`), where the sign-in named it.
    pub org_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
