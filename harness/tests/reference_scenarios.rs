//! Every reference scenario in `scenarios/` runs on the simulated board and the embedded
//! broker, and its normalized trace must match its snapshot (checked by insta, so
//! `cargo insta review` works on a mismatch).

mod support;

use hil::runner::{self, AttemptSetup, Status};
use hil::snapshot;

#[test]
fn reference_scenarios_pass_and_match_their_snapshots() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    insta::glob!("../../scenarios", "*.yaml", |path| {
        let scenario = hil::scenario::load(path, &hil::board::profile::known_names())
            .unwrap_or_else(|e| panic!("{}", e.render(false)));
        let setup = AttemptSetup {
            broker: support::config(),
            seed: 7,
            out_dir: None,
            pcap: false,
            bench: Default::default(),
            credentials: None,
            observer: None,
        };
        let interrupt = tokio_util::sync::CancellationToken::new();
        let run = runtime.block_on(runner::run_attempt(&scenario, &setup, &interrupt));
        assert_eq!(
            run.attempt.status,
            Status::Passed,
            "{}: {:#?}\n{}",
            scenario.name,
            run.attempt.failure,
            run.attempt.trace_tail.join("\n")
        );
        let mut settings = insta::Settings::clone_current();
        settings.remove_snapshot_suffix();
        settings.set_snapshot_path("../../scenarios/snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.bind(|| {
            insta::assert_snapshot!(
                hil::scenario::slug(&scenario.name),
                snapshot::normalize(&run.events)
            );
        });
    });
}
