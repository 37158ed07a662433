//! Errors of the text pipeline (chat dataset, chat template, tokenisation, loss mask).
//! Every variant names the file and line, the template line, or the example id it is about.

use std::path::PathBuf;

/// An error while reading a chat dataset, rendering a chat template or encoding an example.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The file could not be opened or read (`line` is `None` when it failed before the first line).
    #[error("{}{}: {source}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Io {
        path: PathBuf,
        line: Option<usize>,
        #[source]
        source: std::io::Error,
    },
    /// A line of a JSONL file is not valid JSON of the expected shape.
    #[error("{}:{line}: invalid JSON: {msg}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// A line is valid JSON but not a usable chat example.
    #[error("{}:{line}: {msg}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{}: the checkpoint has no chat template (Basin scores chats rendered by it)", path.display())]
    NoChatTemplate { path: PathBuf },
    #[error("{}: the dataset holds no examples", path.display())]
    EmptyDataset { path: PathBuf },
    /// The chat template does not parse (or uses Jinja that Basin's renderer does not support).
    #[error("chat template{}: {msg}", at_line(*line))]
    TemplateSyntax { line: Option<usize>, msg: String },
    /// The chat template failed while rendering.
    #[error("chat template{}: {msg}", at_line(*line))]
    TemplateRender { line: Option<usize>, msg: String },
    /// The template itself rejected the conversation through `raise_exception(msg)`.
    #[error("chat template{}: raise_exception: {msg}", at_line(*line))]
    TemplateRaised { line: Option<usize>, msg: String },
    /// A template error of the chat template in this model folder or file (one that fails to
    /// parse).
    #[error("{}: {source}", path.display())]
    InTemplateOf {
        path: PathBuf,
        #[source]
        source: Box<TextError>,
    },
    /// Any of the template errors above, while encoding the named example.
    #[error("example `{id}`: {source}")]
    Example {
        id: String,
        #[source]
        source: Box<TextError>,
    },
    #[error("example `{id}`: {msg}")]
    InvalidExample { id: String, msg: String },
    #[error("example `{id}`: tokenizer failed: {msg}")]
    Tokenize { id: String, msg: String },
    /// The prompt (all messages but the last, with the generation prompt) does not tokenise to a
    /// prefix of the whole conversation, so the answer's tokens cannot be told apart.
    #[error(
        "example `{id}`: the prompt prefix ({prefix_tokens} tokens) is not a token prefix of the \
         whole conversation ({total_tokens} tokens): {detail}"
    )]
    NotAPrefix {
        id: String,
        prefix_tokens: usize,
        total_tokens: usize,
        detail: String,
    },
    #[error("example `{id}`: {n_tokens} tokens, more than the maximum of {max_tokens}")]
    TooLong {
        id: String,
        n_tokens: usize,
        max_tokens: usize,
    },
    #[error("example `{id}`: the final assistant message renders to no tokens")]
    EmptyAnswer { id: String },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

impl TextError {
    /// Attaches the example id to a template error (other errors already name it).
    pub fn in_example(self, id: &str) -> Self {
        match self {
            e @ (Self::TemplateSyntax { .. }
            | Self::TemplateRender { .. }
            | Self::TemplateRaised { .. }) => Self::Example {
                id: id.to_string(),
                source: Box::new(e),
            },
            other => other,
        }
    }

    /// The message a template passed to `raise_exception`, if this error is one.
    pub fn raised_message(&self) -> Option<&str> {
        match self {
            Self::TemplateRaised { msg, .. } => Some(msg),
            Self::Example { source, .. } => source.raised_message(),
            _ => None,
        }
    }
}
