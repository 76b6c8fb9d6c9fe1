//! Reading scenario files: guard rails against hostile input, YAML with locations, then
//! validation.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    locate, validate, BoardDecl, BoardSpec, ClientDecl, ClientSpec, Location, Scenario,
    ScenarioError, Step,
};
use crate::steps::all_steps;
use crate::steps::duration::{self, DurationText};

/// Larger files are refused unread: a scenario is a page of YAML, not a data set.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A scenario file as written, before validation.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "hil scenario",
    description = "One scenario for `hil run`: actors, then steps in order."
)]
pub struct ScenarioFile {
    /// Unique within a run; names the output folder and the snapshot.
    pub name: String,
    /// Deadline for the whole scenario (default 30s).
    #[serde(
        default,
        with = "duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<Duration>,
    /// Compare the normalized trace with `snapshots/<name>.snap`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// Labels for picking suites, e.g. `[smoke, faults]` (`hil run --tag smoke`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Boards under test, by role name.
    #[serde(default, skip_serializing_if = "Actors::is_empty")]
    pub boards: Actors<BoardSpec>,
    /// Harness-owned MQTT clients, by name.
    #[serde(default, skip_serializing_if = "Actors::is_empty")]
    pub clients: Actors<ClientSpec>,
    pub steps: Vec<Step>,
}

/// A YAML map of actors, in file order, each with where its name is written.
#[derive(Debug)]
pub struct Actors<T>(pub Vec<(String, Location, T)>);

impl<T> Actors<T> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Each actor in flow style, one per line: `lamp: { profile: sim }`.
impl<T: Serialize> Serialize for Actors<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, _, spec) in &self.0 {
            map.serialize_entry(name, &serde_saphyr::FlowMap(spec))?;
        }
        map.end()
    }
}

impl<T> Default for Actors<T> {
    fn default() -> Self {
        Actors(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Actors<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ActorsVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ActorsVisitor<T> {
            type Value = Actors<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of names to settings, like `phone: {}`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut actors = Vec::new();
                while let Some(name) = map.next_key::<serde_saphyr::Spanned<String>>()? {
                    let location = Location {
                        line: name.referenced.line() as usize,
                        column: name.referenced.column() as usize,
                    };
                    actors.push((name.value, location, map.next_value()?));
                }
                Ok(Actors(actors))
            }
        }
        deserializer.deserialize_map(ActorsVisitor(std::marker::PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for Actors<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Actors_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let value = generator.subschema_for::<T>();
        schemars::json_schema!({ "type": "object", "additionalProperties": value })
    }
}

/// Reads, parses and validates one scenario file; `profiles` are the board profiles its
/// boards may name.
pub fn load(path: &Path, profiles: &[&str]) -> Result<Scenario, ScenarioError> {
    let file = std::fs::File::open(path).map_err(|e| {
        ScenarioError::new(path, format!("cannot read the file: {e}"))
            .help("check the path and its permissions")
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ScenarioError::new(path, format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ScenarioError::new(
            path,
            format!("the file is larger than {} KiB", MAX_FILE_BYTES / 1024),
        )
        .help("a scenario is a page of YAML; split it, or use `repeat` instead of copies"));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let text = String::from_utf8_lossy(valid).into_owned();
        let Location { line, column } = Location::at_offset(&text, text.len());
        // The snippet shows the bad byte as U+FFFD, where the caret points.
        let shown = String::from_utf8_lossy(e.as_bytes());
        ScenarioError::new(
            path,
            format!("not UTF-8 text: invalid byte at offset {}", valid.len()),
        )
        .at(&shown, Location { line, column })
        .help("scenario files are UTF-8 YAML; is this a binary file?")
    })?;
    parse(path, &text, profiles)
}

/// Parses and validates scenario text that came from `path`.
pub fn parse(path: &Path, text: &str, profiles: &[&str]) -> Result<Scenario, ScenarioError> {
    if text.trim().is_empty() {
        return Err(ScenarioError::new(path, "the file is empty").help(
            "a scenario needs at least `name:` and `steps:`; `hil schema` prints the format",
        ));
    }
    if let Some(at) = tab_indentation(text) {
        return Err(ScenarioError::new(path, "a tab in the indentation")
            .at(text, at)
            .help("YAML indents with spaces only; replace the tab with spaces"));
    }
    if let Some((index, control)) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        let at = Location::at_offset(text, index);
        return Err(ScenarioError::new(
            path,
            format!("control character U+{:04X} in the text", control as u32),
        )
        .at(text, at)
        .help("scenario files are plain text; is this a binary file?"));
    }
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let file: ScenarioFile = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| yaml_error(path, text, &e))?;
    let scenario = Scenario {
        name: file.name,
        path: path.to_path_buf(),
        timeout: file.timeout.unwrap_or(DEFAULT_TIMEOUT),
        snapshot: file.snapshot,
        tags: file.tags,
        boards: file
            .boards
            .0
            .into_iter()
            .map(|(name, location, spec)| BoardDecl {
                name,
                spec,
                location,
            })
            .collect(),
        clients: file
            .clients
            .0
            .into_iter()
            .map(|(name, location, spec)| ClientDecl {
                name,
                spec,
                location,
            })
            .collect(),
        steps: file.steps,
    };
    let mut errors = validate::check(&scenario, profiles)
        .into_iter()
        .map(|problem| {
            let at = problem.location.unwrap_or(Location { line: 1, column: 1 });
            // The field is looked for up to the next step, so another step's is never taken.
            let next_step = all_steps(&scenario.steps)
                .into_iter()
                .map(|step| step.location)
                .filter(|step| *step > at)
                .min();
            let at = problem
                .field
                .and_then(|field| locate::field_value(text, at, next_step, field))
                .unwrap_or(at);
            let error = ScenarioError::new(path, problem.message).at(text, at);
            match problem.help {
                Some(help) => error.help(help),
                None => error,
            }
        });
    if let Some(first) = errors.next() {
        return Err(first.and(errors.collect()));
    }
    Ok(scenario)
}

/// Where a tab stands in a line's leading white space, if anywhere.
fn tab_indentation(text: &str) -> Option<Location> {
    text.lines().enumerate().find_map(|(index, line)| {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        line[..indent].find('\t').map(|column| Location {
            line: index + 1,
            column: column + 1,
        })
    })
}

/// A YAML or shape error, in plain words, with a did-you-mean for misspelt steps,
/// fields and values.
fn yaml_error(path: &Path, text: &str, error: &serde_saphyr::Error) -> ScenarioError {
    let full = error.to_string();
    let raw = match full.rfind(" at line ") {
        Some(end) => &full[..end],
        None => &full,
    };
    let message = plain_words(raw);
    let location = error.location().map(|at| Location {
        line: at.line() as usize,
        column: at.column() as usize,
    });
    let missing_field = raw
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let help = did_you_mean(raw).unwrap_or_else(|| {
        if let Some(field) = missing_field {
            format!("add `{field}:` here; `hil schema` lists every field")
        } else if ["budget", "depth", "recursion", "alias"]
            .iter()
            .any(|word| raw.contains(word))
        {
            "the document nests too deep or expands too much (YAML aliases); write it out plainly"
                .to_string()
        } else if raw.contains("after enum variant") {
            "a step is a map with one key: start every step with its own `- `".to_string()
        } else if let Some(help) = location.and_then(|at| step_shape_help(text, at, raw)) {
            help
        } else {
            "`hil schema` prints the format; scenarios/README.md explains every step".to_string()
        }
    });
    let mut scenario_error = ScenarioError::new(path, message).help(help);
    if let Some(at) = location {
        scenario_error = scenario_error.at(text, at);
    }
    scenario_error
}

/// What to write instead, when a step at `at` is not the `name: { fields }` map it must
/// be: a plain value after the name (`wait: 1s`), fields not indented under the name, or
/// a step out of line with the ones before it.
fn step_shape_help(text: &str, at: Location, raw: &str) -> Option<String> {
    let line = text.lines().nth(at.line.checked_sub(1)?)?;
    if raw.contains("did not find expected '-'") {
        return Some(
            "a step must line up with the steps before it: every `- ` at the same column".into(),
        );
    }
    if raw != "expected mapping start" {
        return None;
    }
    let (name, value) = line.trim_start().strip_prefix('-')?.split_once(':')?;
    let (name, value) = (name.trim(), value.trim());
    let mut generator = schemars::SchemaGenerator::default();
    let doc = crate::steps::Action::docs(&mut generator)
        .into_iter()
        .find(|doc| doc.name == name)?;
    let required: Vec<&str> = doc
        .fields
        .iter()
        .filter(|field| field.required)
        .map(|field| field.name.as_str())
        .collect();
    let example = |value: &str| match required.as_slice() {
        [] => format!("`{name}: {{}}`"),
        [only] => format!("`{name}: {{ {only}: {value} }}`"),
        several => format!(
            "`{name}: {{ {} }}`",
            several
                .iter()
                .map(|field| format!("{field}: …"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Some(if value.is_empty() {
        format!(
            "the fields of `{name}` go under it, indented deeper than `{name}:`, or on its line: {}",
            example("…")
        )
    } else {
        format!("`{name}` takes a map of fields: write {}", example(value))
    })
}

/// The parser's and serde's wording, said the way a scenario author thinks of it.
fn plain_words(raw: &str) -> String {
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let what = if names_steps(raw) { "step" } else { "value" };
        return format!("unknown {what} {rest}");
    }
    if raw.contains("did not find expected '-' indicator") {
        return "this line is indented differently from the list it is in".to_string();
    }
    if let Some(rest) = raw.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return format!("`{key}` appears twice in this mapping");
    }
    if let Some(kind) = raw.strip_prefix("invalid ") {
        if let Some(bits) = kind.strip_prefix('u').and_then(|b| b.parse::<u32>().ok()) {
            return format!("expected a whole number from 0 to {}", (1u128 << bits) - 1);
        }
    }
    match raw {
        "expected string scalar" => "expected a text value here".to_string(),
        "expected mapping start" => "expected a mapping of `key: value` lines".to_string(),
        "expected end of mapping after enum variant value" => {
            "a second key in a step: each step has exactly one".to_string()
        }
        "unexpected end of input" => "the file has no scenario in it".to_string(),
        "recursion limit exceeded" => "the document nests too deep".to_string(),
        other => other.to_string(),
    }
}

/// Whether serde's list of expected variants is the list of steps.
fn names_steps(message: &str) -> bool {
    message.contains("expect_message")
}

/// For serde's "unknown variant `x`, expected one of a, b" and "unknown field `x`,
/// expected one of `a`, `b`": the closest expected name, when one is close.
fn did_you_mean(message: &str) -> Option<String> {
    let kind = if message.starts_with("unknown variant") {
        if names_steps(message) {
            "step"
        } else {
            "value"
        }
    } else if message.starts_with("unknown field") {
        "field"
    } else {
        return None;
    };
    let wrong = message.split('`').nth(1)?;
    let expected = message.split_once("expected one of ")?.1;
    let best = expected
        .split(',')
        .map(|name| name.trim().trim_matches('`').trim())
        .filter(|name| !name.is_empty())
        .map(|name| (strsim::jaro_winkler(wrong, name), name))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    (best.0 >= 0.8).then(|| format!("did you mean the {kind} `{}`?", best.1))
}

/// The scenario files under `paths`: files as given, folders searched for `*.yaml` and
/// `*.yml` (skipping `snapshots` folders and symbolic links, so the search stays inside
/// the folder and ends on a link loop), sorted and without repeats.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut found = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| {
            ScenarioError::new(path, format!("cannot read: {e}"))
                .help("give scenario files or folders that exist")
        })?;
        if metadata.is_dir() {
            collect(path, &mut found)?;
        } else {
            found.push(path.clone());
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn collect(folder: &Path, found: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| ScenarioError::new(folder, format!("cannot list: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| ScenarioError::new(folder, format!("cannot list: {e}")))?;
        let path = entry.path();
        // The entry's own type: a link is never followed.
        let kind = entry
            .file_type()
            .map_err(|e| ScenarioError::new(&path, format!("cannot read: {e}")))?;
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            if path.file_name().is_some_and(|name| name != "snapshots") {
                collect(&path, found)?;
            }
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            found.push(path);
        }
    }
    Ok(())
}

/// The JSON Schema of scenario files (draft 2020-12).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ScenarioFile)).expect("a schema is JSON")
}

/// The scenario as a file: what `load` reads back to the same scenario (steps compare
/// equal; their locations are the new file's).
pub fn to_yaml(scenario: &Scenario) -> Result<String, serde_saphyr::SerializeError> {
    let file = ScenarioFile {
        name: scenario.name.clone(),
        timeout: (scenario.timeout != DEFAULT_TIMEOUT).then_some(scenario.timeout),
        snapshot: scenario.snapshot,
        tags: scenario.tags.clone(),
        boards: Actors(
            scenario
                .boards
                .iter()
                .map(|board| (board.name.clone(), board.location, board.spec.clone()))
                .collect(),
        ),
        clients: Actors(
            scenario
                .clients
                .iter()
                .map(|client| (client.name.clone(), client.location, client.spec.clone()))
                .collect(),
        ),
        steps: scenario.steps.clone(),
    };
    let mut options = serde_saphyr::SerializerOptions::default();
    options.indent_step = 2;
    serde_saphyr::to_string_with_options(&file, options)
}
