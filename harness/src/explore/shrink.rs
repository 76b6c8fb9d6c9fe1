//! Shrinking a violation: smaller plans (a board or phone fewer, steps deleted, waits
//! shortened, arguments simplified), each kept only when its preconditions hold and it
//! breaks the same invariant on every one of several runs, so a candidate that fails
//! only sometimes is not taken for a reproduction. The result is written with the
//! checks that show the violation, and `hil run`'s own runner must fail it each time.

use std::time::{Duration, Instant};

use super::monitor::Violation;
use super::ops::{Op, Plan, GAP, RAPID};
use super::{Context, Finding, Outcome, Progress};

/// Runs each candidate must fail, all of them, to count as a reproduction.
const CONFIRMATIONS: usize = 2;
/// Runs the written scenario must fail, each with its own fault seed as `hil run`
/// without `--seed` would pick one, to be reported as reproduced.
const FINAL_CONFIRMATIONS: usize = 3;
/// Candidates tried at most, and time spent at most, per finding.
const MAX_CANDIDATES: usize = 60;
const MAX_TIME: Duration = Duration::from_secs(45);

/// Smaller plans than `plan`, most promising first.
fn candidates(plan: &Plan, violation: &Violation) -> Vec<Plan> {
    let mut out = Vec::new();
    let with = |ops: Vec<Op>, boards: usize, phones: usize| Plan {
        boards,
        phones,
        ops,
    };
    // Everything after the step where it was seen.
    let keep = violation.step.saturating_sub(plan.boards) + 1;
    if keep < plan.ops.len() {
        out.push(with(plan.ops[..keep].to_vec(), plan.boards, plan.phones));
    }
    if plan.boards > 1 && violation.board == super::ops::board_name(0) {
        let ops = plan.ops.iter().filter(|op| !matches!(op.board(), Some(b) if b > 0 && !matches!(op, Op::Command { .. } | Op::BrokerRestart { .. } | Op::Duplicate { .. }))).cloned().collect();
        out.push(with(ops, 1, plan.phones));
    }
    if plan.phones > 1 {
        let ops = plan
            .ops
            .iter()
            .filter(|op| !matches!(op, Op::Command { phone, .. } | Op::Duplicate { phone, .. } if *phone > 0))
            .cloned()
            .collect();
        out.push(with(ops, plan.boards, 1));
    }
    // Chunks deleted, halves first.
    let n = plan.ops.len();
    let mut size = n / 2;
    while size >= 1 {
        let mut start = 0;
        while start + size <= n {
            let mut ops = plan.ops.clone();
            ops.drain(start..start + size);
            out.push(with(ops, plan.boards, plan.phones));
            start += size;
        }
        size /= 2;
    }
    // Shorter waits and faults, simpler arguments.
    for (i, op) in plan.ops.iter().enumerate() {
        for simpler in simplify(op) {
            let mut ops = plan.ops.clone();
            ops[i] = simpler;
            out.push(with(ops, plan.boards, plan.phones));
        }
    }
    out.retain(|candidate| candidate != plan && candidate.is_valid());
    out
}

fn shorter(length: Duration, least: Duration) -> Option<Duration> {
    let half = (length / 2).max(least);
    (half < length).then_some(half)
}

fn simplify(op: &Op) -> Vec<Op> {
    let mut out = Vec::new();
    match op {
        Op::Wait(length) => {
            out.extend(shorter(*length, RAPID).map(Op::Wait));
            if *length > GAP {
                out.push(Op::Wait(GAP));
            }
        }
        Op::Command {
            phone,
            payload,
            qos,
            retain,
        } => {
            let plain = super::model::Command::parse(payload.as_bytes());
            let simple = match plain {
                super::model::Command::On => "on",
                super::model::Command::Off => "off",
                super::model::Command::Invalid => "toggle",
            };
            if payload != simple {
                out.push(Op::Command {
                    phone: *phone,
                    payload: simple.into(),
                    qos: *qos,
                    retain: *retain,
                });
            }
            if *qos > 0 || *retain {
                out.push(Op::Command {
                    phone: *phone,
                    payload: payload.clone(),
                    qos: 0,
                    retain: false,
                });
            }
        }
        Op::Press { board, bounce } if *bounce > 1 => out.push(Op::Press {
            board: *board,
            bounce: 1,
        }),
        Op::Partition { board, length } => out.extend(
            shorter(*length, Duration::from_millis(200)).map(|length| Op::Partition {
                board: *board,
                length,
            }),
        ),
        Op::BrokerRestart { down_for } => out.extend(
            shorter(*down_for, Duration::from_millis(100))
                .map(|down_for| Op::BrokerRestart { down_for }),
        ),
        Op::PowerCycle { board, off_for } => out.extend(
            shorter(*off_for, Duration::from_millis(100)).map(|off_for| Op::PowerCycle {
                board: *board,
                off_for,
            }),
        ),
        _ => {}
    }
    out
}

/// Whether `plan` breaks `invariant` on every run; the last violation when it does.
async fn reproduces(
    ctx: &Context,
    plan: &Plan,
    seed: u64,
    invariant: &str,
    runs: &mut usize,
) -> Option<Violation> {
    let mut last = None;
    for _ in 0..CONFIRMATIONS {
        *runs += 1;
        match ctx.run(plan, seed).await.0 {
            Outcome::Violated(violation) if violation.invariant == invariant => {
                last = Some(violation)
            }
            _ => return None,
        }
    }
    last
}

/// The plan up to the step where `violation` was seen, then its checks.
fn written(plan: &Plan, violation: &Violation) -> (Plan, Vec<String>) {
    let keep = (violation.step + 1)
        .saturating_sub(plan.boards)
        .min(plan.ops.len());
    let cut = Plan {
        ops: plan.ops[..keep].to_vec(),
        ..plan.clone()
    };
    (cut, violation.checks.clone())
}

pub(super) async fn shrink(
    ctx: &Context,
    mut plan: Plan,
    seed: u64,
    mut violation: Violation,
    started: Instant,
    progress: &mut impl FnMut(Progress),
) -> Finding {
    // The boards' first expect_connected, the operations and the closing wait.
    let original_steps = plan.boards + plan.ops.len() + 1;
    let shrinking = Instant::now();
    let mut runs = 0;
    let mut tried = 0;
    'smaller: while tried < MAX_CANDIDATES && shrinking.elapsed() < MAX_TIME {
        if ctx.interrupt.is_cancelled() {
            break;
        }
        progress(Progress::Shrinking {
            invariant: violation.invariant,
            steps: plan.ops.len() + plan.boards,
        });
        for candidate in candidates(&plan, &violation) {
            tried += 1;
            if let Some(found) =
                reproduces(ctx, &candidate, seed, violation.invariant, &mut runs).await
            {
                // Smaller is better only while its written scenario still fails: the
                // checks a violation is written with show some instances of it only.
                let (cut, checks) = written(&candidate, &found);
                if let Ok(scenario) = cut.to_scenario_with("candidate", &checks) {
                    runs += 1;
                    if ctx.fails(&scenario, seed).await {
                        plan = candidate;
                        violation = found;
                        continue 'smaller;
                    }
                }
            }
            if tried >= MAX_CANDIDATES || shrinking.elapsed() >= MAX_TIME {
                break;
            }
        }
        break;
    }
    let (cut, checks) = written(&plan, &violation);
    let name = format!("explore finding {seed}");
    let scenario = cut.to_scenario_with(&name, &checks).ok();
    let body = scenario
        .as_ref()
        .and_then(|s| crate::scenario::to_yaml(s).ok())
        .unwrap_or_else(|| cut.to_text(&name, &checks));
    let mut reproduced = scenario.is_some();
    if let Some(scenario) = &scenario {
        for confirmation in 0..FINAL_CONFIRMATIONS {
            runs += 1;
            let fault_seed =
                crate::seed::derive_seed(seed, &format!("confirmation {confirmation}"));
            if !ctx.fails(scenario, fault_seed).await {
                reproduced = false;
                break;
            }
        }
    }
    let steps = scenario.as_ref().map_or(0, |s| s.steps.len());
    let yaml = format!(
        "# Found by hil explore: {} {}\n# Run seed {seed}: {original_steps} steps, shrunk to {steps}.\n# Expected {}; observed {}.\n{body}",
        violation.quantifier.name(),
        violation.invariant,
        violation.expected,
        violation.observed,
    );
    Finding {
        invariant: violation.invariant,
        quantifier: violation.quantifier,
        board: violation.board,
        expected: violation.expected,
        observed: violation.observed,
        run_seed: seed,
        original_steps,
        steps,
        yaml,
        file: Default::default(),
        reproduced,
        shrink_runs: runs,
        took: started.elapsed(),
    }
}
