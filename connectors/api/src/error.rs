//! Errors at the connector boundary. Every error says whether retrying may help, so the runtime can decide.

/// An error raised by a connector, task or converter.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is wrong; retrying does not help.
    #[error("invalid configuration for `{key}`: {message}")]
    Config { key: String, message: String },
    /// A transient failure (I/O, network); the runtime may retry.
    #[error("{context}: {source}")]
    Retriable {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A record could not be converted or processed; handled by `errors.tolerance`.
    #[error("record error: {0}")]
    Data(String),
    /// Anything else that fails the task.
    #[error("{context}: {source}")]
    Fatal {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Other(String),
}

impl ConnectError {
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectError::Config { key: key.into(), message: message.into() }
    }

    pub fn retriable(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ConnectError::Retriable { context: context.into(), source: Box::new(source) }
    }

    pub fn fatal(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ConnectError::Fatal { context: context.into(), source: Box::new(source) }
    }

    pub fn is_retriable(&self) -> bool {
        matches!(self, ConnectError::Retriable { .. })
    }

    /// The readable cause chain, one cause per line, as reported in a FAILED task's `trace`.
    pub fn trace(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str("\nCaused by: ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}
