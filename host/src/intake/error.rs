//! Why a request or an event cannot become messages, as types: the API
//! chooses how each is answered.

use crate::plugins::CallError;
use crate::templates::RenderError;

use super::routes::RouteProblem;

use super::events::{MAX_CANCELLED_TEMPLATES, MAX_CANCELS, MAX_DECISIONS};

/// Why a request or event cannot become messages. The API chooses how
/// each is answered (`api/error.rs`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    /// The template cannot be rendered with what was given.
    Render(#[from] RenderError),
    /// Free text for a phone outside its customer-service window at the
    /// time it would be sent.
    #[error(
        "free text goes only to a phone that wrote to the business in the 24 hours before the send (WhatsApp's customer-service window); {phone} {last}; send a template instead"
    )]
    OutsideServiceWindow {
        /// The recipient.
        phone: String,
        /// When they last wrote, said for a human.
        last: String,
    },
    /// An expiry at or before the time the message would first go out.
    #[error(
        "expires_at {expires_at} is not after the time the message would first be sent ({not_before}); it would never go out"
    )]
    ExpiresBeforeSend {
        /// The expiry asked for.
        expires_at: String,
        /// When the message would first be sent.
        not_before: String,
    },
    /// `override_opt_out` on a marketing template.
    #[error("{template} is a marketing template; opt-outs of marketing cannot be overridden")]
    OverrideNotAllowed {
        /// The marketing template.
        template: String,
    },
    /// The rules component found the event's data wrong: its words
    /// (bounded), and the field they name (`data` when they name none).
    #[error("{problem}")]
    EventRefused {
        /// The field the rules name, e.g. `data.order_id`.
        field: String,
        /// What the rules said.
        problem: String,
    },
    /// A template an event leads to needs a variable its data lacks.
    #[error("data.{variable} is required by template {template}")]
    MissingEventData {
        /// The variable, which the event's `data` should carry.
        variable: String,
        /// The template that needs it.
        template: String,
    },
    /// The rules hold a message until after the last time chirp keeps
    /// (they read it from the event's dates).
    #[error(
        "the rules hold {template} until after 9999-12-31T23:59:59.999Z, the last time chirp keeps; check the dates in data"
    )]
    HoldOutOfRange {
        /// The template held.
        template: String,
    },
    /// A fallback chain given at send time that chirp cannot take.
    #[error("fallback: {0}")]
    Route(#[from] RouteProblem),
    /// The rules component is not loaded.
    #[error("rules plugin {0:?} is not loaded")]
    RulesNotLoaded(String),
    /// The call to the rules component failed.
    #[error("the rules component failed: {0}")]
    RulesFailed(#[source] CallError),
    /// The rules component answered something chirp does not take.
    #[error("the rules component answered out of bounds: {0}")]
    RulesOutOfBounds(RulesAnswerError),
}

/// What is wrong with a rules component's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RulesAnswerError {
    /// More decisions than one event may lead to.
    #[error("{given} decisions for one event; chirp takes at most {MAX_DECISIONS}")]
    TooManyDecisions {
        /// How many the rules gave.
        given: usize,
    },
    /// A send whose variables are not a JSON object.
    #[error("variables for {template} are not a JSON object")]
    VariablesNotAnObject {
        /// The template of that send.
        template: String,
    },
    /// A skip of a template chirp does not have (its name is not
    /// repeated: it could be anything).
    #[error("a skip of a template chirp does not have ({name_bytes} bytes of name)")]
    UnknownSkippedTemplate {
        /// The length of the name given.
        name_bytes: usize,
    },
    /// More cancel requests than one event may make.
    #[error("{given} cancel requests for one event; chirp takes at most {MAX_CANCELS}")]
    TooManyCancels {
        /// How many the rules gave.
        given: usize,
    },
    /// A cancel request of no templates, or of too many.
    #[error("a cancel request of {given} templates; chirp takes 1 to {MAX_CANCELLED_TEMPLATES}")]
    CancelTemplates {
        /// How many it named.
        given: usize,
    },
    /// A fallback chain the rules chose that chirp cannot take.
    #[error("the routes for {template}: {problem}")]
    Route {
        /// The template it was for.
        template: String,
        /// What is wrong with it.
        problem: RouteProblem,
    },
    /// Route choices for a template chirp does not have, or two for one.
    #[error("a route choice for a template chirp does not have, or a second one for a template")]
    UnknownRoutedTemplate,
    /// More route choices than one event may make.
    #[error("{given} route choices for one event; chirp takes at most {MAX_DECISIONS}")]
    TooManyRouteChoices {
        /// How many the rules gave.
        given: usize,
    },
    /// A cancel request of a template chirp does not have.
    #[error("a cancel request of a template chirp does not have ({name_bytes} bytes of name)")]
    UnknownCancelledTemplate {
        /// The length of the name given.
        name_bytes: usize,
    },
}
