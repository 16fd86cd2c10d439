//! The JSON form of a change, in one place: the change log API, the event
//! stream and the outbound sender all send exactly this.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::access::{Reason, SourceKind};
use crate::domain::{Email, Instant, ProductKey};
use crate::store::{Answer, Change};
use crate::time_fmt::serde_rfc3339;

/// What an access check answers, as the change log records it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerView {
    pub entitled: bool,
    pub reason: Reason,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub valid_until: Option<Instant>,
    #[schema(required = true)]
    pub plan: Option<String>,
}

impl From<Answer> for AnswerView {
    fn from(a: Answer) -> Self {
        Self {
            entitled: a.entitled,
            reason: a.reason,
            valid_until: a.valid_until,
            plan: a.plan,
        }
    }
}

/// The source whose write caused a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct CauseSource {
    pub kind: SourceKind,
    pub id: String,
}

/// What caused a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct CauseView {
    /// `delivery`, `replay`, `registration`, `grant`, `policy`, `rebuild` or `clock`.
    #[schema(example = "delivery")]
    pub kind: &'static str,
    #[schema(required = true)]
    pub delivery_id: Option<String>,
    #[schema(required = true)]
    pub source: Option<CauseSource>,
    /// The event applied, e.g. `activated`, `paid`, `granted`, `policy_changed`.
    #[schema(required = true)]
    pub event: Option<String>,
}

/// One change of what an access check answers for one customer and product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// Increasing in commit order, with no gaps.
    pub sequence: i64,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Instant,
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = String)]
    pub product: ProductKey,
    pub answer: AnswerView,
    /// The answer before; `null` when the customer had no source for the product.
    #[schema(required = true)]
    pub previous: Option<AnswerView>,
    pub cause: CauseView,
}

impl From<Change> for ChangeView {
    fn from(c: Change) -> Self {
        Self {
            sequence: c.sequence,
            at: c.at,
            email: c.email,
            product: c.product,
            answer: c.answer.into(),
            previous: c.previous.map(Into::into),
            cause: CauseView {
                kind: c.cause_kind.as_str(),
                delivery_id: c.cause_delivery,
                source: c.cause_source.map(|(kind, id)| CauseSource { kind, id }),
                event: c.cause_event,
            },
        }
    }
}
