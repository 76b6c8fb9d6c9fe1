//! What an explored run does: the light controller's inputs as operations, generated
//! from a seed under preconditions that keep a sequence meaningful, and written as the
//! normal scenario steps (`to_scenario`).
//!
//! Preconditions are checked against a static clock (the sum of the waits): real time
//! between two steps is never shorter, so "the delay has ended by then" holds at run
//! time too. Every stimulus follows a wait of at least [`GAP`], so that what the board
//! does about one is settled before the next (a "rapid" press is a shorter [`RAPID`]
//! gap, still longer than the press and the debounce window).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::scenario::{self, Scenario, ScenarioError};

/// The least wait before a stimulus.
pub const GAP: Duration = Duration::from_millis(100);
/// The least wait between two presses of one board: the press lasts 40 ms and the
/// debounce window 30 ms.
pub const RAPID: Duration = Duration::from_millis(80);
/// The topic every generated board uses (the firmware's default).
pub const TOPIC: &str = hil_firmware::DEFAULT_TOPIC;

/// The faults a run may inject (`--faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Reset,
    PowerCycle,
    Wifi,
    Partition,
    BrokerRestart,
    Delay,
    Drop,
    Duplicate,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Reset,
        FaultKind::PowerCycle,
        FaultKind::Wifi,
        FaultKind::Partition,
        FaultKind::BrokerRestart,
        FaultKind::Delay,
        FaultKind::Drop,
        FaultKind::Duplicate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Reset => "reset",
            FaultKind::PowerCycle => "power_cycle",
            FaultKind::Wifi => "wifi",
            FaultKind::Partition => "partition",
            FaultKind::BrokerRestart => "broker_restart",
            FaultKind::Delay => "delay",
            FaultKind::Drop => "drop",
            FaultKind::Duplicate => "duplicate",
        }
    }

    /// A `--faults` list: names separated by commas; `all` or `none`.
    pub fn parse_list(text: &str) -> Result<Vec<FaultKind>, String> {
        match text.trim() {
            "all" => return Ok(FaultKind::ALL.to_vec()),
            "none" | "" => return Ok(Vec::new()),
            _ => {}
        }
        let mut kinds = Vec::new();
        for word in text.split(',').map(str::trim) {
            let kind = FaultKind::ALL
                .into_iter()
                .find(|kind| kind.name() == word)
                .ok_or_else(|| {
                    let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                    format!(
                        "no fault {word:?}: choose from {}, or all, or none",
                        names.join(", ")
                    )
                })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(kinds)
    }
}

/// One operation: a stimulus, a fault or a wait.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Command {
        phone: usize,
        payload: String,
        qos: u8,
        retain: bool,
    },
    Press {
        board: usize,
        bounce: u32,
    },
    Reset {
        board: usize,
    },
    PowerCycle {
        board: usize,
        off_for: Duration,
    },
    Wifi {
        board: usize,
        up: bool,
    },
    Partition {
        board: usize,
        length: Duration,
    },
    BrokerRestart {
        down_for: Duration,
    },
    Delay {
        board: usize,
        by: Duration,
        length: Duration,
    },
    Drop {
        board: usize,
        to_broker: bool,
        count: u32,
    },
    Duplicate {
        phone: usize,
        count: u32,
    },
    Wait(Duration),
}

impl Op {
    /// The step it becomes, for coverage and stories.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Command { .. } => "publish",
            Op::Press { .. } => "press_switch",
            Op::Reset { .. } => "reset",
            Op::PowerCycle { .. } => "power_cycle",
            Op::Wifi { up: true, .. } => "wifi up",
            Op::Wifi { up: false, .. } => "wifi down",
            Op::Partition { .. } => "partition",
            Op::BrokerRestart { .. } => "broker_restart",
            Op::Delay { .. } => "delay",
            Op::Drop { .. } => "drop",
            Op::Duplicate { .. } => "duplicate",
            Op::Wait(_) => "wait",
        }
    }

    /// The board it acts on (a phone's command and a broker restart act on every board;
    /// coverage counts them on the first).
    pub fn board(&self) -> Option<usize> {
        match self {
            Op::Press { board, .. }
            | Op::Reset { board }
            | Op::PowerCycle { board, .. }
            | Op::Wifi { board, .. }
            | Op::Partition { board, .. }
            | Op::Delay { board, .. }
            | Op::Drop { board, .. } => Some(*board),
            Op::Command { .. } | Op::BrokerRestart { .. } | Op::Duplicate { .. } => Some(0),
            Op::Wait(_) => None,
        }
    }

    fn phone(&self) -> Option<usize> {
        match self {
            Op::Command { phone, .. } | Op::Duplicate { phone, .. } => Some(*phone),
            _ => None,
        }
    }

    /// How long the step itself takes (static clock).
    fn takes(&self) -> Duration {
        match self {
            Op::Wait(length) => *length,
            Op::PowerCycle { off_for, .. } => *off_for,
            Op::BrokerRestart { down_for } => *down_for,
            _ => Duration::ZERO,
        }
    }
}

/// Actors and steps of one explored run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub boards: usize,
    pub phones: usize,
    pub ops: Vec<Op>,
}

/// What the preconditions track, on the static clock.
#[derive(Debug, Clone)]
struct World {
    now: Duration,
    /// When the last stimulus (anything but a wait) was made.
    last_stimulus: Option<Duration>,
    wifi_down: Vec<bool>,
    last_press: Vec<Option<Duration>>,
    partitioned_until: Vec<Duration>,
    delayed_until: Vec<Duration>,
    /// When the last outage ended and how long it was: bounds the final wait.
    last_outage: Option<(Duration, Duration)>,
}

impl World {
    fn new(boards: usize) -> World {
        World {
            now: Duration::ZERO,
            last_stimulus: None,
            wifi_down: vec![false; boards],
            last_press: vec![None; boards],
            partitioned_until: vec![Duration::ZERO; boards],
            delayed_until: vec![Duration::ZERO; boards],
            last_outage: None,
        }
    }

    /// Whether `op` may come next.
    fn allows(&self, op: &Op, plan: &Plan) -> bool {
        if op.board().is_some_and(|b| b >= plan.boards)
            || op.phone().is_some_and(|p| p >= plan.phones)
        {
            return false;
        }
        let since = |at: Option<Duration>| at.map_or(Duration::MAX, |at| self.now - at);
        if let Op::Wait(_) = op {
            return true;
        }
        let gap = match op {
            Op::Press { board, .. }
                if since(self.last_press[*board]) == since(self.last_stimulus) =>
            {
                RAPID
            }
            _ => GAP,
        };
        if since(self.last_stimulus) < gap {
            return false;
        }
        let quiet_link = |board: usize| {
            self.now >= self.delayed_until[board] && self.now >= self.partitioned_until[board]
        };
        match op {
            Op::Wifi { board, up } => self.wifi_down[*board] == *up && quiet_link(*board),
            Op::Partition { board, .. } | Op::Reset { board } | Op::PowerCycle { board, .. } => {
                quiet_link(*board) && !self.wifi_down[*board]
            }
            Op::BrokerRestart { .. } => {
                (0..plan.boards).all(|b| quiet_link(b) && !self.wifi_down[b])
            }
            Op::Delay { board, .. } | Op::Drop { board, .. } => quiet_link(*board),
            // A press while the board's frames are held races the commands held with
            // them: what it toggles from is not settled.
            Op::Press { board, .. } => self.now >= self.delayed_until[*board] + GAP,
            Op::Command { .. } | Op::Duplicate { .. } | Op::Wait(_) => true,
        }
    }

    fn apply(&mut self, op: &Op) {
        let start = self.now;
        self.now += op.takes();
        if !matches!(op, Op::Wait(_)) {
            self.last_stimulus = Some(self.now);
        }
        match op {
            Op::Press { board, .. } => self.last_press[*board] = Some(self.now),
            Op::Wifi { board, up } => {
                self.wifi_down[*board] = !up;
                if *up {
                    self.last_outage = Some((self.now, Duration::ZERO));
                }
            }
            Op::Partition { board, length } => {
                self.partitioned_until[*board] = start + *length;
                self.last_outage = Some((start + *length, *length));
            }
            Op::BrokerRestart { down_for } => self.last_outage = Some((self.now, *down_for)),
            Op::PowerCycle { .. } | Op::Reset { .. } => {
                self.last_outage = Some((self.now, Duration::ZERO))
            }
            Op::Delay { board, length, .. } => self.delayed_until[*board] = start + *length,
            _ => {}
        }
    }
}

/// The longest a board may take to reconnect after an outage of `length` ended: the
/// backoff delay then running (250 ms doubling up to 8 s, +20 %), plus the connect.
pub fn reconnect_bound(length: Duration) -> Duration {
    let base = (length.as_millis() as u64 * 5 / 4 + 250).min(8_000);
    Duration::from_millis(base * 6 / 5 + 700)
}

impl Plan {
    /// Whether every operation's precondition holds where it stands.
    pub fn is_valid(&self) -> bool {
        let mut world = World::new(self.boards);
        for op in &self.ops {
            if !world.allows(op, self) {
                return false;
            }
            world.apply(op);
        }
        true
    }

    /// The number of operations that are not waits.
    pub fn stimuli(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| !matches!(op, Op::Wait(_)))
            .count()
    }

    /// The plan as a scenario: each board connected first, then the operations, then a
    /// wait long enough for what the last ones must still cause.
    pub fn to_scenario(&self, name: &str) -> Result<Scenario, ScenarioError> {
        self.to_scenario_with(name, &[])
    }

    /// The scenario with `checks` at its end instead of the closing wait.
    pub fn to_scenario_with(
        &self,
        name: &str,
        checks: &[String],
    ) -> Result<Scenario, ScenarioError> {
        let text = self.to_text(name, checks);
        scenario::parse(
            Path::new(&format!("{}.yaml", scenario::slug(name))),
            &text,
            &["sim"],
        )
    }

    /// The scenario's YAML, with `checks` (steps written out) after step `until` when
    /// given (the later steps left out). `checker` is a client that connects only when a
    /// check says so.
    pub fn to_text(&self, name: &str, checks: &[String]) -> String {
        let mut world = World::new(self.boards);
        let mut steps = Vec::new();
        for board in 0..self.boards {
            steps.push(format!(
                "expect_connected: {{ client: {}, within: 3s }}",
                board_name(board)
            ));
        }
        for op in &self.ops {
            world.apply(op);
            steps.push(step_text(op));
        }
        let settle = Duration::from_millis(600);
        let tail = match world.last_outage {
            Some((ended, length)) => (ended + reconnect_bound(length)).saturating_sub(world.now),
            None => Duration::ZERO,
        }
        .max(settle);
        if checks.is_empty() {
            steps.push(format!("wait: {{ for: {}ms }}", tail.as_millis()));
        }
        steps.extend(checks.iter().cloned());
        let timeout = world.now + tail + Duration::from_secs(30);
        let mut text = String::new();
        let _ = writeln!(text, "name: {}", yaml_string(name));
        let _ = writeln!(text, "timeout: {}s", timeout.as_secs());
        text.push_str("boards:\n");
        for board in 0..self.boards {
            let _ = writeln!(text, "  {}: {{ profile: sim }}", board_name(board));
        }
        let checker = checks.iter().any(|c| c.contains(CHECKER));
        if self.phones > 0 || checker {
            text.push_str("clients:\n");
            for phone in 0..self.phones {
                let _ = writeln!(text, "  {}: {{}}", phone_name(phone));
            }
            if checker {
                let _ = writeln!(text, "  {CHECKER}: {{ connect: false }}");
            }
        }
        text.push_str("steps:\n");
        for step in steps {
            let _ = writeln!(text, "  - {step}");
        }
        text
    }
}

/// A client that connects late, to read what the broker retains.
pub const CHECKER: &str = "checker";

pub fn board_name(board: usize) -> String {
    if board == 0 {
        "lamp".into()
    } else {
        format!("lamp{}", board + 1)
    }
}

pub fn phone_name(phone: usize) -> String {
    if phone == 0 {
        "phone".into()
    } else {
        format!("phone{}", phone + 1)
    }
}

/// A YAML double-quoted string.
pub fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn ms(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

fn step_text(op: &Op) -> String {
    match op {
        Op::Command {
            phone,
            payload,
            qos,
            retain,
        } => format!(
            "publish: {{ as: {}, topic: {TOPIC}, payload: {}, qos: {qos}, retain: {retain} }}",
            phone_name(*phone),
            yaml_string(payload)
        ),
        Op::Press { board, bounce: 0 } => {
            format!("press_switch: {{ board: {} }}", board_name(*board))
        }
        Op::Press { board, bounce } => format!(
            "press_switch: {{ board: {}, bounce: {bounce} }}",
            board_name(*board)
        ),
        Op::Reset { board } => format!("reset: {{ board: {} }}", board_name(*board)),
        Op::PowerCycle { board, off_for } => format!(
            "power_cycle: {{ board: {}, off_for: {} }}",
            board_name(*board),
            ms(*off_for)
        ),
        Op::Wifi { board, up } => format!(
            "wifi: {{ board: {}, state: {} }}",
            board_name(*board),
            if *up { "up" } else { "down" }
        ),
        Op::Partition { board, length } => format!(
            "partition: {{ board: {}, for: {} }}",
            board_name(*board),
            ms(*length)
        ),
        Op::BrokerRestart { down_for } => {
            format!("broker_restart: {{ down_for: {} }}", ms(*down_for))
        }
        Op::Delay { board, by, length } => format!(
            "delay: {{ board: {}, by: {}, for: {} }}",
            board_name(*board),
            ms(*by),
            ms(*length)
        ),
        Op::Drop {
            board,
            to_broker,
            count,
        } => format!(
            "drop: {{ board: {}, direction: {}, count: {count} }}",
            board_name(*board),
            if *to_broker {
                "to_broker"
            } else {
                "from_broker"
            }
        ),
        Op::Duplicate { phone, count } => format!(
            "duplicate: {{ client: {}, count: {count} }}",
            phone_name(*phone)
        ),
        Op::Wait(length) => format!("wait: {{ for: {} }}", ms(*length)),
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Stimuli per run (waits come on top).
    pub length: usize,
    pub faults: Vec<FaultKind>,
}

/// Payloads a phone sends: the valid ones in several spellings, and garbage.
const PAYLOADS: &[&str] = &[
    "on", "off", "on", "off", "ON", "Off", " on ", "off\n", "\toN", "toggle", "", "onn", "1",
];

/// One run's plan from `seed`: the same seed and options give the same plan.
pub fn generate(seed: u64, options: &Generation) -> Plan {
    let mut rng = fastrand::Rng::with_seed(seed);
    let boards = if rng.u8(..10) < 2 { 2 } else { 1 };
    let phones = if rng.u8(..10) < 2 { 2 } else { 1 };
    let mut plan = Plan {
        boards,
        phones,
        ops: Vec::new(),
    };
    let mut world = World::new(boards);
    let mut made = 0;
    let mut tries = 0;
    while made < options.length && tries < options.length * 50 {
        tries += 1;
        let op = candidate(&mut rng, &plan, &world, &options.faults);
        let wait = if matches!(op, Op::Press { .. }) && rng.u8(..4) == 0 {
            Op::Wait(RAPID)
        } else {
            Op::Wait(pick_wait(&mut rng))
        };
        if !world.allows(&op, &plan) {
            // Not yet: let time pass and try again.
            world.apply(&wait);
            plan.ops.push(wait);
            continue;
        }
        world.apply(&op);
        plan.ops.push(op);
        world.apply(&wait);
        plan.ops.push(wait);
        made += 1;
    }
    plan
}

fn pick_wait(rng: &mut fastrand::Rng) -> Duration {
    const WAITS: [u64; 8] = [100, 120, 150, 200, 250, 400, 700, 1500];
    Duration::from_millis(WAITS[rng.usize(..WAITS.len())])
}

fn candidate(rng: &mut fastrand::Rng, plan: &Plan, world: &World, faults: &[FaultKind]) -> Op {
    let board = rng.usize(..plan.boards);
    let phone = rng.usize(..plan.phones);
    // Stimuli as often as faults.
    if faults.is_empty() || rng.bool() {
        return if rng.bool() {
            Op::Command {
                phone,
                payload: PAYLOADS[rng.usize(..PAYLOADS.len())].to_string(),
                qos: rng.u8(..2),
                retain: rng.u8(..3) == 0,
            }
        } else {
            Op::Press {
                board,
                bounce: if rng.u8(..3) == 0 { rng.u32(1..=6) } else { 0 },
            }
        };
    }
    let ms = |range: std::ops::RangeInclusive<u64>, rng: &mut fastrand::Rng| {
        Duration::from_millis(rng.u64(range) / 50 * 50)
    };
    match faults[rng.usize(..faults.len())] {
        FaultKind::Reset => Op::Reset { board },
        FaultKind::PowerCycle => Op::PowerCycle {
            board,
            off_for: ms(100..=600, rng),
        },
        FaultKind::Wifi => Op::Wifi {
            board,
            up: world.wifi_down[board],
        },
        FaultKind::Partition => Op::Partition {
            board,
            // Now and then long enough for the backoff to reach its cap.
            length: if rng.u8(..8) == 0 {
                ms(9_000..=11_000, rng)
            } else {
                ms(300..=2_500, rng)
            },
        },
        FaultKind::BrokerRestart => Op::BrokerRestart {
            down_for: ms(100..=1_500, rng),
        },
        FaultKind::Delay => Op::Delay {
            board,
            by: ms(50..=200, rng),
            length: ms(300..=1_500, rng),
        },
        FaultKind::Drop => Op::Drop {
            board,
            to_broker: rng.bool(),
            count: rng.u32(1..=2),
        },
        FaultKind::Duplicate => Op::Duplicate {
            phone,
            count: rng.u32(1..=2),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Generation {
        Generation {
            length: 12,
            faults: FaultKind::ALL.to_vec(),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_scenario_text() {
        for seed in 0..50 {
            let a = generate(seed, &options()).to_text("run", &[]);
            let b = generate(seed, &options()).to_text("run", &[]);
            assert_eq!(a, b);
        }
        assert_ne!(
            generate(1, &options()).to_text("run", &[]),
            generate(2, &options()).to_text("run", &[])
        );
    }

    #[test]
    fn generated_plans_keep_their_preconditions_and_are_valid_scenarios() {
        for seed in 0..200 {
            let plan = generate(seed, &options());
            assert!(plan.is_valid(), "seed {seed}: {plan:?}");
            assert_eq!(plan.stimuli(), 12, "seed {seed}");
            plan.to_scenario("run")
                .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
        }
    }

    #[test]
    fn preconditions_refuse_meaningless_sequences() {
        let plan = |ops| Plan {
            boards: 1,
            phones: 1,
            ops,
        };
        let wait = Op::Wait(GAP);
        let up = Op::Wifi { board: 0, up: true };
        let down = Op::Wifi {
            board: 0,
            up: false,
        };
        assert!(
            !plan(vec![wait.clone(), up.clone()]).is_valid(),
            "wifi up when it is up"
        );
        assert!(plan(vec![wait.clone(), down.clone(), wait.clone(), up.clone()]).is_valid());
        assert!(!plan(vec![wait.clone(), down, up]).is_valid(), "no gap");
        let press = Op::Press {
            board: 0,
            bounce: 0,
        };
        assert!(
            !plan(vec![press.clone()]).is_valid(),
            "a press before the first wait"
        );
        assert!(plan(vec![wait.clone(), press.clone(), Op::Wait(RAPID), press]).is_valid());
        assert!(
            !plan(vec![
                wait,
                Op::Press {
                    board: 1,
                    bounce: 0
                }
            ])
            .is_valid(),
            "no board 1"
        );
    }

    #[test]
    fn fault_lists_are_read_with_a_clear_error() {
        assert_eq!(FaultKind::parse_list("none").unwrap(), Vec::new());
        assert_eq!(
            FaultKind::parse_list("wifi, partition").unwrap(),
            [FaultKind::Wifi, FaultKind::Partition]
        );
        let error = FaultKind::parse_list("wifi,flood").unwrap_err();
        assert!(error.contains("no fault \"flood\""), "{error}");
    }
}
