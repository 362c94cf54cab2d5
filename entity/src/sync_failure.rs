use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "sync_failure")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    pub direction: String,
    pub module: String,
    pub desk_id: Option<i64>,
    pub salesforce_id: Option<String>,
    pub reason: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    /// For a pull: the version (`SystemModstamp`) of the Salesforce record that failed.
    #[serde(skip)]
    pub salesforce_modstamp: Option<DateTimeUtc>,
    /// For `MULTIPLE_MATCHES`: the key the records share (an email or an account name, as
    /// they meet by), which ties the failures of one ambiguity together. For a pulled
    /// contact's `ACCOUNT_NOT_SYNCED`: the Salesforce account it waits for.
    #[serde(skip)]
    pub match_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
