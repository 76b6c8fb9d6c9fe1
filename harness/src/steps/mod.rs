//! Scenario steps, one file each. A step file holds everything about its step: the fields
//! a scenario writes (its struct, whose doc comment is the step's documentation), its
//! [`Role`], its checks, what it [`Needs`] before step 1, and how it runs against the
//! [`Scene`] of a running scenario.
//!
//! The list at the bottom of this file names every step; the [`Action`] enum, its YAML
//! form, its JSON Schema, the generated docs and the dispatch all come from that list.
//! Adding a step is one new file and one line there; a step that lacks a part does not
//! compile.

mod check;
mod docs;
pub mod duration;
mod fault;
mod scene;

use std::future::Future;

use schemars::JsonSchema;
use serde::de::{DeserializeOwned, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use check::{Checks, DeclaredActors, Problem, MAX_DURATION};
pub use docs::{markdown_table, with_table, FieldDoc, StepDoc, TABLE_BEGIN, TABLE_END};
pub use expect_relay::RelayState;
pub use power_cycle::DEFAULT_OFF_FOR;
pub use scene::{ClientError, Mismatch, Scene, StepError, Watch, Window};
pub use wifi::LinkState;

/// Where something stands in its file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Where byte `offset` of `text` stands (columns count characters).
    pub fn at_offset(text: &str, offset: usize) -> Location {
        let before = &text[..offset.min(text.len())];
        Location {
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
        }
    }
}

/// How a step relates to the expectation window (see scenarios/README.md, "When does an
/// expectation look?").
#[derive(Debug, Clone, Copy)]
pub enum Role<'s> {
    /// Does something; the expectations after it look from where it began.
    Stimulus,
    /// Only observes; leaves the window where it is, so a chain of expectations all see
    /// what the last stimulus caused.
    Expectation,
    /// Runs these steps; the whole block is one stimulus to what follows it.
    Block(&'s [Step]),
}

/// What a step needs before step 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs<'s> {
    /// A harness client that must be subscribed to a filter before step 1:
    /// `(client, filter)`.
    pub subscription: Option<(&'s str, &'s str)>,
    /// A board this step needs simulated: only the simulator can carry it out.
    pub simulated_board: Option<&'s str>,
}

impl Needs<'_> {
    pub const NOTHING: Needs<'static> = Needs {
        subscription: None,
        simulated_board: None,
    };
}

/// One kind of step. Each is implemented in its own file.
pub trait StepKind: Serialize + DeserializeOwned + JsonSchema {
    /// The step's name in a scenario file.
    const NAME: &'static str;

    fn role(&self) -> Role<'_>;

    /// What the YAML shape cannot say: declared actors, valid topics, limits.
    fn check(&self, checks: &mut Checks<'_>);

    fn needs(&self) -> Needs<'_>;

    /// How long an expectation may wait for what it expects; none for other steps.
    fn deadline(&self) -> Option<std::time::Duration> {
        None
    }

    fn run<S: Scene>(&self, scene: &mut S) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// One step and where it is written.
#[derive(Debug, Clone)]
pub struct Step {
    pub location: Location,
    pub action: Action,
}

/// Two steps are the same when they do the same, wherever they are written (a scenario
/// written back to YAML has the same steps at other places).
impl PartialEq for Step {
    fn eq(&self, other: &Step) -> bool {
        self.action == other.action
    }
}

/// A step is read with its place in the file, which failure reports point at.
impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Step, D::Error> {
        let spanned = serde_saphyr::Spanned::<Action>::deserialize(deserializer)?;
        Ok(Step {
            location: Location {
                line: spanned.referenced.line() as usize,
                column: spanned.referenced.column() as usize,
            },
            action: spanned.value,
        })
    }
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.action.serialize(serializer)
    }
}

impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Action::json_schema(generator)
    }
}

/// All steps, in blocks too, depth first.
pub fn all_steps(steps: &[Step]) -> Vec<&Step> {
    let mut out = Vec::new();
    for step in steps {
        out.push(step);
        if let Role::Block(inner) = step.action.role() {
            out.extend(all_steps(inner));
        }
    }
    out
}

/// A step written as one-key map, `{ name: { fields } }`: the key picks the step.
struct ActionVisitor;

macro_rules! steps {
    ($($file:ident :: $Step:ident),* $(,)?) => {
        $(mod $file; pub use $file::$Step;)*

        /// What a step does: one variant per step, named after its struct.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Action {
            $($Step($Step),)*
        }

        impl Action {
            /// Every step's name, in the order of the list.
            pub const NAMES: &'static [&'static str] = &[$(<$Step as StepKind>::NAME),*];

            /// The step's name as written in the file.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Action::$Step(_) => <$Step as StepKind>::NAME,)*
                }
            }

            pub fn role(&self) -> Role<'_> {
                match self {
                    $(Action::$Step(step) => step.role(),)*
                }
            }

            pub fn check(&self, checks: &mut Checks<'_>) {
                match self {
                    $(Action::$Step(step) => step.check(checks),)*
                }
            }

            pub fn needs(&self) -> Needs<'_> {
                match self {
                    $(Action::$Step(step) => step.needs(),)*
                }
            }

            pub fn deadline(&self) -> Option<std::time::Duration> {
                match self {
                    $(Action::$Step(step) => step.deadline(),)*
                }
            }

            pub async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
                match self {
                    $(Action::$Step(step) => step.run(scene).await,)*
                }
            }

            /// Each step's documentation, from its struct's doc comments.
            pub fn docs(generator: &mut schemars::SchemaGenerator) -> Vec<StepDoc> {
                vec![$(StepDoc::of::<$Step>(generator)),*]
            }
        }

        impl<'de> Visitor<'de> for ActionVisitor {
            type Value = Action;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a step: a one-key map such as `wait: { for: 1s }`")
            }

            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Action, A::Error> {
                let (name, step): (String, A::Variant) = data.variant()?;
                Ok(match name.as_str() {
                    $(<$Step as StepKind>::NAME => Action::$Step(step.newtype_variant()?),)*
                    other => return Err(serde::de::Error::unknown_variant(other, Action::NAMES)),
                })
            }
        }

        impl Serialize for Action {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                match self {
                    // A block holds steps, which only read well one per line.
                    $(Action::$Step(step) => match step.role() {
                        Role::Block(_) => map.serialize_entry(<$Step as StepKind>::NAME, step)?,
                        Role::Stimulus | Role::Expectation => map.serialize_entry(
                            <$Step as StepKind>::NAME,
                            &serde_saphyr::FlowMap(step),
                        )?,
                    },)*
                }
                map.end()
            }
        }

        impl JsonSchema for Action {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "Action".into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let variants: Vec<serde_json::Value> = vec![$({
                    let fields = generator.subschema_for::<$Step>();
                    let doc = StepDoc::of::<$Step>(generator).summary;
                    serde_json::json!({
                        "type": "object",
                        "description": doc,
                        "properties": { <$Step as StepKind>::NAME: fields },
                        "required": [<$Step as StepKind>::NAME],
                        "additionalProperties": false,
                    })
                }),*];
                schemars::json_schema!({ "oneOf": variants })
            }
        }
    };
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
        deserializer.deserialize_enum("Action", Action::NAMES, ActionVisitor)
    }
}

steps! {
    publish::Publish,
    expect_message::ExpectMessage,
    expect_no_message::ExpectNoMessage,
    expect_trace::ExpectTrace,
    connect::Connect,
    disconnect::Disconnect,
    expect_connected::ExpectConnected,
    expect_disconnected::ExpectDisconnected,
    wait::Wait,
    repeat::Repeat,
    expect_relay::ExpectRelay,
    press_switch::PressSwitch,
    expect_serial::ExpectSerial,
    send_serial::SendSerial,
    expect_boot::ExpectBoot,
    reset::Reset,
    power_cycle::PowerCycle,
    wifi::Wifi,
    broker_restart::BrokerRestart,
    partition::Partition,
    delay::Delay,
    drop::DropFrames,
    duplicate::Duplicate,
    deny_subscribe::DenySubscribe,
    serial_noise::SerialNoise,
}

#[cfg(test)]
mod tests;
