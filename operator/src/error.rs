//! Errors of the controllers. Invalid specs are not errors here: they are reported in status
//! and wait for a change. These are the transient ones, retried with jittered backoff.

/// A reconcile failed and will be retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to call the API server: {0}")]
    Kube(#[from] kube::Error),
    #[error("failed to serialize {0}: {1}")]
    Serialize(&'static str, serde_json::Error),
    #[error("failed to build desired state: {0}")]
    Build(#[from] crate::build::BuildError),
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("failed to generate the JWT keys: {0}")]
    Keys(String),
}

impl Error {
    /// Short label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "Kube",
            Error::Serialize(..) => "Serialize",
            Error::Build(_) => "Build",
            Error::MissingField(_) => "MissingField",
            Error::Keys(_) => "Keys",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
