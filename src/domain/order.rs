//! One-time purchases: the order states (the order table arrives with the order
//! providers; the access decision already needs the states).

use serde::{Deserialize, Serialize};

/// Where a one-time order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Paid,
    Canceled,
    Expired,
    Refunded,
}

impl State {
    pub const ALL: [State; 5] = [
        Self::Pending,
        Self::Paid,
        Self::Canceled,
        Self::Expired,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}
