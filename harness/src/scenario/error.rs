//! Errors in scenario files: what is wrong, where (file:line:col with the line and a
//! caret), and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
};

use super::Location;

/// A scenario file that cannot be run.
#[derive(Debug, Clone)]
pub struct ScenarioError {
    path: PathBuf,
    /// The file's text, when it could be read as text (for the snippet).
    source: Option<Box<NamedSource<String>>>,
    location: Option<Location>,
    message: String,
    help: Option<String>,
    /// The file's other problems, after this one.
    more: Box<[ScenarioError]>,
}

impl ScenarioError {
    pub fn new(path: &Path, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            path: path.to_path_buf(),
            source: None,
            location: None,
            message: message.into(),
            help: None,
            more: Box::default(),
        }
    }

    /// This problem, then the file's others.
    pub fn and(mut self, more: Vec<ScenarioError>) -> ScenarioError {
        self.more = more.into_boxed_slice();
        self
    }

    /// Every problem of the file: this one, then the others.
    pub fn problems(&self) -> impl Iterator<Item = &ScenarioError> {
        std::iter::once(self).chain(self.more.iter())
    }

    pub fn at(mut self, text: &str, location: Location) -> ScenarioError {
        self.source = Some(Box::new(NamedSource::new(
            self.path.display().to_string(),
            text.to_string(),
        )));
        self.location = Some(location);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> ScenarioError {
        self.help = Some(help.into());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn location(&self) -> Option<Location> {
        self.location
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The report as a person reads it: `file:line:col`, the message, the offending line
    /// with a caret under the place, and the help.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
        let mut out = String::new();
        for problem in self.problems() {
            let mut one = String::new();
            if handler.render_report(&mut one, problem).is_err() {
                one = format!("{problem}\n");
            }
            out += &one;
        }
        out
    }

    /// Byte offset of the location in the source, for the snippet's label.
    fn offset(&self) -> Option<usize> {
        let (source, location) = (self.source.as_ref()?.inner(), self.location?);
        let line_start: usize = source
            .split_inclusive('\n')
            .take(location.line.saturating_sub(1))
            .map(str::len)
            .sum();
        let line = source[line_start..].lines().next().unwrap_or("");
        let column: usize = line
            .chars()
            .take(location.column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        Some(line_start + column)
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(at) => write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                at.line,
                at.column,
                self.message
            )?,
            None => write!(f, "{}: {}", self.path.display(), self.message)?,
        }
        match self.more.len() {
            0 => Ok(()),
            1 => write!(f, " (and 1 more problem)"),
            more => write!(f, " (and {more} more problems)"),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl Diagnostic for ScenarioError {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source
            .as_deref()
            .map(|source| source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let offset = self.offset()?;
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some("here".into()),
            offset,
            1,
        ))))
    }
}
