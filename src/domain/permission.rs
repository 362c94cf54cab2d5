/// The Salesforce items a profile may be granted, as the product's permission screen lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermissionItem {
    /// Contact and account information.
    Information,
    Opportunities,
    Notes,
    Events,
    Tasks,
}

impl PermissionItem {
    pub const ALL: [PermissionItem; 5] = [
        Self::Information,
        Self::Opportunities,
        Self::Notes,
        Self::Events,
        Self::Tasks,
    ];
}

/// Which Salesforce panels a profile shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SalesforcePanel {
    Contacts,
    Accounts,
    Both,
}

impl SalesforcePanel {
    pub fn from_flags(contacts: bool, accounts: bool) -> Option<Self> {
        match (contacts, accounts) {
            (true, true) => Some(Self::Both),
            (true, false) => Some(Self::Contacts),
            (false, true) => Some(Self::Accounts),
            (false, false) => None,
        }
    }

    pub fn shows_contacts(self) -> bool {
        matches!(self, Self::Contacts | Self::Both)
    }

    pub fn shows_accounts(self) -> bool {
        matches!(self, Self::Accounts | Self::Both)
    }
}

/// A profile's Salesforce permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions {
    pub visible: bool,
    pub panel: SalesforcePanel,
    pub information: bool,
    pub opportunities: bool,
    pub notes: bool,
    pub events: bool,
    pub tasks: bool,
}

impl Permissions {
    pub const FULL: Permissions = Permissions {
        visible: true,
        panel: SalesforcePanel::Both,
        information: true,
        opportunities: true,
        notes: true,
        events: true,
        tasks: true,
    };

    pub fn grants(&self, item: PermissionItem) -> bool {
        match item {
            PermissionItem::Information => self.information,
            PermissionItem::Opportunities => self.opportunities,
            PermissionItem::Notes => self.notes,
            PermissionItem::Events => self.events,
            PermissionItem::Tasks => self.tasks,
        }
    }

    /// Full access means every item is granted; anything less is restricted.
    pub fn is_full_access(&self) -> bool {
        PermissionItem::ALL.iter().all(|item| self.grants(*item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_withheld_item_makes_access_restricted() {
        assert!(Permissions::FULL.is_full_access());
        let light = Permissions {
            opportunities: false,
            ..Permissions::FULL
        };
        assert!(!light.is_full_access());
        assert!(light.grants(PermissionItem::Notes));
    }
}
